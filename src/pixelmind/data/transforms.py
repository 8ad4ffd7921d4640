"""Image transforms built on torchvision.transforms.v2; the eval transform is saved with the weights.

Both transforms accept a PIL image or a uint8 tensor ``[C, H, W]`` and return a normalised
float tensor ``[3, imgsz, imgsz]``.

Example:
    >>> import torch
    >>> t = eval_transform(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    >>> t(torch.zeros(3, 8, 8, dtype=torch.uint8)).shape
    torch.Size([3, 32, 32])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2


def eval_transform(imgsz: int, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Resize to a square ``imgsz`` and normalise: what validation, predict, export and serve use."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((imgsz, imgsz), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )


def train_transform(
    imgsz: int,
    mean: Sequence[float],
    std: Sequence[float],
    augment: str = "light",
    hflip: bool = True,
) -> v2.Compose:
    """Training augmentation.

    Args:
        augment: ``none`` (resize only), ``light`` (random resized crop, flip, colour jitter),
            ``trivial`` (light + TrivialAugmentWide) or ``randaugment`` (light + RandAugment).
        hflip: whether a mirrored image keeps its label (False for digits and text).
    """
    if augment == "none":
        return eval_transform(imgsz, mean, std)
    steps: list = [v2.ToImage(), v2.RandomResizedCrop(imgsz, scale=(0.6, 1.0), ratio=(0.8, 1.25), antialias=True)]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if augment == "light":
        steps.append(v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02))
    if augment == "trivial":
        steps.append(v2.TrivialAugmentWide())
    elif augment == "randaugment":
        steps.append(v2.RandAugment())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    return v2.Compose(steps)


def batch_mix(num_classes: int, mixup: float, cutmix: float) -> v2.RandomChoice | None:
    """MixUp and/or CutMix on a whole batch (labels become soft), or None when both are off."""
    choices = []
    if mixup > 0:
        choices.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if cutmix > 0:
        choices.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
    return v2.RandomChoice(choices) if choices else None
