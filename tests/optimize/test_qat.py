"""Quantization-aware fine-tuning: which layers are fake-quantized, what the fake quantization does,
and ``optimize --qat`` end to end (a run of its own, resumable, then INT8)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pixelmind.api import Model
from pixelmind.errors import ConfigError
from pixelmind.optimize.qat import _fake_quant_weight, attach_fake_quant, detach_fake_quant, head_layers


class TwoHeads(nn.Module):
    """A residual trunk with two heads: the trunk's convolutions feed others, the heads do not."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.block = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.boxes, self.scores = nn.Conv2d(8, 4, 1), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + torch.relu(self.block(x))  # residual, with an in-place-free skip
        return self.boxes(x), self.scores(x)


def test_heads_are_the_layers_feeding_no_other():
    assert head_layers(TwoHeads(), torch.zeros(1, 3, 8, 8)) == {"boxes", "scores"}


def test_fake_quantized_weights_sit_on_the_int8_grid():
    w = torch.randn(6, 3, 3, 3)
    q = _fake_quant_weight(w)
    scale = w.abs().flatten(1).amax(1) / 127
    steps = q / scale.view(-1, 1, 1, 1)
    assert torch.allclose(steps, steps.round(), atol=1e-3) and steps.abs().max() <= 127 + 1e-3
    assert (q - w).abs().max() <= scale.max() / 2 + 1e-6  # rounding, never more than half a step
    w.requires_grad_(True)
    _fake_quant_weight(w).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight-through


def test_attach_keeps_the_state_dict_and_detach_restores_the_network():
    torch.manual_seed(0)
    net, x = TwoHeads(), torch.rand(4, 3, 8, 8)
    reference = [t.clone() for t in net.eval()(x)]
    keys = list(net.state_dict())
    assert sorted(attach_fake_quant(net, x[:1])) == ["block", "stem"]
    assert list(net.state_dict()) == keys  # checkpoints load into a plain network
    net.train()(x)  # observes the input ranges
    ema = copy.deepcopy(net).eval()  # the engine validates an EMA copy: it sees the same ranges
    simulated = ema(x)
    assert ema.block._pm_range is net.block._pm_range
    error = max((a - b).abs().max().item() for a, b in zip(simulated, reference))
    assert 0 < error < 0.05  # rounded to 256 levels, not broken
    assert detach_fake_quant(net) == 2
    assert all(torch.equal(a, b) for a, b in zip(net.eval()(x), reference))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Model:
    m = Model("pm_cnn_t", task="classify")
    m.train(data="digits", epochs=2, imgsz=16, project=str(tmp_path_factory.mktemp("runs")), name="c", workers=0)
    return m


def test_optimize_qat_fine_tunes_then_quantizes(classifier, tmp_path, capsys):
    report = classifier.optimize(tmp_path / "opt", quantize="int8", qat=True, qat_epochs=1, calib_images=16,
                                 max_drop=float("inf"), project=str(tmp_path))  # fmt: skip
    qat, quant = report["steps"]
    assert qat["step"] == "qat" and qat["layers"] >= 3 and 0 <= qat["fake_quant_metric"] <= 1
    assert quant["step"] == "quantize" and report["optimized"]["file"] == str(tmp_path / "opt" / "model.int8.onnx")
    assert (tmp_path / "opt" / "model.qat.onnx").is_file()  # the fine-tuned fp32 weights that were quantized
    run_dir = tmp_path / "classify" / "c-qat"
    assert qat["run_dir"] == str(run_dir) and (run_dir / "weights" / "best.safetensors").is_file()
    assert json.loads((tmp_path / "opt" / "report.json").read_text())["steps"][0]["step"] == "qat"
    (row,) = Model.load(tmp_path / "opt" / "model.int8.onnx").predict(Image.fromarray(np.zeros((16, 16, 3), np.uint8)))
    assert row["label"] in classifier.meta.class_names

    capsys.readouterr()
    Model("pm_cnn_t", task="classify").train(resume=run_dir, epochs=2)  # the weights say it is a QAT run
    assert f"quantization-aware run: {qat['layers']} layers fake-quantized" in capsys.readouterr().out


def test_qat_needs_int8(classifier, tmp_path):
    with pytest.raises(ConfigError, match="qat: quantization-aware fine-tuning prepares INT8"):
        classifier.optimize(tmp_path, qat=True)
