"""Tiled inference for image-to-image models, blended with feathered weights in bounded memory.

A model that maps ``[B, C, h, w]`` to ``[B, C_out, h*s, w*s]`` (super-resolution at an integer
scale ``s``, denoising at ``s = 1``, segmentation logits) is run on overlapping tiles; the tile
outputs are averaged with weights that ramp down towards the sides a tile shares with its
neighbours, so tile borders (where zero padding makes the model wrong) do not show as seams.

Tiles are taken in raster order and finished rows of output are handed out as soon as no later
tile can touch them, so only a band of about ``2 * tile * s`` rows of float accumulators is
alive at once: a 6000x4000 image at x2 needs the uint8 result (288 MB) plus that band, not
the 1.15 GB float32 result and a weight map of the same size.

Example:
    >>> import torch
    >>> up = torch.nn.Upsample(scale_factor=2)
    >>> image = torch.rand(3, 100, 70)
    >>> out = tiled_apply(up, image, scale=2, tile=48, overlap=16)
    >>> out.shape, bool(torch.allclose(out, up(image[None])[0], atol=1e-6))
    (torch.Size([3, 200, 140]), True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

Fn = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]

# The weight far inside a neighbour's half of an overlap: positive so that the weight sum can
# never be 0, small so that a tile's wrong border pixels barely leak into the blend.
FLOOR = 1e-4


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``size`` pixels, the last one shifted back to end at the border.

    Args:
        size: Length of the image side.
        tile: Tile length (clipped to ``size``).
        overlap: Pixels shared by neighbouring tiles, ``0 <= overlap < tile``.

    Returns:
        Strictly increasing offsets; every tile has length ``min(tile, size)``.

    Example:
        >>> tile_starts(100, 48, 16)
        [0, 32, 52]
    """
    if size <= tile:
        return [0]
    starts = [0]
    while starts[-1] + tile < size:
        starts.append(min(starts[-1] + tile - overlap, size - tile))
    return starts


def _rise(n: int, ramp: int, floor: float) -> torch.Tensor:
    """Weights rising from ``floor`` to 1 over an overlap of ``n`` pixels, the ramp centred in it."""
    ramp = min(ramp, n)
    # Equal margins on both sides make the mirrored profile of the neighbour exactly
    # complementary (the raised cosine satisfies r(j) + r(ramp - 1 - j) = 1).
    ramp += (n - ramp) % 2
    margin = (n - ramp) // 2
    j = torch.arange(ramp, dtype=torch.float64) + 0.5
    cosine = 0.5 - 0.5 * torch.cos(math.pi * j / ramp)
    prof = torch.cat([cosine.new_zeros(margin), cosine, cosine.new_ones(margin)])
    return (floor + (1 - floor) * prof).float()


def feather_profile(
    n: int, before: int = 0, after: int = 0, *, ramp: int | None = None, floor: float = FLOOR
) -> torch.Tensor:
    """1-D blending weights of a tile of length ``n`` that overlaps its neighbours by ``before``/``after`` pixels.

    The weight is 1 except over an overlap, where a raised-cosine ramp centred in the overlap
    goes from 1 down to ``floor`` towards the tile's edge. A side with no overlap (an image
    border) keeps weight 1.

    Args:
        n: Tile length.
        before: Pixels shared with the previous tile (0 at the image border).
        after: Pixels shared with the next tile (0 at the image border).
        ramp: Width of the transition, centred in each overlap; the pixels of the overlap
            between the ramp and the tile's edge get ``floor``. None: half of each overlap.
        floor: Smallest weight, > 0.

    Returns:
        Float32 tensor ``[n]`` with values in ``[floor, 1]``.

    Example:
        >>> [round(v, 2) for v in feather_profile(8, before=4, ramp=2).tolist()]
        [0.0, 0.15, 0.85, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    prof = torch.ones(n)
    if before:
        prof[:before] *= _rise(before, before // 2 if ramp is None else ramp, floor)
    if after:
        # Multiplying handles a tile whose two overlaps meet (the shifted last tile's neighbour).
        prof[n - after :] *= _rise(after, after // 2 if ramp is None else ramp, floor).flip(0)
    return prof


def feather_weights(
    h: int,
    w: int,
    top: int = 0,
    bottom: int = 0,
    left: int = 0,
    right: int = 0,
    *,
    ramp: int | None = None,
    floor: float = FLOOR,
) -> torch.Tensor:
    """2-D blending weights of an ``h x w`` tile: the outer product of its row and column profiles.

    Args:
        h: Tile height.
        w: Tile width.
        top: Rows shared with the tile above (0 at the image border); likewise ``bottom``.
        bottom: Rows shared with the tile below.
        left: Columns shared with the tile to the left; likewise ``right``.
        right: Columns shared with the tile to the right.
        ramp: Width of each transition, centred in its overlap; None: half the overlap.
        floor: Smallest weight (> 0) before the product.

    Returns:
        Float32 tensor ``[h, w]``, 1 in the interior and along image borders, > 0 everywhere.

    Example:
        >>> wts = feather_weights(48, 48, right=16)
        >>> float(wts[:, :32].min()), float(wts[:, -1].max()) < 1e-3
        (1.0, True)
    """
    return feather_profile(h, top, bottom, ramp=ramp, floor=floor)[:, None] * feather_profile(
        w, left, right, ramp=ramp, floor=floor
    )


def _check_args(image: torch.Tensor, scale: int, tile: int, overlap: int, batch: int) -> None:
    if image.ndim != 3:
        raise ValueError(f"image must be a [C, H, W] tensor, got shape {tuple(image.shape)}")
    if not (image.is_floating_point() or image.dtype == torch.uint8):
        raise ValueError(f"image must be a float or uint8 tensor, got {image.dtype}")
    if min(image.shape) < 1:
        raise ValueError(f"image must not be empty, got shape {tuple(image.shape)}")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be >= 0 and < tile ({tile}), got {overlap}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")


def _profiles(
    size: int, tile: int, overlap: int, scale: int
) -> tuple[list[int], list[torch.Tensor], torch.Tensor]:
    """Tile starts, each tile's weight profile and the summed profile along one image axis (output pixels)."""
    starts = tile_starts(size, tile, overlap)
    n = min(tile, size)
    profs = []
    for k, s in enumerate(starts):
        before = starts[k - 1] + n - s if k else 0
        after = s + n - starts[k + 1] if k + 1 < len(starts) else 0
        # The same ramp width at every seam, including the wider overlap of the shifted last tile.
        profs.append(feather_profile(n * scale, before * scale, after * scale, ramp=overlap // 2 * scale))
    total = torch.zeros(size * scale)
    for s, p in zip(starts, profs):
        total[s * scale : (s + n) * scale] += p
    return starts, profs, total


def iter_tiled_bands(
    fn: Fn,
    image: torch.Tensor,
    scale: int = 1,
    tile: int = 256,
    overlap: int = 32,
    batch: int = 4,
    progress: Progress | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Run ``fn`` on overlapping tiles of ``image`` and yield finished, blended bands of output rows.

    The core of :func:`tiled_apply` and :func:`tiled_apply_uint8`. Tiles of
    ``min(tile, H) x min(tile, W)`` pixels start every ``tile - overlap`` pixels, the last one
    in each direction shifted back to end at the border (never padded), and go through ``fn``
    in raster order, ``batch`` at a time. Each batch runs under ``torch.inference_mode``.

    Args:
        fn: The model call, ``[B, C, h, w]`` float -> ``[B, C_out, h*scale, w*scale]``; it moves
            the tiles to its device itself. Accumulation happens on the device of its output.
        image: ``[C, H, W]`` float tensor (values in [0, 1] for images), or uint8 (divided by
            255 per tile, which keeps a large input at a quarter of the memory).
        scale: Integer output/input size ratio.
        tile: Tile side in input pixels.
        overlap: Input pixels shared by neighbouring tiles; the blend ramp is half as wide,
            centred, so a model whose receptive field is under ``overlap / 2`` blends exactly.
        batch: Tiles per ``fn`` call.
        progress: Called as ``progress(tiles_done, tiles_total)`` after each batch.

    Yields:
        ``(row, band)``: ``band`` is ``[C_out, n, W*scale]``, float32 (float64 for a float64
        ``fn``), output rows ``row .. row + n``; bands come top to bottom, each row once, and
        belong to the caller (a new tensor each time).

    Raises:
        ValueError: On bad arguments, or if ``fn`` returns the wrong shape.

    Example:
        >>> import torch
        >>> bands = iter_tiled_bands(lambda x: x, torch.rand(1, 60, 20), tile=16, overlap=4, batch=2)
        >>> [(row, band.shape[1]) for row, band in bands]  # tile rows start at 0, 12, 24, 36, 44
        [(0, 12), (12, 12), (24, 12), (36, 8), (44, 16)]
    """
    _check_args(image, scale, tile, overlap, batch)
    _, h, w = image.shape
    th, tw = min(tile, h), min(tile, w)
    ys, row_w, row_sum = _profiles(h, tile, overlap, scale)
    xs, col_w, col_sum = _profiles(w, tile, overlap, scale)
    tiles = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    expect = (th * scale, tw * scale)
    # The accumulator spans at most the rows from the first to the last tile row of one batch:
    # everything above a batch's first tile row has been handed out before the batch starts.
    firsts = range(0, len(tiles), batch)
    span = max(ys[tiles[min(b + batch, len(tiles)) - 1][0]] - ys[tiles[b][0]] for b in firsts) + th
    acc: torch.Tensor | None = None  # rows [0, used) hold output rows [top, top + used)
    top = used = 0
    for b0 in firsts:
        chunk = tiles[b0 : b0 + batch]
        with torch.inference_mode():
            x = torch.stack([image[:, ys[i] : ys[i] + th, xs[j] : xs[j] + tw] for i, j in chunk])
            if x.dtype == torch.uint8:
                x = x.float().div_(255)
            out = fn(x)
            if out.ndim != 4 or out.shape[0] != len(chunk) or tuple(out.shape[2:]) != expect:
                raise ValueError(
                    f"fn must map [B, C, {th}, {tw}] to [B, C_out, {expect[0]}, {expect[1]}] (scale={scale}), "
                    f"got {tuple(out.shape)} for B={len(chunk)}"
                )
            if acc is None:
                # Allocated once: re-allocating per tile row costs page faults on every row.
                dev, dtype = out.device, torch.promote_types(out.dtype, torch.float32)
                acc = torch.zeros(out.shape[1], span * scale, w * scale, dtype=dtype, device=dev)
                row_w, col_w = [p.to(dev) for p in row_w], [p.to(dev) for p in col_w]
                row_sum, col_sum = row_sum.to(dev), col_sum.to(dev)
            used = max(used, (ys[chunk[-1][0]] + th) * scale - top)
            for k, (i, j) in enumerate(chunk):
                y0, x0 = ys[i] * scale - top, xs[j] * scale
                weight = row_w[i][:, None] * col_w[j][None, :]
                acc[:, y0 : y0 + expect[0], x0 : x0 + expect[1]].addcmul_(out[k], weight)
            # Raster order: no later tile reaches above the next tile's first row.
            done = ys[tiles[b0 + batch][0]] * scale if b0 + batch < len(tiles) else h * scale
            band = None
            if done > top:
                n = done - top
                # Weights are separable, so their sum over all tiles is the outer product of the
                # per-axis sums: no weight-map accumulator is needed.
                band = (acc[:, :n] / col_sum).div_(row_sum[top:done, None])
                acc[:, : used - n] = acc[:, n:used].clone()  # the rows still open move to the top
                acc[:, used - n : used].zero_()
                used -= n
        if progress is not None:
            progress(b0 + len(chunk), len(tiles))
        if band is not None:
            yield top, band
            top = done


def tiled_apply(
    fn: Fn,
    image: torch.Tensor,
    scale: int = 1,
    tile: int = 256,
    overlap: int = 32,
    batch: int = 4,
    out_dtype: torch.dtype = torch.float32,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Tiled, feather-blended ``fn(image)`` as one tensor: for small images, tests and logits.

    Arguments as in :func:`iter_tiled_bands`. An image no larger than one tile gives exactly
    ``fn(image[None])[0]``.

    Returns:
        ``[C_out, H*scale, W*scale]`` tensor of ``out_dtype`` on the device of ``fn``'s output.

    Example:
        >>> import torch
        >>> net = torch.nn.Conv2d(3, 5, 3, padding=1)
        >>> tiled_apply(net, torch.rand(3, 40, 90), tile=32, overlap=8).shape
        torch.Size([5, 40, 90])
    """
    out = None
    for row, band in iter_tiled_bands(fn, image, scale, tile, overlap, batch, progress):
        if out is None:
            size = (band.shape[0], image.shape[1] * scale, image.shape[2] * scale)
            out = torch.empty(size, dtype=out_dtype, device=band.device)
        out[:, row : row + band.shape[1]] = band
    assert out is not None  # there is always at least one tile
    return out


def tiled_apply_uint8(
    fn: Fn,
    image: torch.Tensor,
    scale: int = 1,
    tile: int = 256,
    overlap: int = 32,
    batch: int = 4,
    progress: Progress | None = None,
) -> np.ndarray:
    """Tiled, feather-blended ``fn(image)`` written band by band into a uint8 ``H x W x C`` array.

    Peak memory is the input, the uint8 result and one band of float accumulators, so large
    photos can be upscaled on a small machine. Values are ``round(clamp(x, 0, 1) * 255)``.
    Arguments as in :func:`iter_tiled_bands`.

    Returns:
        ``np.uint8`` array ``[H*scale, W*scale, C_out]``.

    Example:
        >>> import torch
        >>> tiled_apply_uint8(lambda x: x, torch.full((3, 20, 30), 0.5), tile=16, overlap=4)[0, 0]
        array([128, 128, 128], dtype=uint8)
    """
    out = None
    for row, band in iter_tiled_bands(fn, image, scale, tile, overlap, batch, progress):
        if out is None:
            out = np.empty((image.shape[1] * scale, image.shape[2] * scale, band.shape[0]), dtype=np.uint8)
        with (
            torch.inference_mode()
        ):  # in place: the band is ours, and a float copy is a band's worth of memory
            u8 = band.clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(1, 2, 0).cpu()
        out[row : row + band.shape[1]] = u8.numpy()
    assert out is not None  # there is always at least one tile
    return out
