"""MATLAB-compatible imresize: shape rules, invariants, a loop-by-loop reference, and the Set5/Set14 LR files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelmind.data.imresize import _resize_dim_gather, imresize, imresize_uint8, output_size, resize_weights

SUPERRES = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "superres"


pytestmark = pytest.mark.usefixtures("one_thread")


def _reference_1d(a: np.ndarray, out_len: int, scale: float) -> np.ndarray:
    """MATLAB's contributions + resizeAlongDim for one row, written as plain loops (1-based like imresize.m)."""

    def cubic(t: float) -> float:
        t = abs(t)
        if t <= 1:
            return 1.5 * t**3 - 2.5 * t**2 + 1
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2 if t <= 2 else 0.0

    width, h = 4.0, cubic
    if scale < 1:
        width, h = 4.0 / scale, lambda t: scale * cubic(scale * t)
    out = np.zeros(out_len)
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        js = [left + p for p in range(math.ceil(width) + 2)]
        ws = np.array([h(u - j) for j in js])
        ws /= ws.sum()
        out[x - 1] = sum(w * a[min(max(j, 1), len(a)) - 1] for w, j in zip(ws, js))
    return out


def _reference(img: np.ndarray, scale: float) -> np.ndarray:
    """2-D reference: dimensions in ascending order of scale (equal here, so rows first), then columns."""
    oh, ow = math.ceil(img.shape[0] * scale), math.ceil(img.shape[1] * scale)
    tmp = np.stack([_reference_1d(img[:, c], oh, scale) for c in range(img.shape[1])], axis=1)
    return np.stack([_reference_1d(tmp[r], ow, scale) for r in range(oh)], axis=0)


@pytest.mark.parametrize("scale", [0.37, 0.5, 1.6, 3.0])
def test_matches_loop_reference(scale):
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 255, (9, 13))
    got = imresize(torch.from_numpy(img)[None], scale)[0].numpy()
    np.testing.assert_allclose(got, _reference(img, scale), rtol=0, atol=1e-9)


@pytest.mark.parametrize("scale", [0.25, 0.3, 1.0 / 3, 0.5, 1.5, 2.0, 4.0])
def test_constant_image_stays_constant(scale):
    y = imresize(torch.full((2, 3, 17, 23), 123.0, dtype=torch.float64), scale)
    assert torch.allclose(y, torch.tensor(123.0, dtype=torch.float64), atol=1e-9)
    assert imresize(torch.full((1, 17, 23), 77, dtype=torch.uint8), scale).unique().tolist() == [77]


def test_scale_one_is_identity():
    x = torch.rand(3, 11, 7) * 255
    assert torch.equal(imresize(x, 1.0), x)
    assert torch.equal(imresize(x, size=(11, 7)), x)
    # Scale 1 in one dimension only: that dimension is untouched.
    w, i = resize_weights(7, 7, 1.0)
    assert torch.equal(w, torch.ones(7, 1, dtype=torch.float64)) and torch.equal(i[:, 0], torch.arange(7))


def test_shapes_follow_ceil():
    assert output_size((5, 7), 0.5) == (3, 4)
    assert output_size((6, 9), 1 / 3) == (2, 3)
    assert output_size((10, 10), (0.25, 2)) == (3, 20)
    assert imresize(torch.rand(2, 3, 5, 7), 0.5).shape == (2, 3, 3, 4)
    assert imresize(torch.rand(3, 5, 7), (2, 0.5)).shape == (3, 10, 4)
    assert imresize(torch.rand(3, 5, 7), size=(8, 3)).shape == (3, 8, 3)


def test_dtypes():
    assert imresize(torch.rand(1, 4, 4, dtype=torch.float64), 2).dtype == torch.float64
    assert imresize(torch.rand(1, 4, 4, dtype=torch.float16), 2).dtype == torch.float32
    assert imresize(torch.zeros(1, 4, 4, dtype=torch.uint8), 2).dtype == torch.uint8
    grey = imresize_uint8(np.zeros((6, 4), dtype=np.uint8), 0.5)
    assert grey.shape == (3, 2) and grey.dtype == np.uint8


def test_uint8_rounds_and_saturates_each_pass():
    # A sharp edge overshoots with the cubic kernel; MATLAB clips and rounds after the first pass.
    x = torch.zeros(1, 8, 8, dtype=torch.float64)
    x[..., 4:] = 255
    x[..., 2, 4] = 131
    assert imresize(x, 2.0).max() > 255
    rows = torch.floor(imresize(x, (2.0, 1.0)) + 0.5).clamp(0, 255)  # height first (equal scales)
    both = torch.floor(imresize(rows, (1.0, 2.0)) + 0.5).clamp(0, 255)
    assert torch.equal(imresize(x.to(torch.uint8), 2.0), both.to(torch.uint8))


def test_sparse_and_gather_paths_agree():
    x = torch.rand(2, 3, 19, 14, dtype=torch.float64) * 255
    for scale in (0.3, 2.5):
        w, i = resize_weights(19, math.ceil(19 * scale), scale)
        ref = _resize_dim_gather(x, 2, w, i)
        torch.testing.assert_close(imresize(x, (scale, 1.0)), ref, rtol=0, atol=1e-9)


def test_symmetric_boundary_only_changes_the_border():
    x = torch.rand(1, 40, 40, dtype=torch.float64) * 255
    rep, sym = imresize(x, 0.5), imresize(x, 0.5, boundary="symmetric")
    assert not torch.allclose(rep, sym)
    torch.testing.assert_close(rep[..., 3:-3, 3:-3], sym[..., 3:-3, 3:-3])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": torch.rand(4, 4), "scale": 2}, r"\[C, H, W\]"),
        ({"x": torch.rand(1, 4, 4), "scale": 2, "size": (8, 8)}, "exactly one"),
        ({"x": torch.rand(1, 4, 4)}, "exactly one"),
        ({"x": torch.rand(1, 4, 4), "scale": -1}, "positive"),
        ({"x": torch.rand(1, 4, 4), "scale": (1, 2, 3)}, "pair"),
        ({"x": torch.rand(1, 4, 4), "size": (0, 3)}, "positive ints"),
        ({"x": torch.zeros(1, 4, 4, dtype=torch.int32), "scale": 2}, "floating or uint8"),
        ({"x": torch.rand(1, 4, 4), "scale": 2, "boundary": "wrap"}, "boundary"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        imresize(**kwargs)


def test_imresize_uint8_refuses_other_arrays():
    with pytest.raises(ValueError, match="uint8 array"):
        imresize_uint8(np.zeros((2, 2, 2, 2), dtype=np.uint8), 2)
    with pytest.raises(ValueError, match="uint8 array"):
        imresize_uint8(np.zeros((4, 4), dtype=np.float32), 2)


def _pairs(set_name: str, scale: int) -> list[tuple[np.ndarray, np.ndarray]]:
    folder = SUPERRES / set_name / f"x{scale}"
    if not folder.is_dir():
        pytest.skip(
            f"shared SR data not found at {folder} (a developer machine has it at ../shared/datasets)"
        )
    return [
        (np.asarray(Image.open(hr)), np.asarray(Image.open(hr.with_name(hr.name.replace("_HR", "_LR")))))
        for hr in sorted(folder.glob("*_HR.png"))
    ]


@pytest.mark.parametrize("set_name, scale", [("Set5", 2), ("Set5", 4), ("Set14", 2), ("Set14", 4)])
def test_downscaling_hr_reproduces_the_matlab_lr_files(set_name, scale):
    # The LR files are MATLAB's imresize(HR, 1/scale, 'bicubic') on uint8: measured 100% identical.
    same = total = worst = 0
    for hr, lr in _pairs(set_name, scale):
        got = imresize_uint8(hr, 1 / scale)
        assert got.shape == lr.shape
        diff = np.abs(got.astype(int) - lr.astype(int))
        same, total, worst = same + int((diff == 0).sum()), total + diff.size, max(worst, int(diff.max()))
    assert same / total >= 0.9999 and worst <= 1, f"{same / total:.5f} identical, max diff {worst}"
