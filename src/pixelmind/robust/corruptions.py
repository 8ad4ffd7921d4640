"""Common corruptions at five severities (after Hendrycks & Dietterich, ImageNet-C, 2019), seeded.

Each takes pixels ``[B, C, H, W]`` in [0, 1] and returns them corrupted. Blur and fog scale with the
image's size: fog's haze is a fraction of the image, blur's sigma (ImageNet-C's, for 224 px) goes with
the square root of the side, close to CIFAR-10-C's choice for 32 px (sigma 0.4-1.0 there, 0.4-2.3 here).

Example:
    >>> x = torch.full((1, 3, 32, 32), 0.5)
    >>> y = corrupt("gaussian_noise", x, severity=3, seed=0)
    >>> y.shape, bool(y.min() >= 0), corrupt("gaussian_noise", x, 3, seed=0).equal(y)
    (torch.Size([1, 3, 32, 32]), True, True)
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F

from pixelmind.errors import ConfigError

SEVERITIES = (1, 2, 3, 4, 5)
_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)  # sigma on [0, 1]
_BLUR = (1.0, 2.0, 3.0, 4.0, 6.0)  # Gaussian sigma in pixels at 224 px
_JPEG = (25, 18, 15, 10, 7)  # Pillow quality
_BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)  # added to every pixel
_CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)  # distance to the mean kept
_FOG = (0.25, 0.35, 0.45, 0.55, 0.65)  # opacity of the haze


def _noise(x: torch.Tensor, level: int, g: torch.Generator) -> torch.Tensor:
    return x + torch.randn(x.shape, generator=g).to(x) * _NOISE[level]


def _blur(x: torch.Tensor, level: int, g: torch.Generator) -> torch.Tensor:
    from torchvision.transforms.v2.functional import gaussian_blur

    sigma = max(0.3, _BLUR[level] * (min(x.shape[-2:]) / 224) ** 0.5)
    k = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur(x, [k, k], [sigma, sigma])


def _jpeg(x: torch.Tensor, level: int, g: torch.Generator) -> torch.Tensor:
    from PIL import Image

    out = []
    for img in x:
        arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
        buf = io.BytesIO()
        pil.save(buf, "JPEG", quality=_JPEG[level])
        back = np.asarray(Image.open(buf).convert(pil.mode), dtype=np.float32) / 255
        out.append(torch.from_numpy(back.reshape(arr.shape)).permute(2, 0, 1))
    return torch.stack(out).to(x)


def _brightness(x: torch.Tensor, level: int, g: torch.Generator) -> torch.Tensor:
    return x + _BRIGHTNESS[level]


def _contrast(x: torch.Tensor, level: int, g: torch.Generator) -> torch.Tensor:
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * _CONTRAST[level] + mean


def _fog(x: torch.Tensor, level: int, g: torch.Generator) -> torch.Tensor:
    """A smooth bright haze: noise at 1/8 of the image's size and coarser, upsampled and summed (plasma-like)."""
    h, w = x.shape[-2:]
    haze = torch.zeros(x.shape[0], 1, h, w)
    for octave, weight in ((16, 0.5), (8, 0.3), (4, 0.2)):
        coarse = torch.rand(x.shape[0], 1, max(1, h // octave) + 1, max(1, w // octave) + 1, generator=g)
        haze += weight * F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    haze = 0.6 + 0.4 * haze.clamp(0, 1)  # light grey to white
    a = _FOG[level]
    return x * (1 - a) + a * haze.to(x)


CORRUPTIONS = {"gaussian_noise": _noise, "gaussian_blur": _blur, "jpeg": _jpeg, "brightness": _brightness,
               "contrast": _contrast, "fog": _fog}  # fmt: skip


def corrupt(name: str, pixels: torch.Tensor, severity: int, seed: int = 0) -> torch.Tensor:
    """``pixels`` ``[B, C, H, W]`` in [0, 1] under corruption ``name`` at ``severity`` 1-5, clipped to [0, 1]."""
    if name not in CORRUPTIONS:
        raise ConfigError(f"corruption: unknown {name!r} (choose from: {', '.join(CORRUPTIONS)})")
    if severity not in SEVERITIES:
        raise ConfigError(f"corruption: severity must be 1-5, got {severity}")
    g = torch.Generator().manual_seed(seed)
    return CORRUPTIONS[name](pixels, severity - 1, g).clamp(0, 1)
