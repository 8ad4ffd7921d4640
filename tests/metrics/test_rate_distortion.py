"""Rate-distortion toolkit: BD metrics (identities and an independent numerical check), classical codecs, MS-SSIM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.data import astronaut

from pixelmind.metrics.bd_rate import bd_psnr, bd_rate
from pixelmind.metrics.rate_distortion import (
    CLASSICAL_CODECS,
    bpp,
    classical_rd_points,
    encode_classical,
    match_bpp,
    ms_ssim,
    ms_ssim_loss,
    ms_ssim_scales,
    psnr_rgb,
)
from pixelmind.viz.plots import plot_rate_distortion

pytestmark = pytest.mark.usefixtures("one_thread")

METHODS = ("cubic", "pchip")

# A concave, unevenly spaced curve (rates in bpp) and a test curve that crosses it.
RATE_A = [0.12, 0.21, 0.45, 0.80, 1.55]
PSNR_A = [26.1, 28.0, 30.9, 33.2, 36.4]
RATE_B = [0.10, 0.19, 0.36, 0.71, 1.20, 2.1]
PSNR_B = [25.8, 28.3, 30.7, 33.6, 35.5, 38.0]


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(astronaut()).resize((128, 128), Image.Resampling.LANCZOS)


# --- Bjøntegaard deltas --------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_bd_of_a_curve_against_itself_is_zero(method):
    assert abs(bd_rate(RATE_A, PSNR_A, RATE_A, PSNR_A, method=method)) < 1e-9
    assert abs(bd_psnr(RATE_A, PSNR_A, RATE_A, PSNR_A, method=method)) < 1e-9


@pytest.mark.parametrize("method", METHODS)
def test_same_quality_at_80_percent_of_the_rate_is_minus_20_percent(method):
    # Shuffled order: the functions must not rely on the points being sorted.
    order = [3, 0, 4, 1, 2]
    rates = [0.8 * RATE_A[i] for i in order]
    psnrs = [PSNR_A[i] for i in order]
    assert bd_rate(RATE_A, PSNR_A, rates, psnrs, method=method) == pytest.approx(-20.0, abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_swapping_anchor_and_test_inverts_the_rate_ratio(method):
    x = bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B, method=method) / 100
    y = bd_rate(RATE_B, PSNR_B, RATE_A, PSNR_A, method=method) / 100
    assert abs(x) > 1e-3  # a non-trivial pair
    assert y == pytest.approx(1 / (1 + x) - 1, abs=1e-12)
    assert bd_psnr(RATE_B, PSNR_B, RATE_A, PSNR_A, method=method) == pytest.approx(
        -bd_psnr(RATE_A, PSNR_A, RATE_B, PSNR_B, method=method), abs=1e-12
    )


@pytest.mark.parametrize("method", METHODS)
def test_bd_psnr_of_a_shifted_curve(method):
    shifted = [p + 0.5 for p in PSNR_A]
    assert bd_psnr(RATE_A, PSNR_A, RATE_A, shifted, method=method) == pytest.approx(0.5, abs=1e-9)
    # Higher quality at the same rate also means fewer bits at the same quality.
    assert bd_rate(RATE_A, PSNR_A, RATE_A, shifted, method=method) < 0


@pytest.mark.parametrize("method", METHODS)
def test_invalid_curves_raise(method):
    low = ([0.1, 0.2, 0.4, 0.8], [20.0, 22.0, 24.0, 26.0])
    high = ([0.1, 0.2, 0.4, 0.8], [30.0, 32.0, 34.0, 36.0])
    with pytest.raises(ValueError, match="PSNR ranges do not overlap"):
        bd_rate(*low, *high, method=method)
    with pytest.raises(ValueError, match="rate ranges do not overlap"):
        bd_psnr([0.1, 0.2, 0.3, 0.4], [30, 31, 32, 33], [1, 2, 3, 4], [30, 31, 32, 33], method=method)
    few = 3 if method == "cubic" else 1
    with pytest.raises(ValueError, match="at least"):
        bd_rate(RATE_A[:few], PSNR_A[:few], RATE_A, PSNR_A, method=method)
    with pytest.raises(ValueError, match="positive"):
        bd_rate([0.0, 0.2, 0.4, 0.8], PSNR_A[:4], RATE_A, PSNR_A, method=method)


def test_unknown_method_and_pchip_minimum():
    with pytest.raises(ValueError, match="cubic"):
        bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B, method="akima")
    # Two points are enough for pchip (a straight line in log-rate).
    assert bd_rate([1, 4], [30, 36], [0.5, 2], [30, 36]) == pytest.approx(-50.0, abs=1e-9)


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Butland slopes of the shape-preserving cubic Hermite interpolant, written from the paper."""
    h, m = np.diff(x), np.diff(y) / np.diff(x)
    if len(x) == 2:
        return np.array([m[0], m[0]])
    d = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if m[k - 1] * m[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / m[k - 1] + w2 / m[k])
    for end, (h0, h1, m0, m1) in ((0, (h[0], h[1], m[0], m[1])), (-1, (h[-1], h[-2], m[-1], m[-2]))):
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(e) != np.sign(m0):
            e = 0.0
        elif np.sign(m0) != np.sign(m1) and abs(e) > abs(3 * m0):
            e = 3 * m0
        d[end] = e
    return d


def _hermite(x: np.ndarray, y: np.ndarray, t: np.ndarray) -> np.ndarray:
    order = np.argsort(x)
    x, y = x[order], y[order]
    d = _pchip_slopes(x, y)
    k = np.clip(np.searchsorted(x, t) - 1, 0, len(x) - 2)
    h = x[k + 1] - x[k]
    s = (t - x[k]) / h
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    return h00 * y[k] + h10 * h * d[k] + h01 * y[k + 1] + h11 * h * d[k + 1]


def _dense_mean_gap(xa, ya, xb, yb, n=200_001):
    lo, hi = max(xa.min(), xb.min()), min(xa.max(), xb.max())
    t = np.linspace(lo, hi, n)
    gap = _hermite(xb, yb, t) - _hermite(xa, ya, t)
    return float(np.sum((gap[1:] + gap[:-1]) * np.diff(t)) / 2 / (hi - lo))  # trapezoid rule


def test_pchip_matches_an_independent_dense_integration():
    ra, pa, rb, pb = (np.asarray(v, dtype=np.float64) for v in (RATE_A, PSNR_A, RATE_B, PSNR_B))
    expected_rate = (10 ** _dense_mean_gap(pa, np.log10(ra), pb, np.log10(rb)) - 1) * 100
    expected_psnr = _dense_mean_gap(np.log10(ra), pa, np.log10(rb), pb)
    assert bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B) == pytest.approx(expected_rate, abs=1e-6)
    assert bd_psnr(RATE_A, PSNR_A, RATE_B, PSNR_B) == pytest.approx(expected_psnr, abs=1e-7)
    # The two methods differ on this pair, so the check can tell them apart.
    assert abs(bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B, method="cubic") - expected_rate) > 1e-3


def test_cubic_matches_a_dense_integration_of_the_fitted_polynomial():
    ra, pa, rb, pb = (np.asarray(v, dtype=np.float64) for v in (RATE_A, PSNR_A, RATE_B, PSNR_B))
    fa = np.polynomial.Polynomial.fit(pa, np.log10(ra), 3)
    fb = np.polynomial.Polynomial.fit(pb, np.log10(rb), 3)
    t = np.linspace(max(pa.min(), pb.min()), min(pa.max(), pb.max()), 100_001)
    gap = fb(t) - fa(t)
    mean_gap = np.sum((gap[1:] + gap[:-1]) * np.diff(t)) / 2 / (t[-1] - t[0])
    assert bd_rate(RATE_A, PSNR_A, RATE_B, PSNR_B, method="cubic") == pytest.approx((10**mean_gap - 1) * 100, abs=1e-6)


# --- rate and quality ----------------------------------------------------------------------------


def test_bpp_and_psnr_rgb():
    assert bpp(2048, 128, 128) == 1.0
    with pytest.raises(ValueError):
        bpp(10, 0, 5)
    a = np.asarray(astronaut()[:32, :32])
    assert psnr_rgb(a, a) == 100.0
    b = a.copy()
    b[0, 0, 0] ^= 16
    assert psnr_rgb(a, b) == pytest.approx(10 * np.log10(255**2 / (16**2 / a.size)))
    with pytest.raises(ValueError, match="uint8"):
        psnr_rgb(a.astype(np.float32), a)


@pytest.mark.parametrize("size", [200, 40, 16])
def test_ms_ssim_identical_and_noisy(size):
    x = torch.from_numpy(np.asarray(Image.fromarray(astronaut()).resize((size, size)), dtype=np.float32) / 255)
    x = x.permute(2, 0, 1)
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    value = ms_ssim(x, noisy)
    assert 0 < value < 1
    # A batch gives the mean of its images.
    batch = ms_ssim(torch.stack([x, x]), torch.stack([x, noisy]))
    assert batch == pytest.approx((1 + value) / 2, abs=1e-6)  # float32


def test_ms_ssim_scale_choice_and_tiny_images():
    assert [ms_ssim_scales(s, s) for s in (200, 176, 175, 99, 98, 44, 40, 32, 31, 8)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    g = torch.Generator().manual_seed(1)
    for h, w in ((8, 8), (9, 30), (31, 10), (43, 43), (98, 120)):  # never raises from 8 px up
        x = torch.rand(3, h, w, generator=g)
        assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-12)
        assert ms_ssim(x, x.flip(-1)) < 1
    with pytest.raises(ValueError, match="8x8"):
        ms_ssim(torch.rand(3, 7, 20), torch.rand(3, 7, 20))
    with pytest.raises(ValueError, match="0..255"):
        ms_ssim(torch.full((3, 16, 16), 200.0), torch.full((3, 16, 16), 200.0))


def test_ms_ssim_loss_is_differentiable_and_matches_the_metric():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 64, 48, generator=g)
    x_hat = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1).requires_grad_()
    loss = ms_ssim_loss(x_hat, x)
    loss.backward()
    assert loss.dim() == 0 and x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert loss.item() == pytest.approx(1 - ms_ssim(x_hat.detach(), x), abs=1e-6)
    assert ms_ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-7)


# --- classical codecs ----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CLASSICAL_CODECS)
def test_encode_classical_round_trip(photo, codec):
    ref = np.asarray(photo)
    psnrs = []
    for q in (10, 50, 90):
        data, decoded = encode_classical(photo, codec, q)
        assert isinstance(data, bytes) and len(data) > 0
        assert decoded.size == photo.size and decoded.mode == "RGB"
        psnrs.append(psnr_rgb(np.asarray(decoded), ref))
    assert psnrs[0] < psnrs[1] < psnrs[2]
    assert 18 < psnrs[0] and psnrs[2] < 45


def test_encode_classical_rejects_bad_arguments(photo):
    with pytest.raises(ValueError, match="jpeg, webp, avif"):
        encode_classical(photo, "png", 50)
    with pytest.raises(ValueError, match="1..95"):
        encode_classical(photo, "jpeg", 100)


@pytest.mark.parametrize("codec", CLASSICAL_CODECS)
def test_match_bpp_lands_near_a_reachable_target(photo, codec):
    target = 1.0  # every codec spans ~0.35 to >= 5 bpp on this 128 px photo
    q, data, decoded = match_bpp(photo, codec, target)
    assert abs(bpp(len(data), 128, 128) - target) / target < 0.15
    assert encode_classical(photo, codec, q)[0] == data  # deterministic and consistent
    assert decoded.size == photo.size


def test_classical_rd_points_average_per_image_values(photo):
    crop = photo.crop((32, 16, 96, 80))  # a second, smaller image: 64 x 64
    both = classical_rd_points([photo, crop], "jpeg", [20, 80])
    single = [classical_rd_points([im], "jpeg", [20, 80]) for im in (photo, crop)]
    assert [p["quality"] for p in both] == [20, 80]
    for i, point in enumerate(both):
        for key in ("bpp", "psnr", "ms_ssim"):
            assert point[key] == pytest.approx((single[0][i][key] + single[1][i][key]) / 2)
    assert both[0]["bpp"] < both[1]["bpp"] and both[0]["psnr"] < both[1]["psnr"]
    assert both[0]["ms_ssim"] < both[1]["ms_ssim"] < 1


def test_plot_rate_distortion(tmp_path):
    curves = {"jpeg": [(1.2, 30.0), (0.4, 25.0), (2.5, 34.0)], "model": [(0.3, 27.0), (1.0, 32.0)]}
    path = plot_rate_distortion(curves, tmp_path / "sub" / "rd.png", title="Kodak")
    assert path.exists() and path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
