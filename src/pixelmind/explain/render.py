"""Heat maps over images: what a person looks at (the raw map is saved beside it as ``.npy``)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def overlay(image: Image.Image, saliency: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """``image`` with ``saliency`` (``[H, W]`` in [0, 1], the image's size) blended on top in a colour map.

    Example:
        >>> im = Image.new("RGB", (8, 6), "gray")
        >>> overlay(im, np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)).size
        (8, 6)
    """
    from matplotlib import colormaps

    if saliency.shape != (image.height, image.width):
        raise ValueError(f"map {saliency.shape} does not match the image {(image.height, image.width)}")
    heat = colormaps[cmap](np.clip(saliency, 0, 1))[..., :3]
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return Image.fromarray((((1 - alpha) * base + alpha * heat) * 255).round().astype(np.uint8))


def resize_map(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A ``[h, w]`` map resized (bilinear) to ``size`` = (width, height), kept in [0, 1]."""
    if saliency.shape == (size[1], size[0]):
        return saliency
    img = Image.fromarray(saliency.astype(np.float32), mode="F").resize(size, Image.BILINEAR)
    return np.clip(np.asarray(img, dtype=np.float32), 0, 1)
