"""What ``pixelmind explain`` explains in an enhancer: where, and from which input pixels, it changed the image.

The network explained outputs the change map ``|f(x) - up(x)|`` (``up``: bicubic to the output
size, the identity for denoising and artifact removal), averaged over channels. ``difference`` is
that map itself; ``gradient`` and ``ig`` attribute the total change to input pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelmind.explain.targets import ExplainTarget


class ChangeMap(nn.Module):
    """``[B, C, H, W]`` -> ``[B, 1, H * scale, W * scale]``: how much the enhancer changed each output pixel.

    Example:
        >>> ChangeMap(nn.Identity(), 1)(torch.rand(1, 3, 4, 4)).abs().max().item()
        0.0
    """

    def __init__(self, model: nn.Module, scale: int) -> None:
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        ref = x if self.scale == 1 else F.interpolate(x, size=out.shape[-2:], mode="bicubic", align_corners=False)
        return (out - ref).abs().mean(1, keepdim=True)


def change_target() -> ExplainTarget:
    """The whole change (mean of the change map); ``difference`` reads the map off the output."""
    return ExplainTarget("change", score=lambda out: out.mean(), maps={"difference": lambda out: out[0]})
