"""The ``pixelmind robust`` verb (registered by :mod:`pixelmind.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _eps_list(text: str) -> list[float]:
    """``"1/255,2/255,0.03"`` -> floats."""
    from pixelmind.errors import ConfigError

    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            num, _, den = part.partition("/")
            out.append(float(num) / float(den or 1))
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"eps: {part!r} is not a number or a fraction like 8/255") from None
    return out


def robust(
    weights: Path = typer.Option(..., help="trained pixelmind weights (.safetensors)"),
    out: Path = typer.Option(..., "-o", "--out", help="folder for report.json, report.md and plots/robust.png"),
    data: Optional[str] = typer.Option(None, help="validation data (default: the training data)"),
    attack: Optional[list[str]] = typer.Option(None, help="fgsm | pgd (repeatable; default fgsm unless only --corruptions)"),
    eps: str = typer.Option("1/255,2/255,4/255,8/255", help="L-inf budgets in pixel units, comma-separated"),
    steps: int = typer.Option(10, help="PGD steps (step size 2.5 * eps / steps, random start)"),
    corruptions: bool = typer.Option(False, "--corruptions", help="noise, blur, JPEG, brightness, contrast and fog at 5 severities"),
    limit: int = typer.Option(500, help="most validation images (a seeded random subset)"),
    batch: int = typer.Option(32),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON on the last line"),
) -> None:
    """The task metric under adversarial attacks (FGSM, PGD) and common corruptions: a table, JSON and a plot."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from pixelmind.api import Model
    from pixelmind.cli import _console, _emit_json

    console, err = _console(json_out), _console(True)
    attacks = list(attack or ([] if corruptions else ["fgsm"]))
    model = Model.load(weights, device=device)
    with Progress(TextColumn("robust"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:  # fmt: skip
        task_id = bar.add_task("batches", total=None)
        report = model.robust(out, data=data, attacks=attacks, eps=_eps_list(eps), steps=steps, corruptions=corruptions,
                              limit=limit, batch=batch, seed=seed,
                              progress=lambda done, total: bar.update(task_id, completed=done, total=total))  # fmt: skip
    from rich.markdown import Markdown

    console.print(Markdown((out / "report.md").read_text()))
    console.print(f"report: {out / 'report.md'}  plot: {out / 'plots' / 'robust.png'}")
    if json_out:
        _emit_json(report)
