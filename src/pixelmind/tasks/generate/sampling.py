"""Seeded sampling, latent interpolation and image grids, shared by training, predict and the CLI.

Sample ``i`` of a call with ``seed=s`` is drawn from its own generator seeded ``s + i``, so
``--seed 5 --n 1`` gives the first image of ``--seed 5 --n 64``, on any device.

Example:
    >>> a, b = torch.randn(2, 16), torch.randn(2, 16)
    >>> torch.allclose(slerp(a, b, 0.0), a, atol=1e-6), torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    (True, True)
"""

from __future__ import annotations

import math

import torch

from pixelmind.tasks.generate.data import to_uint8


def seeded_noise(model, n: int, seed: int) -> torch.Tensor:
    """Noise for ``n`` samples on the CPU, sample ``i`` from a generator seeded ``seed + i``."""
    return torch.cat([torch.randn(model.noise_shape(1), generator=torch.Generator().manual_seed(seed + i)) for i in range(n)])


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation per sample (first axis) between noise tensors ``a`` and ``b``.

    Gaussian noise lives near a sphere; a straight line between two draws passes through
    low-norm noise the model never saw, a great circle does not.
    """
    fa, fb = a.flatten(1), b.flatten(1)
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))[:, None]
    so = torch.sin(omega)
    near = so.abs() < 1e-6  # (anti)parallel: fall back to a straight line
    wa = torch.where(near, torch.full_like(so, 1 - t), torch.sin((1 - t) * omega) / so)
    wb = torch.where(near, torch.full_like(so, t), torch.sin(t * omega) / so)
    return (wa * fa + wb * fb).view_as(a)


@torch.inference_mode()
def generate(model, n: int, labels: torch.Tensor | None, seed: int, steps: int | None = None,
             guidance: float | None = None, batch: int = 64, noise: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """``n`` samples as uint8 ``[n, C, H, W]`` on the CPU, drawn in batches of ``batch``."""
    noise = seeded_noise(model, n, seed) if noise is None else noise
    device = next(model.parameters()).device
    out = []
    for start in range(0, n, batch):
        part = noise[start : start + batch]
        lab = labels[start : start + batch].to(device) if labels is not None else None
        g = torch.Generator(device=device).manual_seed(seed + start)  # any noise a sampler adds along the way
        images = model.sample(len(part), lab, generator=g, noise=part.to(device), steps=steps, guidance=guidance)
        out.append(to_uint8(images).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.uint8)


def interpolation_noise(model, frames: int, seed_a: int, seed_b: int) -> torch.Tensor:
    """``frames`` noise tensors on the great circle from seed ``seed_a``'s noise to ``seed_b``'s."""
    a, b = seeded_noise(model, 1, seed_a), seeded_noise(model, 1, seed_b)
    ts = [i / max(frames - 1, 1) for i in range(frames)]
    return torch.cat([slerp(a, b, t) for t in ts])


def image_grid(images: torch.Tensor, nrow: int, pad: int = 2):
    """uint8 ``[n, C, H, W]`` -> one PIL image, ``nrow`` images per row, ``pad`` black pixels between.

    Example:
        >>> image_grid(torch.zeros(6, 1, 8, 8, dtype=torch.uint8), nrow=3).size
        (32, 22)
    """
    from PIL import Image

    n, c, h, w = images.shape
    rows = max(1, math.ceil(n / nrow))
    canvas = torch.zeros(c, rows * (h + pad) + pad, nrow * (w + pad) + pad, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        canvas[:, y : y + h, x : x + w] = images[i]
    arr = canvas.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if c == 1 else arr)


def to_pil(image: torch.Tensor):
    """One uint8 ``[C, H, W]`` image as a PIL image (L or RGB)."""
    from PIL import Image

    arr = image.permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
