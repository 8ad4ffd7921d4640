"""The ``check`` and ``convert`` verbs (registered by :mod:`pixelmind.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def check(
    task: str = typer.Option("classify"),
    data: str = typer.Option(..., help="data set to check"),
    out: Optional[Path] = typer.Option(None, help="folder for the report (default runs/check/<name>)"),
    weights: Optional[Path] = typer.Option(None, help="classify/embed: also find near-duplicates with these "
                                                      "weights' embeddings (embed or classify weights)"),
    near: float = typer.Option(0.97, min=0, max=1, help="with --weights: the cosine similarity that makes two images near-duplicates"),
    label_errors: bool = typer.Option(False, "--label-errors", help="rank the likely wrong labels (cleanlab) from --weights' "
                                                                    "or --folds models' predictions"),
    folds: int = typer.Option(0, min=0, help="with --label-errors: train K quick models for out-of-fold predictions"),
    epochs: Optional[int] = typer.Option(None, min=1, help="with --folds: epochs of each fold model (default: the task's recipe)"),
    device: str = typer.Option("cpu"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Check a data set: counts per class, image sizes, corrupt files, duplicates and train/val leakage.

    segment: pixel share per class (plot), images without masks, mask values outside the class map.
    With --weights (classify, embed): near-duplicate images and near-duplicate train/val leakage.
    """
    from pixelmind.cli import _console, _emit_json
    from pixelmind.data.check import check_classification, check_segmentation
    from pixelmind.data.check_detect import check_detection
    from pixelmind.errors import ConfigError, PixelmindError

    if label_errors:
        return _label_errors(task, data, weights, folds, epochs, out, device, json_out)
    checks = {"classify": check_classification, "embed": check_classification, "detect": check_detection,
              "segment": check_segmentation}  # fmt: skip
    if task not in checks:
        from pixelmind.tasks import get_task

        get_task(task)
        raise PixelmindError(f"check: --task {task} has no checks yet")
    options = {}
    if weights is not None:
        if checks[task] is not check_classification:
            raise ConfigError(f"weights: near-duplicate finding is for classify and embed data (not {task})")
        from pixelmind.api import Model
        from pixelmind.similarity.extract import FeatureExtractor

        options = {"embedder": FeatureExtractor(Model.load(weights, device=device)), "near": near}
    report = checks[task](data, out, **options)
    console = _console(json_out)
    console.print(report["text"], markup=False)
    if json_out:
        _emit_json({k: v for k, v in report.items() if k != "text"})


def _label_errors(task, data, weights, folds, epochs, out, device, json_out) -> None:
    from pixelmind.cli import _console, _emit_json
    from pixelmind.label.errors import find_label_errors

    console = _console(json_out)
    report = find_label_errors(data, task, weights, folds, out, fold_config={"epochs": epochs} if epochs else None,
                               device=device, log=lambda line: console.print(line, markup=False))  # fmt: skip
    console.print(f"{report['issues']} of {report['images']} images have a likely label error "
                  f"({report['source']}; {report['unreadable']} unreadable)", markup=False)  # fmt: skip
    for rank, r in enumerate([r for r in report["rows"] if r["issue"]][:10], start=1):
        console.print(f"{rank:>4}  {r['image']}  {r['issue']}: given {r['given']}, model {r['suggested']} "
                      f"(quality {r['quality']:.3f})", markup=False)  # fmt: skip
    console.print(f"report: {Path(report['out']) / 'label_errors.md'}, every image ranked: {Path(report['out']) / 'label_errors.csv'}", markup=False)
    if json_out:
        _emit_json({k: v for k, v in report.items() if k != "rows"})


def convert(
    data: str = typer.Option(..., help="detection data in any layout pixelmind reads (COCO, YOLO, VOC)"),
    to: str = typer.Option(..., "--to", help="coco | yolo | voc"),
    out: Path = typer.Option(..., "-o", "--out", help="new folder (must not exist or be empty)"),
    link: bool = typer.Option(False, "--link", help="symlink the images instead of copying them"),
    val_fraction: float = typer.Option(0.2, help="held out when the data has no val split"),
    seed: int = typer.Option(0),
) -> None:
    """Write detection labels in another format (train and val splits kept; crowd/difficult boxes not in YOLO)."""
    from pixelmind.data.boxes import find_detection_data, write_detection_data
    from pixelmind.errors import ConfigError

    if to not in ("coco", "yolo", "voc"):
        raise ConfigError(f"to: must be coco, yolo or voc (got {to!r})")
    found = find_detection_data(data, val_fraction, seed)
    root = write_detection_data(found, out, to, copy_images=not link)  # type: ignore[arg-type]
    for w in found.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"{found.layout} -> {to}: {len(found.train)} train / {len(found.val)} val images, "
               f"{len(found.class_names)} classes, written to {root}")  # fmt: skip


COMMANDS = [check, convert]
