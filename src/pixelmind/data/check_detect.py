"""``pixelmind check --task detect``: what is in a detection data set and what is wrong with it.

Reports images and boxes per split and class, images without boxes (negatives), boxes per image
and box sizes (with histograms), the label problems the readers repaired (clipped or dropped
boxes, one line each naming file and line), unreadable images, exact duplicates (same bytes) and
train/val leakage (same bytes or same perceptual hash). A label problem that cannot be repaired
stops the reader; the check then reports that one problem instead of failing.

Example:
    >>> import tempfile
    >>> r = check_detection("shapes", out=tempfile.mkdtemp())  # doctest: +SKIP
    >>> r["images"], r["leakage_exact"]                        # doctest: +SKIP
    ({'train': 1000, 'val': 200}, 0)
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelmind.data.check import dhash
from pixelmind.data.decode import ImageDecodeError, load_image
from pixelmind.errors import DataError

SMALL, LARGE = 32, 96  # COCO's size buckets: sqrt(area) under 32 px is small, from 96 px large


def _shapes_rows() -> Iterator[tuple]:
    from pixelmind.data.shapes import shapes_indices, shapes_sample

    for split in ("train", "val"):
        for i in shapes_indices(split):
            s = shapes_sample(i)
            h, w = s.image.shape[:2]
            crowd = np.zeros(len(s.labels), bool)
            yield split, f"{split}[{i}]", w, h, s.boxes, s.labels, crowd, s.image


def _data_rows(data) -> Iterator[tuple]:
    for split, items in (("train", data.train), ("val", data.val)):
        for it in items:
            yield split, str(it.image), it.width, it.height, it.boxes, it.labels, it.iscrowd, it.image


def _fingerprints(src) -> tuple[str, int]:
    """sha256 of the stored bytes and dhash of one image (a path or an HxWx3 array)."""
    if isinstance(src, np.ndarray):
        return hashlib.sha256(src.tobytes()).hexdigest(), dhash(Image.fromarray(src))
    try:
        raw = Path(src).read_bytes()
    except OSError as err:
        raise ImageDecodeError(f"{src}: cannot read ({err.strerror or err})") from None
    return hashlib.sha256(raw).hexdigest(), dhash(load_image(raw, name=str(src)))


def _summary(rows: Iterator[tuple], names: list[str]) -> dict[str, Any]:
    per_class = {n: {"train": 0, "val": 0} for n in names}
    images, negatives = Counter(), Counter()
    per_image: Counter = Counter()
    sizes: list[float] = []
    ignored = 0
    corrupt: dict[str, str] = {}
    by_bytes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    by_phash: dict[int, list[tuple[str, str]]] = defaultdict(list)
    image_sizes = []
    for split, ident, w, h, boxes, labels, crowd, src in rows:
        images[split] += 1
        negatives[split] += len(labels) == 0
        per_image[len(labels)] += 1
        ignored += int(np.count_nonzero(crowd))
        for label in labels.tolist():
            per_class[names[label]][split] += 1
        wh = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
        sizes += np.sqrt(wh[:, 0] * wh[:, 1]).tolist()
        image_sizes.append((w, h))
        try:
            sha, phash = _fingerprints(src)
        except ImageDecodeError as err:
            corrupt[ident] = str(err)
            continue
        by_bytes[sha].append((split, ident))
        by_phash[phash].append((split, ident))
    dup_exact = [g for g in by_bytes.values() if len(g) > 1]
    leak_exact = [g for g in dup_exact if {s for s, _ in g} >= {"train", "val"}]
    leak_phash = [g for g in by_phash.values() if len(g) > 1 and {s for s, _ in g} >= {"train", "val"}]
    s = np.asarray(sizes, np.float64)
    ws, hs = [w for w, _ in image_sizes], [h for _, h in image_sizes]
    return {
        "images": {k: images[k] for k in ("train", "val")},
        "negatives": {k: negatives[k] for k in ("train", "val")},
        "boxes": {k: sum(c[k] for c in per_class.values()) for k in ("train", "val")},
        "ignored_boxes": ignored,
        "per_class": per_class,
        "boxes_per_image": {str(k): per_image[k] for k in sorted(per_image)},
        "box_size": {
            "min": round(float(s.min()), 2) if s.size else 0.0,
            "median": round(float(np.median(s)), 2) if s.size else 0.0,
            "max": round(float(s.max()), 2) if s.size else 0.0,
            "small": int((s < SMALL).sum()),
            "medium": int(((s >= SMALL) & (s < LARGE)).sum()),
            "large": int((s >= LARGE).sum()),
        },
        "image_size": {
            "min": [min(ws, default=0), min(hs, default=0)],
            "max": [max(ws, default=0), max(hs, default=0)],
        },
        "corrupt": corrupt,
        "duplicates_exact": len(dup_exact),
        "leakage_exact": len(leak_exact),
        "leakage_perceptual": len(leak_phash),
        "examples": {
            "duplicates": [[i for _, i in g] for g in dup_exact[:10]],
            "leakage": [[i for _, i in g] for g in leak_phash[:10]],
        },
        "_sizes": sizes,
        "_per_image": [k for k, n in per_image.items() for _ in range(n)],
    }


def _lines(r: dict[str, Any]) -> list[str]:
    im, neg, bx, bs = r["images"], r["negatives"], r["boxes"], r["box_size"]
    n_images = max(im["train"] + im["val"], 1)
    per_image = ", ".join(f"{k}: {v}" for k, v in list(r["boxes_per_image"].items())[:15])
    lines = [
        f"layout: {r['layout']}  classes: {len(r['classes'])}  images: train {im['train']}, val {im['val']}"
        f"  without boxes: train {neg['train']}, val {neg['val']}",
        f"boxes: train {bx['train']}, val {bx['val']}  ignored (crowd/difficult): {r['ignored_boxes']}"
        f"  per image: mean {(bx['train'] + bx['val']) / n_images:.2f} ({per_image})",
        f"box size (sqrt of area, px): min {bs['min']:g}, median {bs['median']:g}, max {bs['max']:g}; "
        f"small (<{SMALL}) {bs['small']}, medium {bs['medium']}, large (>={LARGE}) {bs['large']}",
        f"image size: min {r['image_size']['min']}  max {r['image_size']['max']}",
        "per class (train/val): "
        + ", ".join(f"{c} {v['train']}/{v['val']}" for c, v in list(r["per_class"].items())[:50]),
    ]
    absent = [c for c, v in r["per_class"].items() if v["train"] + v["val"] == 0]
    if absent:
        lines.append(f"classes with no box: {', '.join(absent[:50])}")
    lines.append(
        f"invalid labels (repaired): {len(r['warnings'])}" + "".join(f"\n  {w}" for w in r["warnings"][:20])
    )
    lines.append(
        f"corrupt images: {len(r['corrupt'])}" + "".join(f"\n  {w}" for w in list(r["corrupt"].values())[:20])
    )
    lines.append(f"exact duplicates: {r['duplicates_exact']} groups")
    lines.append(
        f"train/val leakage: {r['leakage_exact']} identical, {r['leakage_perceptual']} perceptually identical groups"
    )
    return lines + [f"note: {n}" for n in r["notes"]]


def check_detection(
    data: str, out: str | Path | None = None, val_fraction: float = 0.2, seed: int = 0
) -> dict[str, Any]:
    """Check a detection data set and write ``report.md``, ``check.json`` and plots into ``out``.

    Args:
        data: a data set folder, ``data.yaml`` or COCO json (see
            :func:`pixelmind.data.boxes.find_detection_data`), or ``"shapes"`` (built in).
        out: the report folder (default ``runs/check/<name>``).
        val_fraction: held out when the data set has no val split (seeded by ``seed``).

    Returns:
        The findings (as saved in ``check.json``) plus ``text``, the summary the CLI prints.
        A label the readers cannot repair is reported in ``problems`` instead of raising.
    """
    from pixelmind.data.boxes import find_detection_data
    from pixelmind.viz.plots import plot_histogram

    out = Path(out or Path("runs") / "check" / Path(data).name.replace(".", "_"))
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"data": data}
    problems: list[str] = []
    if data == "shapes":
        from pixelmind.data.shapes import CLASS_NAMES

        names = list(CLASS_NAMES)
        report.update(layout="shapes", classes=names, warnings=[], notes=[])
        report.update(_summary(_shapes_rows(), names))
    else:
        try:
            found = find_detection_data(data, val_fraction, seed)
        except DataError as err:
            problems.append(str(err))
        else:
            names = found.class_names
            report.update(layout=found.layout, classes=names, warnings=found.warnings, notes=found.notes)
            report.update(_summary(_data_rows(found), names))
    report["problems"] = problems
    lines = [f"data: {data}"]
    plots = []
    if "images" in report:
        sizes, per_image = report.pop("_sizes"), report.pop("_per_image")
        if sizes:
            plot_histogram(sizes, out / "box_size.png", "box sizes", "sqrt(box area), pixels")
            plots.append("![box sizes](box_size.png)")
        if per_image:
            plot_histogram(per_image, out / "boxes_per_image.png", "boxes per image", "boxes")
            plots.append("![boxes per image](boxes_per_image.png)")
        lines += _lines(report)
    lines += [f"problem: {p}" for p in problems] or ["problems: none"]
    lines.append(f"report: {out / 'report.md'}")
    report["text"] = "\n".join(lines)
    (out / "check.json").write_text(json.dumps({k: v for k, v in report.items() if k != "text"}, indent=2))
    body = "# Detection data check\n\n```\n" + report["text"] + "\n```\n\n" + "\n".join(plots)
    (out / "report.md").write_text(body + "\n")
    return report
