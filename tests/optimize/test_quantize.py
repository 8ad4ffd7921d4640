"""INT8 quantization of ONNX graphs: accuracy against fp32, the fp32 tail, metadata and bad input."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from pixelmind.errors import ConfigError, DataError, PixelmindError
from pixelmind.export.onnx import OnnxModule, export_onnx
from pixelmind.optimize.quantize import calibration_batches, quantize_onnx, tail_nodes
from pixelmind.tasks.base import Meta

META = Meta(task="classify", model="tiny", class_names=["a", "b", "c"], imgsz=16)


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3), nn.Softmax(1),
    )  # fmt: skip
    return net.eval()


def _images(n: int = 64) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 16, 16)).astype(np.float32)


def test_int8_model_stays_close_to_fp32_and_keeps_the_meta(tmp_path):
    fp32 = export_onnx(_net(), META, tmp_path / "m.onnx")
    x = _images()
    info = quantize_onnx(fp32, tmp_path / "m.int8.onnx", calibration_batches(list(x), batch=16))
    assert info["calibration_images"] == 64 and info["quantized_nodes"] >= 3
    int8 = OnnxModule(tmp_path / "m.int8.onnx")
    assert int8.meta == META  # predict/val/serve read the meta from the file, as for fp32 exports
    with torch.inference_mode():
        ref, got = _net()(torch.from_numpy(x)), int8(torch.from_numpy(x))
    assert (ref - got).abs().max() < 0.05  # softmax probabilities
    assert (ref.argmax(1) == got.argmax(1)).float().mean() >= 0.9
    graph = onnx.load(str(tmp_path / "m.int8.onnx")).graph
    kinds = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= kinds
    # the head (the last Gemm) and the softmax after it are the fp32 tail: no dequantized input feeds the softmax
    dq_out = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    (softmax,) = [n for n in graph.node if n.op_type == "Softmax"]
    assert not set(softmax.input) & dq_out


def test_tail_nodes_are_the_head_and_what_follows_it(tmp_path):
    graph = onnx.load(str(export_onnx(_net(), META, tmp_path / "m.onnx"))).graph
    tail = {n.op_type for n in graph.node if n.name in set(tail_nodes(graph))}
    assert tail == {"Gemm", "Softmax"}


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_other_calibration_methods_run(tmp_path, method):
    fp32 = export_onnx(_net(), META, tmp_path / "m.onnx")
    info = quantize_onnx(fp32, tmp_path / "q.onnx", calibration_batches(list(_images(32))), method=method)
    assert info["method"] == method and (tmp_path / "q.onnx").stat().st_size < fp32.stat().st_size


def test_bad_requests_give_one_line_errors(tmp_path):
    fp32 = export_onnx(_net(), META, tmp_path / "m.onnx")
    with pytest.raises(DataError, match="no calibration images"):
        quantize_onnx(fp32, tmp_path / "q.onnx", [])
    with pytest.raises(ConfigError, match="calibration: must be one of minmax, entropy, percentile"):
        quantize_onnx(fp32, tmp_path / "q.onnx", calibration_batches(list(_images(4))), method="mse")
    plain = export_onnx(nn.Sequential(nn.Flatten(), nn.Softmax(1)), META, tmp_path / "plain.onnx")
    with pytest.raises(PixelmindError, match="nothing to quantize: no Conv/ConvTranspose/MatMul/Gemm") as err:
        quantize_onnx(plain, tmp_path / "q.onnx", calibration_batches(list(_images(4))))
    assert "\n" not in str(err.value)


def test_calibration_batches_group_by_shape():
    images = [torch.zeros(3, 8, 8)] * 5 + [np.zeros((3, 4, 4))]
    assert [b.shape for b in calibration_batches(images, batch=2)] == [(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8), (1, 3, 4, 4)]
