"""Semantic segmentation metrics from one accumulated confusion matrix: mIoU, Dice, pixel accuracy.

The conventions follow mmsegmentation (``mmseg.evaluation.metrics.IoUMetric``): per-class
IoU = TP / (TP + FP + FN), Dice = 2TP / (2TP + FP + FN), accuracy = TP / (TP + FN); a class absent
from both the truth and the predictions has union 0, its scores are NaN and it is left out of the
means (``nanmean``). Pixels whose target is ``ignore_index`` count nowhere.

Example:
    >>> import torch
    >>> ev = SemanticEvaluator(["bg", "cat"])
    >>> ev.update(torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 1], [0, 255]]]))
    >>> {k: round(v, 4) for k, v in ev.compute().items() if k in ("miou", "pixel_acc")}
    {'miou': 0.5, 'pixel_acc': 0.6667}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = 255
) -> torch.Tensor:
    """Pixel confusion matrix of two index masks of the same shape.

    Args:
        pred: predicted class indices, any shape, integer dtype.
        target: true class indices, the same shape as ``pred``.
        num_classes: C; every value of ``pred`` and every kept value of ``target`` must be in [0, C).
        ignore_index: target value whose pixels are left out (``None``: keep every pixel).

    Returns:
        int64 tensor [C, C] on the CPU; rows are the truth, columns the prediction.

    Raises:
        ValueError: on a shape mismatch or a class index outside [0, C).

    Example:
        >>> import torch
        >>> confusion_matrix(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 255]), 2).tolist()
        [[1, 1], [0, 1]]
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).to(pred.device).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    # A label outside [0, C) is a wrong class list or a wrong ignore_index; bincount would silently
    # fold it into another cell, so it must fail loudly instead.
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        bad = target[(target < 0) | (target >= num_classes)][0].item()
        raise ValueError(
            f"target holds class {bad}, outside [0, {num_classes}) and not ignore_index={ignore_index}"
        )
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(f"prediction holds a class outside [0, {num_classes})")
    cm = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return cm.reshape(num_classes, num_classes).cpu()


def scores_from_confusion(cm: torch.Tensor | np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Segmentation scores of a confusion matrix (rows truth, columns prediction).

    Returns ``miou``, ``pixel_acc``, ``mean_acc``, ``dice`` (mean per-class F1), ``fw_iou``
    (IoU weighted by each class's share of the true pixels) and ``iou/<name>``, ``dice/<name>``
    per class. Classes with union 0 are NaN and left out of the means, as mmsegmentation does;
    with no pixel at all every score is NaN.

    Example:
        >>> import numpy as np
        >>> s = scores_from_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"])
        >>> round(s["iou/a"], 4), round(s["iou/b"], 4), s["pixel_acc"]
        (0.75, 0.8, 0.875)
    """
    cm = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    if cm.shape != (len(names), len(names)):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {len(names)} class names")
    tp = np.diag(cm)
    truth, predicted, total = cm.sum(1), cm.sum(0), cm.sum()
    union = truth + predicted - tp
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 -> NaN is the intended "absent" value
        iou = tp / union
        dice = 2 * tp / (truth + predicted)
        acc = tp / truth
    iou[union == 0] = np.nan
    dice[union == 0] = np.nan
    acc[truth == 0] = np.nan

    def nanmean(x: np.ndarray) -> float:
        # np.nanmean warns on an all-NaN input; an empty evaluation is simply NaN.
        x = x[~np.isnan(x)]
        return float(x.mean()) if x.size else math.nan

    present = truth > 0
    out = {
        "miou": nanmean(iou),
        "pixel_acc": float(tp.sum() / total) if total else math.nan,
        "mean_acc": nanmean(acc),
        "dice": nanmean(dice),
        # FCN's frequency-weighted IoU: a class present in the truth always has union > 0.
        "fw_iou": float((truth[present] / total * iou[present]).sum()) if total else math.nan,
    }
    out.update({f"iou/{n}": float(v) for n, v in zip(names, iou)})
    out.update({f"dice/{n}": float(v) for n, v in zip(names, dice)})
    return out


def _as_index_mask(pred: torch.Tensor, image_dims: int) -> torch.Tensor:
    """Class indices from logits (float, class dim before the ``image_dims`` last dims) or indices."""
    if pred.is_floating_point():
        return pred.argmax(dim=-image_dims - 1)
    return pred


class SemanticEvaluator:
    """Accumulates a confusion matrix over a validation pass; ``compute`` gives mIoU and friends.

    Args:
        class_names: the model's classes, in index order.
        ignore_index: target value of pixels that count nowhere (``None``: none ignored).

    Example:
        >>> import torch
        >>> ev = SemanticEvaluator(["a", "b", "c"])
        >>> logits = torch.zeros(1, 3, 2, 2)
        >>> logits[0, 1] = 1.0  # predicts class 1 everywhere
        >>> ev.update(logits, torch.tensor([[[1, 1], [0, 2]]]))
        >>> round(ev.compute()["miou"], 4)
        0.1667
    """

    primary_metric = "miou"

    def __init__(self, class_names: list[str], ignore_index: int | None = 255) -> None:
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        n = len(self.class_names)
        self.cm = torch.zeros(n, n, dtype=torch.int64)

    def reset(self) -> None:
        self.cm.zero_()

    def update(
        self,
        preds: torch.Tensor | Sequence[torch.Tensor],
        targets: torch.Tensor | Sequence[torch.Tensor],
    ) -> None:
        """Add a batch.

        Args:
            preds: logits [B, C, H, W] (float) or class indices [B, H, W] (integer), or a list of
                per-image [C, H, W] / [H, W] tensors when the images differ in size.
            targets: class indices [B, H, W] or a list of [H, W] tensors.
        """
        if isinstance(preds, torch.Tensor) and isinstance(targets, torch.Tensor):
            pairs = [(_as_index_mask(preds.detach(), 2), targets)]
        else:
            if len(preds) != len(targets):
                raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
            pairs = [(_as_index_mask(p.detach(), 2), t) for p, t in zip(preds, targets)]
        for pred, target in pairs:
            # bincount runs where the predictions are (GPU during training); only C*C ints move.
            self.cm += confusion_matrix(pred, target.detach(), len(self.class_names), self.ignore_index)

    def compute(self) -> dict[str, float]:
        return scores_from_confusion(self.cm, self.class_names)

    def summary(self) -> dict:
        """The protocol, per-class IoU/Dice and the confusion matrix (pixels), JSON-safe, for metrics.json."""
        scores = self.compute()
        ignore = f", pixels labelled {self.ignore_index} ignored" if self.ignore_index is not None else ""
        return {
            "protocol": f"confusion matrix over all validation pixels at the image's own size{ignore}; mIoU = mean over classes present (mmseg)",
            "per_class": {n: {"iou": scores[f"iou/{n}"], "dice": scores[f"dice/{n}"]} for n in self.class_names},
            "confusion_matrix": self.cm.tolist(),
        }

    def plots(self, out_dir: Path) -> list[Path]:
        from pixelmind.viz.plots import plot_confusion_matrix, plot_per_class_bars

        if int(self.cm.sum()) == 0:
            return []
        out_dir = Path(out_dir)
        scores = self.compute()
        ious = [scores[f"iou/{n}"] for n in self.class_names]
        return [
            plot_confusion_matrix(self.cm.numpy(), self.class_names, out_dir / "confusion_matrix.png"),
            plot_per_class_bars(
                ious,
                self.class_names,
                out_dir / "per_class_iou.png",
                ylabel="IoU",
                title=f"per-class IoU (mIoU {scores['miou']:.3f})",
            ),
        ]
