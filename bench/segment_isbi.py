"""ISBI 2012 membranes: one CNN and one Transformer segmenter trained on the same budget, beside Otsu.

Data: ``../shared/datasets/segmentation/isbi_membrane/train`` (30 labelled 512x512 slices),
seeded 24/6 split (val_fraction 0.2, seed 0). Both models train from scratch with the same
epochs, crops per epoch, crop size, batch and schedule; validation is on the whole 512x512
slices. Baseline measured in the same run: Otsu's threshold on the grey values (membranes are
dark), the classical answer that needs no training.

    python bench/segment_isbi.py [--models unet_s,segformer] [--epochs 20] [--epoch-samples 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import machine

from pixelmind.api import Model
from pixelmind.config import TrainConfig
from pixelmind.metrics.segmentation import confusion_matrix, scores_from_confusion
from pixelmind.tasks.segment.data import load_segment_data

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "segmentation" / "isbi_membrane" / "train"


def otsu_baseline() -> dict[str, float]:
    from skimage.filters import threshold_otsu

    bundle = load_segment_data(TrainConfig(task="segment", data=str(DATA), imgsz=256))
    names = bundle.class_names
    cm = torch.zeros(len(names), len(names), dtype=torch.int64)
    for i in range(len(bundle.val)):
        grey, mask = bundle.val.read(i)
        g = np.asarray(grey.convert("L"), dtype=np.float32)
        # membranes are dark and labelled 0 (black in ISBI's masks), cells bright and labelled 1 (255)
        pred = torch.from_numpy((g >= threshold_otsu(g)).astype(np.int64))
        cm += confusion_matrix(pred, torch.from_numpy(mask.astype(np.int64)), len(names))
    return scores_from_confusion(cm, names)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="unet_s,segformer")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--epoch-samples", type=int, default=400)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} is absent (the shared data sets are not on this machine)")
    print(f"machine: {machine()}; {args.epochs} epochs x {args.epoch_samples} crops of {args.imgsz} px, batch {args.batch}")
    rows = []
    base = otsu_baseline()
    rows.append(("Otsu threshold (no training)", base, 0.0))
    for name in args.models.split(","):
        model = Model(name, task="segment")
        t = time.perf_counter()
        metrics = model.train(data=str(DATA), epochs=args.epochs, epoch_samples=args.epoch_samples, imgsz=args.imgsz,
                              batch=args.batch, project=str(Path(__file__).resolve().parent / "out"), name=f"isbi_{name}", exist_ok=True)  # fmt: skip
        rows.append((name, metrics, time.perf_counter() - t))
    print("| model | pixel acc | Dice (mean) | mIoU | IoU membrane | train wall time |")
    print("|---|---|---|---|---|---|")
    names = list(load_segment_data(TrainConfig(task="segment", data=str(DATA), imgsz=256)).class_names)
    for label, m, seconds in rows:
        print(f"| {label} | {m['pixel_acc']:.4f} | {m['dice']:.4f} | {m['miou']:.4f} | {m[f'iou/{names[0]}']:.4f} | {seconds:.0f} s |")
    for label, m, _ in rows[1:]:
        print(f"{label}: mIoU / Otsu = {m['miou'] / base['miou']:.2f}x")


if __name__ == "__main__":
    main()
