"""``pixelmind check``: what is in a data set and what is wrong with it, before training on it.

Reports counts per class and split, image sizes (with a histogram), corrupt files, exact
duplicates (same bytes) and train/val leakage (same bytes or same perceptual hash).

Example:
    >>> r = check_classification("digits", out=tmp_dir)  # doctest: +SKIP
    >>> r["leakage_exact"]                                 # doctest: +SKIP
    0
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelmind.data.decode import ImageDecodeError, load_image


def dhash(image: Image.Image, size: int = 8) -> int:
    """Difference hash: 64 bits that survive resizing and recompression (perceptual duplicates)."""
    grey = np.asarray(image.convert("L").resize((size + 1, size), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def _items(bundle) -> list[tuple[str, str, str, Any]]:
    """(split, id, class name, loader) for every sample, without transforms."""
    names = bundle.class_names
    items = []
    for split, ds in (("train", bundle.train), ("val", bundle.val)):
        base, indices = (ds.base, ds.indices) if hasattr(ds, "indices") else (ds, range(len(ds)))
        if hasattr(base, "samples"):
            for i in indices:
                path, y = base.samples[i]
                items.append((split, path, names[y], path))
        else:
            for i in indices:
                arr = base.images[i]
                items.append((split, f"{split}[{i}]", names[int(base._targets[i])], arr))
    return items


def check_classification(data: str, out: str | Path | None = None, val_fraction: float = 0.2, seed: int = 0,
                         embedder: Any = None, near: float = 0.97) -> dict[str, Any]:
    """Check a classification data set and write ``report.md``, ``check.json`` and plots into ``out``.

    ``embedder`` (a :class:`pixelmind.similarity.extract.FeatureExtractor`): also find pairs of
    images whose embeddings' cosine similarity is at least ``near`` (``near_duplicates.csv``).
    """
    from pixelmind.config import TrainConfig
    from pixelmind.tasks.classify.data import load_classification_data, native_image_size
    from pixelmind.viz.plots import plot_histogram

    # in-memory arrays (IDX) are resized to imgsz when loaded: ask for their own size to check them as stored
    imgsz = min(max(8, native_image_size(data) or 8), 4096)
    bundle = load_classification_data(TrainConfig(data=data, imgsz=imgsz, augment="none", val_fraction=val_fraction, seed=seed))
    out = Path(out or Path("runs") / "check" / Path(data).name.replace(".", "_"))
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, Counter] = defaultdict(Counter)
    sizes: list[tuple[int, int]] = []
    corrupt: dict[str, str] = {}
    by_bytes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    by_phash: dict[int, list[tuple[str, str]]] = defaultdict(list)
    embedded: list[tuple[str, str]] = []
    vectors, pending = [], []
    for split, ident, label, src in _items(bundle):
        counts[label][split] += 1
        if isinstance(src, str):
            try:
                raw = Path(src).read_bytes()
                image = load_image(raw, name=src)
            except (ImageDecodeError, OSError) as err:
                corrupt[src] = str(err)
                continue
        else:
            raw = src.numpy().tobytes()
            image = Image.fromarray(src.numpy()[0] if src.shape[0] == 1 else src.permute(1, 2, 0).numpy())
        sizes.append(image.size)
        by_bytes[hashlib.sha256(raw).hexdigest()].append((split, ident))
        by_phash[dhash(image)].append((split, ident))
        if embedder is not None:
            embedded.append((split, ident))
            pending.append(image.convert("RGB"))
            if len(pending) == 64:
                vectors.append(embedder(pending))
                pending = []
    if pending:
        vectors.append(embedder(pending))

    def groups(index):
        return [g for g in index.values() if len(g) > 1]

    dup_exact = groups(by_bytes)
    leak_exact = [g for g in dup_exact if {s for s, _ in g} >= {"train", "val"}]
    leak_phash = [g for g in groups(by_phash) if {s for s, _ in g} >= {"train", "val"}]
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    report: dict[str, Any] = {
        "data": data,
        "classes": len(bundle.class_names),
        "train": len(bundle.train),
        "val": len(bundle.val),
        "per_class": {c: dict(counts[c]) for c in bundle.class_names},
        "image_size": {"min": [min(widths, default=0), min(heights, default=0)], "max": [max(widths, default=0), max(heights, default=0)]},
        "corrupt": corrupt,
        "duplicates_exact": len(dup_exact),
        "leakage_exact": len(leak_exact),
        "leakage_perceptual": len(leak_phash),
        "examples": {"duplicates": [[i for _, i in g] for g in dup_exact[:10]], "leakage": [[i for _, i in g] for g in leak_phash[:10]]},
    }
    if embedder is not None:
        report.update(_near_duplicates(np.concatenate(vectors) if vectors else np.empty((0, 1)), embedded, near, out))
    if sizes:
        plot_histogram([w * h / 1e6 for w, h in sizes], out / "image_megapixels.png", "image sizes", "megapixels")
    lines = [
        f"data: {data}  classes: {report['classes']}  train: {report['train']}  val: {report['val']}",
        f"image size: min {report['image_size']['min']}  max {report['image_size']['max']}",
        f"corrupt files: {len(corrupt)}" + "".join(f"\n  {why}" for why in list(corrupt.values())[:20]),
        f"exact duplicates: {len(dup_exact)} groups",
        f"train/val leakage: {len(leak_exact)} identical, {len(leak_phash)} perceptually identical groups",
        "per class (train/val): " + ", ".join(f"{c} {counts[c]['train']}/{counts[c]['val']}" for c in bundle.class_names[:50]),
        *([f"near-duplicates (cosine >= {near}): {report['near_duplicates']} pairs, {report['leakage_near']} across "
             f"train/val (listed in {out / 'near_duplicates.csv'})"] if embedder is not None else []),
        f"report: {out / 'report.md'}",
    ]
    report["text"] = "\n".join(lines)
    (out / "check.json").write_text(json.dumps({k: v for k, v in report.items() if k != "text"}, indent=2))
    (out / "report.md").write_text("# Data check\n\n```\n" + report["text"] + "\n```\n\n![sizes](image_megapixels.png)\n")
    return report


def _near_duplicates(vectors: np.ndarray, items: list[tuple[str, str]], near: float, out: Path) -> dict[str, Any]:
    """Pairs of images with embeddings at least ``near`` alike, written to ``near_duplicates.csv``."""
    import csv

    from pixelmind.similarity.duplicates import near_duplicate_pairs

    pairs = near_duplicate_pairs(vectors, near)
    with (out / "near_duplicates.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["a", "b", "split_a", "split_b", "cosine"])
        for i, j, s in pairs:
            writer.writerow([items[i][1], items[j][1], items[i][0], items[j][0], f"{s:.4f}"])
    across = [(i, j, s) for i, j, s in pairs if items[i][0] != items[j][0]]
    return {"near_duplicates": len(pairs), "leakage_near": len(across),
            "near_examples": [[items[i][1], items[j][1], round(s, 4)] for i, j, s in pairs[:10]]}  # fmt: skip


def check_segmentation(data: str, out: str | Path | None = None, val_fraction: float = 0.2, seed: int = 0) -> dict[str, Any]:
    """Check a semantic segmentation data set: pixel share per class (plot), images without masks, bad mask values.

    A mask with values outside the class map, or of another size than its image, is reported
    with its file name (the first one found: the same check stops training at load time).
    """
    from pixelmind.data.masks import find_semantic_data, masks_summary
    from pixelmind.errors import DataError
    from pixelmind.viz.plots import plot_per_class_bars

    out = Path(out or Path("runs") / "check" / Path(data).name.replace(".", "_"))
    out.mkdir(parents=True, exist_ok=True)
    if data == "shapes":
        from pixelmind.data.shapes import CLASS_NAMES, semantic_mask, shapes_indices, shapes_sample

        names = ["background", *CLASS_NAMES]
        counts = {s: np.zeros(len(names), np.int64) for s in ("train", "val")}
        for split in counts:
            for i in shapes_indices(split):
                counts[split] += np.bincount(semantic_mask(shapes_sample(i)).ravel(), minlength=len(names))
        total = counts["train"] + counts["val"]
        summary = {"layout": "shapes", "classes": names, "ignore_index": 255,
                   "images": {s: len(shapes_indices(s)) for s in counts}, "without_mask": {"train": 0, "val": 0},
                   "pixels": {s: dict(zip(names, c.tolist())) for s, c in counts.items()},
                   "pixel_share": {n: round(float(c) / total.sum(), 6) for n, c in zip(names, total)}, "notes": []}  # fmt: skip
        problems: list[str] = []
    else:
        try:
            summary = masks_summary(find_semantic_data(data, val_fraction, seed))
            problems = []
        except DataError as err:
            summary, problems = {}, [str(err)]
    report: dict[str, Any] = {"data": data, **summary, "problems": problems}
    lines = [f"data: {data}"]
    if summary:
        share = summary["pixel_share"]
        plot_per_class_bars([share[n] for n in summary["classes"]], summary["classes"], out / "pixel_share.png",
                            "share of labelled pixels", "pixels per class")  # fmt: skip
        lines += [
            f"layout: {summary['layout']}  classes: {len(summary['classes'])}  ignore index: {summary['ignore_index']}",
            f"images: train {summary['images']['train']}, val {summary['images']['val']}; without a mask: "
            f"train {summary['without_mask']['train']}, val {summary['without_mask']['val']}",
            "pixel share: " + ", ".join(f"{n} {v:.2%}" for n, v in list(share.items())[:50]),
            *(f"note: {n}" for n in summary["notes"]),
        ]
        absent = [n for n, v in share.items() if v == 0]
        if absent:
            lines.append(f"classes with no labelled pixel: {', '.join(absent)}")
    lines += [f"problem: {p}" for p in problems] or ["problems: none"]
    lines.append(f"report: {out / 'report.md'}")
    report["text"] = "\n".join(lines)
    (out / "check.json").write_text(json.dumps({k: v for k, v in report.items() if k != "text"}, indent=2))
    (out / "report.md").write_text("# Data check\n\n```\n" + report["text"] + "\n```\n\n" + ("![pixels](pixel_share.png)\n" if summary else ""))
    return report
