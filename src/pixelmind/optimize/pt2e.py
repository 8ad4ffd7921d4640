"""PyTorch's own INT8 path (``optimize --quantize int8 --backend torch``): PT2E with the X86 inductor quantizer.

The network is captured with ``torch.export`` (batch dimension dynamic, and height and width for
tasks that take any image size), annotated by torchao's ``X86InductorQuantizer`` (int8 weights per
channel, uint8 activations, static ranges), calibrated on the same training images as the onnxruntime
path, converted, and saved as a ``.pt2`` program with the weights' metadata. The heads (the layers
whose outputs feed no other convolution or linear layer) stay in float, as in the ONNX path.
:class:`Pt2Module` loads such a file; it runs through ``torch.compile`` (inductor, with freezing),
which turns the quantize/dequantize pairs into oneDNN int8 kernels.

torch 2.14 no longer ships PT2E in ``torch.ao``; it lives in the ``torchao`` package
(``pip install 'pixelmind[pt2e]'``). bench/RESULTS.md §18 compares this path with onnxruntime.

Example:
    >>> info = quantize_pt2e(net, meta, batches, "model.int8.pt2", dynamic_hw=False)  # doctest: +SKIP
    >>> Pt2Module("model.int8.pt2")(torch.rand(1, 3, 28, 28)).shape  # doctest: +SKIP
    torch.Size([1, 10])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pixelmind.errors import ConfigError, DataError, PixelmindError, WeightsError

META_FILE = "pixelmind_meta.json"


def _torchao():
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86
    except ImportError as err:
        raise ConfigError(f"backend: torch needs the torchao package ({err}); pip install 'pixelmind[pt2e]'") from None
    return prepare_pt2e, convert_pt2e, x86


def _dynamic_shapes(dynamic_hw: bool) -> tuple[dict[int, Any]]:
    auto = torch.export.Dim.AUTO
    return ({0: auto, 2: auto, 3: auto} if dynamic_hw else {0: auto},)


def _export(net: nn.Module, example: torch.Tensor, dynamic_hw: bool, name: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(net, (example,), dynamic_shapes=_dynamic_shapes(dynamic_hw))
    except Exception as err:  # noqa: BLE001 - torch.export fails in many ways on code it cannot capture
        first = str(err).strip().splitlines()
        raise PixelmindError(f"{name}: torch.export cannot capture this model ({type(err).__name__}: "
                             f"{first[0][:160] if first else ''}); use --backend onnxruntime") from None  # fmt: skip


def _drop_unused_tensors(gm: torch.fx.GraphModule) -> None:
    """Remove the fp32 weights that conversion folded into int8 constants but left on the module (1.7x the file)."""
    used = {node.target for node in gm.graph.nodes if node.op == "get_attr"}
    for name, _ in [*gm.named_parameters(), *gm.named_buffers()]:
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            delattr(gm.get_submodule(owner) if owner else gm, leaf)


def quantize_pt2e(net: nn.Module, meta: Any, batches: Sequence[np.ndarray], out_path: str | Path,
                  dynamic_hw: bool) -> dict[str, Any]:  # fmt: skip
    """Write a static INT8 PT2E program of ``net`` to ``out_path`` (``.pt2``), calibrated on ``batches``.

    Returns:
        ``{"backend", "method", "per_channel", "calibration_batches", "calibration_images", "fp32_heads"}``.

    Raises:
        DataError: no calibration batches. PixelmindError: torch.export cannot capture the model (one line).
        ConfigError: torchao is not installed.
    """
    from pixelmind.optimize.qat import head_layers

    prepare_pt2e, convert_pt2e, x86 = _torchao()
    if not batches:
        raise DataError("quantize: no calibration images (the training data gave none)")
    net = net.eval().cpu()
    example = torch.from_numpy(np.ascontiguousarray(batches[0][:2] if len(batches[0]) > 1 else np.repeat(batches[0], 2, 0)))
    heads = sorted(head_layers(net, example[:1]))
    quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
    for name in heads:
        quantizer.set_module_name_qconfig(name, None)
    captured = _export(net, example, dynamic_hw, meta.model).module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_pt2e(captured, quantizer)
        with torch.no_grad():
            for batch in batches:
                prepared(torch.from_numpy(batch))
        converted = convert_pt2e(prepared)
    _drop_unused_tensors(converted)
    program = _export(converted, example, dynamic_hw, meta.model)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(out_path), extra_files={META_FILE: meta.to_json()})
    return {"backend": "torch-pt2e-x86-inductor", "method": "minmax", "per_channel": True,
            "calibration_batches": len(batches), "calibration_images": int(sum(len(b) for b in batches)),
            "fp32_heads": heads}  # fmt: skip


class Pt2Module(nn.Module):
    """A ``.pt2`` INT8 program written by :func:`quantize_pt2e`, with its meta; runs compiled by inductor.

    The first call of each input shape compiles (seconds to a minute on a small CPU); a machine where
    inductor cannot compile (no C++ compiler) runs the program eagerly: correct, but slower than fp32.
    """

    exported_file = True

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        from pixelmind.tasks.base import Meta

        _torchao()  # its operators must be registered before the program loads
        extra = {META_FILE: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.load(str(path), extra_files=extra)
        except Exception as err:  # noqa: BLE001
            raise WeightsError(f"{path}: not a loadable .pt2 program ({str(err).strip().splitlines()[0][:160]})") from None
        if not extra[META_FILE]:
            raise WeightsError(f"{path}: .pt2 program without pixelmind metadata")
        self.meta = Meta.from_json(extra[META_FILE])
        self.module = program.module()
        self._compiled: Any = None
        self.compiled = True

    def train(self, mode: bool = True) -> Pt2Module:
        self.training = mode  # an exported program has no training mode (it refuses .train())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor

        if self.compiled:
            try:
                with inductor.patch(freezing=True), torch.no_grad():  # weights folded into the int8 kernels
                    if self._compiled is None:
                        self._compiled = torch.compile(self.module)
                    return self._compiled(x)
            except Exception:  # noqa: BLE001 - no compiler here: fall back to the eager program
                self.compiled = False
        return self.module(x)
