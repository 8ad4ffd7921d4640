"""The generate task end to end through the CLI: train -> generate (grid, per-image files, classes,
interpolation, seeds) -> export, with tiny models on real data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pixelmind.api import Model
from pixelmind.engine.rundir import read_results_csv
from pixelmind.errors import ConfigError
from pixelmind.tasks.generate.models import TINY

TINY_GAN = "model_kwargs={width: 8, latent_dim: 16}"


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pixelmind", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    project = tmp_path_factory.mktemp("runs")
    r = cli("train", "--task", "generate", "--data", "digits", "--epochs", "1", "--limit", "128", "--batch", "32",
            "--workers", "0", "--device", "cpu", "--project", str(project), "--set", TINY_GAN, "--set", "val_samples=64",
            "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    run_dir = json.loads(r.stdout.strip().splitlines()[-1])["run_dir"]
    return run_dir


def test_training_leaves_weights_sample_grids_and_both_losses(weights):
    from pathlib import Path

    run = Path(weights)
    assert (run / "weights" / "best.safetensors").is_file() and (run / "report.md").is_file()
    grid = Image.open(run / "samples" / "epoch_001.png")
    assert grid.size == (8 * 30 + 2, 10 * 30 + 2)  # 10 class rows of 8 samples, 28 px + 2 px padding
    rows = read_results_csv(run / "results.csv")
    assert np.isfinite(rows[0]["train/loss0"]) and np.isfinite(rows[0]["train/loss1"])  # discriminator, generator
    assert "no FID" in json.loads((run / "metrics.json").read_text())["fid_note"]


def test_generate_writes_a_grid_and_one_png_per_image_reproducibly(weights, tmp_path):
    w = f"{weights}/weights/best.safetensors"
    r = cli("generate", "--weights", w, "--n", "12", "--seed", "5", "-o", str(tmp_path / "a"), "--json")
    assert r.returncode == 0, r.stderr
    written = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(written["images"]) == 12 and Image.open(written["grid"]).size[0] > 28
    assert [row["class"] for row in written["images"][:3]] == ["0", "1", "2"]  # cycles through the classes
    first = np.asarray(Image.open(written["images"][0]["saved"]))
    assert first.shape == (28, 28)
    # seed 5 + i for image i: --n 1 --seed 6 is the second image of the first call
    r = cli("generate", "--weights", w, "--n", "1", "--seed", "6", "--class", "1", "-o", str(tmp_path / "b"), "--json")
    again = json.loads(r.stdout.strip().splitlines()[-1])["images"][0]
    assert np.array_equal(np.asarray(Image.open(again["saved"])), np.asarray(Image.open(written["images"][1]["saved"])))
    r = cli("generate", "--weights", w, "--n", "1", "--seed", "6", "--class", "2", "-o", str(tmp_path / "c"), "--json")
    other = json.loads(r.stdout.strip().splitlines()[-1])["images"][0]
    assert not np.array_equal(np.asarray(Image.open(other["saved"])), np.asarray(Image.open(again["saved"])))


def test_unknown_class_is_one_line_listing_the_classes(weights, tmp_path):
    r = cli("generate", "--weights", f"{weights}/weights/best.safetensors", "--class", "cat", "-o", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "unknown class 'cat'" in r.stderr and "0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in r.stderr


def test_interpolation_strip_ends_at_its_two_seeds(weights, tmp_path):
    w = f"{weights}/weights/best.safetensors"
    r = cli("generate", "--weights", w, "--n", "2", "--interpolate", "5", "--seed", "3", "--class", "4", "-o", str(tmp_path / "i"))
    assert r.returncode == 0, r.stderr
    strip = Image.open(tmp_path / "i" / "interpolation.png")
    assert strip.size == (5 * 30 + 2, 2 * 30 + 2)
    m = Model.load(w)
    ends = m.generate(n=2, class_name="4", seed=3)  # seeds 3 and 4: the ends of the first strip
    assert np.array_equal(np.asarray(ends[0]), np.asarray(Image.open(tmp_path / "i" / "interp_000_000.png")))
    assert np.array_equal(np.asarray(ends[1]), np.asarray(Image.open(tmp_path / "i" / "interp_000_004.png")))
    middle = np.asarray(Image.open(tmp_path / "i" / "interp_000_002.png"))
    assert not np.array_equal(middle, np.asarray(ends[0])) and not np.array_equal(middle, np.asarray(ends[1]))


def test_predict_with_generate_weights_points_to_generate(weights, tmp_path):
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    r = cli("predict", "--weights", f"{weights}/weights/best.safetensors", "--source", str(tmp_path / "x.png"), "--out", str(tmp_path / "p"))
    assert r.returncode == 2 and "pixelmind generate" in r.stderr and "Traceback" not in r.stderr


def test_onnx_export_of_the_conditional_generator_matches_pytorch(weights, tmp_path):
    from pixelmind.export.onnx import OnnxModule
    from pixelmind.tasks.generate.gan import GeneratorExport

    w = f"{weights}/weights/best.safetensors"
    r = cli("export", "--weights", w, "--out", str(tmp_path / "g.onnx"))
    assert r.returncode == 0 and "parity" in r.stdout, r.stderr
    m = Model.load(w)
    noise, labels = torch.randn(5, 16, generator=torch.Generator().manual_seed(9)), torch.tensor([0, 3, 9, 9, 1])
    onnx_out = OnnxModule(tmp_path / "g.onnx")(GeneratorExport.inputs(m.net, noise, labels))
    assert torch.allclose(onnx_out, m.net.sample(5, labels, noise=noise), atol=1e-4)


def test_python_api_generate_and_class_errors(weights):
    m = Model.load(f"{weights}/weights/best.safetensors")
    images = m.generate(n=3, class_name="7", seed=1)
    assert len(images) == 3 and images[0].size == (28, 28) and images[0].mode == "L"
    assert np.array_equal(np.asarray(images[0]), np.asarray(m.generate(n=1, class_name="7", seed=1)[0]))
    with pytest.raises(ConfigError, match="unknown class"):
        m.generate(n=1, class_name="eleven")


@pytest.mark.slow  # two training runs (~40 s on a busy core)
def test_unconditional_gan_on_an_image_folder_and_a_tiny_ddpm(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(24):
        arr = np.zeros((36, 40, 3), np.uint8)
        arr[rng.integers(0, 20) :, : rng.integers(10, 40)] = rng.integers(0, 256, 3)
        Image.fromarray(arr).save(tmp_path / "imgs" / f"{i}.png")
    (tmp_path / "imgs" / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    m = Model("gan", task="generate")
    m.train(data=str(tmp_path / "imgs"), epochs=1, batch=4,  # 20 train images: no batch dropped
            workers=0, device="cpu", project=str(tmp_path / "runs"),
            model_kwargs={"width": 8, "latent_dim": 16})  # fmt: skip
    assert m.meta.class_names == [] and m.meta.extra["channels"] == 3 and m.meta.imgsz == 32
    assert "bad.jpg" in (m.run_dir / "report.md").read_text()
    assert m.generate(n=2, seed=0)[0].size == (32, 32)
    with pytest.raises(ConfigError, match="unconditional"):
        m.generate(n=1, class_name="0")

    d = Model("ddpm", task="generate")
    d.train(data="digits", epochs=1, limit=32, batch=16, imgsz=32, workers=0, device="cpu", sample_steps=2,
            project=str(tmp_path / "runs"), model_kwargs=TINY["ddpm"])  # fmt: skip
    assert (d.run_dir / "samples" / "epoch_001.png").is_file()
    a, b = d.generate(n=2, class_name="3", seed=4, steps=2), d.generate(n=2, class_name="3", seed=4, steps=2)
    assert np.array_equal(np.asarray(a[1]), np.asarray(b[1]))
    from pixelmind.errors import PixelmindError

    with pytest.raises(PixelmindError, match="diffusion model"):
        d.export("onnx", path=tmp_path / "d.onnx")


@pytest.mark.slow  # trains a classifier, then two validations (~70 s on a busy core)
def test_val_with_a_classifier_extractor_gives_repeatable_fid(weights, tmp_path):
    clf = Model("pm_cnn_t", task="classify")
    clf.train(data="digits", epochs=1, imgsz=28, limit=128, batch=32, workers=0, device="cpu", project=str(tmp_path / "runs"))
    w = f"{weights}/weights/best.safetensors"
    runs = [cli("val", "--weights", w, "--feature-weights", str(clf.weights_path), "--json") for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    a, b = (json.loads(r.stdout.strip().splitlines()[-1]) for r in runs)
    assert a["fid"] > 0 and a["fid"] == b["fid"] and a["kid"] == b["kid"]  # fixed seeds per validation batch
    assert a["samples"] == 359  # digits' validation split, all of it


@pytest.mark.slow  # three short runs
def test_resumed_gan_run_equals_an_uninterrupted_one(tmp_path):
    """Both optimizers, the EMA generator and the RNG state come back from last.safetensors."""
    from pixelmind.engine.checkpoint import load_weights

    # no warm-up: the GAN's lr is then constant, the same in a 1-epoch and a 2-epoch run
    args = {"data": "digits", "limit": 64, "batch": 32, "workers": 0, "device": "cpu", "project": str(tmp_path),
            "warmup_epochs": 0, "model_kwargs": {"width": 8, "latent_dim": 16}}  # fmt: skip
    whole = Model("gan", task="generate")
    whole.train(epochs=2, **args)
    part = Model("gan", task="generate")
    part.train(epochs=1, **args)
    resumed = Model("gan", task="generate")
    resumed.train(resume=part.run_dir, epochs=2)
    a, _, _ = load_weights(whole.run_dir / "weights" / "last.safetensors")
    b, _, _ = load_weights(part.run_dir / "weights" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
