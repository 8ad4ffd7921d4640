"""The ``pixelmind export`` verb (registered by :mod:`pixelmind.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def export(
    weights: Path = typer.Option(..., help="pixelmind .safetensors weights"),
    format: str = typer.Option("onnx", help="onnx | torchscript"),
    out: Optional[Path] = typer.Option(None, help="output file (default: beside the weights)"),
    data: Optional[str] = typer.Option(None, help="images for the parity check (default: the training data)"),
    tolerance: float = typer.Option(1e-3, help="largest allowed |output difference| against PyTorch (relative where outputs exceed 1)"),
) -> None:
    """Export weights to ONNX or TorchScript and check parity against PyTorch."""
    from pixelmind.api import Model

    model = Model.load(weights)
    model.export(format, out, data=data, tolerance=tolerance)
    for path, diff in model.exported:
        typer.echo(f"exported {path} ({path.stat().st_size / 1e6:.2f} MB); parity: max |difference| {diff:.3g} <= {tolerance:g}")
