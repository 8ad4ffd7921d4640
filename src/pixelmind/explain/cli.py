"""The ``pixelmind explain`` verb (registered by :mod:`pixelmind.cli`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer


def explain(
    weights: Path = typer.Option(..., help="trained pixelmind weights (.safetensors)"),
    source: str = typer.Option(..., help="an image, a folder or a glob"),
    out: Path = typer.Option(..., "-o", "--out", help="folder for the overlays (.png), raw maps (.npy) and report.json"),
    method: Optional[str] = typer.Option(None, help="gradcam | gradcam++ | eigencam | scorecam | rollout | ig | gradient "
                                                    "(enhance: difference; compress: bits); default: the task's first"),
    class_: Optional[list[str]] = typer.Option(None, "--class", help="explain this class (name or index; repeatable); "
                                                                     "default: the predicted ones"),
    conf: Optional[float] = typer.Option(None, help="detect: the least box score explained (default 0.25)"),
    faithfulness: bool = typer.Option(True, "--faithfulness/--no-faithfulness",
                                      help="deletion/insertion AUC of every map beside random maps'"),
    device: str = typer.Option("cpu"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON on the last line"),
) -> None:
    """Heat maps of what a model looked at, per class, box, region, change or bit map, with a faithfulness score."""
    from pixelmind.api import Model
    from pixelmind.cli import _console, _emit_json
    from pixelmind.engine.console import PredictProgress
    from pixelmind.errors import DataError
    from pixelmind.explain.pipeline import explain_iter, summarize

    console = _console(json_out)
    err = _console(True)
    model = Model.load(weights, device=device)
    options = {"conf": conf} if conf is not None else {}
    records: list[dict[str, Any]] = []
    with PredictProgress(err, description="explain") as bar:
        for rec in explain_iter(model, source, method, class_, out, faithfulness, **options):
            for row in rec.get("explanations", []):
                row.pop("map")  # saved as .npy; the report keeps the numbers
            records.append(rec)
            bar.update("error" in rec)
            if "error" in rec:
                err.print(f"skipped: {rec['error']}", markup=False)
    summary = summarize(records)
    if not summary["images"]:
        raise DataError(f"{source}: no readable image" + (f" ({summary['errors']} unreadable)" if summary["errors"] else ""))
    (out / "report.json").write_text(json.dumps({"summary": summary, "images": records}, indent=1, default=float))
    _print_table(console, records, summary)
    console.print(f"overlays and maps: {out}")
    if json_out:
        _emit_json(summary)


def _print_table(console, records: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    from rich.table import Table

    rows = [(rec["source"], row) for rec in records for row in rec.get("explanations", [])]
    if not rows:
        console.print("nothing to explain: no class, box or region was predicted (detect: lower --conf)")
        return
    faithful = "deletion_auc" in rows[0][1]
    table = Table(title=f"explain ({records[0].get('method', '')})")
    for col in ("image", "target", *(("deletion AUC (random)", "insertion AUC (random)") if faithful else ())):
        table.add_column(col)
    for source, row in rows[:50]:
        cells = [Path(source).name, row["target"]]
        if faithful:
            cells += [f"{row['deletion_auc']:.3f} ({row['random_deletion_auc']:.3f})",
                      f"{row['insertion_auc']:.3f} ({row['random_insertion_auc']:.3f})"]  # fmt: skip
        table.add_row(*cells)
    console.print(table)
    if len(rows) > 50:
        console.print(f"... {len(rows) - 50} more in report.json")
    if faithful:
        console.print(f"mean over {summary['targets']} maps: deletion {summary['deletion_auc']:.3f} vs random "
                      f"{summary['random_deletion_auc']:.3f} (lower is better), insertion {summary['insertion_auc']:.3f} "
                      f"vs random {summary['random_insertion_auc']:.3f} (higher is better)")  # fmt: skip
