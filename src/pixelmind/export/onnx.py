"""ONNX export with dynamic batch, the meta in the model's metadata, and an onnxruntime backend.

Example:
    >>> import torch, tempfile, os
    >>> from pixelmind.tasks.base import Meta
    >>> meta = Meta(task="classify", model="m", class_names=["a", "b"], imgsz=8)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.onnx")
    >>> _ = export_onnx(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2)), meta, path)
    >>> OnnxModule(path).meta.class_names
    ['a', 'b']
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pixelmind.errors import WeightsError
from pixelmind.tasks.base import Meta

OPSET = 18


def _example(meta: Meta, example: torch.Tensor | list[torch.Tensor] | None) -> torch.Tensor:
    """A tracing input: the first parity batch when given (its channels may differ from an image's), else zeros."""
    if example is not None:
        return (example if torch.is_tensor(example) else example[0])[:2]
    return torch.zeros(2, meta.extra.get("channels", 3), meta.imgsz, meta.imgsz)


def export_onnx(model: nn.Module, meta: Meta, path: str | Path, opset: int = OPSET, dynamic_hw: bool = False,
                example: torch.Tensor | list[torch.Tensor] | None = None) -> Path:  # fmt: skip
    """Write ``model`` as ONNX with a dynamic batch axis and ``meta`` in its metadata_props.

    ``dynamic_hw`` also leaves height and width free (image-to-image models take any size; a dense
    detector's ``[B, rows, C + 4]`` output then has as many rows as the image has anchor points).
    """
    import onnx

    path = Path(path)
    model = model.eval().cpu()
    dummy = _example(meta, example)
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    with torch.no_grad():
        out = model(dummy)
    out_axes = {0: "batch", 1: "rows"} if dynamic_hw and torch.is_tensor(out) and out.dim() == 3 else axes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns about its own deprecation
        torch.onnx.export(
            model, (dummy,), str(path), input_names=["images"], output_names=["output"],
            dynamic_axes={"images": axes, "output": out_axes}, opset_version=opset, dynamo=False,
        )  # fmt: skip
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "pixelmind_meta", meta.to_json()
    onnx.save(proto, str(path))
    return path


class OnnxModule(nn.Module):
    """An onnxruntime session that behaves like the PyTorch model for predict: tensor in, tensor out."""

    #: an exported file (no PyTorch weights to train, prune or export again): see :func:`is_exported`
    exported_file = True

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"{path}: ONNX file not found")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001
            raise WeightsError(f"{path}: not a loadable ONNX model ({str(err).splitlines()[0][:160]})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if "pixelmind_meta" not in props:
            raise WeightsError(f"{path}: ONNX model without pixelmind metadata; export it with `pixelmind export`")
        self.meta = Meta.from_json(props["pixelmind_meta"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x.detach().cpu().float().numpy())})
        return torch.from_numpy(out[0])


def export_torchscript(model: nn.Module, meta: Meta, path: str | Path, example: torch.Tensor | list[torch.Tensor] | None = None) -> Path:
    """Trace ``model`` to TorchScript; ``meta`` travels in the archive's extra files."""
    path = Path(path)
    model = model.eval().cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, _example(meta, example)[:1])
        torch.jit.save(traced, str(path), _extra_files={"pixelmind_meta.json": meta.to_json()})
    return path


class TorchScriptModule(nn.Module):
    """A TorchScript archive written by :func:`export_torchscript`, with its meta."""

    exported_file = True

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        extra = {"pixelmind_meta.json": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.load warns about its deprecation
                self.module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as err:  # noqa: BLE001
            raise WeightsError(f"{path}: not a loadable TorchScript archive ({str(err).splitlines()[0][:160]})") from None
        if not extra["pixelmind_meta.json"]:
            raise WeightsError(f"{path}: TorchScript archive without pixelmind metadata")
        self.meta = Meta.from_json(extra["pixelmind_meta.json"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def is_exported(net: nn.Module) -> bool:
    """True for a network loaded from an exported file (ONNX, TorchScript, a ``.pt2`` INT8 program).

    Example:
        >>> is_exported(torch.nn.Linear(2, 2))
        False
    """
    return bool(getattr(net, "exported_file", False))


def max_abs_diff(reference: nn.Module, candidate: nn.Module, inputs: torch.Tensor | list[torch.Tensor], batch: int = 32) -> float:
    """Largest |difference| of the outputs of two models over ``inputs`` (the parity check).

    ``inputs`` is one batch tensor, or a list of batches (images of different sizes).
    """
    worst = 0.0
    chunks = inputs.split(batch) if torch.is_tensor(inputs) else inputs
    with torch.inference_mode():
        for chunk in chunks:
            a, b = reference(chunk).float(), candidate(chunk).float()
            worst = max(worst, (a - b).abs().max().item())
    return worst


def parity_error(reference: nn.Module, candidate: nn.Module, inputs: torch.Tensor | list[torch.Tensor], batch: int = 32) -> float:
    """The export parity figure: max |difference| divided by the largest |reference output| when that exceeds 1.

    Absolute for outputs within ±1 (logits, probabilities, images in [0, 1]); relative for larger ones,
    so that float32 rounding of box coordinates in pixels (a detector's ~1e-3 at 640) is not a failure.

    Example:
        >>> scale = torch.nn.Identity()
        >>> class Shift(torch.nn.Module):
        ...     def forward(self, x): return x + 0.5
        >>> parity_error(scale, Shift(), torch.full((1, 4), 100.0))
        0.005
    """
    worst = 0.0
    chunks = inputs.split(batch) if torch.is_tensor(inputs) else inputs
    with torch.inference_mode():
        for chunk in chunks:
            a, b = reference(chunk).float(), candidate(chunk).float()
            worst = max(worst, (a - b).abs().max().item() / max(1.0, a.abs().max().item()))
    return worst
