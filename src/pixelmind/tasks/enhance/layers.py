"""Building blocks shared by the enhancement models: the bicubic skip path, padding, zero-initialised tails.

Example:
    >>> import torch
    >>> upsample(torch.rand(1, 3, 4, 4), 2).shape
    torch.Size([1, 3, 8, 8])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling (the baseline every model improves on); the input itself at scale 1.

    Example:
        >>> upsample(torch.rand(1, 3, 5, 7), 3).shape
        torch.Size([1, 3, 15, 21])
    """
    if scale == 1:
        return x
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


class Bicubic(nn.Module):
    """:func:`upsample` as a module: the global skip path of every model here."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample(x, self.scale)


def _mirror_index(n: int, multiple: int, device: torch.device) -> torch.Tensor:
    size = (n + multiple - 1) // multiple * multiple
    i = torch.arange(size, device=device) % (2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Mirror-pad the bottom and right of ``x`` ``[B, C, H, W]`` so that H and W become multiples of ``multiple``.

    The mirror repeats the edge pixel, as SwinIR's flip-and-concatenate test padding does. It gathers rows
    and columns rather than calling ``F.pad(mode="reflect")``, which fails when the pad is not smaller than
    the image (a 3 px wide input padded to a window of 8); the gather also exports to ONNX with the sizes
    left dynamic.

    Example:
        >>> pad_to_multiple(torch.arange(6.0).view(1, 1, 2, 3), 4)[0, 0]
        tensor([[0., 1., 2., 2.],
                [3., 4., 5., 5.],
                [3., 4., 5., 5.],
                [0., 1., 2., 2.]])
    """
    h, w = x.shape[-2:]
    x = x.index_select(-2, _mirror_index(h, multiple, x.device))
    return x.index_select(-1, _mirror_index(w, multiple, x.device))


def zero_init_(layer: nn.Conv2d) -> nn.Conv2d:
    # The layer that writes the residual starts at zero: the untrained model is the bicubic baseline.
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def conv3x3(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=bias)


def pixel_shuffle_tail(cin: int, channels: int, scale: int) -> nn.Sequential:
    """One zero-initialised conv to ``channels * scale**2`` and a PixelShuffle (SwinIR's 'pixelshuffledirect')."""
    return nn.Sequential(zero_init_(conv3x3(cin, channels * scale**2)), nn.PixelShuffle(scale))
