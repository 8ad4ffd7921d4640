"""``optimize --backend torch``: the PT2E INT8 program (torchao's X86 inductor quantizer) end to end, and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pixelmind.api import Model
from pixelmind.errors import ConfigError, WeightsError

pytest.importorskip("torchao", reason="the torch INT8 backend needs torchao (pip install 'pixelmind[pt2e]')")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Model:
    m = Model("pm_cnn_t", task="classify")
    m.train(data="digits", epochs=2, imgsz=16, project=str(tmp_path_factory.mktemp("runs")), name="c", workers=0)
    return m


@pytest.mark.slow
def test_torch_backend_writes_a_pt2_program_that_predicts_and_validates(classifier, tmp_path):
    report = classifier.optimize(tmp_path, quantize="int8", backend="torch", calib_images=16, max_drop=float("inf"))
    (step,) = report["steps"]
    assert step["format"] == "pt2e-int8" and step["fp32_heads"] == ["head.3"] and step["calibration_images"] == 16
    path = tmp_path / "model.int8.pt2"
    assert report["optimized"]["file"] == str(path)
    int8 = Model.load(path)
    assert int8.meta.class_names == classifier.meta.class_names
    assert abs(report["metric_drop"]) < 0.05  # INT8 of a model this small: a few images may flip
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        fp32, q = classifier.net.eval()(x), int8.net(x)
    assert q.shape == fp32.shape and (q - fp32).abs().max() < 0.5 * fp32.abs().max()
    (row,) = int8.predict(Image.fromarray(np.zeros((16, 16, 3), np.uint8)))
    assert row["label"] in classifier.meta.class_names
    assert report["original"]["latency_b1_ms"] > 0 and report["optimized"]["latency_b16_ms"] > 0


def test_bad_pt2_files_and_options_give_one_line_errors(classifier, tmp_path):
    broken = tmp_path / "broken.pt2"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(WeightsError, match="broken.pt2: not a loadable .pt2 program") as err:
        Model.load(broken)
    assert "\n" not in str(err.value)
    plain = tmp_path / "plain.pt2"  # a real program, but not one of pixelmind's
    torch.export.save(torch.export.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),)), str(plain))
    with pytest.raises(WeightsError, match="plain.pt2: .pt2 program without pixelmind metadata"):
        Model.load(plain)
    with pytest.raises(ConfigError, match="calibration: the torch backend calibrates minmax only"):
        classifier.optimize(tmp_path, quantize="int8", backend="torch", calibration="entropy")
    with pytest.raises(ConfigError, match="backend: must be onnxruntime or torch"):
        classifier.optimize(tmp_path, quantize="int8", backend="tensorrt")
