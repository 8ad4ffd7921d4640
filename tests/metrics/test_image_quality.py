"""PSNR/SSIM: cross-checks with scikit-image, edge cases, and the published bicubic figures of Set5/Set14."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pixelmind.data.imresize import imresize
from pixelmind.metrics.image_quality import (
    PSNR_MAX,
    psnr,
    psnr_batch,
    rgb_to_y,
    ssim,
    ssim_batch,
    to_uint8_levels,
)

SUPERRES = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "superres"


pytestmark = pytest.mark.usefixtures("one_thread")


def _noisy_pair(shape, seed=0, sigma=12.0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape).astype(np.uint8)
    b = np.clip(a + rng.normal(0, sigma, shape), 0, 255).round().astype(np.uint8)
    return a, b


def test_psnr_matches_skimage():
    a, b = _noisy_pair((37, 41, 3))
    ref = peak_signal_noise_ratio(a, b, data_range=255)
    assert psnr(b, a) == pytest.approx(ref, abs=1e-10)
    assert psnr(torch.from_numpy(b).permute(2, 0, 1), torch.from_numpy(a).permute(2, 0, 1)) == pytest.approx(
        ref, abs=1e-10
    )
    ref_crop = peak_signal_noise_ratio(a[4:-4, 4:-4], b[4:-4, 4:-4], data_range=255)
    assert psnr(b, a, crop_border=4) == pytest.approx(ref_crop, abs=1e-10)


def test_ssim_matches_skimage():
    # skimage filters with reflect padding and then drops (win - 1) / 2 pixels per side of the map:
    # what remains is exactly the 'valid' map of ssim_index.m, so the two must agree.
    kw = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 255}
    a, b = _noisy_pair((40, 33, 3), seed=1, sigma=25)
    assert ssim(b, a) == pytest.approx(structural_similarity(a, b, channel_axis=2, **kw), abs=1e-10)
    g1, g2 = a[..., 0], b[..., 0]
    assert ssim(g2, g1) == pytest.approx(structural_similarity(g1, g2, **kw), abs=1e-10)


def test_rgb_to_y_matches_matlab_formula():
    rgb = np.random.default_rng(2).integers(0, 256, (5, 6, 3)).astype(np.float64)
    y = rgb_to_y(torch.from_numpy(rgb).permute(2, 0, 1))
    assert y.shape == (1, 5, 6) and y.dtype == torch.float64
    np.testing.assert_allclose(y[0].numpy(), rgb2ycbcr(rgb / 255)[..., 0], atol=1e-10)
    assert rgb_to_y(torch.zeros(3, 1, 1)).item() == 16.0
    assert rgb_to_y(torch.full((3, 1, 1), 255.0)).item() == pytest.approx(235.0)


def test_identical_images_and_rounding():
    a, _ = _noisy_pair((20, 20, 3))
    assert psnr(a, a) == PSNR_MAX and ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    # Floats are rounded to 8-bit levels first: a sub-level offset does not count.
    assert psnr(a.astype(np.float64) + 0.3, a) == PSNR_MAX
    assert psnr(np.full((4, 4), 300.0), np.full((4, 4), 255.0)) == PSNR_MAX  # clipped like a PNG


def test_crop_border_ignores_the_border():
    a, _ = _noisy_pair((24, 24))
    b = a.copy()
    b[:2] = 255 - b[:2]
    assert psnr(b, a) < 30 and psnr(b, a, crop_border=2) == PSNR_MAX
    assert ssim(b, a, crop_border=2) == pytest.approx(1.0)


def test_unit_range_floats_are_refused():
    x = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match="to_uint8_levels"):
        psnr(x, x)
    assert psnr(to_uint8_levels(x), to_uint8_levels(x)) == PSNR_MAX
    assert to_uint8_levels(np.array([0.5, 1.2])).tolist() == [128.0, 255.0]


def test_batch_matches_single():
    a, b = _noisy_pair((3, 3, 30, 28), seed=3)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    p, s = psnr_batch(ta, tb, 2, True), ssim_batch(ta, tb, 2, True)
    assert p.shape == s.shape == (3,)
    for i in range(3):
        assert p[i].item() == pytest.approx(psnr(ta[i], tb[i], 2, True))
        assert s[i].item() == pytest.approx(ssim(ta[i], tb[i], 2, True))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: psnr(torch.zeros(3, 8, 8), torch.zeros(3, 8, 9)), "same shape"),
        (lambda: psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)), "psnr_batch"),
        (lambda: psnr(np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8, 3))), "H x W x C"),
        (lambda: psnr(np.zeros((8, 8)), np.zeros((8, 8)), crop_border=4), "crop_border=4 leaves 0x0"),
        (lambda: ssim(np.zeros((12, 12)), np.zeros((12, 12)), crop_border=1), "at least 11"),
        (
            lambda: psnr(np.zeros((8, 8, 2)), np.zeros((8, 8, 2)), y_channel=True),
            "1 \\(grey\\) or 3 \\(RGB\\)",
        ),
        (lambda: psnr([[0]], [[0]]), "numpy array"),
        (lambda: psnr_batch(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)), r"\[B, C, H, W\]"),
        (lambda: psnr(np.zeros((8, 8)), np.zeros((8, 8)), crop_border=-1), ">= 0"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# Published bicubic baselines (Y channel, `scale` pixels of border cropped), mean over the images.
MATLAB_ROW = {
    ("Set5", 2): (33.66, 0.9299),
    ("Set14", 2): (30.24, 0.8688),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 4): (26.00, 0.7027),
}
PIL_ROW = {("Set5", 2): 33.64, ("Set14", 2): 30.31, ("Set5", 4): 28.42, ("Set14", 4): 26.08}


def _load(path: Path) -> Image.Image:
    im = Image.open(path)
    return im if im.mode == "L" else im.convert("RGB")


def _tensor(im: Image.Image) -> torch.Tensor:
    a = torch.from_numpy(np.array(im))
    return a[None] if a.dim() == 2 else a.permute(2, 0, 1)


def _pairs(set_name: str, scale: int) -> list[tuple[Image.Image, Image.Image]]:
    folder = SUPERRES / set_name / f"x{scale}"
    if not folder.is_dir():
        pytest.skip(
            f"shared SR data not found at {folder} (a developer machine has it at ../shared/datasets)"
        )
    return [
        (_load(hr), _load(hr.with_name(hr.name.replace("_HR", "_LR"))))
        for hr in sorted(folder.glob("*_HR.png"))
    ]


@pytest.mark.parametrize("set_name, scale", list(MATLAB_ROW))
def test_published_matlab_bicubic_row(set_name, scale):
    # MATLAB evaluation scripts measure a grey image (Set14 has one) on its own values, not via
    # RGB -> Y: so it is loaded as one channel here. Measured: 33.640/0.9292, 30.220/0.8683,
    # 28.418/0.8101, 25.993/0.7023 (the papers made LR from Y in floats, not from these PNGs).
    values = []
    for hr, lr in _pairs(set_name, scale):
        up, target = imresize(_tensor(lr), scale), _tensor(hr)
        values.append((psnr(up, target, scale, y_channel=True), ssim(up, target, scale, y_channel=True)))
    p, s = np.mean(values, axis=0)
    want_p, want_s = MATLAB_ROW[set_name, scale]
    assert abs(p - want_p) <= 0.05, f"PSNR {p:.4f} vs published {want_p}"
    assert abs(s - want_s) <= 0.002, f"SSIM {s:.4f} vs published {want_s}"


@pytest.mark.parametrize("set_name, scale", list(PIL_ROW))
def test_published_pil_bicubic_row(set_name, scale):
    # This row was measured with every image converted to RGB (the grey one included) and the
    # 8-bit Y of each: measured 33.639, 30.312, 28.418, 26.084.
    values = []
    for hr, lr in _pairs(set_name, scale):
        hr, lr = hr.convert("RGB"), lr.convert("RGB")
        up = lr.resize(hr.size, Image.BICUBIC)
        values.append(psnr(np.asarray(up), np.asarray(hr), scale, y_channel=True))
    assert abs(np.mean(values) - PIL_ROW[set_name, scale]) <= 0.01, f"PSNR {np.mean(values):.4f}"
