"""`check --label-errors --folds K` on Fashion-MNIST with labels flipped at random: precision and recall at top-k.

A balanced subset of the Fashion-MNIST training set is written as PNG files with a CSV manifest, then
a seeded share of the labels (5 % and 10 % by default) is flipped to another class. The out-of-fold
ranking of :func:`pixelmind.label.errors.find_label_errors` is scored against the flips that were made:
precision and recall among the top k images, with k the number of flips (and 2k). The baseline in the
same run is a random ranking, whose expected precision at any k is the flip rate.

Needs the Debian package dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist).

    python bench/label_errors.py [--n 2000] [--rates 0.05 0.10] [--folds 4] [--epochs 6]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, peak_rss_mb
from PIL import Image

DEFAULT = "/usr/share/datasets/fashion-mnist"


def balanced_subset(root: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from pixelmind.data.formats import find_idx_split, read_idx

    images_file, labels_file = find_idx_split(root, "train")
    images, labels = read_idx(images_file), read_idx(labels_file)
    rng = np.random.default_rng(seed)
    per_class = n // 10
    pick = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)])
    return images[pick], labels[pick]


def write_manifest(folder: Path, images: np.ndarray, labels: list[int], names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "data.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        for i, (image, label) in enumerate(zip(images, labels)):
            path = folder / "images" / f"{i:05d}.png"
            path.parent.mkdir(exist_ok=True)
            if not path.exists():
                Image.fromarray(image).save(path)
            writer.writerow([str(path), names[label]])
    return manifest


def precision_recall(ranked: list[str], flipped: set[str], k: int) -> tuple[float, float]:
    hits = sum(r in flipped for r in ranked[:k])
    return hits / k, hits / len(flipped)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=DEFAULT)
    ap.add_argument("--n", type=int, default=2000, help="images in the labelled set (balanced)")
    ap.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.10])
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = Path(args.data)
    if not (root / "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"skip: {root} has no Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    from pixelmind.label.errors import find_label_errors

    names = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
    images, labels = balanced_subset(root, args.n, args.seed)
    work = Path(tempfile.mkdtemp(prefix="label_errors_"))
    print(f"machine: {machine()}")
    print(f"data: {len(labels)} Fashion-MNIST training images (balanced), {args.folds}-fold out-of-fold models, "
          f"{args.epochs} epochs each at 28 px")  # fmt: skip
    for rate in args.rates:
        rng = random.Random(args.seed + int(rate * 1000))
        noisy = [int(v) for v in labels]
        flipped_idx = rng.sample(range(len(noisy)), round(rate * len(noisy)))
        for i in flipped_idx:
            noisy[i] = rng.choice([c for c in range(10) if c != noisy[i]])
        manifest = write_manifest(work / f"rate{rate:.2f}", images, noisy, names)
        flipped = {str(work / f"rate{rate:.2f}" / "images" / f"{i:05d}.png") for i in flipped_idx}
        t = time.perf_counter()
        report = find_label_errors(str(manifest), task="classify", folds=args.folds, out=work / f"report{rate:.2f}",
                                   fold_config={"epochs": args.epochs, "imgsz": 28, "workers": 0},
                                   seed=args.seed, log=lambda s: None)  # fmt: skip
        wall = time.perf_counter() - t
        ranked = [r["image"] for r in report["rows"]]
        random_rank = ranked[:]
        random.Random(args.seed).shuffle(random_rank)
        k = len(flipped)
        print(f"\nflip rate {rate:.0%}: {k} of {len(ranked)} labels flipped; {report['issues']} flagged by cleanlab; "
              f"wall {wall:.0f} s")  # fmt: skip
        for kk in (k, 2 * k):
            p, r = precision_recall(ranked, flipped, kk)
            pr, rr = precision_recall(random_rank, flipped, kk)
            print(f"  top-{kk}: precision {p:.3f} recall {r:.3f} | random ranking precision {pr:.3f} recall {rr:.3f} "
                  f"| precision ratio {p / max(pr, 1e-9):.1f}x")  # fmt: skip
        flagged = [r["image"] for r in report["rows"] if r["issue"]]
        if flagged:
            hits = sum(f in flipped for f in flagged)
            print(f"  flagged set: precision {hits / len(flagged):.3f} recall {hits / k:.3f}")
    print(f"\npeak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
