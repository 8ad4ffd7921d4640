"""Classification metrics: top-1/top-5, per-class precision/recall/F1, confusion matrix, calibration.

Example:
    >>> import torch
    >>> ev = ClassificationEvaluator(["a", "b", "c"])
    >>> ev.update(torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 3.0, 0]]), torch.tensor([0, 1, 2]))
    >>> round(ev.compute()["top1"], 4)
    0.6667
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_calibration_error,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


class ClassificationEvaluator:
    """Collects logits and labels over a validation pass and computes the metrics at the end.

    Args:
        class_names: the model's classes, in index order.
        temperature: logits are divided by it before softmax (see :func:`fit_temperature`).
        n_bins: bins of the expected calibration error and the reliability diagram.
    """

    def __init__(self, class_names: list[str], temperature: float = 1.0, n_bins: int = 15) -> None:
        self.class_names = list(class_names)
        self.temperature = float(temperature)
        self.n_bins = n_bins
        self._logits: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> None:
        self._logits.append(preds.detach().float().cpu())
        self._targets.append(targets.detach().long().cpu())

    @property
    def logits(self) -> torch.Tensor:
        return torch.cat(self._logits) if self._logits else torch.empty(0, len(self.class_names))

    @property
    def targets(self) -> torch.Tensor:
        return torch.cat(self._targets) if self._targets else torch.empty(0, dtype=torch.long)

    def compute(self) -> dict[str, float]:
        logits, y, c = self.logits / self.temperature, self.targets, len(self.class_names)
        if len(y) == 0:
            return {}
        probs = logits.softmax(1)
        out = {
            "top1": multiclass_accuracy(probs, y, c, average="micro").item(),
            "loss": F.cross_entropy(logits, y).item(),
            "precision": multiclass_precision(probs, y, c, average="macro").item(),
            "recall": multiclass_recall(probs, y, c, average="macro").item(),
            "f1": multiclass_f1_score(probs, y, c, average="macro").item(),
            "ece": multiclass_calibration_error(probs, y, c, n_bins=self.n_bins).item(),
        }
        if c > 5:
            out["top5"] = multiclass_accuracy(probs, y, c, top_k=5, average="micro").item()
        return out

    def summary(self) -> dict[str, Any]:
        """Per-class figures and the confusion matrix, JSON-safe, for metrics.json and the report."""
        logits, y, c = self.logits / self.temperature, self.targets, len(self.class_names)
        if len(y) == 0:
            return {}
        probs = logits.softmax(1)
        prec = multiclass_precision(probs, y, c, average=None).tolist()
        rec = multiclass_recall(probs, y, c, average=None).tolist()
        f1 = multiclass_f1_score(probs, y, c, average=None).tolist()
        support = torch.bincount(y, minlength=c).tolist()
        return {
            "per_class": {
                n: {"precision": prec[i], "recall": rec[i], "f1": f1[i], "support": support[i]}
                for i, n in enumerate(self.class_names)
            },
            "confusion_matrix": multiclass_confusion_matrix(probs, y, c).tolist(),
            "temperature": self.temperature,
        }

    def plots(self, out_dir: Path) -> list[Path]:
        from pixelmind.viz.plots import plot_confusion_matrix, plot_reliability

        if len(self.targets) == 0:
            return []
        out_dir = Path(out_dir)
        logits, y = self.logits / self.temperature, self.targets
        cm = multiclass_confusion_matrix(logits, y, len(self.class_names))
        return [
            plot_confusion_matrix(cm.numpy(), self.class_names, out_dir / "confusion_matrix.png"),
            plot_reliability(logits.softmax(1), y, out_dir / "reliability.png", self.n_bins),
        ]


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, max_iter: int = 100) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the NLL of ``logits / T``.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> y = torch.randint(0, 3, (500,), generator=g)
        >>> overconfident = 20 * torch.nn.functional.one_hot(y, 3).float() + 8 * torch.randn(500, 3, generator=g)
        >>> fit_temperature(overconfident, y) > 1
        True
    """
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")
    logits, targets = logits.detach().float(), targets.detach().long()

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))
