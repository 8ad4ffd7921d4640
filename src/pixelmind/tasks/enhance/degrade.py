"""Degradations applied on the fly to clean images: what an enhancement model learns to undo.

All functions take and return float images ``[C, H, W]`` with values in [0, 1]; randomness comes
from an explicit ``torch.Generator`` so that validation degradations are the same every epoch.

Example:
    >>> import torch
    >>> d = Degradation("sr", scale=2)
    >>> d(torch.rand(3, 32, 32), torch.Generator().manual_seed(0)).shape
    torch.Size([3, 16, 16])
"""

from __future__ import annotations

import io
import math

import torch
import torch.nn.functional as F

from pixelmind.data.imresize import imresize


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels, as a degraded image saved to a PNG would be."""
    return (x.clamp(0, 1) * 255).round() / 255


def downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB's ``imresize(uint8 HR, 1/scale, 'bicubic')``: the SR protocol's LR, on 8-bit levels."""
    levels = (hr.clamp(0, 1) * 255).round().to(torch.uint8)
    return imresize(levels, scale=1 / scale).float() / 255


def add_gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Additive white Gaussian noise, ``sigma`` on the 0-255 scale; not clipped, as in the DnCNN protocol."""
    return x + torch.randn(x.shape, generator=generator) * (sigma / 255.0)


def jpeg_compress(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode through Pillow's JPEG at ``quality`` (4:2:0 chroma subsampling for colour)."""
    import numpy as np
    from PIL import Image

    arr = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    pil = Image.fromarray(arr[0].numpy()) if len(arr) == 1 else Image.fromarray(arr.permute(1, 2, 0).numpy())
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(quality))
    out = torch.from_numpy(np.asarray(Image.open(buf)).copy())
    out = out[None] if out.ndim == 2 else out.permute(2, 0, 1)
    return out.float() / 255


def gaussian_kernel(sigma: float, size: int = 21) -> torch.Tensor:
    """An isotropic Gaussian blur kernel ``[size, size]`` summing to 1."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    k = g[:, None] * g[None, :]
    return (k / k.sum()).float()


def motion_kernel(length: float, angle_deg: float, size: int = 21) -> torch.Tensor:
    """A straight motion-blur kernel of ``length`` pixels at ``angle_deg``, antialiased, summing to 1."""
    length = max(1.0, min(length, size - 1))
    t = torch.linspace(-length / 2, length / 2, steps=int(length * 4) + 1, dtype=torch.float64)
    a = math.radians(angle_deg)
    xs, ys = t * math.cos(a) + (size - 1) / 2, t * math.sin(a) + (size - 1) / 2
    k = torch.zeros(size, size, dtype=torch.float64)
    # bilinear splatting of points along the line: no aliasing steps in the kernel
    x0, y0 = xs.floor().long(), ys.floor().long()
    fx, fy = xs - x0, ys - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        k.index_put_(((y0 + dy).clamp(0, size - 1), (x0 + dx).clamp(0, size - 1)), w, accumulate=True)
    return (k / k.sum()).float()


def apply_kernel(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel with ``kernel`` (reflect padding, so borders do not darken)."""
    c = x.shape[0]
    pad = kernel.shape[-1] // 2
    xp = F.pad(x[None], (pad, pad, pad, pad), mode="reflect") if min(x.shape[-2:]) > pad else F.pad(x[None], (pad,) * 4, mode="replicate")
    return F.conv2d(xp, kernel.expand(c, 1, *kernel.shape), groups=c)[0]


def _uniform(value: float | tuple[float, float], generator: torch.Generator | None) -> float:
    if not isinstance(value, (tuple, list)):
        return float(value)
    lo, hi = value
    return lo + (hi - lo) * torch.rand((), generator=generator).item()


class Degradation:
    """One degradation setting (``sr``, ``denoise``, ``jpeg`` or ``deblur``) as a callable.

    Args:
        kind: what the model learns to undo.
        scale: super-resolution factor (``sr`` only).
        noise_sigma: Gaussian sigma on 0-255, or ``(lo, hi)`` for blind denoising.
        jpeg_quality: Pillow JPEG quality, or ``(lo, hi)``.
        blur: ``gaussian`` (sigma 0.5-3), ``motion`` (length 5-17 px, any angle) or ``both``.
    """

    def __init__(self, kind: str, scale: int = 1, noise_sigma: float | tuple[float, float] = 25.0,
                 jpeg_quality: int | tuple[int, int] = 20, blur: str = "both") -> None:  # fmt: skip
        if kind not in ("sr", "denoise", "jpeg", "deblur"):
            raise ValueError(f"degradation: unknown kind {kind!r}")
        self.kind, self.noise_sigma, self.jpeg_quality, self.blur = kind, noise_sigma, jpeg_quality, blur
        self.scale = scale if kind == "sr" else 1

    def __call__(self, clean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.kind == "sr":
            return downscale(clean, self.scale)
        if self.kind == "denoise":
            return add_gaussian_noise(clean, _uniform(self.noise_sigma, generator), generator)
        if self.kind == "jpeg":
            return jpeg_compress(clean, round(_uniform(self.jpeg_quality, generator)))
        family = self.blur
        if family == "both":
            family = "gaussian" if torch.rand((), generator=generator).item() < 0.5 else "motion"
        if family == "gaussian":
            kernel = gaussian_kernel(_uniform((0.5, 3.0), generator))
        else:
            kernel = motion_kernel(_uniform((5.0, 17.0), generator), _uniform((0.0, 180.0), generator))
        return quantize(apply_kernel(clean, kernel))

    def describe(self) -> str:
        """A short human description, e.g. ``sr x2`` or ``denoise sigma 25``."""
        return {
            "sr": f"sr x{self.scale}",
            "denoise": f"denoise sigma {self.noise_sigma}",
            "jpeg": f"jpeg quality {self.jpeg_quality}",
            "deblur": f"deblur {self.blur} kernels",
        }[self.kind]

    @classmethod
    def from_config(cls, cfg) -> Degradation:
        return cls(cfg.degradation or "sr", cfg.scale or 1, cfg.noise_sigma, cfg.jpeg_quality, cfg.blur)

    def to_dict(self) -> dict:
        return {"degradation": self.kind, "scale": self.scale, "noise_sigma": self.noise_sigma,
                "jpeg_quality": self.jpeg_quality, "blur": self.blur}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> Degradation:
        return cls(d["degradation"], d.get("scale", 1), d.get("noise_sigma", 25.0), d.get("jpeg_quality", 20), d.get("blur", "both"))
