"""The optimize report: ``report.json``, ``report.md`` and ``plots/optimize.png`` (original vs optimized).

Example:
    >>> row = {"file": "m.onnx", "file_mb": 1.0, "params": 10, "flops": 100, "latency_b1_ms": 2.0,
    ...        "latency_b16_ms": 8.0, "metrics": {"top1": 0.9}}
    >>> r = {"task": "classify", "model": "m", "weights": "w", "data": "d", "steps": [], "input_shape": [3, 8, 8],
    ...      "primary_metric": "top1", "original": row, "optimized": {**row, "latency_b1_ms": 1.0},
    ...      "speedup_b1": 2.0, "speedup_b16": 1.0, "size_ratio": 1.0, "metric_drop": 0.0, "max_drop": 0.01,
    ...      "passed": True, "wall_s": 1.0}
    >>> "| latency batch 1 (ms) | 2.00 | 1.00 | 2.00x faster |" in markdown(r)
    True
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ROWS = (  # (label, key, format, higher is better)
    ("parameters", "params", "{:,.0f}", False),
    ("FLOPs per image", "flops", "{:,.0f}", False),
    ("ONNX file (MB)", "file_mb", "{:.3f}", False),
    ("latency batch 1 (ms)", "latency_b1_ms", "{:.2f}", False),
    ("latency batch 16 (ms)", "latency_b16_ms", "{:.2f}", False),
)


def _ratio(label: str, a: float, b: float) -> str:
    if not a or not b:
        return ""
    if "latency" in label:
        return f"{a / b:.2f}x faster"
    return f"{b / a:.2f}x"


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown page: what was done, the comparison table and the gate's verdict."""
    orig, opt, key = report["original"], report["optimized"], report["primary_metric"]
    lines = [f"# optimize: {report['task']} {report['model']}", "",
             f"weights `{report['weights']}`, data `{report['data']}`, latency input {'x'.join(map(str, report['input_shape']))} "
             "(onnxruntime, CPU provider, median)", ""]  # fmt: skip
    for step in report["steps"]:
        lines.append("- " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in step.items()))
    lines += ["", f"| | original (fp32) `{Path(orig['file']).name}` | optimized `{Path(opt['file']).name}` | ratio |",
              "|---|---|---|---|"]  # fmt: skip
    for label, k, fmt, _ in ROWS:
        if k in orig and k in opt:
            lines.append(f"| {label} | {fmt.format(orig[k])} | {fmt.format(opt[k])} | {_ratio(label, orig[k], opt[k])} |")
    for m in orig["metrics"]:
        if m in opt["metrics"] and m not in ("samples", "skipped"):
            a, b = orig["metrics"][m], opt["metrics"][m]
            lines.append(f"| val {m}{' (gate)' if m == key else ''} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    verdict = "passed" if report["passed"] else "FAILED"
    lines += ["", f"Gate {verdict}: {key} drop {report['metric_drop']:.4g} (allowed {report['max_drop']:g}). "
              f"Whole run {report['wall_s']:.0f} s.", ""]  # fmt: skip
    return "\n".join(lines)


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Four bar pairs, original vs optimized: latency at batch 1 and 16, file size and the gate metric."""
    from pixelmind.viz.plots import _pyplot, _save

    plt = _pyplot()
    orig, opt, key = report["original"], report["optimized"], report["primary_metric"]
    panels = [("latency batch 1 (ms)", orig["latency_b1_ms"], opt["latency_b1_ms"]),
              ("latency batch 16 (ms)", orig["latency_b16_ms"], opt["latency_b16_ms"]),
              ("ONNX file (MB)", orig["file_mb"], opt["file_mb"]),
              (f"val {key}", orig["metrics"].get(key, math.nan), opt["metrics"].get(key, math.nan))]  # fmt: skip
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    for ax, (title, a, b) in zip(axes, panels):
        bars = ax.bar(["original", "optimized"], [a, b], color=["#8c8c8c", "#2a7ab9"])
        ax.bar_label(bars, fmt="%.3g")
        top = max((v for v in (a, b) if math.isfinite(v)), default=0.0)
        if top > 0:
            ax.set_ylim(0, top * 1.15)  # room for the labels under the title
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{report['task']} {report['model']}: " + ", ".join(s["step"] for s in report["steps"]))
    return _save(fig, path)


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``report.json``, ``report.md`` and ``plots/optimize.png``; returns their paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / "report.json", out_dir / "report.md"]
    paths[0].write_text(json.dumps(report, indent=2, default=float))
    paths[1].write_text(markdown(report))
    paths.append(plot_report(report, out_dir / "plots" / "optimize.png"))
    return paths
