"""Object detection data: COCO json, Ultralytics YOLO txt and Pascal VOC XML, read natively into one item type.

Layouts (detected from the path, no conversion step):
- COCO: ``D/annotations/instances_{train,val}*.json`` (or one json, split by seed); boxes from
  ``bbox`` ``[x, y, w, h]``; ``segmentation`` is not needed. Images as for instance data
  (``D/<split>``, ``D/images/<split>``, ``D/images`` or ``D``).
- YOLO: ``D/data.yaml`` with ``path``, ``train``, ``val`` and ``names``; ``images/x/a.jpg`` has its
  labels in ``labels/x/a.txt``, one ``cls cx cy w h`` line (0..1 of the image) per box.
- Pascal VOC: ``D/Annotations/*.xml`` with ``D/JPEGImages`` and ``D/ImageSets/Main/{train,val}.txt``,
  or the flat ``D/{annotations,images}`` variant; see :mod:`pixelmind.data.voc`.

Fixable label problems are repaired and reported in ``warnings`` (one line each naming the file
and line): boxes reaching out of the image are clipped, zero-area boxes dropped. What cannot be
repaired (unknown class id, malformed line or field) raises :class:`~pixelmind.errors.DataError`
at load time, naming the file and the line (the annotation id in json, the object's line in XML).
Images without boxes are valid negatives.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from pixelmind.data.instances import (
    _first_line,
    _label_path,
    _seeded_split,
    _yolo_images,
    _yolo_names,
    coco_eval_file,
    coco_split_files,
    image_size,
    read_coco_header,
    yaml_eval_key,
)
from pixelmind.errors import DataError

_TOLERANCE = 0.5  # pixels: exporters round coordinates, so only a real overshoot is worth a warning


@dataclass
class BoxItem:
    """One image and its boxes (``N`` may be 0: a negative)."""

    image: Path
    width: int
    height: int
    boxes: np.ndarray  # float32 [N, 4] xyxy pixels
    labels: np.ndarray  # int64 [N], 0-based class index
    iscrowd: np.ndarray  # bool [N]; COCO crowd regions and VOC "difficult" objects: ignored in evaluation


@dataclass
class DetectionData:
    train: list[BoxItem]
    val: list[BoxItem]
    class_names: list[str]
    layout: str  # "coco", "yolo" or "voc"
    warnings: list[str]  # repaired label problems, one line each naming the file (and line)
    notes: list[str] = field(default_factory=list)  # how the split was made, when it was not given


def make_box_item(image: Path, w: int, h: int, found: list[tuple[list[float], int, bool]]) -> BoxItem:
    """A :class:`BoxItem` from ``(xyxy box, label, crowd)`` tuples.

    Example:
        >>> make_box_item(Path("a.png"), 8, 6, [([1, 1, 4, 5], 2, False)]).boxes.tolist()
        [[1.0, 1.0, 4.0, 5.0]]
    """
    boxes, labels, crowd = zip(*found) if found else ((), (), ())
    return BoxItem(
        Path(image), int(w), int(h), np.array(boxes, np.float32).reshape(-1, 4),
        np.array(labels, np.int64), np.array(crowd, bool),
    )  # fmt: skip


def clip_box(box: list[float], w: int, h: int, where: str, warns: list[str]) -> list[float] | None:
    """``box`` (xyxy pixels) clipped to the ``w`` x ``h`` image; None when no area is left.

    Both repairs add a warning starting with ``where``; an overshoot under half a pixel is
    clipped silently (exporters round coordinates).

    Example:
        >>> warns = []
        >>> clip_box([-5, 2, 8, 6], 10, 10, "a.txt:3", warns), warns
        ([0, 2, 8, 6], ['a.txt:3: box [-5, 2, 8, 6] outside the 10x10 image, clipped'])
        >>> clip_box([4, 4, 4, 9], 10, 10, "a.txt:4", warns), warns[-1]
        (None, 'a.txt:4: zero-area box [4, 4, 4, 9] in the 10x10 image, dropped')
    """
    x1, y1, x2, y2 = box
    c = [min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)]
    shown = "[" + ", ".join(f"{v:g}" for v in box) + "]"
    if c[2] - c[0] <= 0 or c[3] - c[1] <= 0:
        warns.append(f"{where}: zero-area box {shown} in the {w}x{h} image, dropped")
        return None
    if max(abs(a - b) for a, b in zip(box, c)) > _TOLERANCE:
        warns.append(f"{where}: box {shown} outside the {w}x{h} image, clipped")
    return c


def _numbers(values, count: int) -> list[float] | None:
    """``count`` finite floats, or None when ``values`` is not that."""
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    ok = len(out) == count and all(math.isfinite(v) for v in out)
    return out if ok and not any(isinstance(v, bool) for v in values) else None


# ---------------------------------------------------------------- COCO


def read_coco_boxes(path: str | Path) -> tuple[list[BoxItem], list[str], list[str]]:
    """Read one COCO json's boxes: ``(items, class names in category id order, warnings)``.

    Example:
        >>> import tempfile
        >>> from pixelmind.data.shapes import save_shapes
        >>> items, names, _ = read_coco_boxes(save_shapes(tempfile.mkdtemp(), "val", 2) / "annotations/instances_val.json")
        >>> len(items), names
        (2, ['circle', 'square', 'triangle'])
    """
    p = Path(path)
    doc, cats, cat_index, images, root = read_coco_header(p)
    warns: list[str] = []
    per_image: dict[int, list[tuple]] = {iid: [] for iid in images}
    for k, ann in enumerate(doc.get("annotations") or []):
        ann = ann if isinstance(ann, dict) else {}
        where = f"{p}: annotation {ann.get('id', f'#{k}')}"
        if ann.get("image_id") not in images:
            raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        if ann.get("category_id") not in cat_index:
            raise DataError(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'")
        fname, w, h = images[ann["image_id"]]
        xywh = _numbers(ann.get("bbox") if isinstance(ann.get("bbox"), list) else None, 4)
        if xywh is None:
            raise DataError(
                f"{where} ({fname}): 'bbox' must be 4 finite numbers [x, y, w, h], got {ann.get('bbox')!r}"
            )
        x, y, bw, bh = xywh
        box = clip_box([x, y, x + bw, y + bh], w, h, f"{where} ({fname})", warns)
        if box is not None:
            per_image[ann["image_id"]].append(
                (box, cat_index[ann["category_id"]], bool(ann.get("iscrowd", 0)))
            )
    items = []
    for iid, (fname, w, h) in images.items():
        if w <= 0 or h <= 0:
            raise DataError(f"{p}: image {iid} ({fname}) has size {w}x{h}")
        if not (root / fname).is_file():
            raise DataError(f"{p}: image {fname!r} (id {iid}) not found under {root}")
        items.append(make_box_item(root / fname, w, h, per_image[iid]))
    return items, [str(c["name"]) for c in cats], warns


def _find_coco(jsons: list[Path], val_fraction: float, seed: int, split: str = "val") -> DetectionData:
    files = coco_split_files(jsons)
    train, names, warns = read_coco_boxes(files["train"])
    if (evaluated := coco_eval_file(files, split)) is not None:
        val, val_names, val_warns = read_coco_boxes(evaluated)
        if val_names != names:
            raise DataError(f"{evaluated}: categories {val_names} differ from the train file's {names}")
        return DetectionData(train, val, names, "coco", warns + val_warns)
    splits = _seeded_split(train, val_fraction, seed)
    note = f"{files['train']}: no val file; {len(splits['val'])} images held out (seed {seed})"
    return DetectionData(splits["train"], splits["val"], names, "coco", warns, [note])


def _write_coco(items: list[BoxItem], names: list[str], path: Path, files: list[str]) -> None:
    images, anns = [], []
    for i, (it, fname) in enumerate(zip(items, files), start=1):
        images.append({"id": i, "file_name": fname, "width": it.width, "height": it.height})
        for (x1, y1, x2, y2), label, crowd in zip(it.boxes.tolist(), it.labels.tolist(), it.iscrowd.tolist()):
            bw, bh = x2 - x1, y2 - y1
            ann = {"id": len(anns) + 1, "image_id": i, "category_id": label + 1, "bbox": [x1, y1, bw, bh]}
            anns.append({**ann, "area": bw * bh, "iscrowd": int(crowd)})
    cats = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(names)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


# ---------------------------------------------------------------- YOLO


def read_yolo_boxes(label: Path, image: Path, n_classes: int, warns: list[str]) -> BoxItem:
    """Read one YOLO label file (missing or empty: a negative) against its image's upright size.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> d = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (20, 10)).save(d / "a.png")
        >>> _ = (d / "a.txt").write_text("0 0.5 0.5 0.2 0.4\\n")
        >>> read_yolo_boxes(d / "a.txt", d / "a.png", 1, []).boxes.tolist()
        [[8.0, 3.0, 12.0, 7.0]]
    """
    w, h = image_size(image)
    found = []
    lines = label.read_text(errors="replace").splitlines() if label.is_file() else []
    for lineno, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{label}:{lineno}"
        if len(tokens) != 5:
            hint = " (a YOLO-seg polygon line?)" if len(tokens) > 5 else ""
            raise DataError(
                f"{where}: expected 'cls cx cy w h' (5 columns), got {len(tokens)}{hint}: {line.strip()[:60]!r}"
            )
        values = _numbers(tokens, 5)
        if values is None:
            raise DataError(f"{where}: not a finite number in {line.strip()[:60]!r}")
        cls, cx, cy, bw, bh = values
        if not cls.is_integer() or not 0 <= cls < n_classes:
            raise DataError(f"{where}: unknown class id {tokens[0]} (data.yaml names 0..{n_classes - 1})")
        box = [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
        box = clip_box(box, w, h, where, warns)
        if box is not None:
            found.append((box, int(cls), False))
    return make_box_item(image, w, h, found)


def _find_yolo(yaml_path: Path, val_fraction: float, seed: int, split: str = "val") -> DetectionData:
    try:
        cfg = yaml.safe_load(yaml_path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
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
            splits[part] = [read_yolo_boxes(_label_path(im), im, len(names), warns) for im in images]
    if not splits.get("train"):
        raise DataError(f"{yaml_path}: no training images in {base / str(cfg['train'])}")
    if split == "test":
        return DetectionData(splits["train"], splits["test"], names, "yolo", warns)
    notes = []
    if "val" not in splits:
        splits = _seeded_split(splits["train"], val_fraction, seed)
        notes.append(f"{yaml_path}: no 'val' set; {len(splits['val'])} images held out (seed {seed})")
    return DetectionData(splits["train"], splits["val"], names, "yolo", warns, notes)


def _write_yolo_labels(it: BoxItem, path: Path) -> None:
    lines = []
    for (x1, y1, x2, y2), label, crowd in zip(it.boxes.tolist(), it.labels.tolist(), it.iscrowd.tolist()):
        if crowd:  # YOLO has no "ignore" flag: left out, as Ultralytics' own COCO and VOC converters do
            continue
        w, h = it.width, it.height
        cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
        # 7 significant digits: under 1e-3 px of error up to 10,000 px images
        lines.append(f"{label} {cx:.7g} {cy:.7g} {bw:.7g} {bh:.7g}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))  # an empty file for a negative: explicit, not a forgotten label


# ---------------------------------------------------------------- both ways


def find_detection_data(root: str | Path, val_fraction: float = 0.2, seed: int = 0, split: str = "val") -> DetectionData:
    """Find and read the detection data set (COCO, YOLO or Pascal VOC) at ``root``.

    ``root`` is the folder, its ``data.yaml`` or a COCO json. Without a given val split,
    ``val_fraction`` of the images are held out (seeded, reproducible; ``notes`` says so).
    ``split="test"`` puts the data set's test split (``instances_test*.json``, data.yaml ``test:``,
    ``ImageSets/Main/test.txt``) in ``val``, to evaluate it; DataError when there is none.
    Raises DataError naming the file and line of a label that cannot be repaired.

    Example:
        >>> import tempfile
        >>> from pixelmind.data.shapes import save_shapes
        >>> d = find_detection_data(save_shapes(tempfile.mkdtemp(), "train", count=5, size=32))
        >>> d.layout, len(d.train), len(d.val), d.class_names
        ('coco', 4, 1, ['circle', 'square', 'triangle'])
    """
    from pixelmind.data.instances import label_files
    from pixelmind.data.voc import find_voc, voc_annotation_dir

    root = Path(root)
    found = label_files(root)
    if found is not None:
        kind, files = found
        return (_find_coco(files, val_fraction, seed, split) if kind == "coco"
                else _find_yolo(files[0], val_fraction, seed, split))  # fmt: skip
    if voc_annotation_dir(root) is not None:
        return find_voc(root, val_fraction, seed, split)
    raise DataError(
        f"{root}: no detection data (expected data.yaml (YOLO), annotations/*.json (COCO) "
        "or Annotations/*.xml (Pascal VOC))"
    )


def flat_names(paths: list[Path]) -> list[str]:
    """One file name per path, unique by stem (VOC ids and YOLO labels are keyed by the stem).

    A name whose stem is taken gets its folders as a prefix, then a number.

    Example:
        >>> flat_names([Path("d/train/a.jpg"), Path("d/val/a.png"), Path("d/val/b.png")])
        ['a.jpg', 'val_a.png', 'b.png']
    """
    root = os.path.commonpath([str(p.parent) for p in paths]) if paths else ""
    used: set[str] = set()
    out = []
    for p in paths:
        rel = Path(os.path.relpath(p, root)).as_posix().replace("/", "_")
        candidates = [p.name, rel] + [f"{Path(rel).stem}_{k}{p.suffix}" for k in range(1, len(paths) + 1)]
        name = next(c for c in candidates if Path(c).stem not in used)
        used.add(Path(name).stem)
        out.append(name)
    return out


def _place(src: Path, dst: Path, copy: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        shutil.copyfile(src, dst)
        return
    try:
        dst.symlink_to(Path(src).resolve())
    except OSError:  # no symlinks here (some Windows set-ups): a copy is still correct
        shutil.copyfile(src, dst)


def write_detection_data(
    data: DetectionData, out: str | Path, fmt: Literal["coco", "yolo", "voc"], copy_images: bool = True
) -> Path:
    """Write ``data`` as a COCO, YOLO or Pascal VOC folder at ``out`` (``pixelmind convert``).

    Reading ``out`` back with :func:`find_detection_data` gives the same images, splits, boxes
    (within 1e-3 px for YOLO's normalised numbers) and labels. Crowd / difficult boxes are kept
    in COCO (``iscrowd``) and VOC (``difficult``) but left out of YOLO, which cannot mark them.
    Image files are renamed only where two would share a stem. ``copy_images=False`` links the
    images (symlinks) instead of copying them. ``out`` must be absent or empty.

    Layouts written: COCO ``out/annotations/instances_{train,val}.json`` + ``out/{train,val}/``;
    YOLO ``out/data.yaml`` + ``out/{images,labels}/{train,val}/``; VOC ``out/Annotations``,
    ``out/JPEGImages``, ``out/ImageSets/Main/{train,val}.txt`` and ``out/labels.txt`` (class order).

    Example:
        >>> import tempfile
        >>> from pixelmind.data.shapes import save_shapes
        >>> d = find_detection_data(save_shapes(tempfile.mkdtemp(), "train", count=3, size=32))
        >>> back = find_detection_data(write_detection_data(d, Path(tempfile.mkdtemp()) / "yolo", "yolo"))
        >>> back.layout, [len(it.boxes) for it in back.train] == [len(it.boxes) for it in d.train]
        ('yolo', True)
    """
    from pixelmind.data.voc import write_voc

    out = Path(out)
    if fmt not in ("coco", "yolo", "voc"):
        raise DataError(f"convert: unknown format {fmt!r}; choose from coco, yolo, voc")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not empty; convert into a new folder")
    splits = {"train": data.train, "val": data.val}
    names = flat_names([it.image for s in splits.values() for it in s])
    files = {"train": names[: len(data.train)], "val": names[len(data.train) :]}
    if fmt == "voc":
        write_voc(splits, files, data.class_names, out, lambda src, dst: _place(src, dst, copy_images))
        return out
    for split, items in splits.items():
        folder = out / split if fmt == "coco" else out / "images" / split
        folder.mkdir(parents=True, exist_ok=True)  # even when empty: the reader then finds an empty split
        for it, name in zip(items, files[split]):
            _place(it.image, folder / name, copy_images)
            if fmt == "yolo":
                _write_yolo_labels(it, out / "labels" / split / f"{Path(name).stem}.txt")
        if fmt == "coco":
            _write_coco(
                items, data.class_names, out / "annotations" / f"instances_{split}.json", files[split]
            )
    if fmt == "yolo":
        # no 'path' key: Ultralytics then uses the yaml's folder, so the data set can be moved
        cfg = {"train": "images/train", "val": "images/val", "nc": len(data.class_names)}
        cfg["names"] = dict(enumerate(data.class_names))
        (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return out
