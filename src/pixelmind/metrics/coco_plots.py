"""Plots of a COCO evaluation: precision-recall and F1 against confidence per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelmind.metrics.coco_eval import REC_THRS, CocoDetections, CocoImage, CocoResult, coco_evaluate  # noqa: F401 (doctests)


def plot_pr_curves(result: CocoResult, class_names: dict[int, str] | None, path: Path) -> Path:
    """Precision-recall per class at IoU 0.5 (area all, 100 dets) and the mean over IoU .5:.95.

    Example:
        >>> import numpy as np, tempfile, os
        >>> gt = CocoImage(1, 64, 64, np.array([[0.0, 0, 20, 20]]), np.array([1]), np.zeros(1, bool))
        >>> det = CocoDetections(1, np.array([[0.0, 0, 20, 20]]), np.array([0.8]), np.array([1]))
        >>> plot_pr_curves(coco_evaluate([gt], [det]), {1: "a"}, os.path.join(tempfile.mkdtemp(), "pr.png")).name
        'pr.png'
    """
    from pixelmind.viz.plots import plot_pr_curves as _plot

    names = {**result.class_names, **(class_names or {})}
    p = result.precision[:, :, :, 0, -1]  # [T, R, K]
    curves = {names.get(c, str(c)): p[0, :, k] for k, c in enumerate(result.category_ids)}
    valid = p > -1
    mean = np.where(valid, p, 0).sum((0, 2)) / np.maximum(valid.sum((0, 2)), 1)
    label = f"mean IoU .5:.95 (AP {result.stats[0]:.3f})"
    return _plot(REC_THRS, curves, path, mean=(label, mean), title="precision-recall at IoU 0.5")


def plot_f1_confidence(result: CocoResult, path: Path) -> Path:
    """F1 against the score threshold per class at IoU 0.5, and their mean with its best threshold.

    Example:
        >>> import numpy as np, tempfile, os
        >>> gt = CocoImage(1, 64, 64, np.array([[0.0, 0, 20, 20]]), np.array([1]), np.zeros(1, bool))
        >>> det = CocoDetections(1, np.array([[0.0, 0, 20, 20]]), np.array([0.8]), np.array([1]))
        >>> plot_f1_confidence(coco_evaluate([gt], [det]), os.path.join(tempfile.mkdtemp(), "f1.png")).name
        'f1.png'
    """
    from pixelmind.viz.plots import plot_pr_curves as _plot

    conf = np.linspace(0, 1, 101)
    curves = {result.class_names.get(c, str(c)): curve.at(conf)[2] for c, curve in result.curves.items()}
    mean = np.mean(list(curves.values()), 0) if curves else np.zeros_like(conf)
    best = int(np.argmax(mean))
    label = f"all classes: F1 {mean[best]:.2f} at {conf[best]:.2f}"
    return _plot(conf, curves, path, mean=(label, mean), title="F1 against confidence (IoU 0.5)", xlabel="confidence",
                 ylabel="F1", legend="upper right")  # fmt: skip
