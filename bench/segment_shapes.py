"""Segmentation on the built-in ``shapes``: mIoU of the default recipe trained from scratch on this CPU.

Target (issue #4): mIoU >= 0.90 within 10 minutes of training on the CPU. Printed beside it,
measured in the same run: a classical baseline that needs no training (each pixel labelled by
the nearest of the class colour centroids is impossible here, since colours are random; so
the baseline is "everything background", the mIoU a model gets for learning nothing).

    python bench/segment_shapes.py [--model unet_s] [--epochs N] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import machine

from pixelmind.api import Model
from pixelmind.metrics.segmentation import confusion_matrix, scores_from_confusion

BUDGET_S = 600
TARGET = 0.90


def background_baseline(names: list[str]) -> float:
    import torch

    from pixelmind.data.shapes import semantic_mask, shapes_indices, shapes_sample

    truth = torch.from_numpy(np.stack([semantic_mask(shapes_sample(i, size=64)) for i in shapes_indices("val")]).astype(np.int64))
    cm = confusion_matrix(torch.zeros_like(truth), truth, len(names))
    return scores_from_confusion(cm, names)["miou"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="default: the task's recipe")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--set", nargs="*", default=[], help="more TrainConfig overrides, key=value")
    args = ap.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    for key in ("lr",):
        if key in overrides:
            overrides[key] = float(overrides[key])
    for key in ("batch", "imgsz", "epoch_samples"):
        if key in overrides:
            overrides[key] = int(overrides[key])
    model = Model(args.model, task="segment")
    t = time.perf_counter()
    metrics = model.train(data="shapes", epochs=args.epochs, project=str(Path(__file__).resolve().parent / "out"), name="segment_shapes", exist_ok=True, **overrides)
    seconds = time.perf_counter() - t
    names = model.meta.class_names
    base = background_baseline(names)
    print(f"machine: {machine()}")
    print(f"model {model.meta.model}, {model.config.get('epochs')} epochs, imgsz {model.meta.imgsz}")
    print(f"wall time {seconds:.0f} s (budget {BUDGET_S} s; ratio {seconds / BUDGET_S:.2f})")
    print(f"val mIoU {metrics['miou']:.4f} (target {TARGET}); pixel acc {metrics['pixel_acc']:.4f}; dice {metrics['dice']:.4f}")
    print(f"baseline 'all background' mIoU {base:.4f}; model / baseline {metrics['miou'] / base:.2f}x")
    print("per-class IoU: " + ", ".join(f"{n} {metrics[f'iou/{n}']:.3f}" for n in names))


if __name__ == "__main__":
    main()
