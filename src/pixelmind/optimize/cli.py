"""The ``pixelmind optimize`` verb (registered by :mod:`pixelmind.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def optimize(
    weights: Path = typer.Option(..., help="trained pixelmind weights (.safetensors)"),
    out: Path = typer.Option(..., "-o", "--out", help="folder for the optimized model and its report"),
    data: Optional[str] = typer.Option(None, help="calibration / fine-tuning / validation data (default: the training data)"),
    quantize: Optional[str] = typer.Option(None, help="int8: static post-training quantization (onnxruntime QDQ)"),
    prune: Optional[float] = typer.Option(None, help="share of FLOPs to remove by channel pruning (0.5), then fine-tune"),
    distill: bool = typer.Option(False, "--distill", help="fine-tune the pruned model with the original as teacher"),
    epochs: Optional[int] = typer.Option(None, help="fine-tuning epochs after pruning"),
    qat: bool = typer.Option(False, "--qat", help="quantization-aware fine-tuning before INT8 (when PTQ loses too much)"),
    qat_epochs: Optional[int] = typer.Option(None, help="quantization-aware fine-tuning epochs (default: a quarter of the original's)"),
    backend: str = typer.Option("onnxruntime", help="onnxruntime (.int8.onnx) | torch (PT2E .int8.pt2, needs torchao)"),
    calibration: str = typer.Option("minmax", help="INT8 range calibration: minmax | entropy | percentile"),
    calib_images: int = typer.Option(128, help="training images to calibrate on"),
    max_drop: Optional[float] = typer.Option(None, help="largest allowed drop of the task metric (default 0.01 = 1 point; 0.3 dB PSNR)"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON on the last line"),
) -> None:
    """Quantize (INT8) and/or prune a trained model; report size, FLOPs, latency and the metric before and after."""
    from pixelmind.api import Model
    from pixelmind.cli import _console, _emit_json

    console = _console(json_out)
    report = Model.load(weights).optimize(
        out, data=data, quantize=quantize, prune=prune, distill=distill, epochs=epochs, qat=qat, qat_epochs=qat_epochs,
        backend=backend, calibration=calibration, calib_images=calib_images, max_drop=max_drop, console=console,
    )  # fmt: skip
    if json_out:
        _emit_json(report)
