"""report.md: what a run used, what it skipped, where it ended, with its plots inlined."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _table(rows: list[list[Any]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def write_report(
    run_dir: Path,
    title: str,
    config: dict[str, Any],
    data_summary: dict[str, Any],
    skipped: dict[str, str],
    metrics: dict[str, float],
    details: dict[str, Any],
    plots: list[Path],
) -> Path:
    parts = [f"# {title}", ""]
    parts += ["## Final metrics (best weights, validation set)", "", _table([[k, _fmt(v)] for k, v in metrics.items()], ["metric", "value"]), ""]
    parts += ["## Data", ""]
    per_class = data_summary.get("per_class")
    parts += [f"- {k}: {v}" for k, v in data_summary.items() if k != "per_class"]
    parts.append(f"- skipped files: {len(skipped)}")
    parts.append("")
    if per_class:
        rows = [[n, c.get("train", ""), c.get("val", "")] for n, c in list(per_class.items())[:200]]
        parts += [_table(rows, ["class", "train", "val"]), ""]
    if skipped:
        parts += ["### Skipped files", ""] + [f"- `{p}`: {why}" for p, why in list(skipped.items())[:200]] + [""]
    if details.get("per_class"):
        rows = [[n, *(_fmt(v) for v in d.values())] for n, d in list(details["per_class"].items())[:200]]
        first = next(iter(details["per_class"].values()))
        parts += ["## Per class", "", _table(rows, ["class", *first.keys()]), ""]
    notes = {k: v for k, v in details.items() if isinstance(v, str)}
    if notes:
        parts += ["## Evaluation", ""] + [f"- {k}: {v}" for k, v in notes.items()] + [""]
    if details.get("per_image"):
        rows = details["per_image"][:200]
        parts += ["## Per image (validation order)", "", _table([[i, *(_fmt(v) for v in r.values())] for i, r in enumerate(rows)],
                                                              ["image", *rows[0].keys()]), ""]  # fmt: skip
    if plots:
        parts += ["## Plots", ""] + [f"![{p.stem}]({p.relative_to(run_dir).as_posix()})" for p in plots] + [""]
    parts += ["## Config", "", "```yaml"]
    parts += [f"{k}: {v}" for k, v in config.items()] + ["```", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(parts))
    return path
