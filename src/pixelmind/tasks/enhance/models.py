"""Enhancement models: super-resolution (x2, x3, x4) and same-size restoration (denoise, JPEG, deblur).

Every model maps ``[B, C, H, W]`` in [0, 1], any H and W, to ``[B, C, H*scale, W*scale]`` and learns a
residual over a bicubic upsampling of its input (the input itself at scale 1). The layer that writes the
residual starts at zero, so an untrained model returns the bicubic image (the input at scale 1): training
starts from the classic baseline instead of from noise. Outputs are not clamped; the caller clamps.
This module holds the CNNs and the registry; the Transformers live in
:mod:`pixelmind.tasks.enhance.transformers`, the shared blocks in :mod:`pixelmind.tasks.enhance.layers`.

Example:
    >>> import torch
    >>> m = build_enhancer("edsr_s", scale=2, channels=3)
    >>> m(torch.rand(1, 3, 31, 37)).shape
    torch.Size([1, 3, 62, 74])
"""

from __future__ import annotations

import torch
from torch import nn

from pixelmind.errors import ConfigError
from pixelmind.registry import Registry
from pixelmind.tasks.enhance.layers import (
    Bicubic,
    conv3x3,
    pad_to_multiple,
    pixel_shuffle_tail,
    upsample,
    zero_init_,
)
from pixelmind.tasks.enhance.transformers import Restormer, SwinIR

MODELS: Registry = Registry("enhancement model")
SCALES = (1, 2, 3, 4)

__all__ = ["MODELS", "SCALES", "build_enhancer", "pad_to_multiple", "upsample"]


# ---------------------------------------------------------------------------------------------------- CNNs


class ResBlock(nn.Module):
    """EDSR residual block: conv-ReLU-conv without BatchNorm, scaled by ``res_scale``."""

    def __init__(self, n_feats: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


def edsr_upsampler(n_feats: int, scale: int) -> nn.Sequential:
    """Conv + PixelShuffle: one step for x2 and x3, two x2 steps for x4; empty (identity) at scale 1."""
    steps = {1: [], 2: [2], 3: [3], 4: [2, 2]}[scale]
    layers: list[nn.Module] = []
    for s in steps:
        layers += [conv3x3(n_feats, n_feats * s * s), nn.PixelShuffle(s)]
    return nn.Sequential(*layers)


class ESPCN(nn.Module):
    """ESPCN (Shi et al. 2016): three convs at low resolution, then a PixelShuffle to the output size.

    Args:
        scale: upscaling factor, 1 to 4 (1: same-size restoration).
        channels: image channels (3 RGB, 1 grey).
        feats: widths of the 5x5 and the 3x3 hidden convs.
    """

    def __init__(self, scale: int = 1, channels: int = 3, feats: tuple[int, int] = (64, 32)) -> None:
        super().__init__()
        self.skip = Bicubic(scale)
        self.body = nn.Sequential(
            nn.Conv2d(channels, feats[0], 5, 1, 2), nn.Tanh(),
            conv3x3(feats[0], feats[1]), nn.Tanh(),
            pixel_shuffle_tail(feats[1], channels, scale),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class EDSR(nn.Module):
    """EDSR (Lim et al. 2017): a head conv, residual blocks without BatchNorm, conv + PixelShuffle upsampler.

    Args:
        scale: upscaling factor, 1 to 4 (1: no upsampler).
        channels: image channels.
        n_feats: feature width.
        n_blocks: residual blocks.
        res_scale: residual scaling in each block (0.1 stabilises the wide EDSR; 1 for the baseline).
    """

    def __init__(
        self, scale: int = 1, channels: int = 3, n_feats: int = 64, n_blocks: int = 16, res_scale: float = 1.0
    ):
        super().__init__()
        self.skip = Bicubic(scale)
        self.head = conv3x3(channels, n_feats)
        self.body = nn.Sequential(
            *[ResBlock(n_feats, res_scale) for _ in range(n_blocks)], conv3x3(n_feats, n_feats)
        )
        self.tail = nn.Sequential(edsr_upsampler(n_feats, scale), zero_init_(conv3x3(n_feats, channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        return self.skip(x) + self.tail(f + self.body(f))


class DnCNN(nn.Module):
    """DnCNN (Zhang et al. 2017): conv-ReLU, conv-BN-ReLU layers, a last conv predicting the residual.

    At ``scale > 1`` it restores the bicubic upsampling of the input, as VDSR does, so it costs
    ``scale**2`` times more than at scale 1.

    Args:
        scale: upscaling factor, 1 to 4.
        channels: image channels.
        n_feats: feature width.
        depth: conv layers in all, the first and last included.
    """

    def __init__(self, scale: int = 1, channels: int = 3, n_feats: int = 64, depth: int = 17) -> None:
        super().__init__()
        self.skip = Bicubic(scale)
        layers: list[nn.Module] = [conv3x3(channels, n_feats), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [conv3x3(n_feats, n_feats, bias=False), nn.BatchNorm2d(n_feats), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers, zero_init_(conv3x3(n_feats, channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.skip(x)
        return x + self.body(x)


# ---------------------------------------------------------------------------------------------- builders


@MODELS.register("espcn")
def espcn(scale: int = 1, channels: int = 3, **overrides) -> nn.Module:
    """ESPCN, 64 and 32 features (27k parameters at x2 RGB, 24k at scale 1)."""
    return ESPCN(scale, channels, **overrides)


@MODELS.register("edsr_baseline")
def edsr_baseline(scale: int = 1, channels: int = 3, **overrides) -> nn.Module:
    """EDSR baseline: 16 residual blocks of 64 features (1.37M parameters at x2 RGB, 1.22M at scale 1)."""
    return EDSR(scale, channels, **{"n_feats": 64, "n_blocks": 16, **overrides})


@MODELS.register("edsr_s")
def edsr_s(scale: int = 1, channels: int = 3, **overrides) -> nn.Module:
    """Small EDSR for CPU budgets: 8 residual blocks of 32 features (0.20M parameters at x2 RGB, 0.16M at 1)."""
    return EDSR(scale, channels, **{"n_feats": 32, "n_blocks": 8, **overrides})


@MODELS.register("dncnn")
def dncnn(scale: int = 1, channels: int = 3, **overrides) -> nn.Module:
    """DnCNN: 17 layers of 64 features (0.56M parameters at any scale)."""
    return DnCNN(scale, channels, **{"n_feats": 64, "depth": 17, **overrides})


@MODELS.register("swinir_light")
def swinir_light(scale: int = 1, channels: int = 3, **overrides) -> nn.Module:
    """SwinIR-light: embed 60, depths (6, 6, 6, 6), 6 heads, window 8 (0.91M parameters at x2 RGB)."""
    cfg = dict(embed_dim=60, depths=(6, 6, 6, 6), heads=6, window=8, mlp_ratio=2.0, drop_path=0.1)
    return SwinIR(scale, channels, **{**cfg, **overrides})


@MODELS.register("swinir_t")
def swinir_t(scale: int = 1, channels: int = 3, **overrides) -> nn.Module:
    """Tiny SwinIR that trains on a CPU: embed 32, depths (4, 4), 2 heads, window 8 (0.10M parameters at x2 RGB).

    Two heads of 16 channels rather than four of 8: a training step on CPU takes about a third less time,
    since the attention maps (one per head) are what costs memory traffic.
    """
    cfg = dict(embed_dim=32, depths=(4, 4), heads=2, window=8, mlp_ratio=2.0, drop_path=0.0)
    return SwinIR(scale, channels, **{**cfg, **overrides})


@MODELS.register("restormer_t")
def restormer_t(scale: int = 1, channels: int = 3, **overrides) -> nn.Module:
    """Two-level Restormer: dim 24, blocks (2, 3, 2) + 1 refinement, heads (1, 2) (0.26M parameters at x2 RGB)."""
    cfg = dict(dim=24, blocks=(2, 3, 2), heads=(1, 2), refine=1, ffn_factor=2.66)
    return Restormer(scale, channels, **{**cfg, **overrides})


def build_enhancer(name: str, scale: int, channels: int, **overrides) -> nn.Module:
    """A registered enhancement model for ``scale`` (1 to 4) and ``channels``; ``overrides`` resize it.

    Raises:
        ConfigError: unknown name (the message lists the choices) or a scale outside 1-4.

    Example:
        >>> build_enhancer("espcn", scale=3, channels=1)(torch.rand(1, 1, 9, 11)).shape
        torch.Size([1, 1, 27, 33])
    """
    builder = MODELS.get(name)
    if scale not in SCALES:
        raise ConfigError(f"scale: {scale!r} is not supported; choose from: {', '.join(map(str, SCALES))}")
    if channels < 1:
        raise ConfigError(f"channels: must be at least 1, got {channels!r}")
    return builder(scale, channels, **overrides)
