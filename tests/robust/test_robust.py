"""``pixelmind robust`` and adversarial training on tiny models: attacks stay in their pixel budget,
corruptions grow with severity, the report's clean figure is ``val``'s, and refusals are one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from pixelmind.api import Model
from pixelmind.errors import ConfigError
from pixelmind.robust.attacks import PixelSpace, fgsm, pgd
from pixelmind.robust.corruptions import CORRUPTIONS, SEVERITIES, corrupt

sys.path.insert(0, str(Path(__file__).parents[1]))
from test_cli import last_json, ok, pixelmind  # noqa: E402 - the CLI tests' subprocess helpers

pytestmark = pytest.mark.usefixtures("one_thread")
SPACE = PixelSpace((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
QUICK = {"epochs": 1, "imgsz": 64, "batch": 8, "limit": 16, "epoch_samples": 16, "workers": 0}


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_attacks_stay_in_the_pixel_budget_and_raise_the_loss(name):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    pixels, y = torch.rand(8, 3, 8, 8), torch.randint(0, 3, (8,))
    x = SPACE.from_pixels(pixels)
    loss = lambda inp: torch.nn.functional.cross_entropy(net(inp), y)  # noqa: E731
    eps = 4 / 255
    adv = fgsm(loss, x, SPACE, eps) if name == "fgsm" else pgd(loss, x, SPACE, eps, steps=5)
    moved = SPACE.to_pixels(adv)
    assert (moved - pixels).abs().max() <= eps + 1e-5  # the budget is in pixels, not in normalised units
    assert moved.min() >= -1e-6 and moved.max() <= 1 + 1e-6
    assert (moved - pixels).abs().max() > eps / 2
    assert loss(adv) > loss(x)


def test_pgd_is_seeded_and_at_least_as_strong_as_fgsm():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    x, y = SPACE.from_pixels(torch.rand(16, 3, 4, 4)), torch.randint(0, 2, (16,))
    loss = lambda inp: torch.nn.functional.cross_entropy(net(inp), y)  # noqa: E731
    a, b = pgd(loss, x, SPACE, 8 / 255, steps=10, seed=3), pgd(loss, x, SPACE, 8 / 255, steps=10, seed=3)
    assert a.equal(b)
    assert loss(a) >= loss(fgsm(loss, x, SPACE, 8 / 255)) - 1e-4


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_are_seeded_in_range_and_grow_with_severity(name):
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    errors = []
    for s in SEVERITIES:
        out = corrupt(name, pixels, s, seed=5)
        assert out.shape == pixels.shape and out.min() >= 0 and out.max() <= 1
        assert out.equal(corrupt(name, pixels, s, seed=5))
        errors.append(float((out - pixels).pow(2).mean()))
    assert errors[0] > 0 and errors[-1] > errors[0]
    if name != "jpeg":  # JPEG's error at qualities 25..7 is not strictly monotonic per image
        assert errors == sorted(errors), errors


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Model:
    m = Model("pm_cnn_t", task="classify")
    m.train(data="digits", epochs=2, imgsz=16, project=str(tmp_path_factory.mktemp("runs")), name="c", workers=0)
    return m


def test_report_clean_figure_is_vals_and_attacks_hurt(digits, tmp_path):
    report = digits.robust(tmp_path, attacks=["fgsm", "pgd"], eps=[2 / 255, 8 / 255], steps=5,
                           corruptions=["gaussian_noise", "contrast"], limit=None)  # fmt: skip
    assert report["clean"] == pytest.approx(digits.val()["top1"])
    by = {(r["attack"], r["eps_255"]): r["top1"] for r in report["attacks"]}
    assert by[("fgsm", 8)] < report["clean"] and by[("pgd", 8)] <= by[("fgsm", 8)] + 0.02
    assert by[("pgd", 8)] <= by[("pgd", 2)]
    assert [(r["corruption"], r["severity"]) for r in report["corruptions"]][:2] == [("gaussian_noise", 1), ("gaussian_noise", 2)]
    assert report["corruption_mean"] == pytest.approx(sum(r["top1"] for r in report["corruptions"]) / 10)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    md = (tmp_path / "report.md").read_text()
    assert "| pgd-5 | 0.0314 | 8 |" in md and "| gaussian_noise |" in md
    assert (tmp_path / "plots" / "robust.png").stat().st_size > 10_000


@pytest.mark.parametrize("task,model", [("detect", "pmdet_n"), ("segment", "unet_s")])
def test_detect_and_segment_report_their_metric(tmp_path, task, model):
    from importlib import import_module

    tiny = import_module(f"pixelmind.tasks.{task}.models").TINY[model]
    m = Model(model, task=task)
    m.train(data="shapes", project=str(tmp_path / "runs"), name="t", model_kwargs=tiny, **QUICK)
    report = m.robust(tmp_path / "robust", attacks=["pgd"], eps=[4 / 255], steps=2, corruptions=["fog"], limit=8, batch=4)
    metric = report["metric"]
    assert metric == ("map" if task == "detect" else "miou") and report["samples"] == 8
    values = [report["clean"], *(r[metric] for r in report["attacks"] + report["corruptions"])]
    assert len(values) == 7 and all(0 <= v <= 1 for v in values)


def test_enhance_reports_psnr_under_attack(tmp_path):
    import numpy as np
    from PIL import Image

    rng, photos = np.random.default_rng(0), tmp_path / "photos"
    photos.mkdir()
    for i in range(10):  # smooth 64 px pictures: colour ramps
        ramp = np.linspace(0, 1, 64)[None, :, None] * rng.uniform(0.2, 1, 3) + np.linspace(0, 1, 64)[:, None, None] * 0.3
        Image.fromarray((ramp.clip(0, 1) * 255).astype(np.uint8)).save(photos / f"p{i}.png")
    m = Model("espcn", task="enhance")
    m.train(data=str(photos), degradation="sr", scale=2, imgsz=32, epochs=1, epoch_samples=16, batch=8,
            project=str(tmp_path / "runs"), workers=0)  # fmt: skip
    report = m.robust(tmp_path / "robust", attacks=["fgsm"], eps=[8 / 255], corruptions=["gaussian_noise"], limit=16)
    assert report["metric"] == "psnr" and report["attacks"][0]["psnr"] < report["clean"]


def test_adversarial_training_runs_through_the_engine(tmp_path):
    m = Model("pm_cnn_t", task="classify")
    metrics = m.train(data="digits", epochs=1, imgsz=16, project=str(tmp_path), name="adv", workers=0,
                      adv_train="pgd", adv_eps=4 / 255, adv_steps=2)  # fmt: skip
    assert 0 <= metrics["top1"] <= 1 and m.config["adv_train"] == "pgd"
    with pytest.raises(ConfigError, match="adv_train: the generate task cannot train adversarially"):
        Model("gan", task="generate").train(data="digits", epochs=1, imgsz=16, project=str(tmp_path), adv_train="fgsm")


def test_refusals_are_one_line(digits, tmp_path):
    with pytest.raises(ConfigError, match=r"attack: unknown 'cw' \(choose from: fgsm, pgd\)"):
        digits.robust(tmp_path, attacks=["cw"])
    with pytest.raises(ConfigError, match=r"eps: every value must be in \(0, 1\]"):
        digits.robust(tmp_path, eps=[8])
    with pytest.raises(ConfigError, match="corruption: unknown 'snow'"):
        digits.robust(tmp_path, corruptions=["snow"])
    onnx_path = tmp_path / "c.onnx"
    digits.export("onnx", onnx_path)
    with pytest.raises(ConfigError, match=r"c\.onnx: robust needs PyTorch weights"):
        Model.load(onnx_path).robust(tmp_path)


def test_cli_prints_the_tables_and_json(digits, tmp_path):
    out = tmp_path / "r"
    proc = ok(pixelmind("robust", "--weights", digits.weights_path, "-o", out, "--attack", "fgsm", "--eps", "1/255, 0.02",
                        "--corruptions", "--limit", "64", "--json", cwd=tmp_path))  # fmt: skip
    report = last_json(proc)
    assert [r["eps"] for r in report["attacks"]] == pytest.approx([1 / 255, 0.02])
    assert len(report["corruptions"]) == len(CORRUPTIONS) * 5 and report["samples"] == 64
    assert "Common corruptions" in proc.stderr and (out / "plots" / "robust.png").exists()
    bad = pixelmind("robust", "--weights", digits.weights_path, "-o", out, "--eps", "eight", cwd=tmp_path)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1] == "error: eps: 'eight' is not a number or a fraction like 8/255"
