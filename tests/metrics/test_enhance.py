"""EnhanceEvaluator: the protocol through the task's own path reproduces the published bicubic rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pixelmind.config import TrainConfig
from pixelmind.metrics.enhance import EnhanceEvaluator
from pixelmind.tasks.enhance.data import load_enhance_data

SUPERRES = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "superres"


def test_perfect_output_scores_the_cap_and_the_baseline_is_the_input():
    ev = EnhanceEvaluator(scale=1)
    clean = torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(0))
    noisy = (clean + 0.1 * torch.randn(3, 20, 20, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    ev.update([clean], [(clean, noisy)])
    m = ev.compute()
    assert m["psnr"] == m["psnr_rgb"] >= 99 and m["ssim"] == pytest.approx(1.0)
    assert 15 < m["baseline_psnr"] < 25 and m["gain_db"] > 70
    assert ev.summary()["baseline"] == "the degraded input"


def test_grey_images_use_their_own_channel_as_luma():
    ev = EnhanceEvaluator(scale=1)
    clean = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    out = (clean + 0.02).clamp(0, 1)
    ev.update([out], [(clean, clean)])
    m = ev.compute()
    assert m["psnr_y"] == m["psnr_rgb"]


def test_plots_are_written(tmp_path):
    ev = EnhanceEvaluator(scale=2)
    hr = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    lr = hr[:, ::2, ::2]
    ev.update([hr.clone()], [(hr, lr)])
    paths = ev.plots(tmp_path)
    assert {p.name for p in paths} == {"psnr_per_image.png", "examples.png"}
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize(("name", "scale", "psnr", "ssim"), [("Set5", 2, 33.66, 0.9299), ("Set14", 2, 30.24, 0.8688),
                                                             ("Set5", 4, 28.42, 0.8104), ("Set14", 4, 26.00, 0.7027)])  # fmt: skip
def test_bicubic_baseline_on_the_shared_test_sets_matches_the_published_row(name, scale, psnr, ssim):
    folder = SUPERRES / name / f"x{scale}"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (the shared data sets live in ../shared/datasets)")
    cfg = TrainConfig(task="enhance", data=str(folder), imgsz=8 * scale, scale=scale, degradation="sr")
    val = load_enhance_data(cfg, evaluate_all=True).val
    ev = EnhanceEvaluator(scale=scale)
    for i in range(len(val)):
        lq, hq = val[i]
        ev.update([hq], [(hq, lq)])  # the model's output is irrelevant here: the baseline is scored beside it
    m = ev.compute()
    assert m["baseline_psnr"] == pytest.approx(psnr, abs=0.05)
    assert m["baseline_ssim"] == pytest.approx(ssim, abs=0.002)
