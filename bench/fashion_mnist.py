"""Fashion-MNIST with pixelmind's default recipe: test accuracy, wall time and peak memory on this machine.

Needs the Debian package dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist).
Targets: >= 92 % test accuracy in <= 5 minutes on 2 cores. The figure printed beside ours is a
logistic-regression baseline on raw pixels trained in the same run (scikit-learn).

    python bench/fashion_mnist.py [--data DIR] [extra `pixelmind train` flags ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, peak_rss_mb

DEFAULT = "/usr/share/datasets/fashion-mnist"


def logistic_baseline(root: Path) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    from pixelmind.data.formats import find_idx_split, read_idx

    tr, te = find_idx_split(root, "train"), find_idx_split(root, "test")
    xtr, ytr = read_idx(tr[0]).reshape(60000, -1) / 255.0, read_idx(tr[1])
    xte, yte = read_idx(te[0]).reshape(10000, -1) / 255.0, read_idx(te[1])
    t = time.perf_counter()
    clf = LogisticRegression(max_iter=100).fit(xtr, ytr)
    return float((clf.predict(xte) == yte).mean()), time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=DEFAULT)
    args, extra = ap.parse_known_args()
    root = Path(args.data)
    if not (root / "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"skip: {root} has no Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    project = tempfile.mkdtemp()
    cmd = [sys.executable, "-m", "pixelmind", "train", "--data", str(root), "--project", project, "--json", *extra]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(out.stderr[-2000:])
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    cfg = (Path(metrics["run_dir"]) / "config.yaml").read_text()
    acc_lr, t_lr = logistic_baseline(root)
    print(f"machine: {machine()}")
    print(f"command: {' '.join(cmd[1:])}")
    print("recipe: " + ", ".join(line for line in cfg.splitlines() if line.split(":")[0] in ("model", "epochs", "imgsz", "batch", "lr", "augment")))
    print(f"pixelmind: test top-1 {metrics['top1']:.4f}  wall {wall:.0f} s  peak RSS {peak_rss_mb(children=True):.0f} MB  (targets >= 0.92 in <= 300 s)")
    print(f"baseline logistic regression on pixels: test top-1 {acc_lr:.4f} in {t_lr:.0f} s; ratio of errors {(1 - metrics['top1']) / (1 - acc_lr):.2f}")


if __name__ == "__main__":
    main()
