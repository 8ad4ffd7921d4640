"""Shared by the detection model tests: real shapes batches and the recall of a detector on them."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou

from pixelmind.data.shapes import shapes_sample

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def shapes_batch(indices) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Normalised 64 px shapes images and their box targets."""
    samples = [shapes_sample(i) for i in indices]
    x = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float() / 255
    targets = [{"boxes": torch.from_numpy(s.boxes), "labels": torch.from_numpy(s.labels)} for s in samples]
    return (x - MEAN) / STD, targets


def no_objects() -> dict[str, torch.Tensor]:
    return {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}


def recall_at_iou50(dets: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]) -> float:
    """Share of objects found by a detection of their class with IoU >= 0.5."""
    found = total = 0
    for d, t in zip(dets, targets):
        total += len(t["labels"])
        if len(d["labels"]):
            iou = box_iou(t["boxes"], d["boxes"]) * (t["labels"][:, None] == d["labels"][None])
            found += int((iou.max(1).values >= 0.5).sum())
    return found / total
