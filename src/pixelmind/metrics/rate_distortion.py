"""Rate-distortion toolkit for learned image compression: rates, qualities, classical anchors.

- Rate is measured in bits per pixel, ``8 * bytes / (width * height)``, of the whole file
  (container and headers included, as CompressAI's ``bench`` does for the classical codecs).
- Distortion is RGB PSNR on 8-bit levels (:func:`psnr_rgb`) and MS-SSIM on [0, 1] floats
  (:func:`ms_ssim`).
- The classical anchors are Pillow's JPEG, WebP and AVIF encoders (:data:`CLASSICAL_CODECS`),
  run in memory with fixed, stated settings so that curves are reproducible.
- Bjøntegaard deltas between curves are in :mod:`pixelmind.metrics.bd_rate`.

Example:
    >>> bpp(num_bytes=1000, width=100, height=80)
    1.0
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from pixelmind.metrics.image_quality import PSNR_MAX, psnr

__all__ = [
    "CLASSICAL_CODECS",
    "MS_SSIM_BETAS",
    "PSNR_MAX",
    "bpp",
    "classical_rd_points",
    "encode_classical",
    "match_bpp",
    "ms_ssim",
    "ms_ssim_loss",
    "ms_ssim_scales",
    "psnr_rgb",
]

CLASSICAL_CODECS = ("jpeg", "webp", "avif")
"""Codecs :func:`encode_classical` knows, in Pillow's encoders."""

QUALITY_RANGES: dict[str, tuple[int, int]] = {"jpeg": (1, 95), "webp": (0, 100), "avif": (0, 100)}
"""Integer quality range searched per codec. JPEG stops at 95: Pillow's docs advise against
higher values (above 95 the quantisation tables are mostly 1s, the file grows a lot and the
quality barely moves)."""

AVIF_SPEED = 6
"""libavif/aom speed (0 slowest .. 10 fastest) used for AVIF; Pillow's default. Speed 0 is ~30x
slower for ~0.3-0.7 dB at 128 px, speed 10 drops ~0.3-0.9 dB: 6 is the usual compromise."""

WEBP_METHOD = 6
"""libwebp effort (0 fast .. 6 slowest, best compression); images here are small."""

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Wang et al.'s five scale weights, finest first (torchmetrics' defaults)."""

_PLAIN_SSIM_BELOW = 32  # below this short side even two scales leave too few windows to be meaningful


def bpp(num_bytes: int, width: int, height: int) -> float:
    """Bits per pixel of a ``num_bytes`` file holding a ``width`` x ``height`` image.

    Args:
        num_bytes: size of the whole encoded file (headers included).
        width: image width in pixels.
        height: image height in pixels.

    Returns:
        ``8 * num_bytes / (width * height)``.

    Raises:
        ValueError: a negative size or a non-positive dimension.

    Example:
        >>> bpp(2048, 128, 128)
        1.0
    """
    if num_bytes < 0 or width <= 0 or height <= 0:
        raise ValueError(f"bpp: need num_bytes >= 0 and positive dimensions, got {num_bytes}, {width}x{height}")
    return 8.0 * num_bytes / (width * height)


def ms_ssim_scales(height: int, width: int) -> int:
    """Number of MS-SSIM scales :func:`ms_ssim` uses for an image of this size (1 = plain SSIM).

    The largest count ``n <= 5`` that torchmetrics accepts with the 11x11 window: it requires
    ``side // (n - 1)**2 > 10`` (stricter than the ``side > 160`` of pytorch-msssim/CompressAI
    for 5 scales) and, so that the coarsest scale still holds a full window,
    ``side // 2**(n - 1) >= 11``. This gives: short side >= 176 px: 5 scales; 99-175: 4;
    44-98: 3; 32-43: 2; under 32: plain SSIM.

    Args:
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        The number of scales, 1 to 5.

    Example:
        >>> [ms_ssim_scales(s, s) for s in (256, 176, 175, 128, 64, 40, 16)]
        [5, 5, 4, 4, 3, 2, 1]
    """
    side = min(height, width)
    if side < _PLAIN_SSIM_BELOW:
        return 1
    for n in range(len(MS_SSIM_BETAS), 1, -1):
        if side // (n - 1) ** 2 > 10 and side >> (n - 1) >= 11 and side >= 2**n:
            return n
    return 1


def _as_nchw(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4) or x.shape[-3] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"ms_ssim: {name} must be a tensor [3, H, W] or [N, 3, H, W], got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"ms_ssim: {name} must be floating point in [0, 1], got {x.dtype}")
    # float32: torch's float64 CPU convolution is ~20x slower and SSIM needs no more precision.
    x = x.detach().to(torch.float32)
    if x.numel() and float(x.max()) > 2.0:
        raise ValueError(f"ms_ssim: {name} looks like 0..255 levels; pass floats in [0, 1]")
    # Clamp instead of refusing: decoder outputs overshoot [0, 1] slightly before rounding.
    return (x[None] if x.dim() == 3 else x).clamp(0, 1)


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """MS-SSIM of two RGB images (or batches) in [0, 1], with fewer scales for small images.

    torchmetrics' ``multiscale_structural_similarity_index_measure`` with ``data_range=1``,
    the 11x11 Gaussian window (sigma 1.5) and Wang et al.'s weights, computed in float32. The
    standard 5 scales need a short side of at least 176 px in torchmetrics; smaller images use
    the :func:`ms_ssim_scales` finest scales, dropping the coarsest weights and renormalising the
    rest to sum to 1 (values are then *not* comparable with 5-scale MS-SSIM of larger images).
    Under 32 px it falls back to plain SSIM (torchmetrics' ``structural_similarity_index_measure``),
    with the window shrunk to the largest odd size that fits below 11 px. Never raises for a
    short side >= 8 px.

    Args:
        a: tensor ``[3, H, W]`` or ``[N, 3, H, W]``, floats in [0, 1] (clamped to it).
        b: the reference, same shape.

    Returns:
        The mean over the batch; 1.0 for identical images.

    Raises:
        ValueError: bad or different shapes, a side under 8 px, integer or 0..255 inputs.

    Example:
        >>> import torch
        >>> x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
        >>> ms_ssim(x, x), ms_ssim(x, 1 - x) < 0.5
        (1.0, True)
    """
    a, b = _as_nchw(a, "a"), _as_nchw(b, "b")
    return float(_ms_ssim_tensor(a, b))


def _ms_ssim_tensor(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Differentiable batch-mean (MS-)SSIM of ``[N, 3, H, W]`` tensors in [0, 1], scales by :func:`ms_ssim_scales`."""
    from torchmetrics.functional.image import (
        multiscale_structural_similarity_index_measure,
        structural_similarity_index_measure,
    )

    if a.shape != b.shape:
        raise ValueError(
            f"ms_ssim: a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    h, w = a.shape[-2:]
    if min(h, w) < 8:
        raise ValueError(f"ms_ssim: images must be at least 8x8 pixels, got {h}x{w}")
    n = ms_ssim_scales(h, w)
    if n == 1:
        kernel = min(11, min(h, w) - (1 - min(h, w) % 2))  # largest odd window that fits
        return structural_similarity_index_measure(a, b, data_range=1.0, kernel_size=kernel)
    betas = MS_SSIM_BETAS[:n]
    if n < len(MS_SSIM_BETAS):
        total = sum(betas)
        betas = tuple(beta / total for beta in betas)
    return multiscale_structural_similarity_index_measure(a, b, data_range=1.0, betas=betas)


def ms_ssim_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Training distortion ``1 - MS-SSIM(x_hat, x)``, differentiable, mean over the batch.

    The term CompressAI's MS-SSIM models minimise as ``lmbda * (1 - ms_ssim)``. Same window,
    weights and small-image scale choice as :func:`ms_ssim`, but computed in the input's dtype
    on its device, without clamping (a clamp would cut the gradient where ``x_hat`` overshoots).

    Args:
        x_hat: reconstruction ``[N, 3, H, W]`` (or ``[3, H, W]``), floats nominally in [0, 1].
        x: the original, same shape.

    Returns:
        A scalar tensor in [0, 1] (0 for identical images) that carries gradients to ``x_hat``.

    Raises:
        ValueError: bad or different shapes, or a side under 8 px.

    Example:
        >>> import torch
        >>> x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        >>> y = (x + 0.1).clamp(0, 1).requires_grad_()
        >>> loss = ms_ssim_loss(y, x); loss.backward()
        >>> 0 < loss.item() < 1, y.grad.abs().sum().item() > 0, ms_ssim_loss(x, x).item()
        (True, True, 0.0)
    """
    if x_hat.dim() not in (3, 4) or x_hat.shape[-3] != 3:
        raise ValueError(f"ms_ssim_loss: expected [N, 3, H, W] or [3, H, W], got {tuple(x_hat.shape)}")
    if x_hat.dim() == 3:
        x_hat, x = x_hat[None], x[None]
    return 1 - _ms_ssim_tensor(x_hat, x.to(x_hat.dtype))


def psnr_rgb(a_uint8: np.ndarray, b_uint8: np.ndarray) -> float:
    """PSNR in dB of two 8-bit RGB images ``H x W x 3`` over all pixels and channels.

    :func:`pixelmind.metrics.image_quality.psnr` (``10 log10(255^2 / MSE)``), capped at
    :data:`PSNR_MAX` (100 dB) so identical images give a finite, averageable value.

    Args:
        a_uint8: uint8 array ``H x W x 3`` (e.g. ``np.asarray(decoded_pil_image)``).
        b_uint8: the reference, same shape.

    Returns:
        PSNR in dB, at most 100.

    Raises:
        ValueError: not uint8, not ``H x W x 3``, or different shapes.

    Example:
        >>> import numpy as np
        >>> a = np.zeros((4, 4, 3), dtype=np.uint8)
        >>> psnr_rgb(a, a), round(psnr_rgb(a, a + 1), 2)
        (100.0, 48.13)
    """
    for name, x in (("a_uint8", a_uint8), ("b_uint8", b_uint8)):
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3:
            desc = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"psnr_rgb: {name} must be a uint8 array H x W x 3, got {desc}")
    if a_uint8.shape != b_uint8.shape:
        raise ValueError(f"psnr_rgb: shapes differ: {a_uint8.shape} and {b_uint8.shape}")
    return psnr(a_uint8, b_uint8)


def _check_codec(codec: str) -> str:
    if codec not in CLASSICAL_CODECS:
        raise ValueError(f"unknown codec {codec!r}; expected one of {', '.join(CLASSICAL_CODECS)}")
    return codec


def encode_classical(image: Image.Image, codec: str, quality: int) -> tuple[bytes, Image.Image]:
    """Encode an image in memory with Pillow and decode it back to RGB.

    Settings: JPEG ``quality`` 1..95, 4:2:0 chroma subsampling (Pillow's default),
    ``optimize=True`` (optimal Huffman tables, smaller at no quality cost). WebP lossy
    ``quality`` 0..100, ``method=6``. AVIF (libavif with aom) ``quality`` 0..100 at
    ``speed=6`` (:data:`AVIF_SPEED`), 4:2:0, full range. The image is converted to RGB first.

    Args:
        image: a PIL image.
        codec: one of :data:`CLASSICAL_CODECS`.
        quality: the codec's quality setting, within :data:`QUALITY_RANGES`.

    Returns:
        ``(encoded file bytes, decoded RGB image)``.

    Raises:
        ValueError: unknown codec or quality out of range.

    Example:
        >>> from PIL import Image
        >>> data, out = encode_classical(Image.new("RGB", (32, 32), (200, 30, 30)), "webp", 75)
        >>> len(data) > 0, out.size, out.mode
        (True, (32, 32), 'RGB')
    """
    _check_codec(codec)
    lo, hi = QUALITY_RANGES[codec]
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not lo <= quality <= hi:
        raise ValueError(f"encode_classical: {codec} quality must be an integer in {lo}..{hi}, got {quality!r}")
    quality = int(quality)
    rgb = image.convert("RGB")
    buf = io.BytesIO()
    if codec == "jpeg":
        rgb.save(buf, format="JPEG", quality=quality, subsampling="4:2:0", optimize=True)
    elif codec == "webp":
        rgb.save(buf, format="WEBP", quality=quality, lossless=False, method=WEBP_METHOD)
    else:
        rgb.save(buf, format="AVIF", quality=quality, speed=AVIF_SPEED)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as decoded:
        out = decoded.convert("RGB")  # convert() loads the pixels before the file closes
    return data, out


def match_bpp(image: Image.Image, codec: str, target_bpp: float) -> tuple[int, bytes, Image.Image]:
    """The quality setting whose rate is closest to ``target_bpp``, by bisection.

    Bisection over the integer range of :data:`QUALITY_RANGES` for the smallest quality reaching
    the target, assuming the rate grows with quality (true for JPEG and WebP; AVIF's lowest
    settings wobble by a few percent). Every quality tried is remembered and the closest one
    found is returned, so a target outside the reachable range gives the nearest end. About
    ``log2(101) ~ 7`` encodes.

    Args:
        image: a PIL image.
        codec: one of :data:`CLASSICAL_CODECS`.
        target_bpp: the wanted rate in bits per pixel.

    Returns:
        ``(quality, encoded bytes, decoded RGB image)``.

    Raises:
        ValueError: unknown codec or a non-positive target.

    Example:
        >>> from PIL import Image
        >>> import numpy as np
        >>> img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
        >>> q, data, _ = match_bpp(img, "jpeg", 2.0)
        >>> abs(bpp(len(data), 64, 64) - 2.0) < 0.5
        True
    """
    _check_codec(codec)
    if not target_bpp > 0:
        raise ValueError(f"match_bpp: target_bpp must be > 0, got {target_bpp}")
    w, h = image.size
    tried: dict[int, tuple[bytes, Image.Image]] = {}

    def rate(q: int) -> float:
        if q not in tried:
            tried[q] = encode_classical(image, codec, q)
        return bpp(len(tried[q][0]), w, h)

    lo, hi = QUALITY_RANGES[codec]
    if rate(hi) > target_bpp and rate(lo) < target_bpp:
        # Invariant: rate(lo) < target <= rate(hi).
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if rate(mid) < target_bpp:
                lo = mid
            else:
                hi = mid
    best = min(tried, key=lambda q: (abs(bpp(len(tried[q][0]), w, h) - target_bpp), q))
    return best, *tried[best]


def _to_unit_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float64) / 255.0).permute(2, 0, 1)


def classical_rd_points(images: Sequence[Image.Image], codec: str, qualities: Sequence[int]) -> list[dict]:
    """Rate-distortion points of a classical codec over a set of images.

    Each value is the mean of the per-image values (bpp, PSNR and MS-SSIM averaged separately
    over the images at a fixed quality), the convention of CompressAI's plots and ``bench``
    results; it is not the PSNR of the pooled MSE.

    Args:
        images: PIL images (converted to RGB).
        codec: one of :data:`CLASSICAL_CODECS`.
        qualities: quality settings, one point each, in the given order.

    Returns:
        One dict per quality: ``{"quality", "bpp", "psnr", "ms_ssim"}``.

    Raises:
        ValueError: no images, unknown codec or quality out of range.

    Example:
        >>> from PIL import Image
        >>> import numpy as np
        >>> img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8))
        >>> pts = classical_rd_points([img], "jpeg", [10, 90])
        >>> [p["quality"] for p in pts], pts[0]["bpp"] < pts[1]["bpp"], pts[0]["psnr"] < pts[1]["psnr"]
        ([10, 90], True, True)
    """
    _check_codec(codec)
    if not images:
        raise ValueError("classical_rd_points: no images")
    refs = [im.convert("RGB") for im in images]
    ref_arrays = [np.asarray(im) for im in refs]
    ref_tensors = [_to_unit_tensor(im) for im in refs]
    points = []
    for q in qualities:
        rates, psnrs, ssims = [], [], []
        for im, ref_arr, ref_t in zip(refs, ref_arrays, ref_tensors):
            data, dec = encode_classical(im, codec, q)
            rates.append(bpp(len(data), *im.size))
            psnrs.append(psnr_rgb(np.asarray(dec), ref_arr))
            ssims.append(ms_ssim(_to_unit_tensor(dec), ref_t))
        points.append(
            {"quality": int(q), "bpp": float(np.mean(rates)), "psnr": float(np.mean(psnrs)), "ms_ssim": float(np.mean(ssims))}
        )
    return points
