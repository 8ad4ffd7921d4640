"""Plots of an embedding evaluation: the verification ROC curve and a 2-D map (t-SNE) of the vectors.

Example:
    >>> import numpy as np, tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> plot_roc(np.array([0.9, 0.7, 0.4, 0.1]), np.array([True, False, True, False]), out / "roc.png").name
    'roc.png'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pixelmind.viz.plots import _pyplot, _save

#: t-SNE is quadratic in the points: a seeded sample keeps the plot to seconds
MAX_MAP_POINTS = 2000


def plot_roc(scores: np.ndarray, same: np.ndarray, path: Path) -> Path:
    """True-accept vs false-accept rate on a log axis, with the EER point and the FARs reported."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(same, scores)
    fig, ax = _pyplot().subplots(figsize=(5, 4.2))
    ax.plot(np.maximum(fpr, 1e-5), tpr, lw=1.6, label=f"AUC {roc_auc_score(same, scores):.4f}")
    i = int(np.nanargmin(np.abs(1 - tpr - fpr)))
    ax.plot(max(fpr[i], 1e-5), tpr[i], "o", color="tab:red", label=f"EER {(fpr[i] + 1 - tpr[i]) / 2:.3f}")
    for far in (1e-3, 1e-2):
        ax.axvline(far, color="grey", lw=0.6, ls="--")
    ax.set(xscale="log", xlim=(1e-4, 1), ylim=(0, 1.01), xlabel="false accept rate", ylabel="true accept rate",
           title=f"verification ROC ({int(same.sum())} same, {int((~same).sum())} different pairs)")  # fmt: skip
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_embedding_map(embeddings: np.ndarray, labels: np.ndarray, names: Sequence[str], path: Path, seed: int = 0) -> Path:
    """A t-SNE map of up to :data:`MAX_MAP_POINTS` vectors (seeded sample), coloured by identity."""
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(labels), MAX_MAP_POINTS, replace=False)) if len(labels) > MAX_MAP_POINTS else np.arange(len(labels))
    x, y = embeddings[keep], labels[keep]
    fig, ax = _pyplot().subplots(figsize=(6, 5.4))
    if len(x) >= 4:
        xy = TSNE(2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=seed).fit_transform(x)
        identities = np.unique(y)
        for k, ident in enumerate(identities):
            pts = xy[y == ident]
            label = names[ident] if ident < len(names) and len(identities) <= 20 else None
            ax.scatter(pts[:, 0], pts[:, 1], s=8, color=_pyplot().cm.tab20(k % 20), label=label)
        if len(identities) <= 20:
            ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set(xticks=[], yticks=[], title=f"embeddings of {len(x)} val images (t-SNE)")
    return _save(fig, path)
