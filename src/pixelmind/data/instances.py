"""Instance segmentation data: COCO instances json and Ultralytics YOLO-seg, read into one item type.

Layouts (detected from the path):
- COCO: ``D/annotations/instances_{train,val}*.json`` (or a single json, split by seed) with
  images under ``D/<split>``, ``D/images/<split>``, ``D/images`` or ``D``; polygons and RLE.
- YOLO-seg: ``D/data.yaml`` with ``path``, ``train``, ``val`` and ``names``; ``images/x/a.jpg``
  has its labels in ``labels/x/a.txt``, one ``cls x1 y1 x2 y2 x3 y3 ...`` line (0..1) per instance.

Fixable label problems are repaired and reported in ``warnings`` (one line each naming the
file): coordinates outside the image are clipped, zero-area instances dropped. What cannot be
repaired (unknown class, malformed line) raises :class:`~pixelmind.errors.DataError` naming the
file and the line (the annotation id in json). Images without instances are valid negatives.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from warnings import catch_warnings, simplefilter

import numpy as np
import yaml
from PIL import Image
from pycocotools import mask as mask_utils

from pixelmind.data.decode import is_image_file
from pixelmind.data.formats import stratified_split
from pixelmind.data.medical import frame_size, is_dicom, is_nifti, split_frame
from pixelmind.errors import DataError

_TOLERANCE = 0.5  # pixels: exporters round coordinates, so only a real overshoot is worth a warning


@dataclass
class InstanceItem:
    """One image and its instances (``N`` may be 0)."""

    image: Path
    width: int
    height: int
    boxes: np.ndarray  # float32 [N, 4] xyxy pixels
    labels: np.ndarray  # int64 [N], 0-based class index
    polygons: list  # per instance: a list of flat [x1, y1, x2, y2, ...] pixel polygons, or a COCO RLE dict
    iscrowd: np.ndarray  # bool [N]
    image_id: int | None = None  # the COCO image id, when there is one


@dataclass
class InstanceData:
    train: list[InstanceItem]
    val: list[InstanceItem]
    class_names: list[str]
    layout: str  # "coco" or "yolo"
    warnings: list[str]


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0][:120] if str(err) else type(err).__name__


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the header only; an EXIF quarter turn swaps them, as ``load_image`` does.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
        >>> Image.new("L", (5, 3)).save(p)
        >>> image_size(p)
        (5, 3)
    """
    path, frame = split_frame(path)
    try:
        if is_dicom(path) or is_nifti(path):
            return frame_size(path)
        with Image.open(path) as img:
            if frame:
                img.seek(frame)  # pages of a TIFF may differ in size
            (w, h), orientation = img.size, img.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except Exception as err:  # noqa: BLE001 - any header failure is the file's fault
        raise DataError(f"{path}: not a readable image ({_first_line(err)})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def rle_from_mask(mask: np.ndarray) -> dict:
    """A JSON-safe compressed COCO RLE of a 2-D boolean mask.

    Example:
        >>> rle = rle_from_mask(np.eye(4, dtype=bool))
        >>> rle["size"], int(mask_utils.area(rle))
        ([4, 4], 4)
    """
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _to_rle(seg: list | dict, h: int, w: int) -> dict:
    if isinstance(seg, dict):
        # uncompressed RLE (counts as a list) must go through frPyObjects; compressed needs bytes
        counts = seg["counts"]
        if isinstance(counts, list):
            return mask_utils.frPyObjects(seg, h, w)
        return {"size": seg["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    # frPyObjects reads a 4-number list as a box, so polygons are checked for >= 6 numbers on load
    return mask_utils.merge(mask_utils.frPyObjects([list(map(float, p)) for p in seg], h, w))


def instance_masks(item: InstanceItem) -> np.ndarray:
    """Rasterise every instance of ``item`` into a uint8 ``[N, H, W]`` array of 0/1.

    Example:
        >>> it = InstanceItem(Path("a.png"), 4, 4, np.zeros((1, 4), np.float32), np.array([0]),
        ...                   [[[0, 0, 2, 0, 2, 2, 0, 2]]], np.array([False]))
        >>> instance_masks(it).shape, int(instance_masks(it).sum())
        ((1, 4, 4), 4)
    """
    h, w = item.height, item.width
    if not item.polygons:
        return np.zeros((0, h, w), np.uint8)
    with catch_warnings():
        # pycocotools' decode trips numpy 2's __array__(copy=) deprecation; the result is unaffected
        simplefilter("ignore", DeprecationWarning)
        stacked = mask_utils.decode([_to_rle(seg, h, w) for seg in item.polygons])  # [H, W, N], one C call
    return np.ascontiguousarray(stacked.transpose(2, 0, 1), dtype=np.uint8)


def _area(flat: np.ndarray) -> float:
    x, y = flat[0::2], flat[1::2]  # shoelace formula
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _box_of(polys: list[list[float]]) -> list[float]:
    xy = np.concatenate([np.asarray(p) for p in polys])
    return [float(xy[0::2].min()), float(xy[1::2].min()), float(xy[0::2].max()), float(xy[1::2].max())]


def _make_item(path: Path, w: int, h: int, inst: list[tuple], image_id: int | None) -> InstanceItem:
    boxes, labels, polys, crowd = zip(*inst) if inst else ((), (), (), ())
    boxes, labels = np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)
    return InstanceItem(path, w, h, boxes, labels, list(polys), np.array(crowd, bool), image_id)


def _coco_image_root(json_path: Path, images: list[dict]) -> Path:
    """The folder that ``file_name`` is relative to: the usual places, first match wins."""
    top = json_path.parent.parent if json_path.parent.name == "annotations" else json_path.parent
    m = re.match(r"instances_(.+)\.json$", json_path.name)
    split = m.group(1) if m else ""
    candidates = [top / split, top / "images" / split, top / "images", top, json_path.parent]
    candidates += [top / s for s in ("train", "val") if split.startswith(s)]
    for c in candidates:
        if not images or (c / images[0]["file_name"]).is_file():
            return c
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise DataError(f"{json_path}: image {images[0]['file_name']!r} not found under any of {tried}")


def _coco_segmentation(seg: Any, w: int, h: int, where: str, warns: list[str]) -> tuple | None:
    """(box, segmentation) of one annotation; None (with a warning) when nothing of it is left."""
    if isinstance(seg, dict):
        if list(seg.get("size", [])) != [h, w] or "counts" not in seg:
            raise DataError(f"{where}: RLE size {seg.get('size')} does not match the image's [{h}, {w}]")
        rle = _to_rle(seg, h, w)
        if mask_utils.area(rle) == 0:
            warns.append(f"{where}: empty mask, dropped")
            return None
        x, y, bw, bh = mask_utils.toBbox(rle).tolist()
        return [x, y, x + bw, y + bh], seg
    if not isinstance(seg, list) or not all(isinstance(q, list) and len(q) % 2 == 0 for q in seg):
        raise DataError(f"{where}: segmentation must be an RLE dict or polygons of an even length")
    try:
        arrays = [np.asarray(q, np.float64) for q in seg]
    except (TypeError, ValueError):
        raise DataError(f"{where}: a polygon holds something that is not a number") from None
    if not all(np.isfinite(a).all() for a in arrays):
        raise DataError(f"{where}: a polygon holds a non-finite number")
    short = sum(len(a) < 6 for a in arrays)
    arrays = [a for a in arrays if len(a) >= 6]
    clipped = [np.clip(a, 0, np.tile([w, h], len(a) // 2)) for a in arrays]
    if sum(_area(c) for c in clipped) <= 1e-6:  # one warning per dropped instance, whatever the cause
        warns.append(f"{where}: {'fewer than 3 points' if not arrays else 'zero area in the image'}, dropped")
        return None
    if short:
        warns.append(f"{where}: {short} polygon(s) with fewer than 3 points, dropped")
    if any(np.abs(c - a).max() > _TOLERANCE for a, c in zip(arrays, clipped)):
        warns.append(f"{where}: polygon outside the {w}x{h} image, clipped")
    polys = [c.tolist() for c in clipped]
    return _box_of(polys), polys  # the box from the clipped polygons always agrees with the mask


def read_coco_header(p: Path) -> tuple[dict, list[dict], dict[int, int], dict[int, tuple[str, int, int]], Path]:
    """A COCO json's document, sorted categories, category id -> index, image id -> (file, w, h) and image root.

    Shared by the instance and the box readers; every problem is a one-line DataError naming the file.
    """
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: COCO json not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{p}: not a readable COCO json ({_first_line(err)})") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "categories")):
        raise DataError(f"{p}: not a COCO file (expected 'images' and 'categories' lists)")
    try:
        cats = sorted(doc["categories"], key=lambda c: int(c["id"]))
        cat_index = {int(c["id"]): i for i, c in enumerate(cats)}
        images = {
            int(im["id"]): (str(im["file_name"]), int(im["width"]), int(im["height"])) for im in doc["images"]
        }
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{p}: a category or image entry lacks a valid {err} field") from None
    return doc, cats, cat_index, images, _coco_image_root(p, doc["images"])


@lru_cache(maxsize=4)
def _read_coco_cached(path: str, mtime_ns: int) -> tuple[list[InstanceItem], list[str], list[str]]:
    p = Path(path)
    doc, cats, cat_index, images, root = read_coco_header(p)
    warns: list[str] = []
    per_image: dict[int, list[tuple]] = {iid: [] for iid in images}
    anns = doc.get("annotations") or []
    for k, ann in enumerate(anns):
        ann = ann if isinstance(ann, dict) else {}
        where = f"{p}: annotation {ann.get('id', f'#{k}')}"
        if ann.get("image_id") not in images:
            raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        if ann.get("category_id") not in cat_index:
            raise DataError(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'")
        fname, w, h = images[ann["image_id"]]
        if not ann.get("segmentation"):
            warns.append(f"{where} ({fname}): no segmentation, dropped")
            continue
        found = _coco_segmentation(ann["segmentation"], w, h, f"{where} ({fname})", warns)
        if found:
            crowd = bool(ann.get("iscrowd", 0))
            per_image[ann["image_id"]].append((found[0], cat_index[ann["category_id"]], found[1], crowd))
    if anns and all(not (a or {}).get("segmentation") for a in anns):
        raise DataError(f"{p}: no annotation has a 'segmentation' (a detection file, not instance masks)")
    items = []
    for iid, (fname, w, h) in images.items():
        if w <= 0 or h <= 0:
            raise DataError(f"{p}: image {iid} ({fname}) has size {w}x{h}")
        if not (root / fname).is_file():
            raise DataError(f"{p}: image {fname!r} (id {iid}) not found under {root}")
        items.append(_make_item(root / fname, w, h, per_image[iid], iid))
    return items, [str(c["name"]) for c in cats], warns


def read_coco_instances(path: str | Path) -> tuple[list[InstanceItem], list[str], list[str]]:
    """Read one COCO instances json: ``(items, class names in category id order, warnings)``.

    Cached per file and modification time, so reading masks item by item stays cheap.

    Example:
        >>> import tempfile
        >>> from pixelmind.data.shapes import save_shapes
        >>> items, names, _ = read_coco_instances(save_shapes(tempfile.mkdtemp(), "val", 2) / "annotations/instances_val.json")
        >>> len(items), names
        (2, ['circle', 'square', 'triangle'])
    """
    p = Path(path).resolve()
    if not p.is_file():
        raise DataError(f"{path}: COCO json not found")
    items, names, warns = _read_coco_cached(str(p), p.stat().st_mtime_ns)
    return list(items), list(names), list(warns)


def write_coco_instances(
    items: list[InstanceItem], class_names: list[str], path: str | Path, image_root: str | Path | None = None
) -> Path:
    """Write ``items`` as a COCO instances json at ``path`` (category ids 1..; polygons and RLEs as given).

    ``file_name`` is relative to ``image_root`` (default: the folder holding all the images).

    Example:
        >>> import tempfile
        >>> it = InstanceItem(Path("/x/a.png"), 4, 4, np.zeros((0, 4)), np.zeros(0), [], np.zeros(0, bool))
        >>> p = write_coco_instances([it], ["cat"], Path(tempfile.mkdtemp()) / "i.json")
        >>> json.loads(p.read_text())["images"][0]["file_name"]
        'a.png'
    """
    path = Path(path)
    root = image_root or (os.path.commonpath([str(Path(it.image).parent) for it in items]) if items else ".")
    images, anns = [], []
    for i, it in enumerate(items):
        iid = it.image_id if it.image_id is not None else i + 1
        name = Path(os.path.relpath(it.image, root)).as_posix()
        images.append({"id": iid, "file_name": name, "width": it.width, "height": it.height})
        for j, seg in enumerate(it.polygons):
            rle = _to_rle(seg, it.height, it.width)
            if isinstance(seg, dict):  # written compressed: bytes are not JSON
                seg = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
            x1, y1, x2, y2 = (float(v) for v in it.boxes[j])
            ann = {"id": len(anns) + 1, "image_id": iid, "category_id": int(it.labels[j]) + 1}
            ann.update(segmentation=seg, area=float(mask_utils.area(rle)), iscrowd=int(bool(it.iscrowd[j])))
            anns.append({**ann, "bbox": [x1, y1, x2 - x1, y2 - y1]})
    cats = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(class_names)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def _label_path(image: Path) -> Path:
    # Ultralytics' rule: the last "/images/" in the path becomes "/labels/", the suffix ".txt"
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(sb.join(str(image).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")


def _yolo_names(names: Any, yaml_path: Path) -> list[str]:
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict) and sorted(int(k) for k in names) == list(range(len(names))):
        return [str(v) for _, v in sorted((int(k), v) for k, v in names.items())]
    raise DataError(f"{yaml_path}: 'names' must be a list or a mapping with indices 0..N-1")


def _yolo_images(spec: Any, base: Path, yaml_path: Path) -> list[Path]:
    out: list[Path] = []
    for entry in spec if isinstance(spec, list) else [spec]:
        p = base / str(entry)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file() and is_image_file(q))
        elif p.is_file() and p.suffix == ".txt":  # a list of image paths, relative to the dataset root
            out += [base / ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        else:
            raise DataError(f"{yaml_path}: image folder {p} not found")
    return out


def _read_yolo_label(label: Path, image: Path, names: list[str], warns: list[str]) -> InstanceItem:
    w, h = image_size(image)
    inst = []
    lines = label.read_text(errors="replace").splitlines() if label.is_file() else []
    for lineno, line in enumerate(lines, start=1):
        if not line.split():
            continue
        where = f"{label}:{lineno}"
        try:
            cls_f, *values = (float(t) for t in line.split())
        except ValueError:
            raise DataError(f"{where}: not a number in {line.strip()[:80]!r}") from None
        xy = np.asarray(values)
        if not np.isfinite(xy).all() or not cls_f.is_integer() or not 0 <= cls_f < len(names):
            raise DataError(f"{where}: class must be 0..{len(names) - 1}, coordinates finite: {line[:60]!r}")
        if len(xy) % 2 or len(xy) < 6:
            hint = " (a box 'cls cx cy w h'? segmentation needs polygons)" if len(xy) == 4 else ""
            raise DataError(f"{where}: expected 'cls x1 y1 x2 y2 x3 y3 ...', got {len(xy)} numbers{hint}")
        if xy.min() < -1e-3 or xy.max() > 1 + 1e-3:
            warns.append(f"{where}: polygon outside the image (coordinates must be 0..1), clipped")
        poly = np.clip(xy, 0, 1) * np.tile([w, h], len(xy) // 2)
        if _area(poly) <= 1e-6:
            warns.append(f"{where}: zero-area instance, dropped")
            continue
        inst.append((_box_of([poly]), int(cls_f), [poly.tolist()], False))
    return _make_item(image, w, h, inst, None)


def _find_yolo(yaml_path: Path, val_fraction: float, seed: int, split: str = "val") -> InstanceData:
    try:
        cfg = yaml.safe_load(yaml_path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DataError(f"{yaml_path}: not a readable YAML file ({_first_line(err)})") from None
    if not isinstance(cfg, dict) or "train" not in cfg or "names" not in cfg:
        raise DataError(f"{yaml_path}: expected keys 'train' and 'names' (Ultralytics data.yaml)")
    names = _yolo_names(cfg["names"], yaml_path)
    base = yaml_path.parent / str(cfg.get("path") or ".")  # an absolute 'path' replaces the yaml's folder
    warns: list[str] = []
    splits = {}
    for part in ("train", yaml_eval_key(cfg, split, yaml_path)):
        if cfg.get(part):
            images = _yolo_images(cfg[part], base, yaml_path)
            splits[part] = [_read_yolo_label(_label_path(im), im, names, warns) for im in images]
    if not splits.get("train"):
        raise DataError(f"{yaml_path}: no training images in {base / str(cfg['train'])}")
    if split == "test":
        return InstanceData(splits["train"], splits["test"], names, "yolo", warns)
    if "val" not in splits:
        splits = _seeded_split(splits["train"], val_fraction, seed)
        warns.append(f"{yaml_path}: no 'val' set; {len(splits['val'])} images held out (seed {seed})")
    return InstanceData(splits["train"], splits["val"], names, "yolo", warns)


def yaml_eval_key(cfg: dict, split: str, yaml_path: Path) -> str:
    """The data.yaml key of the evaluated split; a test split must be named, never made up from train.

    Example:
        >>> yaml_eval_key({"train": "a", "test": "b"}, "test", Path("data.yaml"))
        'test'
    """
    if split == "test" and not cfg.get("test"):
        raise DataError(f"{yaml_path}: no 'test' entry, so there is no test split to evaluate")
    return split


def _seeded_split(items: list, val_fraction: float, seed: int) -> dict[str, list]:
    if val_fraction <= 0 or not items:
        return {"train": list(items), "val": []}
    tr, va = stratified_split([0] * len(items), val_fraction, seed)
    return {"train": [items[i] for i in tr], "val": [items[i] for i in va]}


def coco_split_files(jsons: list[Path]) -> dict[str, Path]:
    """Which COCO json is which split: ``instances_{train,val,test}*``, or one file for train and val.

    >>> coco_split_files([Path("instances_val2017.json"), Path("instances_train2017.json")])["val"].name
    'instances_val2017.json'
    """
    by_split: dict[str, Path] = {}
    for j in sorted(jsons):
        for split in ("train", "val", "test"):
            if j.name.startswith(f"instances_{split}") and split not in by_split:
                by_split[split] = j
    if "train" not in by_split:
        if len(jsons) != 1:
            raise DataError(f"{jsons[0].parent}: several COCO files, none named instances_train*.json")
        by_split = {"train": jsons[0]}
    return by_split


def coco_eval_file(files: dict[str, Path], split: str) -> Path | None:
    """The COCO json of the evaluated split (None: hold out part of train); a test split must exist."""
    if split == "test" and "test" not in files:
        raise DataError(f"{files['train'].parent}: no instances_test*.json, so there is no test split to evaluate")
    return files.get(split)


def _find_coco(jsons: list[Path], val_fraction: float, seed: int, split: str = "val") -> InstanceData:
    files = coco_split_files(jsons)
    train, names, warns = read_coco_instances(files["train"])
    if (evaluated := coco_eval_file(files, split)) is not None:
        val, val_names, val_warns = read_coco_instances(evaluated)
        if val_names != names:
            raise DataError(f"{evaluated}: categories {val_names} differ from the train file's {names}")
        return InstanceData(train, val, names, "coco", warns + val_warns)
    splits = _seeded_split(train, val_fraction, seed)
    warns.append(f"{files['train']}: no val file; {len(splits['val'])} images held out (seed {seed})")
    return InstanceData(splits["train"], splits["val"], names, "coco", warns)


def find_instance_data(root: str | Path, val_fraction: float = 0.2, seed: int = 0, split: str = "val") -> InstanceData:
    """Find and read the instance segmentation data set (COCO or YOLO-seg) at ``root``.

    ``root`` is the folder, its ``data.yaml`` or a COCO json; without a val split, ``val_fraction``
    of the images are held out (seeded). ``split="test"`` puts the test split in ``val`` (to evaluate it).
    Raises DataError naming the file (and line) of a bad label.

    Example:
        >>> import tempfile
        >>> from pixelmind.data.shapes import save_shapes
        >>> d = find_instance_data(save_shapes(tempfile.mkdtemp(), "train", count=5, size=32))
        >>> d.layout, len(d.train), len(d.val), d.class_names
        ('coco', 4, 1, ['circle', 'square', 'triangle'])
    """
    found = label_files(root)
    if found is None:
        raise DataError(f"{root}: no instance data (expected data.yaml (YOLO-seg) or annotations/*.json)")
    kind, files = found
    return (_find_coco(files, val_fraction, seed, split) if kind == "coco"
            else _find_yolo(files[0], val_fraction, seed, split))  # fmt: skip


def label_files(root: str | Path) -> tuple[str, list[Path]] | None:
    """``("coco", json files)`` or ``("yolo", [data.yaml])`` for a folder, a json or a yaml; None when neither.

    Shared by the instance and the box readers. Raises DataError when ``root`` does not exist.
    """
    root = Path(root)
    if root.is_file() and root.suffix == ".json":
        return "coco", [root]
    if root.is_file() and root.suffix in (".yaml", ".yml"):
        return "yolo", [root]
    if not root.is_dir():
        raise DataError(f"{root}: data set folder not found")
    for name in ("data.yaml", "dataset.yaml", "data.yml"):
        if (root / name).is_file():
            return "yolo", [root / name]
    ann_dir = root / "annotations"
    jsons = sorted(ann_dir.glob("instances*.json")) or sorted(ann_dir.glob("*.json"))
    return ("coco", jsons) if jsons else None
