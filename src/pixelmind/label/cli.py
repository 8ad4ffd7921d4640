"""The ``label``, ``select`` and ``review`` verbs (registered by :mod:`pixelmind.cli`); ``check --label-errors`` is in data/cli.py."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

import typer


def _stream(weights: Path, device: str, description: str, work):
    """Load the weights and run ``work(model, on_image)`` under a progress bar on stderr."""
    from pixelmind.api import Model
    from pixelmind.cli import _console
    from pixelmind.engine.console import PredictProgress

    model = Model.load(weights, device=device)
    with PredictProgress(_console(True), description=description) as bar:
        return work(model, lambda rec: bar.update("error" in rec))


def label(
    weights: Path = typer.Option(..., help="a trained classify, detect or segment model"),
    source: str = typer.Option(..., help="the images to label: a file, folder, glob or .txt list (e.g. select's)"),
    to: Optional[str] = typer.Option(None, "--to", help="classify: folder; detect: coco | yolo | voc; segment: folder | coco"),
    out: Path = typer.Option(..., "-o", "--out", help="the data set to write; labels already there are kept"),
    conf: float = typer.Option(0.5, min=0, max=1, help="the least score a label is written with"),
    review_below: float = typer.Option(0.8, min=0, max=1, help="images with a label under this score go on the review list"),
    val_fraction: float = typer.Option(0.2, min=0, max=0.9, help="share of the new images put in the val split"),
    device: str = typer.Option("cpu"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Pre-label images with a trained model, as a data set `pixelmind train` reads (scores in prelabels.jsonl)."""
    from pixelmind.cli import _console, _emit_json
    from pixelmind.label.prelabel import prelabel

    console = _console(json_out)
    summary = _stream(weights, device, "label", lambda model, on_image: prelabel(
        model, source, out, to, conf, review_below, val_fraction, on_image=on_image))
    console.print(f"{summary['images']} images: {summary['added']} labelled into {out} ({summary['format']}), "
                  f"{summary['kept']} already labelled kept, {summary['unlabelled']} under conf {conf}, "
                  f"{summary['unreadable']} unreadable", markup=False)  # fmt: skip
    console.print("per class: " + ", ".join(f"{k} {v}" for k, v in summary["per_class"].items()), markup=False)
    console.print(f"{len(summary['low_confidence'])} to review (a label under {review_below}): {out / 'summary.json'}", markup=False)
    if json_out:
        _emit_json({k: v for k, v in summary.items() if k != "low_confidence"} | {"low_confidence": len(summary["low_confidence"])})


def select(
    weights: Path = typer.Option(..., help="the current model (classify, detect or segment)"),
    pool: str = typer.Option(..., help="the unlabelled images: a folder, glob or .txt list"),
    n: int = typer.Option(100, min=1, help="how many images to pick"),
    strategy: str = typer.Option("entropy", help="entropy | margin | coreset | random"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="folder for selected.csv and selected.txt (default runs/select)"),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Pick the images to label next: the most uncertain, kept diverse, each with its reason."""
    from pixelmind.cli import _console, _emit_json
    from pixelmind.label.select import select_images

    console = _console(json_out)
    rows = _stream(weights, device, "select", lambda model, on_image: select_images(model, pool, n, strategy, seed, on_image))
    out = out or Path("runs") / "select"
    out.mkdir(parents=True, exist_ok=True)
    with (out / "selected.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["rank", "image", "score", "reason"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "selected.txt").write_text("".join(f"{Path(r['image']).resolve()}\n" for r in rows))
    for r in rows[:10]:
        console.print(f"{r['rank']:>4}  {r['image']}  {r['reason']}", markup=False)
    console.print(f"{len(rows)} selected ({strategy}): {out / 'selected.csv'}; label them with "
                  f"`pixelmind label --source {out / 'selected.txt'}`", markup=False)  # fmt: skip
    if json_out:
        _emit_json({"selected": len(rows), "strategy": strategy, "csv": str(out / "selected.csv"), "txt": str(out / "selected.txt")})


def review(
    folder: Path = typer.Argument(..., help="what `pixelmind label -o` or `pixelmind check --label-errors` wrote"),
    weights: Optional[list[Path]] = typer.Option(None, help="models to serve beside the review (the Predict tab); repeatable"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000),
    api_key: Optional[str] = typer.Option(None, envvar="PIXELMIND_API_KEY", help="require this key (X-API-Key or Bearer)"),
) -> None:
    """Review pre-labels or suspected label errors in the web page, one image at a time; decisions change the label files."""
    import uvicorn

    from pixelmind.label.review import ReviewQueue
    from pixelmind.serve.app import create_app
    from pixelmind.serve.settings import ServeSettings

    queue = ReviewQueue(folder)  # a wrong folder fails here, in one line, before the server starts
    summary = queue.summary()
    app = create_app(list(weights or []), ServeSettings(review=folder, api_key=api_key or None))
    typer.echo(f"{summary['total']} images to review ({summary['kind']}, {summary['task']}), {summary['decided']} decided")
    typer.echo(f"page: http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/#review")
    uvicorn.run(app, host=host, port=port, log_level="warning")


COMMANDS = [label, select, review]
