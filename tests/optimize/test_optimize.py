"""``pixelmind optimize --quantize int8`` end to end on tiny trained models of the four supported tasks.

The INT8 file is used the way a user would: ``Model.load`` + predict and val, and the CLI (a real
server serves one in tests/serve/test_optimized_serve.py). Refusals and the parity gate give one-line errors.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pixelmind.api import Model
from pixelmind.engine.checkpoint import save_weights
from pixelmind.errors import ConfigError, PixelmindError
from pixelmind.optimize.pipeline import OptimizeGateError
from pixelmind.tasks.base import Meta

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
from test_cli import ok, pixelmind  # noqa: E402 - the CLI tests' subprocess helpers

FAST = {"calib_images": 16}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Model:
    m = Model("pm_cnn_t", task="classify")
    m.train(data="digits", epochs=1, imgsz=16, project=str(tmp_path_factory.mktemp("runs")), name="c", workers=0)
    return m


@pytest.fixture(scope="module")
def quantized(classifier, tmp_path_factory):
    out = tmp_path_factory.mktemp("opt")
    return out, classifier.optimize(out, quantize="int8", **FAST)


def test_report_compares_original_and_int8_in_one_run(quantized):
    out, report = quantized
    assert {p.name for p in out.iterdir()} >= {"original.onnx", "model.int8.onnx", "report.json", "report.md", "plots"}
    assert (out / "plots" / "optimize.png").stat().st_size > 0
    assert json.loads((out / "report.json").read_text())["optimized"]["file"] == str(out / "model.int8.onnx")
    orig, opt = report["original"], report["optimized"]
    assert opt["file_mb"] < 0.8 * orig["file_mb"]  # int8 weights (plus the Q/DQ nodes, a large share in a 10k-parameter model)
    assert orig["params"] == opt["params"] > 0 and orig["flops"] > 0
    for row in (orig, opt):
        assert row["latency_b1_ms"] > 0 and row["latency_b16_ms"] > 0
        assert 0 <= row["metrics"]["top1"] <= 1
    assert report["speedup_b1"] == pytest.approx(orig["latency_b1_ms"] / opt["latency_b1_ms"])
    assert report["passed"] and report["metric_drop"] <= 0.01
    (step,) = report["steps"]
    assert step["step"] == "quantize" and step["calibration_images"] == 16 and step["quantized_nodes"] > 0
    md = (out / "report.md").read_text()
    assert "| latency batch 16 (ms) |" in md and "val top1 (gate)" in md and "Gate passed" in md


def test_int8_model_predicts_and_validates_like_any_other(quantized, classifier):
    out, report = quantized
    int8 = Model.load(out / "model.int8.onnx")
    assert int8.meta.class_names == classifier.meta.class_names
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    (row,) = int8.predict(image)
    assert row["label"] in classifier.meta.class_names and len(row["topk"]) == 5
    assert int8.val(data="digits")["top1"] == pytest.approx(report["optimized"]["metrics"]["top1"])


def test_gate_fails_with_a_clear_message_and_keeps_the_report(classifier, tmp_path):
    with pytest.raises(OptimizeGateError, match=r"top1 dropped by .* more than --max-drop -1; .*report is in") as err:
        classifier.optimize(tmp_path, quantize="int8", max_drop=-1.0, **FAST)
    assert "\n" not in str(err.value)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is False and "Gate FAILED" in (tmp_path / "report.md").read_text()


def _untrained(task: str, model: str, tmp_path, **extra) -> Model:
    from pixelmind.config import TrainConfig
    from pixelmind.tasks import get_task

    meta = Meta(task=task, model=model, imgsz=32, **extra)
    net = get_task(task).build_model(TrainConfig(task=task, data="x"), meta)
    path = tmp_path / f"{task}.safetensors"
    save_weights(path, net.state_dict(), meta, {"task": task, "data": "digits"})
    return Model.load(path)


def test_refusals_are_one_line(classifier, quantized, tmp_path):
    with pytest.raises(ConfigError, match="nothing to do: give --quantize int8 and/or --prune"):
        classifier.optimize(tmp_path)
    with pytest.raises(ConfigError, match="quantize: must be int8"):
        classifier.optimize(tmp_path, quantize="int4")
    with pytest.raises(ConfigError, match="distill: distillation fine-tunes a pruned model"):
        classifier.optimize(tmp_path, quantize="int8", distill=True)
    with pytest.raises(PixelmindError, match="optimize needs PyTorch weights"):
        Model.load(quantized[0] / "model.int8.onnx").optimize(tmp_path, quantize="int8")
    from pixelmind.data.shapes import save_shapes
    from pixelmind.errors import DataError

    segmentation_data = save_shapes(tmp_path / "shapes", "train", count=2, size=16)  # another task's data
    with pytest.raises(DataError, match=r"class folders \['images', 'masks'\] are not among the training classes") as err:
        classifier.optimize(tmp_path / "o", data=str(segmentation_data), quantize="int8")
    assert "\n" not in str(err.value)
    codec = _untrained("compress", "mean_scale_s", tmp_path, model_kwargs={"N": 8, "M": 12})
    with pytest.raises(PixelmindError, match="the compress task is not supported: a bitstream must decode"):
        codec.optimize(tmp_path, quantize="int8")


def test_cli_optimize_and_its_errors(classifier, tmp_path):
    proc = ok(pixelmind("optimize", "--weights", classifier.weights_path, "--quantize", "int8", "--calib-images", "16",
                        "-o", tmp_path / "o", "--json", cwd=tmp_path))  # fmt: skip
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["passed"] and (tmp_path / "o" / "model.int8.onnx").exists()
    assert "latency b1" in proc.stderr  # the summary line (human output goes to stderr with --json)
    bad = pixelmind("optimize", "--weights", tmp_path / "missing.safetensors", "--quantize", "int8", "-o", tmp_path / "x", cwd=tmp_path)
    assert bad.returncode == 2 and "missing.safetensors" in bad.stderr and "Traceback" not in bad.stderr
    bad = pixelmind("optimize", "--weights", classifier.weights_path, "--quantize", "int8", "--data", tmp_path / "nothing",
                    "-o", tmp_path / "x", cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "nothing" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_prune_with_distillation_then_int8_in_one_run(classifier, tmp_path):
    from pixelmind.engine.rundir import read_results_csv

    report = classifier.optimize(tmp_path / "opt", quantize="int8", prune=0.5, distill=True, epochs=1,
                                 max_drop=float("inf"), project=str(tmp_path), **FAST)  # fmt: skip
    prune, quant = report["steps"]
    assert prune["step"] == "prune" and prune["distill"] and prune["flops_ratio"] <= 0.5
    assert quant["step"] == "quantize" and report["optimized"]["file"] == str(tmp_path / "opt" / "pruned.int8.onnx")
    assert (tmp_path / "opt" / "pruned.onnx").is_file()
    assert report["optimized"]["params"] < report["original"]["params"]
    assert report["optimized"]["flops"] <= 0.55 * report["original"]["flops"]  # torch's counter, not torch-pruning's
    (row,) = read_results_csv(__import__("pathlib").Path(prune["run_dir"]) / "results.csv")
    assert "train/loss_distill" in row  # the original model was the teacher
    (pred,) = Model.load(tmp_path / "opt" / "pruned.int8.onnx").predict(Image.fromarray(np.zeros((16, 16, 3), np.uint8)))
    assert pred["label"] in classifier.meta.class_names


QUICK = {"epochs": 1, "imgsz": 64, "batch": 8, "limit": 16, "epoch_samples": 16, "workers": 0}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["detect", "segment", "enhance"])
def test_int8_of_detect_segment_enhance(task, tmp_path):
    from pixelmind.data.shapes import save_shapes
    from pixelmind.tasks.detect.models import TINY as DET_TINY
    from pixelmind.tasks.segment.models import TINY as SEG_TINY

    torch.manual_seed(0)
    if task in ("detect", "segment"):  # a few shapes images on disk: the built-in set's 200 val images are slow here
        data = save_shapes(tmp_path / "shapes", "train", count=8, size=64)
        save_shapes(tmp_path / "shapes", "val", count=4, size=64)
        name, tiny = ("pmdet_n", DET_TINY["pmdet_n"]) if task == "detect" else ("unet_s", SEG_TINY["unet_s"])
        m = Model(name, task=task)
        m.train(data=str(data), project=str(tmp_path), name="t", model_kwargs=tiny, **QUICK)
    else:
        photos = tmp_path / "photos"
        photos.mkdir()
        rng = np.random.default_rng(0)
        for i in range(4):
            smooth = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
            Image.fromarray(smooth).save(photos / f"p{i}.png")
        m = Model("espcn", task="enhance")
        m.train(data=str(photos), degradation="sr", scale=2, imgsz=32, epochs=1, epoch_samples=16, batch=8,
                project=str(tmp_path), workers=0)  # fmt: skip
    report = m.optimize(tmp_path / "opt", quantize="int8", calib_images=8, max_drop=float("inf"))
    key = report["primary_metric"]
    assert np.isfinite(report["optimized"]["metrics"][key]) and report["optimized"]["file_mb"] < report["original"]["file_mb"]
    assert report["steps"][0]["fp32_tail_nodes"] >= 1  # heads (and decoding) kept in fp32
    int8 = Model.load(tmp_path / "opt" / "model.int8.onnx")
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    (row,) = int8.predict(image)
    assert "error" not in row
