"""Active learning with `pixelmind select`: test accuracy vs number of labelled images, entropy vs random.

Fashion-MNIST: a pool of training images (PNG files) starts with ``--start`` labelled at random. Each
round trains a fresh model on the labelled images (a fixed held-out set of 500 other training images
picks the checkpoint), scores it on 2,000 test images, and asks
:func:`pixelmind.label.select.select_images` for the next ``--step`` images of the unlabelled pool,
whose true labels are then added. The same rounds run with ``strategy="random"`` (the baseline in the
same run) from the same seed set; the figure is the accuracy of each at every labelled count.

Needs the Debian package dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist).

    python bench/active_learning.py [--pool 5000] [--start 100] [--step 100] [--rounds 5] [--epochs 60] [--batch 32]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine
from PIL import Image

DEFAULT = "/usr/share/datasets/fashion-mnist"
NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def write_pngs(folder: Path, images: np.ndarray) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:05d}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths


def manifest(path: Path, rows: list[tuple[str, int, str]]) -> str:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows((p, NAMES[y], split) for p, y, split in rows)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=DEFAULT)
    ap.add_argument("--pool", type=int, default=5000)
    ap.add_argument("--start", type=int, default=100)
    ap.add_argument("--step", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--strategies", nargs="+", default=["entropy", "random"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = Path(args.data)
    if not (root / "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"skip: {root} has no Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    from pixelmind.api import Model
    from pixelmind.data.formats import find_idx_split, read_idx
    from pixelmind.label.select import select_images

    rng = np.random.default_rng(args.seed)
    train_x, train_y = (read_idx(f) for f in find_idx_split(root, "train"))
    test_x, test_y = (read_idx(f) for f in find_idx_split(root, "test"))
    order = rng.permutation(len(train_y))
    pool_idx, held_idx = order[: args.pool], order[args.pool : args.pool + 500]
    test_idx = rng.permutation(len(test_y))[:2000]
    work = Path(tempfile.mkdtemp(prefix="active_"))
    pool_paths = write_pngs(work / "pool", train_x[pool_idx])
    held_paths = write_pngs(work / "held", train_x[held_idx])
    test_paths = write_pngs(work / "test", test_x[test_idx])
    label_of = {p: int(y) for p, y in zip(pool_paths, train_y[pool_idx])}
    held_rows = [(p, int(y), "val") for p, y in zip(held_paths, train_y[held_idx])]
    test_names = [NAMES[int(y)] for y in test_y[test_idx]]
    seed_set = [pool_paths[i] for i in rng.choice(len(pool_paths), args.start, replace=False)]
    print(f"machine: {machine()}")
    print(f"pool {len(pool_paths)} Fashion-MNIST training images, {args.start} labelled at random to start, "
          f"+{args.step} per round; fresh model each round ({args.epochs} epochs, batch {args.batch}, 28 px); test: 2000 test images")  # fmt: skip
    curves: dict[str, list[tuple[int, float]]] = {}
    for strategy in args.strategies:
        labelled, curve, t0 = list(seed_set), [], time.perf_counter()
        for rnd in range(args.rounds + 1):
            data = manifest(work / f"{strategy}{rnd}.csv", [(p, label_of[p], "train") for p in labelled] + held_rows)
            model = Model(task="classify")
            model.train(data=data, config={"project": str(work / "runs"), "name": f"{strategy}{rnd}", "epochs": args.epochs, "batch": args.batch,
                                           "imgsz": 28, "workers": 0, "seed": args.seed})  # fmt: skip
            predicted = [rec["label"] for rec in model.predict_iter(test_paths, batch=256, topk=1)]
            acc = float(np.mean([p == t for p, t in zip(predicted, test_names)]))
            curve.append((len(labelled), acc))
            print(f"  {strategy:8s} {len(labelled):5d} labelled: test top-1 {acc:.4f}", flush=True)
            if rnd == args.rounds:
                break
            chosen = set(labelled)
            unlabelled = [p for p in pool_paths if p not in chosen]
            picks = select_images(model, unlabelled, n=args.step, strategy=strategy, seed=args.seed + rnd)
            labelled += [row["image"] for row in picks]
        curves[strategy] = curve
        print(f"  {strategy}: {time.perf_counter() - t0:.0f} s", flush=True)
    if "random" in curves:
        print("\nlabelled | " + " | ".join(args.strategies) + " | gain over random (points)")
        for i, (n, _) in enumerate(curves["random"]):
            accs = [curves[s][i][1] for s in args.strategies]
            gains = [f"{100 * (curves[s][i][1] - curves['random'][i][1]):+.1f}" for s in args.strategies if s != "random"]
            print(f"{n:8d} | " + " | ".join(f"{a:.4f}" for a in accs) + " | " + ", ".join(gains))


if __name__ == "__main__":
    main()
