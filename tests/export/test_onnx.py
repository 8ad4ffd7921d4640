"""ONNX and TorchScript export: same numbers as PyTorch, dynamic batch, meta travels with the file."""

from __future__ import annotations

import pytest
import torch

from pixelmind.errors import WeightsError
from pixelmind.export.onnx import OnnxModule, TorchScriptModule, export_onnx, export_torchscript, max_abs_diff
from pixelmind.tasks.base import Meta
from pixelmind.tasks.classify.models import build_classifier

IMGSZ = 16
META = Meta(
    task="classify",
    model="pm_cnn_t",
    class_names=["a", "b", "c", "d"],
    imgsz=IMGSZ,
    extra={"temperature": 1.25},
)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_classifier("pm_cnn_t", num_classes=4, imgsz=IMGSZ)
    # non-trivial BatchNorm statistics, so that a wrong export cannot match by accident
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    return m.eval()


@pytest.fixture(scope="module")
def onnx_path(model, tmp_path_factory):
    return export_onnx(model, META, tmp_path_factory.mktemp("onnx") / "m.onnx")


def test_onnx_matches_pytorch_with_dynamic_batch(model, onnx_path):
    ort_model = OnnxModule(onnx_path, threads=1)
    assert ort_model.meta == META
    torch.manual_seed(1)
    for batch in (1, 5):  # exported with batch 2: other batch sizes prove the batch axis is dynamic
        x = torch.randn(batch, 3, IMGSZ, IMGSZ)
        out = ort_model(x)
        assert out.shape == (batch, 4)
        with torch.no_grad():
            ref = model(x)
        assert ref.std() > 1e-3  # the outputs carry information, not a constant
        assert max_abs_diff(model, ort_model, x) < 1e-4
    # max_abs_diff is a real check: a different model is far off
    other = build_classifier("pm_cnn_t", num_classes=4, imgsz=IMGSZ).eval()
    assert max_abs_diff(other, ort_model, torch.randn(3, 3, IMGSZ, IMGSZ)) > 1e-3


def test_max_abs_diff_chunks_the_inputs(model):
    x = torch.randn(7, 3, IMGSZ, IMGSZ)
    assert max_abs_diff(model, model, x, batch=3) == 0.0


def test_onnx_without_pixelmind_metadata(model, tmp_path):
    import warnings

    path = tmp_path / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, IMGSZ, IMGSZ),), str(path), dynamo=False)
    with pytest.raises(WeightsError, match="without pixelmind metadata") as info:
        OnnxModule(path)
    assert "plain.onnx" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"this is not a protobuf" * 3])
def test_onnx_garbage_and_missing(tmp_path, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    with pytest.raises(WeightsError) as info:
        OnnxModule(bad)
    assert "bad.onnx" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(WeightsError, match="not found"):
        OnnxModule(tmp_path / "missing.onnx")


def test_torchscript_roundtrip(model, tmp_path):
    import warnings

    path = export_torchscript(model, META, tmp_path / "m.torchscript")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading for predict prints no deprecation noise
        loaded = TorchScriptModule(path)
    assert loaded.meta == META
    x = torch.randn(3, 3, IMGSZ, IMGSZ)
    assert max_abs_diff(model, loaded, x) < 1e-5


def test_torchscript_without_meta_or_garbage(model, tmp_path):
    import warnings

    plain = tmp_path / "plain.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(model, torch.zeros(1, 3, IMGSZ, IMGSZ)), str(plain))
    with pytest.raises(WeightsError, match="without pixelmind metadata"):
        TorchScriptModule(plain)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"nope")
    with pytest.raises(WeightsError) as info:
        TorchScriptModule(junk)
    assert "junk.pt" in str(info.value) and "\n" not in str(info.value)
