"""Write pre-labels as a data set pixelmind (and other tools) train on, merged with the labels already there.

Used by ``pixelmind label`` through each task's ``write_labels`` hook:

- classify: ``folder`` (``OUT/<class>/<image>``, ImageFolder);
- detect: ``coco``, ``yolo`` or ``voc`` (:func:`pixelmind.data.boxes.write_detection_data`);
- segment: ``folder`` (``OUT/{train,val}/{images,masks}`` + ``classes.yaml``, index PNG masks) or
  ``coco`` (one RLE instance per connected region of a class, ``annotations/instances_{train,val}.json``).

Images are matched to the labels already in ``OUT`` by file stem: one that is already labelled keeps its
labels untouched and its pre-label is dropped (counted as ``kept``). Everything is written into a new
folder first, which then replaces ``OUT``; a failure half way leaves ``OUT`` as it was.

Example:
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "labels"
    >>> with replaced_folder(out) as tmp:
    ...     _ = (tmp / "a.txt").write_text("x")
    >>> sorted(p.name for p in out.iterdir())
    ['a.txt']
"""

from __future__ import annotations

import contextlib
import csv
import json
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from pixelmind.errors import DataError


@dataclass
class Prelabel:
    """One image's pre-label: the class names and scores a reviewer sees, and the task's own label.

    ``label`` is a class index (classify), a :class:`~pixelmind.data.boxes.BoxItem` (detect) or a
    uint8 class-index mask ``[H, W]`` (segment).
    """

    image: Path
    names: list[str]
    scores: list[float]
    label: Any


@contextlib.contextmanager
def replaced_folder(out: Path) -> Iterator[Path]:
    """Yield a fresh folder beside ``out``; on success it becomes ``out`` (the old one removed last)."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.writing")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def split_new(items: list[Any], val_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """A seeded train/val split of newly labelled items (at least one val item once there are two)."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = min(max(round(len(items) * val_fraction), 1 if len(items) >= 2 else 0), max(len(items) - 1, 0))
    val = set(order[:n_val])
    return [it for i, it in enumerate(items) if i not in val], [it for i, it in enumerate(items) if i in val]


def _new_only(prelabels: list[Prelabel], labelled_stems: set[str]) -> list[Prelabel]:
    seen = set(labelled_stems)
    out = []
    for p in prelabels:
        if p.image.stem not in seen:
            seen.add(p.image.stem)
            out.append(p)
    return out


# ---------------------------------------------------------------- classify: ImageFolder


def write_class_folder(prelabels: list[Prelabel], out: Path, class_names: list[str]) -> dict[str, int]:
    """``OUT/<class>/<image>``; images already in a class folder of ``OUT`` keep their class.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); Image.new("RGB", (4, 4)).save(d / "x.png")
        >>> write_class_folder([Prelabel(d / "x.png", ["cat"], [0.9], 0)], d / "out", ["cat", "dog"])
        {'kept': 0, 'added': 1}
    """
    out = Path(out)
    existing = [p for p in out.glob("*/*") if p.is_file()] if out.is_dir() else []
    new = _new_only(prelabels, {p.stem for p in existing})
    with replaced_folder(out) as tmp:
        for p in existing:
            (tmp / p.parent.name).mkdir(exist_ok=True)
            shutil.copy2(p, tmp / p.parent.name / p.name)
        for p in new:
            folder = tmp / class_names[int(p.label)]
            folder.mkdir(exist_ok=True)
            shutil.copy2(p.image, folder / p.image.name)
    return {"kept": len(prelabels) - len(new), "added": len(new)}


# ---------------------------------------------------------------- detect: COCO / YOLO / VOC


def write_box_set(prelabels: list[Prelabel], out: Path, fmt: str, class_names: list[str], val_fraction: float,
                  seed: int) -> dict[str, int]:  # fmt: skip
    """Boxes as a COCO, YOLO or VOC data set; the data set already at ``OUT`` (any of the three) is kept."""
    from pixelmind.data.boxes import DetectionData, find_detection_data, write_detection_data

    out = Path(out)
    train, val = [], []
    if out.is_dir() and any(out.iterdir()):
        old = find_detection_data(out, val_fraction=0.0, seed=seed)
        if old.class_names != list(class_names):
            raise DataError(f"{out}: its classes {old.class_names} are not the model's {list(class_names)}")
        train, val = list(old.train), list(old.val)
    new = _new_only(prelabels, {it.image.stem for it in train + val})
    new_train, new_val = split_new([p.label for p in new], val_fraction, seed)
    data = DetectionData(train + new_train, val + new_val, list(class_names), fmt, [])
    with replaced_folder(out) as tmp:
        tmp.rmdir()  # write_detection_data wants to create it
        write_detection_data(data, tmp, fmt)  # type: ignore[arg-type]
    return {"kept": len(prelabels) - len(new), "added": len(new)}


# ---------------------------------------------------------------- segment: folders / COCO RLE


def _mask_items_in(out: Path) -> list[tuple[str, Any]]:
    """(split, MaskItem) of the segmentation data set already at ``out``."""
    from pixelmind.data.masks import find_semantic_data

    if not (out.is_dir() and any(out.iterdir())):
        return []
    old = find_semantic_data(out, val_fraction=0.0)
    return [("train", it) for it in old.train] + [("val", it) for it in old.val]


def write_mask_folder(prelabels: list[Prelabel], out: Path, class_names: list[str], colors: list[list[int]],
                      val_fraction: float, seed: int) -> dict[str, int]:  # fmt: skip
    """``OUT/{train,val}/{images,masks}/`` with index PNG masks (palette = the model's colours) + ``classes.yaml``."""
    out = Path(out)
    old = _mask_items_in(out)
    if old and (out / "classes.yaml").is_file():
        names = yaml.safe_load((out / "classes.yaml").read_text()).get("names")
        if list(names) != list(class_names):
            raise DataError(f"{out}: its classes {names} are not the model's {list(class_names)}")
    new = _new_only(prelabels, {it.image.stem for _, it in old})
    new_train, new_val = split_new(new, val_fraction, seed)
    palette = [v for c in colors[:256] for v in c]
    with replaced_folder(out) as tmp:
        for split in ("train", "val"):
            (tmp / split / "images").mkdir(parents=True)
            (tmp / split / "masks").mkdir(parents=True)
        for split, it in old:
            shutil.copy2(it.image, tmp / split / "images" / it.image.name)
            if it.mask is not None:
                shutil.copy2(it.mask, tmp / split / "masks" / f"{it.image.stem}{it.mask.suffix}")
        for split, items in (("train", new_train), ("val", new_val)):
            for p in items:
                shutil.copy2(p.image, tmp / split / "images" / p.image.name)
                mask = Image.fromarray(np.asarray(p.label, np.uint8), mode="P")
                mask.putpalette(palette)
                mask.save(tmp / split / "masks" / f"{p.image.stem}.png")
        doc = {"names": list(class_names), "colors": [list(map(int, c)) for c in colors[: len(class_names)]]}
        (tmp / "classes.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return {"kept": len(prelabels) - len(new), "added": len(new)}


def mask_to_coco(mask: np.ndarray, image_id: int, first_id: int, scores: dict[int, float] | None = None) -> list[dict]:
    """One COCO annotation (RLE, bbox, area) per connected region of each class > 0 of an index mask.

    Example:
        >>> m = np.zeros((6, 6), np.uint8); m[1:3, 1:3] = 1; m[4:, 4:] = 1
        >>> [a["bbox"] for a in mask_to_coco(m, image_id=1, first_id=1)]
        [[1.0, 1.0, 2.0, 2.0], [4.0, 4.0, 2.0, 2.0]]
    """
    from pycocotools import mask as mask_utils
    from skimage.measure import label as connected

    anns = []
    for c in (int(v) for v in np.unique(mask) if v > 0):
        regions = connected(mask == c, connectivity=2)
        for r in range(1, int(regions.max()) + 1):
            rle = mask_utils.encode(np.asfortranarray(regions == r, dtype=np.uint8))
            ann = {"id": first_id + len(anns), "image_id": image_id, "category_id": c,
                   "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode()},
                   "area": float(mask_utils.area(rle)), "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0}  # fmt: skip
            if scores and c in scores:
                ann["score"] = round(float(scores[c]), 4)
            anns.append(ann)
    return anns


def write_mask_coco(prelabels: list[Prelabel], out: Path, class_names: list[str], val_fraction: float,
                    seed: int) -> dict[str, int]:  # fmt: skip
    """COCO instances json per split (class 0 is background: categories 1..K-1) with the images beside them."""
    out = Path(out)
    docs: dict[str, dict] = {}
    for split in ("train", "val"):
        path = out / "annotations" / f"instances_{split}.json"
        if path.is_file():
            try:
                docs[split] = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise DataError(f"{path}: not a COCO json ({err})") from None
        else:
            docs[split] = {"images": [], "annotations": [],
                           "categories": [{"id": i, "name": n, "supercategory": ""} for i, n in enumerate(class_names) if i > 0]}  # fmt: skip
    labelled = {Path(im["file_name"]).stem for d in docs.values() for im in d["images"]}
    new = _new_only(prelabels, labelled)
    new_train, new_val = split_new(new, val_fraction, seed)
    with replaced_folder(out) as tmp:
        for split, items in (("train", new_train), ("val", new_val)):
            doc = docs[split]
            (tmp / split).mkdir()
            if (out / split).is_dir():
                for f in (out / split).iterdir():
                    shutil.copy2(f, tmp / split / f.name)
            next_image = max((im["id"] for im in doc["images"]), default=0) + 1
            next_ann = max((a["id"] for a in doc["annotations"]), default=0) + 1
            for p in items:
                h, w = np.asarray(p.label).shape
                shutil.copy2(p.image, tmp / split / p.image.name)
                doc["images"].append({"id": next_image, "file_name": p.image.name, "width": int(w), "height": int(h)})
                anns = mask_to_coco(np.asarray(p.label), next_image, next_ann,
                                    {class_names.index(n): s for n, s in zip(p.names, p.scores)})  # fmt: skip
                doc["annotations"] += anns
                next_image, next_ann = next_image + 1, next_ann + len(anns)
            (tmp / "annotations").mkdir(exist_ok=True)
            (tmp / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return {"kept": len(prelabels) - len(new), "added": len(new)}


# ---------------------------------------------------------------- review: one image's labels removed or changed


def _inside(path: Path, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def discard_files(out: Path, stem: str, folders: list[str]) -> int:
    """Delete the files named ``stem.*`` in ``out/<folder>`` for each glob ``folders``; how many went."""
    gone = 0
    for pattern in folders:
        for f in Path(out).glob(f"{pattern}/{stem}.*"):
            if f.is_file() and _inside(f, out):
                f.unlink()
                gone += 1
    return gone


def discard_box_item(out: Path, stem: str, fmt: str) -> None:
    """The detection data set at ``out`` rewritten without the image named ``stem`` (and its boxes)."""
    from pixelmind.data.boxes import DetectionData, find_detection_data, write_detection_data

    old = find_detection_data(out, val_fraction=0.0)
    train, val = ([it for it in items if it.image.stem != stem] for items in (old.train, old.val))
    with replaced_folder(out) as tmp:
        tmp.rmdir()
        write_detection_data(DetectionData(train, val, old.class_names, fmt, []), tmp, fmt)  # type: ignore[arg-type]


def discard_coco_image(out: Path, stem: str) -> None:
    """Remove the image named ``stem`` and its annotations from ``out/annotations/instances_*.json``."""
    for path in sorted((Path(out) / "annotations").glob("instances_*.json")):
        doc = json.loads(path.read_text())
        gone = {im["id"] for im in doc["images"] if Path(im["file_name"]).stem == stem}
        if gone:
            doc["images"] = [im for im in doc["images"] if im["id"] not in gone]
            doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] not in gone]
            tmp = path.with_suffix(".json.writing")
            tmp.write_text(json.dumps(doc))
            tmp.replace(path)  # atomic: a crash leaves the old file or the new one
            discard_files(out, stem, [path.stem.removeprefix("instances_")])


def relabel_class(data: str | Path, image: Path, given: str, suggested: str) -> str | None:
    """Give ``image`` the class ``suggested`` in its data set: a CSV manifest row, or an ImageFolder move.

    Returns what was done, or None where the data set is not one of those (e.g. a built-in one).
    """
    data, image = Path(data), Path(image)
    if data.is_file() and data.suffix.lower() == ".csv":
        with data.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        changed = 0
        for row in rows:
            if len(row) >= 2 and row[1].strip() == given and (data.parent / row[0].strip()).resolve() == image.resolve():
                row[1], changed = suggested, changed + 1
        if not changed:
            raise DataError(f"{data}: no row for {image} with label {given!r} (was the manifest changed?)")
        tmp = data.with_suffix(".csv.writing")
        with tmp.open("w", newline="") as f:
            csv.writer(f).writerows(rows)
        tmp.replace(data)
        return f"{data}: {image.name} is now {suggested}"
    if data.is_dir() and image.parent.name == given and _inside(image, data):
        target = image.parent.parent / suggested / image.name
        if target.exists():
            raise DataError(f"{target}: already exists; not moved")
        target.parent.mkdir(exist_ok=True)
        image.rename(target)
        return f"moved to {target}"
    return None
