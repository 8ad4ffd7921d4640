"""Tiled inference: exactness where the model can see enough context, no visible seams where it cannot."""

import numpy as np
import pytest
import torch
from torch import nn

from pixelmind.nn.tiling import (
    feather_profile,
    feather_weights,
    iter_tiled_bands,
    tile_starts,
    tiled_apply,
    tiled_apply_uint8,
)


def conv_net(dilations=(1, 1), scale=1, width=8, seed=0):
    """Zero-padded 3x3 convs (one per dilation) + a final 3x3 conv, PixelShuffle when scale > 1.

    Receptive-field radius in input pixels: sum(dilations) + 1.
    """
    torch.manual_seed(seed)
    layers, c = [], 3
    for d in dilations:
        layers += [nn.Conv2d(c, width, 3, padding=d, dilation=d), nn.ReLU()]
        c = width
    layers.append(nn.Conv2d(c, 3 * scale * scale, 3, padding=1))
    if scale > 1:
        layers.append(nn.PixelShuffle(scale))
    return nn.Sequential(*layers).eval()


def smooth_image(h, w, seed=0):
    """A photo-like image: smooth structure plus a little noise (a pure-noise image would hide seams)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([0.5 + 0.4 * torch.sin(6 * xx + 3 * yy), 0.5 + 0.3 * torch.cos(5 * yy), xx * yy])
    return (img + 0.05 * torch.rand(3, h, w, generator=g)).clamp(0, 1)


def untiled(fn, image):
    with torch.no_grad():
        return fn(image[None])[0]


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("size", [(40, 30), (48, 48), (20, 48)])
def test_image_within_one_tile_equals_untiled(scale, size):
    net, image = conv_net(scale=scale), smooth_image(*size)
    out = tiled_apply(net, image, scale=scale, tile=48, overlap=16)
    assert out.shape == (3, size[0] * scale, size[1] * scale)
    torch.testing.assert_close(out, untiled(net, image), atol=1e-4, rtol=0)


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("size", [(100, 150), (30, 130)])
def test_small_receptive_field_blends_exactly(scale, size):
    # Radius 3 (scale 1) or 2 (scale 2) input pixels <= overlap / 4: the ramp (the middle half of
    # each 16-px overlap) only mixes pixels that both tiles compute from full context, so the
    # blend is a convex combination of two correct values.
    net = conv_net(dilations=(1, 1) if scale == 1 else (1,), scale=scale)
    image = smooth_image(*size)  # the second: one row of tiles clipped to 30 px high
    out = tiled_apply(net, image, scale=scale, tile=48, overlap=16)
    assert out.shape == (3, size[0] * scale, size[1] * scale)
    torch.testing.assert_close(out, untiled(net, image), atol=1e-4, rtol=0)


def _seam_stats(out, ref, h, w, tile, overlap):
    """Mean |error| on the lines where tiles meet (centre of each overlap) and the largest error step."""
    err = (out - ref).abs().mean(0)
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    cols = [(a + tile + b) // 2 for a, b in zip(xs, xs[1:])]
    rows = [(a + tile + b) // 2 for a, b in zip(ys, ys[1:])]
    seam = torch.cat([err[:, cols].flatten(), err[rows, :].flatten()]).mean().item()
    d = out - ref
    # A visible seam is a jump in the error from one pixel to the next, averaged along the seam line.
    step = max(
        (d[:, :, 1:] - d[:, :, :-1]).abs().mean((0, 1)).max(), (d[:, 1:] - d[:, :-1]).abs().mean((0, 2)).max()
    )
    return seam, step.item(), err.max().item()


def test_large_receptive_field_has_no_visible_seams():
    # Dilations 1, 2, 4, 8: radius 16 px, receptive field 33 px > the 16-px overlap. Near its
    # borders a tile sees zero padding instead of the neighbouring pixels, so neither tile is
    # exact in the overlap and the blend cannot be either. Feathering hands over in the middle
    # of the overlap (as far from both tiles' borders as possible) and spreads the hand-over
    # over 8 px, so the error there is small and has no step that would show as a line.
    # Measured (tile 48, overlap 16): seam-line mean |err| 1.6e-3, largest step 3.5e-3 (0.9
    # uint8 level), max 5.8e-3; hard cuts (overlap 0): 1.1e-2, step 2.6e-2 (6.5 levels, visible);
    # overlap 32 (>= the receptive field): 9.4e-5, step 2.5e-4.
    # The error away from seams is no yardstick: more than a receptive-field radius from any
    # tile border it is exactly 0, and the image-wide mean (5.0e-4) is made of the same border
    # zones (seam / mean is 3.2 with feathering and 3.3 with hard cuts), so the step is used.
    net, image = conv_net(dilations=(1, 2, 4, 8), width=16), smooth_image(100, 150)
    ref = untiled(net, image)
    h, w = image.shape[1:]
    seam, step, worst = _seam_stats(tiled_apply(net, image, tile=48, overlap=16), ref, h, w, 48, 16)
    cut_seam, cut_step, _ = _seam_stats(tiled_apply(net, image, tile=48, overlap=0), ref, h, w, 48, 0)
    assert seam < 3e-3 and worst < 1.5e-2
    assert step < 1.5 / 255  # about one uint8 level at most: invisible after quantisation
    assert seam < cut_seam / 3 and step < cut_step / 3


def test_uint8_variant_matches_float_variant():
    net, image = conv_net(scale=2), smooth_image(70, 90)
    ref = (tiled_apply(net, image, scale=2, tile=32, overlap=8).clamp(0, 1) * 255).round().to(torch.uint8)
    out = tiled_apply_uint8(net, image, scale=2, tile=32, overlap=8)
    assert out.dtype == np.uint8 and out.shape == (140, 180, 3)
    np.testing.assert_array_equal(out, ref.permute(1, 2, 0).numpy())
    # A uint8 input is divided by 255 per tile.
    as_u8 = (image * 255).round().to(torch.uint8)
    expect = tiled_apply_uint8(net, as_u8.float() / 255, scale=2, tile=32, overlap=8)
    np.testing.assert_array_equal(tiled_apply_uint8(net, as_u8, scale=2, tile=32, overlap=8), expect)


def test_batch_size_does_not_change_the_result():
    net, image = conv_net(dilations=(1, 2, 4)), smooth_image(70, 100)
    outs = [tiled_apply(net, image, tile=32, overlap=8, batch=b) for b in (1, 3, 4, 100)]
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-6, rtol=0)


def test_overlap_zero_and_pointwise_model_are_exact():
    # Without overlap only the shifted last tile overlaps its neighbour (a hard cut mid-way);
    # a model without spatial context (1x1 conv) is exact under any tiling.
    torch.manual_seed(0)
    net = nn.Conv2d(3, 5, 1).eval()
    image = smooth_image(57, 83)
    for overlap in (0, 1, 7):
        out = tiled_apply(net, image, tile=16, overlap=overlap, batch=3)
        torch.testing.assert_close(out, untiled(net, image), atol=1e-5, rtol=0)


def test_bands_stream_before_all_tiles_are_done():
    calls = []
    image = torch.rand(1, 200, 40)
    bands = iter_tiled_bands(
        lambda x: x, image, tile=32, overlap=8, batch=2, progress=lambda d, t: calls.append((d, t))
    )
    rows, row = [], 0
    for top, band in bands:
        assert top == row and band.shape[0] == 1 and band.shape[2] == 40
        rows.append((top, band.shape[1], calls[-1][0]))
        row += band.shape[1]
    assert row == 200
    total = calls[-1][1]
    assert calls[-1] == (total, total) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert rows[0][2] < total  # the first band comes out after the first tile row, not at the end
    assert max(n for _, n, _ in rows) <= 32


def test_feather_weights_are_positive_and_complementary():
    wts = feather_weights(48, 40, top=16, left=16)
    assert wts.min() > 0 and wts[-1, -1] == 1 and wts[:, -1].min() > 0
    assert wts[0, 20] < 1e-3 and wts[47, 20] == 1  # ramp only on sides that overlap
    # Two neighbours sharing an overlap of 16 (even and odd widths): their weights sum to a constant.
    for ov in (16, 15, 1):
        rise, fall = feather_profile(40, before=ov, ramp=8)[:ov], feather_profile(40, after=ov, ramp=8)[-ov:]
        total = rise + fall
        torch.testing.assert_close(total, torch.full_like(total, float(total[0])))


def test_tile_starts_cover_the_image_without_padding():
    assert tile_starts(48, 48, 16) == [0]
    assert tile_starts(30, 48, 16) == [0]
    assert tile_starts(100, 48, 16) == [0, 32, 52]
    assert tile_starts(96, 48, 0) == [0, 48]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tile": 0, "overlap": 0}, "tile must be >= 1"),
        ({"tile": 16, "overlap": 16}, "overlap must be"),
        ({"tile": 16, "overlap": -1}, "overlap must be"),
        ({"scale": 0}, "scale must be"),
        ({"batch": 0}, "batch must be"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiled_apply(lambda x: x, torch.rand(3, 20, 20), **kwargs)


def test_bad_image_or_model_output_raises():
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        tiled_apply(lambda x: x, torch.rand(1, 3, 20, 20))
    with pytest.raises(ValueError, match="float or uint8"):
        tiled_apply(lambda x: x, torch.zeros(3, 20, 20, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"scale=2"):
        tiled_apply(lambda x: x, torch.rand(3, 20, 20), scale=2, tile=8, overlap=2)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_accumulates_on_the_model_device():
    net, image = conv_net(scale=2).cuda(), smooth_image(100, 150)
    out = tiled_apply(lambda x: net(x.cuda()), image, scale=2, tile=48, overlap=16)
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), untiled(net.cpu(), image), atol=1e-3, rtol=0)
    u8 = tiled_apply_uint8(lambda x: net.cuda()(x.cuda()), image, scale=2, tile=48, overlap=16)
    assert u8.shape == (200, 300, 3)
