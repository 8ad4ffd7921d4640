"""Augmentation of whole uint8 batches on the training device, for in-memory data sets.

Per-sample transforms cost more than the model on small images (28 px Fashion-MNIST on a
2-core CPU spent most of each epoch in them); one ``affine_grid``/``grid_sample`` over the
batch does the same random resized crop and flip at a fraction of the cost, on the GPU too.

Example:
    >>> import torch
    >>> aug = BatchAugment(mean=(0.5,) * 3, std=(0.5,) * 3, hflip=True)
    >>> aug(torch.zeros(4, 3, 16, 16, dtype=torch.uint8)).shape
    torch.Size([4, 3, 16, 16])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def normalize_uint8(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``[B, C, H, W]`` -> float, scaled to [0, 1] and normalised per channel."""
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


class BatchAugment:
    """Random resized crop (area ``scale``, aspect ``ratio``) and horizontal flip of a uint8 batch.

    The crop is an affine resampling that keeps the image size; each sample gets its own draw
    from torch's global RNG, so runs are reproducible under the engine's per-epoch seeding.
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        hflip: bool = True,
        scale: tuple[float, float] = (0.6, 1.0),
        ratio: tuple[float, float] = (0.8, 1.25),
    ) -> None:
        self.mean, self.std, self.hflip, self.scale, self.ratio = mean, std, hflip, scale, ratio

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        b, device = images.shape[0], images.device
        x = normalize_uint8(images, self.mean, self.std)
        area = torch.empty(b).uniform_(*self.scale)
        log_r = torch.empty(b).uniform_(math.log(self.ratio[0]), math.log(self.ratio[1]))
        aspect = log_r.exp()
        sx = (area * aspect).sqrt().clamp(max=1.0)  # crop width / image width
        sy = (area / aspect).sqrt().clamp(max=1.0)
        tx = (torch.rand(b) * 2 - 1) * (1 - sx)  # crop centre stays inside the image
        ty = (torch.rand(b) * 2 - 1) * (1 - sy)
        if self.hflip:
            sx = sx * torch.where(torch.rand(b) < 0.5, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, sy, ty
        grid = F.affine_grid(theta.to(device), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
