"""``Model.export`` / ``pixelmind export``: every network of a task exported and checked for parity on real images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pixelmind.errors import ConfigError, PixelmindError


def export_model(model: Any, format: str = "onnx", path: str | Path | None = None, data: str | None = None,
                 tolerance: float = 1e-3, samples: int = 64) -> list[tuple[Path, float]]:  # fmt: skip
    """Export ``model`` (a :class:`pixelmind.api.Model`) to ``onnx`` or ``torchscript``; ``[(file, parity error)]``
    per exported network (compress: encoder and decoder), raising when one is above ``tolerance``."""
    from pixelmind.export.onnx import (
        OnnxModule,
        TorchScriptModule,
        export_onnx,
        export_torchscript,
        is_exported,
        parity_error,
    )

    net, meta, task = model._require_net(), model.meta, model.task
    if is_exported(net):
        raise PixelmindError("export needs PyTorch weights (.safetensors), not an exported model")
    if format not in ("onnx", "torchscript"):
        raise ConfigError(f"format: must be onnx or torchscript (got {format!r})")
    base = model.weights_path.with_suffix("") if model.weights_path else Path(meta.model)
    path = Path(path) if path else base.with_suffix(".onnx" if format == "onnx" else ".torchscript")
    net = net.eval().cpu()
    out = []
    for part, module, inputs in task.export_parts(net, parity_inputs(model, data, samples)):
        part_path = path.with_suffix(f".{part}{path.suffix}") if part else path
        if format == "onnx":
            export_onnx(module, meta, part_path, dynamic_hw=task.export_any_size(meta), example=inputs)
            exported: torch.nn.Module = OnnxModule(part_path)
        else:
            export_torchscript(module, meta, part_path, example=inputs)
            exported = TorchScriptModule(part_path)
        diff = parity_error(module, exported, inputs)
        if diff > tolerance:
            raise PixelmindError(f"{part_path}: parity check failed: max |difference| (relative above 1) {diff:.3g} > tolerance {tolerance:g}")
        out.append((part_path, diff))
    return out


def parity_inputs(model: Any, data: str | None, samples: int) -> torch.Tensor | list[torch.Tensor]:
    """Real validation images when the training data is reachable, else seeded noise.

    Images of different sizes (whole images for image-to-image tasks) come as a list of batches of one.
    """
    from pixelmind.config import make_config

    meta = model.meta
    try:
        cfg = make_config({"task": meta.task, "data": data or model.config.get("data", ""), "imgsz": meta.imgsz,
                           "seed": meta.extra.get("seed", 0), "augment": "none", "batch": 1})  # fmt: skip
        val = model.task.load_data(cfg, meta).val
        xs = []
        for i in range(min(samples, len(val))):
            item = val[i]
            if isinstance(item, tuple):
                xs.append(item[0])
            elif torch.is_tensor(item):  # image-only samples (compress)
                xs.append(item)
        if xs and len({x.shape for x in xs}) == 1:
            return torch.stack(xs)
        if xs:
            return [x[None] for x in xs[:8]]
    except PixelmindError:
        pass
    g = torch.Generator().manual_seed(0)
    return torch.rand(8, meta.extra.get("channels", 3), meta.imgsz, meta.imgsz, generator=g)
