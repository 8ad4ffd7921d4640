"""What ``pixelmind explain`` shows for a learned codec: where the bits go.

The network explained turns an image into its bits-per-pixel map: ``-log2`` of every latent's
likelihood summed over channels, spread evenly over the pixels each latent cell covers (the
hyperprior's over its own, larger cells). Its sum is the estimated size in bits, what the loss's
rate term counts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pixelmind.explain.targets import ExplainTarget


class BitsMap(nn.Module):
    """``[B, 3, H, W]`` in [0, 1] -> bits per pixel ``[B, 1, H, W]`` (padded to the codec's stride inside)."""

    def __init__(self, codec: nn.Module) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        stride = self.codec.stride
        padded = F.pad(x, (0, -w % stride, 0, -h % stride), mode="replicate")
        total = torch.zeros(x.shape[0], 1, *padded.shape[-2:], dtype=x.dtype, device=x.device)
        for lik in self.codec(padded)["likelihoods"].values():
            bits = -torch.log(lik).sum(1, keepdim=True) / math.log(2)
            cell = (padded.shape[-2] // bits.shape[-2]) * (padded.shape[-1] // bits.shape[-1])
            total = total + F.interpolate(bits, size=padded.shape[-2:], mode="nearest") / cell
        return total[..., :h, :w]


def bits_target(bpp: float) -> ExplainTarget:
    """The whole rate (``bpp``: its mean on the unchanged image); the ``bits`` map is the network's own output."""
    return ExplainTarget("bits", score=lambda out: out.sum(), maps={"bits": lambda out: out[0]}, info={"bpp": round(bpp, 4)})
