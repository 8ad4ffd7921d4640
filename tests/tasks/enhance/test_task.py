"""The enhance task end to end: train, val, predict (tiled), the enhance command, ONNX export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelmind.api import Model
from pixelmind.engine.checkpoint import load_weights


def _smooth_photo(path: Path, size=(64, 48), seed=0, grey=False) -> Path:
    """Smooth shapes and gradients: learnable structure, like a photo at low resolution."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([np.sin(6 * xx + rng.uniform(0, 6)) * 0.5 + 0.5, yy, np.cos(5 * yy * xx + rng.uniform(0, 3)) * 0.5 + 0.5], -1)
    cy, cx, r = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, rng.uniform(5, 12)
    img[(np.mgrid[0:h, 0:w][0] - cy) ** 2 + (np.mgrid[0:h, 0:w][1] - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    arr = (img * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if grey else arr).save(path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for i in range(6):
        _smooth_photo(root / f"p{i}.png", seed=i)
    return root


@pytest.fixture(scope="module")
def trained(photos, tmp_path_factory) -> Model:
    project = tmp_path_factory.mktemp("runs")
    m = Model("edsr_s", task="enhance")
    m.train(data=str(photos), degradation="sr", scale=2, imgsz=32, epochs=2, epoch_samples=64, batch=8,
            project=str(project), workers=0, lr=2e-3)  # fmt: skip
    return m


def test_training_leaves_weights_metrics_and_plots(trained):
    metrics = json.loads((trained.run_dir / "metrics.json").read_text())["metrics"]
    for key in ("psnr", "ssim", "baseline_psnr", "gain_db", "psnr_rgb", "ssim_y"):
        assert key in metrics
    assert 10 < metrics["baseline_psnr"] < 60 and 0 < metrics["ssim"] <= 1
    assert (trained.run_dir / "plots" / "examples.png").is_file()
    assert (trained.run_dir / "plots" / "psnr_per_image.png").is_file()
    _, meta, _ = load_weights(trained.weights_path)
    assert meta.task == "enhance" and meta.extra["scale"] == 2 and meta.extra["degradation"] == "sr"
    assert "bicubic" in (trained.run_dir / "report.md").read_text()


def test_predict_doubles_the_size_and_tiling_agrees_with_one_pass(trained):
    m = Model.load(trained.weights_path)
    img = Image.open(_smooth_photo(trained.run_dir / "in.png", size=(70, 50), seed=11))
    (row,) = m.predict(img, tile=512)
    assert (row["width"], row["height"], row["scale"]) == (140, 100, 2)
    whole = np.asarray(m.task.predict(m.net, [img], m.meta, tile=512)[0].image, dtype=np.int16)
    tiled = np.asarray(m.task.predict(m.net, [img], m.meta, tile=32, overlap=16)[0].image, dtype=np.int16)
    diff = np.abs(whole - tiled)
    # the tiles see less context near their borders than the whole image does; blending keeps that tiny
    assert diff.mean() < 0.5 and diff.max() <= 12


def test_val_on_a_test_set_in_the_set5_layout(trained, tmp_path):
    from pixelmind.data.imresize import imresize_uint8

    (tmp_path / "set").mkdir()
    for i in range(2):
        hr = np.asarray(Image.open(_smooth_photo(tmp_path / "src" / f"im{i}.png", size=(48, 40), seed=20 + i)))
        Image.fromarray(hr).save(tmp_path / "set" / f"im{i}_HR.png")
        Image.fromarray(imresize_uint8(hr, 0.5)).save(tmp_path / "set" / f"im{i}_LR.png")
    metrics = Model.load(trained.weights_path).val(data=str(tmp_path / "set"))
    assert metrics["samples"] == 2  # a test set is evaluated whole, not split
    assert metrics["psnr"] > 15 and "baseline_psnr" in metrics


def test_enhance_command_writes_pngs_and_reports_bad_files(trained, tmp_path):
    good = _smooth_photo(tmp_path / "in" / "a.png", size=(30, 20))
    _smooth_photo(tmp_path / "in" / "sub" / "a.png", size=(16, 16), seed=3)  # same name, other folder
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pixelmind", "enhance", str(tmp_path / "in"), "--weights", str(trained.weights_path), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "broken.jpg" in r.stderr and "2 images enhanced" in r.stderr
    assert Image.open(out / "a.png").size == (60, 40)
    assert Image.open(out / "a_1.png").size == (32, 32)
    assert Image.open(good).size == (30, 20)  # the source is untouched
    bad_only = [sys.executable, "-m", "pixelmind", "enhance", str(tmp_path / "in" / "broken.jpg"), "--weights", str(trained.weights_path), "-o", str(out)]
    r = subprocess.run(bad_only, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no readable input images" in r.stderr and "Traceback" not in r.stderr


def test_onnx_export_has_dynamic_size_and_matches_pytorch(trained, tmp_path):
    m = Model.load(trained.weights_path)
    path, diff = m.export("onnx", tmp_path / "sr.onnx")
    assert diff <= 1e-3
    onnx_model = Model.load(path)
    img = Image.open(_smooth_photo(tmp_path / "x.png", size=(37, 29), seed=5))  # not the export size
    a = np.asarray(m.task.predict(m.net, [img], m.meta)[0].image, dtype=np.int16)
    b = np.asarray(onnx_model.task.predict(onnx_model.net, [img], onnx_model.meta)[0].image, dtype=np.int16)
    assert a.shape == b.shape == (58, 74, 3)
    assert np.abs(a - b).max() <= 1


def test_greyscale_denoising_trains_and_predicts_grey(tmp_path):
    for i in range(4):
        _smooth_photo(tmp_path / "grey" / f"g{i}.png", seed=i, grey=True)
    m = Model("dncnn", task="enhance")
    metrics = m.train(data=str(tmp_path / "grey"), degradation="denoise", imgsz=32, epochs=1, epoch_samples=16,
                      batch=8, project=str(tmp_path / "runs"), workers=0)  # fmt: skip
    assert m.meta.extra["channels"] == 1 and m.meta.extra["scale"] == 1
    # sigma 25 noise is 20.17 dB; clipping to 0..255 (saturated pixels of this image) removes a little of it
    assert 20.0 < metrics["baseline_psnr"] < 21.5
    out = m.predict(Image.new("RGB", (21, 13), (120, 60, 200)))[0]
    assert (out["width"], out["height"]) == (21, 13)


def test_enhance_command_refuses_other_tasks_weights(tmp_path):
    m = Model("pm_cnn_t", task="classify")
    m.train(data="digits", epochs=1, imgsz=8, project=str(tmp_path / "runs"), workers=0, limit=64, batch=32)
    r = subprocess.run([sys.executable, "-m", "pixelmind", "enhance", "x.png", "--weights", str(m.weights_path)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "needs enhance weights" in r.stderr
