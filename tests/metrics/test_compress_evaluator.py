"""The compression evaluator: rate, distortion, the training objective and the matched classical codecs."""

from __future__ import annotations

import pytest
import torch

from pixelmind.metrics.compress import MATCH_IMAGES, CompressEvaluator

pytestmark = pytest.mark.usefixtures("one_thread")


def photo(size: int = 48, seed: int = 0) -> torch.Tensor:
    from skimage import data
    from torch.nn.functional import interpolate

    x = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float()[None] / 255
    g = torch.Generator().manual_seed(seed)
    top, left = torch.randint(0, 300, (2,), generator=g).tolist()
    return interpolate(x[..., top : top + 200, left : left + 200], size=(size, size), mode="area")[0]


def test_rd_loss_is_the_training_objective_of_each_distortion():
    x = photo()
    x_hat = (x + 0.05).clamp(0, 1)
    for distortion, lmbda in (("mse", 0.0067), ("ms_ssim", 8.73)):
        ev = CompressEvaluator(lmbda=lmbda, classical=(), distortion=distortion)
        ev.update([{"x_hat": x_hat, "bpp_est": 0.5}], [x])
        m = ev.compute()
        mse = float((((x_hat * 255).round() - (x * 255).round()) ** 2).mean()) / 255**2
        expected = lmbda * 255**2 * mse if distortion == "mse" else lmbda * (1 - m["ms_ssim"])
        assert m["rd_loss"] == pytest.approx(expected + 0.5, rel=1e-6)
        assert "bpp_gap_pct" not in m  # an estimate only: no real file yet


def test_real_files_are_compared_with_classical_codecs_on_the_first_images():
    ev = CompressEvaluator(lmbda=0.0067, classical=("jpeg",))
    images = [photo(seed=i) for i in range(MATCH_IMAGES + 2)]
    preds = [{"x_hat": (x + 0.02).clamp(0, 1), "bpp_est": 1.9, "bpp": 2.0, "encode_s": 0.01, "decode_s": 0.02} for x in images]
    ev.update(preds, images)
    m = ev.compute()
    assert m["bpp"] == pytest.approx(2.0) and m["bpp_gap_pct"] == pytest.approx(100 * 0.1 / 1.9)
    assert m["encode_ms"] == pytest.approx(10) and m["decode_ms"] == pytest.approx(20)
    matched = [r for r in ev.rows if "jpeg_psnr" in r]
    assert len(matched) == MATCH_IMAGES
    assert all(abs(r["jpeg_bpp"] - 2.0) < 0.6 for r in matched)  # JPEG's quality was searched to the same rate
    assert m["jpeg_psnr"] == pytest.approx(sum(r["jpeg_psnr"] for r in matched) / MATCH_IMAGES)
    assert f"first {MATCH_IMAGES} images" in ev.summary()["protocol"] and len(ev.summary()["per_image"]) == MATCH_IMAGES + 2
