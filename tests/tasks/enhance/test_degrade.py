"""The on-the-fly degradations: shapes, statistics, determinism and kernels."""

from __future__ import annotations

import pytest
import torch

from pixelmind.data.imresize import imresize
from pixelmind.tasks.enhance.degrade import (
    Degradation,
    apply_kernel,
    gaussian_kernel,
    jpeg_compress,
    motion_kernel,
)


def _image(c=3, h=48, w=40, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # smooth content plus texture, like a photo
    base = torch.rand(c, h // 8, w // 8, generator=g)
    return (torch.nn.functional.interpolate(base[None], size=(h, w), mode="bilinear")[0] * 0.8 + 0.1).clamp(0, 1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_is_matlab_bicubic_rounded_to_8_bit(scale):
    hr = _image(h=48, w=36)
    lr = Degradation("sr", scale=scale)(hr)
    assert lr.shape == (3, 48 // scale, 36 // scale)
    expected = imresize((hr * 255).round().to(torch.uint8), scale=1 / scale).float() / 255  # MATLAB on uint8
    assert torch.equal(lr, expected)
    assert (lr - imresize(hr, scale=1 / scale)).abs().max() <= 2 / 255  # the float resize, up to three roundings
    assert torch.equal((lr * 255).round(), lr * 255)  # 8-bit levels


def test_denoise_adds_noise_of_the_given_sigma_and_is_seeded():
    clean = torch.full((3, 128, 128), 0.5)
    d = Degradation("denoise", noise_sigma=25)
    a = d(clean, torch.Generator().manual_seed(3))
    b = d(clean, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert abs((a - clean).std().item() * 255 - 25) < 0.5
    assert abs((a - clean).mean().item() * 255) < 0.5


def test_blind_denoise_draws_sigma_in_the_range():
    clean = torch.full((1, 64, 64), 0.5)
    d = Degradation("denoise", noise_sigma=(5.0, 15.0))
    sigmas = [(d(clean, torch.Generator().manual_seed(s)) - clean).std().item() * 255 for s in range(20)]
    assert 4.0 < min(sigmas) and max(sigmas) < 16.0
    assert max(sigmas) - min(sigmas) > 3  # really drawn, not fixed


def test_jpeg_matches_pillow_and_lower_quality_is_worse():
    clean = _image(h=64, w=64)
    low, high = jpeg_compress(clean, 10), jpeg_compress(clean, 90)
    assert low.shape == clean.shape
    assert (low - clean).abs().mean() > (high - clean).abs().mean() > 0
    assert torch.equal(Degradation("jpeg", jpeg_quality=10)(clean), low)
    grey = jpeg_compress(clean[:1], 30)
    assert grey.shape == (1, 64, 64)


@pytest.mark.parametrize("kernel", [gaussian_kernel(2.0), motion_kernel(11, 30.0), motion_kernel(5, 90.0)])
def test_blur_kernels_sum_to_one_and_keep_flat_images(kernel):
    assert kernel.shape == (21, 21)
    assert abs(kernel.sum().item() - 1) < 1e-5 and kernel.min() >= 0
    flat = torch.full((3, 30, 30), 0.3)
    assert torch.allclose(apply_kernel(flat, kernel), flat, atol=1e-6)


def test_motion_kernel_is_a_line_of_the_given_length():
    k = motion_kernel(11, 0.0)  # horizontal: all weight in the middle row(s), spread over ~11 columns
    rows = k.sum(1)
    assert rows.max() > 0.95
    cols = (k.sum(0) > 1e-3).sum().item()
    assert 10 <= cols <= 13


def test_deblur_blurs_and_is_deterministic_per_generator():
    sharp = (torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    d = Degradation("deblur", blur="both")
    a = d(sharp, torch.Generator().manual_seed(5))
    assert torch.equal(a, d(sharp, torch.Generator().manual_seed(5)))
    # blur lowers local contrast of a random binary image
    assert (a[:, 1:] - a[:, :-1]).abs().mean() < (sharp[:, 1:] - sharp[:, :-1]).abs().mean()


def test_round_trip_through_dict_and_describe():
    d = Degradation("denoise", noise_sigma=(0.0, 50.0))
    again = Degradation.from_dict(d.to_dict())
    assert again.kind == "denoise" and tuple(again.noise_sigma) == (0.0, 50.0)
    assert Degradation("sr", scale=3).describe() == "sr x3"
    assert Degradation("jpeg", scale=4).scale == 1  # only SR changes the size
    with pytest.raises(ValueError, match="unknown kind"):
        Degradation("sharpen")
