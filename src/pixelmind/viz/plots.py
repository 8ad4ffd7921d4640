"""Plots written into run directories; matplotlib with the non-interactive Agg backend.

Example:
    >>> import tempfile, numpy as np, os
    >>> p = plot_confusion_matrix(np.eye(2, dtype=int), ["a", "b"], os.path.join(tempfile.mkdtemp(), "cm.png"))
    >>> p.name
    'cm.png'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def plot_curves(rows: Sequence[dict[str, float]], path: Path) -> Path:
    """One panel per column of results.csv (losses, metrics, lr) against the epoch."""
    plt = _pyplot()
    keys = [k for k in rows[0] if k != "epoch" and not k.startswith("time")]
    cols = min(3, len(keys))
    nrows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.8 * nrows), squeeze=False)
    epochs = [r["epoch"] for r in rows]
    for ax, key in zip(axes.flat, keys):
        ax.plot(epochs, [r.get(key, np.nan) for r in rows], marker="o", ms=3)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    return _save(fig, path)


def plot_confusion_matrix(cm: np.ndarray, names: Sequence[str], path: Path, title: str = "confusion matrix (row-normalised)") -> Path:
    """Row-normalised confusion matrix (true rows, predicted columns) with counts."""
    plt = _pyplot()
    n = len(names)
    size = min(max(4.0, 0.45 * n + 2), 16)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046)
    if n <= 30:
        ax.set_xticks(range(n), names, rotation=90)
        ax.set_yticks(range(n), names)
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def plot_reliability(probs, targets, path: Path, n_bins: int = 15) -> Path:
    """Reliability diagram: accuracy against confidence per bin, with the gap to the diagonal."""
    plt = _pyplot()
    conf, pred = probs.max(1)
    correct = (pred == targets).float()
    edges = np.linspace(0, 1, n_bins + 1)
    accs, confs, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        counts.append(int(m.sum()))
        accs.append(float(correct[m].mean()) if m.any() else 0.0)
        confs.append(float(conf[m].mean()) if m.any() else (lo + hi) / 2)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    centers = (edges[:-1] + edges[1:]) / 2
    ax.bar(centers, accs, width=1 / n_bins, edgecolor="k", alpha=0.8, label="accuracy")
    ax.bar(centers, np.array(confs) - np.array(accs), bottom=accs, width=1 / n_bins, color="r", alpha=0.3, label="gap")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability diagram")
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_histogram(values: Sequence[float], path: Path, title: str, xlabel: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(values, bins=30)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _save(fig, path)


def plot_per_image_psnr(model: Sequence[float], baseline: Sequence[float], path: Path, baseline_name: str) -> Path:
    """Grouped bars: the model's and the baseline's PSNR for each validation image."""
    plt = _pyplot()
    n = len(model)
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * n + 2), 3.4))
    x = np.arange(n)
    ax.bar(x - 0.2, baseline, 0.4, label=f"{baseline_name} (mean {np.mean(baseline):.2f} dB)", color="#9aa5b1")
    ax.bar(x + 0.2, model, 0.4, label=f"model (mean {np.mean(model):.2f} dB)", color="#2f6fde")
    lo = min(min(model), min(baseline))
    ax.set_ylim(max(0.0, lo - 3), max(max(model), max(baseline)) + 1.5)
    ax.set_xticks(x, [str(i) for i in range(n)])
    ax.set_xlabel("validation image")
    ax.set_ylabel("PSNR (dB)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_enhance_examples(examples, path: Path, scale: int, crop: int = 160) -> Path:
    """Rows of input | baseline | model | ground truth, centre crops of ``crop`` output pixels."""
    plt = _pyplot()
    titles = ("input" + (f" (x{scale} nearest)" if scale > 1 else ""), "bicubic" if scale > 1 else "input", "model", "ground truth")
    fig, axes = plt.subplots(len(examples), 4, figsize=(10, 2.6 * len(examples)), squeeze=False)
    for row, (lq, base, out, ref) in zip(axes, examples):
        h, w = ref.shape[-2:]
        c = min(crop, h, w)
        top, left = (h - c) // 2, (w - c) // 2
        up = lq.clamp(0, 1).repeat_interleave(scale, -2).repeat_interleave(scale, -1) if scale > 1 else lq.clamp(0, 1)
        for ax, img, title in zip(row, (up, base, out, ref), titles):
            patch = img[..., top : top + c, left : left + c]
            arr = patch.permute(1, 2, 0).numpy()
            ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    return _save(fig, path)


def plot_rate_distortion(
    curves: dict[str, list[tuple[float, float]]], path: Path, metric: str = "PSNR (dB)", title: str | None = None
) -> Path:
    """Rate-distortion curves: one line with markers per codec, bits per pixel on x, ``metric`` on y.

    Each curve is a list of ``(bpp, value)`` points, drawn in order of increasing bpp.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, points in curves.items():
        pts = sorted(points)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, label=name)
    ax.set_xlabel("bits per pixel (bpp)")
    ax.set_ylabel(metric)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_per_class_bars(
    values: Sequence[float], names: Sequence[str], path: Path, ylabel: str = "score", title: str | None = None
) -> Path:
    """One bar per class (e.g. per-class IoU or AP); NaN values (class absent) are marked "n/a".

    Example:
        >>> import tempfile, os
        >>> plot_per_class_bars([0.5, float("nan")], ["a", "b"], os.path.join(tempfile.mkdtemp(), "iou.png")).name
        'iou.png'
    """
    plt = _pyplot()
    n = len(names)
    vals = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(min(max(4.0, 0.35 * n + 2), 20), 3.6))
    x = np.arange(n)
    ax.bar(x, np.nan_to_num(vals, nan=0.0), color="#2f6fde")
    for i in np.flatnonzero(np.isnan(vals)):
        ax.text(i, 0.01, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
    if n <= 60:  # beyond that the labels overlap into a black band
        ax.set_xticks(x, names, rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_ylim(0, max(1.0, float(np.nanmax(vals)) if np.isfinite(vals).any() else 1.0))
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_pr_curves(
    recall: np.ndarray,
    curves: dict[str, np.ndarray],
    path: Path,
    mean: tuple[str, np.ndarray] | None = None,
    title: str = "precision-recall",
    xlabel: str = "recall",
    ylabel: str = "precision",
    legend: str = "lower left",
) -> Path:
    """Precision against recall (or any 0-1 curve per class): one thin line per class, an optional bold mean.

    Args:
        recall: [R] x values shared by every curve (COCO's 101 recall thresholds; confidences for F1).
        curves: class name -> y [R]; a curve that is all negative (COCO's -1, no ground truth) is skipped.
        path: the png to write.
        mean: ``(label, y [R])`` drawn bold in black.
        title, xlabel, ylabel: figure text; ``legend``: where the legend goes (matplotlib's ``loc``).

    Example:
        >>> import tempfile, os, numpy as np
        >>> r = np.linspace(0, 1, 101)
        >>> plot_pr_curves(r, {"a": 1 - r}, os.path.join(tempfile.mkdtemp(), "pr.png")).name
        'pr.png'
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    shown = {k: v for k, v in curves.items() if np.any(np.asarray(v) >= 0)}
    for name, prec in shown.items():
        ax.plot(recall, np.clip(prec, 0, None), lw=1, alpha=0.8, label=name if len(shown) <= 20 else None)
    if mean is not None:
        ax.plot(recall, np.clip(mean[1], 0, None), lw=2.5, color="k", label=mean[0])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=legend, fontsize=7)
    return _save(fig, path)
