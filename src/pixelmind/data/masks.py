"""Semantic segmentation data: layouts, class maps, mask decoding and load-time validation.

Layouts (detected from the path, no conversion step):
- "folders": ``D/{train,val}/{images,masks}/`` with the same file names (masks are PNG).
- "pairs": ``D/{images|image|img}`` + ``D/{masks|mask|labels|label}`` (or the same under ``D/train``,
  as in ISBI's ``train/{image,label}`` + unlabelled ``test/``), split into train/val by seed.
- "voc": ``D/JPEGImages``, ``D/SegmentationClass`` (palette PNGs, 255 = ignore) and
  ``D/ImageSets/Segmentation/{train,val}.txt``.
- "coco": ``D/annotations/instances_{train,val}*.json``; instances are painted into class masks.

The class map comes from ``D/classes.yaml`` or is inferred from the mask values: binary 0/255
masks become ``background``/``foreground`` with 255 read as class 1 (not ignore). Every mask is
checked when the data set is found (size against its image's header, values against the class
map), so training never meets a bad mask halfway through an epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image, ImageOps

from pixelmind.data.decode import is_image_file
from pixelmind.data.formats import stratified_split
from pixelmind.data.instances import (
    coco_eval_file,
    coco_split_files,
    image_size,
    instance_masks,
    read_coco_instances,
)
from pixelmind.data.medical import MedicalDecodeError, frame_count, is_nifti, nifti_slice, split_frame
from pixelmind.errors import DataError

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
_IMAGE_DIRS = ("images", "image", "img", "imgs", "imagesTr")  # imagesTr/labelsTr: Medical Segmentation Decathlon
_MASK_DIRS = ("masks", "mask", "labels", "label", "labelsTr")
_MASK_SUFFIXES = ("_mask", "_label", "_gt")  # "x_mask.png" is the mask of "x.jpg" in many data sets


def voc_palette(n: int = 256) -> list[tuple[int, int, int]]:
    """The Pascal VOC bit palette: bits 0, 1, 2 of ``i`` go to R, G, B from the high bit down.

    Example:
        >>> voc_palette(3), voc_palette()[255]
        ([(0, 0, 0), (128, 0, 0), (0, 128, 0)], (224, 224, 192))
    """
    i, pal = np.arange(n), np.zeros((n, 3), np.int64)
    for j in range(8):
        for c in range(3):
            pal[:, c] |= ((i >> (3 * j + c)) & 1) << (7 - j)
    return [(int(r), int(g), int(b)) for r, g, b in pal]


@dataclass
class ClassMap:
    """Class names, their colours (VOC palette by default) and the label losses and metrics ignore."""

    names: list[str]
    colors: list[tuple[int, int, int]] = field(default_factory=list)
    ignore_index: int = 255
    remap: dict[int, int] = field(default_factory=dict)  # raw mask value -> class (binary masks: {255: 1})

    def __post_init__(self) -> None:
        n = len(self.names)
        self.colors = [tuple(int(v) for v in c) for c in self.colors] or voc_palette(n)
        if not 0 < n <= 255 or len(self.colors) != n or not n <= self.ignore_index <= 255:
            raise DataError(
                f"class map: {n} names (1..255), {len(self.colors)} colors (one each) and "
                f"ignore_index {self.ignore_index} (in {n}..255) do not fit together"
            )


def _by_index(x: Any, what: str) -> list:
    if not isinstance(x, dict):
        return list(x)
    if sorted(int(k) for k in x) != list(range(len(x))):
        raise DataError(f"{what} must have indices 0..{len(x) - 1}, got {sorted(x)}")
    return [v for _, v in sorted((int(k), v) for k, v in x.items())]


def read_class_map(path: str | Path) -> ClassMap:
    """Read ``classes.yaml``: ``names`` (list or ``{index: name}``), optional ``colors``, ``ignore_index``.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "classes.yaml")
        >>> _ = open(p, "w").write("names: {0: sky, 1: road}\\ncolors: [[0, 0, 255], '#808080']\\n")
        >>> cm = read_class_map(p)
        >>> cm.names, cm.colors[1], cm.ignore_index
        (['sky', 'road'], (128, 128, 128), 255)
    """
    try:
        doc = yaml.safe_load(Path(path).read_text())
        doc = {"names": doc} if isinstance(doc, list) else doc
        names, colors = _by_index(doc["names"], "names"), _by_index(doc.get("colors") or [], "colors")
        rgb = [
            tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) if isinstance(c, str) else tuple(c)
            for c in colors
        ]
        if any(len(c) != 3 or not all(0 <= int(v) <= 255 for v in c) for c in rgb):
            raise DataError("colors must be [r, g, b] (0..255) or '#rrggbb'")
        return ClassMap([str(n) for n in names], rgb, int(doc.get("ignore_index", 255)))
    except DataError as err:
        raise DataError(f"{path}: {str(err).removeprefix('class map: ')}") from None
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as err:
        reason = (str(err) or type(err).__name__).splitlines()[0]  # YAML errors span several lines
        raise DataError(f"{path}: not a class map, expected 'names: [...]' ({reason})") from None


@dataclass
class MaskItem:
    image: Path
    mask: Path | None  # None: an image without a mask (check reports it; training skips it)
    coco: tuple[Path, int] | None = None  # (annotation json, image id) when the mask is painted from COCO

    @property
    def labelled(self) -> bool:
        return self.mask is not None or self.coco is not None


@dataclass
class SemanticData:
    train: list[MaskItem]
    val: list[MaskItem]
    class_map: ClassMap
    layout: str  # "folders", "pairs", "voc" or "coco"
    notes: list[str]
    counts: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # pixels per class, per split


def _open_mask(path: Path) -> tuple[np.ndarray, bool]:
    """The mask's raw values and whether they are RGB colour codes (``r << 16 | g << 8 | b``)."""
    file, frame = split_frame(path)
    if is_nifti(file):  # a slice of a label volume
        try:
            return nifti_slice(file, frame, 2**31, as_mask=True), False
        except MedicalDecodeError as err:
            raise DataError(f"{path}: {err}") from None
    try:
        with Image.open(path) as img:
            if img.getexif().get(0x0112, 1) != 1:  # upright, like the image it belongs to
                img = ImageOps.exif_transpose(img)
            if img.mode in ("P", "L", "I;16", "I;16L", "I;16B", "I"):  # palette indices or class values
                return np.asarray(img), False
            if img.mode in ("1", "LA", "PA"):
                return np.asarray(img.convert("L") if img.mode == "1" else img.getchannel(0)), False
            rgb = np.asarray(img.convert("RGB")).astype(np.int32) if img.mode in ("RGB", "RGBA") else None
    except FileNotFoundError:
        raise DataError(f"{path}: mask file not found") from None
    except Exception as err:  # noqa: BLE001 - any decoder failure is the file's fault
        reason = (str(err) or type(err).__name__).splitlines()[0]
        raise DataError(f"{path}: corrupt or unreadable mask ({reason})") from None
    if rgb is None:
        raise DataError(f"{path}: mask mode {img.mode} is not supported (save a palette, grey or RGB PNG)")
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return rgb[..., 0].astype(np.uint8), False  # grey saved as RGB
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], True


def _value_table(values: np.ndarray, is_rgb: bool, cm: ClassMap) -> np.ndarray:
    """The class (or ignore index) of each raw value; -1 where a value is not in the class map."""
    if is_rgb:
        codes = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(cm.colors)}
        r, g, b = voc_palette()[cm.ignore_index]
        codes.setdefault((r << 16) | (g << 8) | b, cm.ignore_index)  # VOC's border colour, saved as RGB
        return np.array([codes.get(int(v), -1) for v in values], np.int64)
    out = np.array([cm.remap.get(int(v), int(v)) for v in values], np.int64)
    return np.where(((out >= 0) & (out < len(cm.names))) | (out == cm.ignore_index), out, -1)


def _decode(raw: np.ndarray, is_rgb: bool, cm: ClassMap, path: Path) -> np.ndarray:
    values, inverse = np.unique(raw, return_inverse=True)
    table = _value_table(values, is_rgb, cm)
    if (table < 0).any():
        bad = values[table < 0][:8]
        shown = [f"#{int(v):06x}" for v in bad] if is_rgb else bad.tolist()
        raise DataError(
            f"{path}: mask {'colours' if is_rgb else 'values'} {shown} are not in the class map "
            f"(classes 0..{len(cm.names) - 1}, ignore {cm.ignore_index})"
        )
    return table[inverse].reshape(raw.shape).astype(np.uint8)


def _size_error(item: MaskItem, raw: np.ndarray, w: int, h: int) -> DataError:
    return DataError(
        f"{item.mask}: mask is {raw.shape[1]}x{raw.shape[0]} but its image {item.image} is {w}x{h}"
    )


@lru_cache(maxsize=4)
def _coco_index(json_path: str, mtime_ns: int) -> dict[int, Any]:
    return {it.image_id: it for it in read_coco_instances(json_path)[0]}


def read_mask(item: MaskItem, class_map: ClassMap, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode ``item``'s mask into uint8 ``[H, W]`` class indices (and ``ignore_index``).

    ``image_size`` is the ``(width, height)`` the mask must have; a mismatch raises DataError.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "m.png")
        >>> Image.fromarray(np.array([[0, 255]], np.uint8)).save(p)
        >>> read_mask(MaskItem(Path("a.jpg"), Path(p)), ClassMap(["bg", "fg"], remap={255: 1})).tolist()
        [[0, 1]]
    """
    if item.coco is not None:
        json_path = Path(item.coco[0]).resolve()
        inst = _coco_index(str(json_path), json_path.stat().st_mtime_ns)[item.coco[1]]
        masks, crowd = instance_masks(inst).astype(bool), inst.iscrowd.astype(bool)
        out = np.zeros((inst.height, inst.width), np.uint8)
        # large instances first, so a small object on top of a large one keeps its pixels
        for i in sorted(np.flatnonzero(~crowd), key=lambda i: -int(masks[i].sum())):
            out[masks[i]] = inst.labels[i] + 1
        out[masks[crowd].any(0)] = class_map.ignore_index  # crowd regions are neither class nor background
        return out
    if item.mask is None:
        raise DataError(f"{item.image}: this image has no mask")
    raw, is_rgb = _open_mask(item.mask)
    if image_size is not None and raw.shape != (image_size[1], image_size[0]):
        raise _size_error(item, raw, *image_size)
    return _decode(raw, is_rgb, class_map, item.mask)


def _pair(images_dir: Path, masks_dir: Path, notes: list[str]) -> list[MaskItem]:
    """Match images and masks by their path below the two folders, without extension."""
    images = sorted(p for p in images_dir.rglob("*") if p.is_file() and is_image_file(p))
    if not images:
        raise DataError(f"{images_dir}: no image files (expected images, and masks in {masks_dir})")
    masks: dict[str, Path] = {}
    for m in sorted(p for p in masks_dir.rglob("*") if p.is_file() and is_image_file(p)):
        key = m.relative_to(masks_dir).with_suffix("").as_posix()
        for k in [key] + [key.removesuffix(s) for s in _MASK_SUFFIXES if key.endswith(s)]:
            masks.setdefault(k, m)
    items = [MaskItem(p, masks.get(p.relative_to(images_dir).with_suffix("").as_posix())) for p in images]
    if not any(it.labelled for it in items):
        raise DataError(f"{images_dir}: no image has a mask of the same file name in {masks_dir}")
    unused = len(set(masks.values()) - {it.mask for it in items})
    if unused:
        notes.append(f"{masks_dir}: {unused} masks have no image of the same name; not used")
    return [sliced for it in items for sliced in _volume_slices(it)]


def _volume_slices(item: MaskItem) -> list[MaskItem]:
    """A NIfTI image volume and its label volume: one item per slice (``file#k``); other items as they are."""
    if not is_nifti(item.image):
        return [item]
    n = frame_count(item.image)
    if item.mask is not None and frame_count(item.mask) != n:
        raise DataError(f"{item.mask}: {frame_count(item.mask)} slices but its image {item.image} has {n}")
    return [MaskItem(Path(f"{item.image}#{k}"), Path(f"{item.mask}#{k}") if item.mask else None) for k in range(n)]


def _pair_dirs(d: Path) -> tuple[Path, Path] | None:
    imgs = next((d / n for n in _IMAGE_DIRS if (d / n).is_dir()), None)
    masks = next((d / n for n in _MASK_DIRS if (d / n).is_dir()), None)
    return (imgs, masks) if imgs and masks else None


def _split(items: list[MaskItem], val_fraction: float, seed: int, notes: list[str]) -> tuple[list, list]:
    labelled = [it for it in items if it.labelled]
    if val_fraction <= 0:
        return items, []
    # the slices of one volume (one patient) stay together: neighbouring slices in train and val would leak
    volumes = list(dict.fromkeys(split_frame(it.image)[0] for it in labelled))
    tr, va = stratified_split([0] * len(volumes), val_fraction, seed)
    held = {volumes[i] for i in va}
    train = [it for it in labelled if split_frame(it.image)[0] not in held]
    val = [it for it in labelled if split_frame(it.image)[0] in held]
    what = f"{len(va)} of {len(volumes)} volumes ({len(val)} slices)" if len(volumes) < len(labelled) else f"{len(val)} of {len(labelled)} labelled images"
    notes.append(f"no val split: {what} held out (seed {seed})")
    # images without masks stay in train, where check reports them and training skips them
    return train + [it for it in items if not it.labelled], val


def _voc(root: Path, val_fraction: float, seed: int, notes: list[str], split: str) -> tuple[list, list]:
    sets, jpeg, seg = root / "ImageSets" / "Segmentation", root / "JPEGImages", root / "SegmentationClass"
    if split == "test" and not (sets / "test.txt").is_file():
        raise DataError(f"{root}: no ImageSets/Segmentation/test.txt, so there is no test split to evaluate")
    if not (sets / "train.txt").is_file():  # most JPEGImages have no mask in VOC: use only those that do
        return _split([it for it in _pair(jpeg, seg, notes) if it.labelled], val_fraction, seed, notes)
    out: tuple[list, list] = ([], [])
    for part, items in zip(("train", split), out):
        txt = sets / f"{part}.txt"
        lines = txt.read_text().splitlines() if txt.is_file() else []
        for lineno, stem in ((i, ln.strip()) for i, ln in enumerate(lines, start=1) if ln.strip()):
            image = next(
                (p for p in (jpeg / f"{stem}{e}" for e in (".jpg", ".jpeg", ".png")) if p.is_file()), None
            )
            if image is None or not (seg / f"{stem}.png").is_file():
                raise DataError(
                    f"{txt}:{lineno}: {stem!r} has no image in JPEGImages/ or mask in SegmentationClass/"
                )
            items.append(MaskItem(image, seg / f"{stem}.png"))
    return out


def _coco(root: Path, val_fraction: float, seed: int, notes: list[str], split: str) -> tuple[list, list, list[str]]:
    files = coco_split_files(sorted((root / "annotations").glob("instances*.json")))
    evaluated = coco_eval_file(files, split)
    splits, names = [], []
    for path in [files["train"], *([evaluated] if evaluated else [])]:
        items, names, warns = read_coco_instances(path)
        notes.extend(warns)
        splits.append([MaskItem(it.image, None, (path, int(it.image_id))) for it in items])
    return (*_split(splits[0], val_fraction, seed, notes), names) if len(splits) == 1 else (*splits, names)


def _scan(items: list[MaskItem]) -> dict[Path, tuple[np.ndarray, np.ndarray, bool]]:
    """Raw values, their pixel counts and the colour flag of every mask file, its size checked."""
    out = {}
    for it in (it for it in items if it.mask is not None and it.mask not in out):
        raw, is_rgb = _open_mask(it.mask)
        w, h = image_size(it.image)  # header only: masks are checked without decoding the images
        if raw.shape != (h, w):
            raise _size_error(it, raw, w, h)
        if raw.dtype == np.uint8:  # bincount is ~10x faster than unique on 8-bit masks
            counts = np.bincount(raw.ravel(), minlength=256)
            out[it.mask] = (np.flatnonzero(counts), counts[counts > 0], False)
        else:
            out[it.mask] = (*np.unique(raw, return_counts=True), is_rgb)
    return out


def _infer_class_map(scans: dict, notes: list[str]) -> ClassMap:
    rgb = [p for p, (_, _, is_rgb) in scans.items() if is_rgb]
    if rgb:
        raise DataError(
            f"{rgb[0]}: colour masks need a classes.yaml with 'names' and 'colors' beside the data"
        )
    values = set().union(*(v.tolist() for v, _, _ in scans.values()))
    if values <= {0, 255} or values <= {0, 1}:
        notes.append("no classes.yaml: binary masks, classes background/foreground (255 = foreground)")
        return ClassMap(["background", "foreground"], remap={255: 1} if 255 in values else {})
    classes = values - {255} if max(values - {255}, default=0) < 255 else values
    bad = [v for v in classes if not 0 <= v <= 254]
    if bad:
        path = next(p for p, (v, _, _) in scans.items() if np.isin(v, bad).any())
        raise DataError(f"{path}: mask value {bad[0]} is not a class index 0..254")
    n = max(classes) + 1
    ignore = ", 255 = ignore" if 255 in values - classes else ""
    notes.append(f"no classes.yaml: {n} classes (class_0..class_{n - 1}) inferred from mask values{ignore}")
    return ClassMap([f"class_{i}" for i in range(n)])


def _check(scans: dict, data: SemanticData) -> dict[str, np.ndarray]:
    """Pixels per class in each split; a value outside the class map raises, naming the mask file."""
    cm, counts = data.class_map, {}
    for split, items in (("train", data.train), ("val", data.val)):
        total = np.zeros(len(cm.names), np.float64)
        for it in (it for it in items if it.mask is not None):
            values, n, is_rgb = scans[it.mask]
            table = _value_table(values, is_rgb, cm)
            if (table < 0).any():
                _decode(values[:, None], is_rgb, cm, it.mask)  # raises the error reading the mask would
            keep = table != cm.ignore_index
            total += np.bincount(table[keep], weights=n[keep], minlength=len(cm.names))
        counts[split] = total.astype(np.int64)
    return counts


def find_semantic_data(root: str | Path, val_fraction: float = 0.2, seed: int = 0, split: str = "val") -> SemanticData:
    """Find, read and check the semantic segmentation data set at ``root`` (layouts: see the module).

    Without a val split in the data, ``val_fraction`` of the labelled images are held out (seeded).
    ``split="test"`` reads the test split (``test/``, ``ImageSets/Segmentation/test.txt``,
    ``instances_test*.json``) into ``val``, to evaluate it.
    Raises DataError naming the folder or file and the problem: missing folders, no image/mask
    pairs, a mask whose size differs from its image's, mask values outside the class map.

    Example:
        >>> import tempfile
        >>> from pixelmind.data.shapes import save_shapes
        >>> d = find_semantic_data(save_shapes(tempfile.mkdtemp(), "train", count=5, size=16))
        >>> d.layout, len(d.train), len(d.val), d.class_map.names
        ('pairs', 4, 1, ['background', 'circle', 'square', 'triangle'])
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data set folder not found")
    notes: list[str] = []
    voc_dirs = ("JPEGImages", "SegmentationClass")
    voc = next((d for d in (root, *sorted(root.iterdir())) if all((d / v).is_dir() for v in voc_dirs)), None)
    coco_names: list[str] = []
    if voc is not None:
        layout, (train, val) = "voc", _voc(voc, val_fraction, seed, notes, split)
    elif (pairs := _pair_dirs(root / "train")) and (root / split).is_dir():
        if (val_pairs := _pair_dirs(root / split)) is None:
            raise DataError(f"{root / split}: expected images/ and masks/ folders, as in {root / 'train'}")
        layout, train, val = "folders", _pair(*pairs, notes), _pair(*val_pairs, notes)
    elif pairs or (pairs := _pair_dirs(root)):
        if split == "test":
            raise DataError(f"{root}: no test/ folder with images/ and masks/, so there is no test split to evaluate")
        layout, (train, val) = "pairs", _split(_pair(*pairs, notes), val_fraction, seed, notes)
        if (root / "test").is_dir() and not _pair_dirs(root / "test"):
            notes.append(f"{root / 'test'}: images without masks; not used")
    elif list((root / "annotations").glob("instances*.json")):
        layout, (train, val, coco_names) = "coco", _coco(root, val_fraction, seed, notes, split)
    else:
        raise DataError(
            f"{root}: no segmentation data (expected train/ and val/ with images/ + masks/, images/ "
            "+ masks/, VOC's JPEGImages/ + SegmentationClass/, or annotations/instances_*.json)"
        )
    scans = _scan(train + val)
    yaml_path = next((root / n for n in ("classes.yaml", "classes.yml") if (root / n).is_file()), None)
    if coco_names:
        cm = ClassMap(["background", *coco_names])  # categories in id order -> 1..
    elif yaml_path is not None:
        cm = read_class_map(yaml_path)
    else:
        cm = ClassMap(list(VOC_CLASSES)) if layout == "voc" else _infer_class_map(scans, notes)
    values = set().union(*(v.tolist() for v, _, rgb in scans.values() if not rgb))
    binary = 255 in values and values <= {0, 255}
    if binary and yaml_path and len(cm.names) == 2 and not cm.remap and cm.ignore_index == 255:
        cm.remap = {255: 1}  # two classes and only 0/255 in the masks: 255 must be the foreground
        notes.append(f"{yaml_path}: binary 0/255 masks, 255 read as class 1 ({cm.names[1]}), not ignore")
    data = SemanticData(train, val, cm, layout, notes)
    data.counts = _check(scans, data) if layout != "coco" else {}
    return data


def pixel_counts(data: SemanticData, split: str) -> np.ndarray:
    """Pixels of each class (ignored pixels left out) over the labelled images of ``split``.

    Example:
        >>> import tempfile
        >>> from pixelmind.data.shapes import save_shapes
        >>> d = find_semantic_data(save_shapes(tempfile.mkdtemp(), "train", count=3, size=16))
        >>> int(pixel_counts(d, "train").sum() + pixel_counts(d, "val").sum())
        768
    """
    if split not in data.counts:  # COCO: painted only when asked, it costs a full pass
        total = np.zeros(len(data.class_map.names), np.int64)
        for it in (it for it in getattr(data, split) if it.labelled):
            m = read_mask(it, data.class_map)
            total += np.bincount(m[m != data.class_map.ignore_index], minlength=len(total))[: len(total)]
        data.counts[split] = total
    return data.counts[split].copy()


def masks_summary(data: SemanticData) -> dict[str, Any]:
    """What ``pixelmind check --task segment`` reports: images, images without masks, class pixel shares.

    Example:
        >>> import tempfile
        >>> from pixelmind.data.shapes import save_shapes
        >>> s = masks_summary(find_semantic_data(save_shapes(tempfile.mkdtemp(), "train", count=3, size=16)))
        >>> s["images"], abs(sum(s["pixel_share"].values()) - 1) < 1e-5
        ({'train': 2, 'val': 1}, True)
    """
    cm, splits = data.class_map, {"train": data.train, "val": data.val}
    counts = {s: pixel_counts(data, s) for s in splits}
    total = counts["train"] + counts["val"]
    return {
        "layout": data.layout,
        "classes": list(cm.names),
        "ignore_index": cm.ignore_index,
        "images": {s: len(items) for s, items in splits.items()},
        "without_mask": {s: sum(not it.labelled for it in items) for s, items in splits.items()},
        "pixels": {s: dict(zip(cm.names, c.tolist())) for s, c in counts.items()},
        "pixel_share": {n: round(float(c) / max(int(total.sum()), 1), 6) for n, c in zip(cm.names, total)},
        "notes": list(data.notes),
    }
