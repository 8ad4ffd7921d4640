"""Semantic segmentation metrics: hand-computed values, ignore index, input forms, torchmetrics parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from pixelmind.metrics.segmentation import SemanticEvaluator, confusion_matrix, scores_from_confusion

NAMES = ["bg", "road", "car", "sky"]

# 3 x 4 image, class 3 ("sky") absent from truth and prediction, two ignored pixels.
TARGET = torch.tensor([[0, 0, 1, 1], [0, 2, 1, 255], [2, 2, 1, 255]])
PRED = torch.tensor([[0, 1, 1, 1], [0, 2, 2, 0], [2, 0, 1, 2]])


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(PRED, TARGET, 4)
    # rows truth, cols prediction; the two pixels under 255 are not counted
    expected = [[2, 1, 0, 0], [0, 3, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert cm.dtype == torch.int64 and cm.tolist() == expected
    assert int(cm.sum()) == 10


def test_scores_by_hand():
    s = scores_from_confusion(confusion_matrix(PRED, TARGET, 4), NAMES)
    # bg: tp 2, fp 1, fn 1 -> 2/4; road: tp 3, fp 1, fn 1 -> 3/5; car: tp 2, fp 1, fn 1 -> 2/4
    assert s["iou/bg"] == pytest.approx(0.5) and s["iou/road"] == pytest.approx(0.6)
    assert s["iou/car"] == pytest.approx(0.5) and math.isnan(s["iou/sky"])
    assert s["miou"] == pytest.approx((0.5 + 0.6 + 0.5) / 3)  # sky left out of the mean
    assert s["dice/bg"] == pytest.approx(4 / 6) and s["dice/road"] == pytest.approx(6 / 8)
    assert s["dice"] == pytest.approx((4 / 6 + 6 / 8 + 4 / 6) / 3)
    assert s["pixel_acc"] == pytest.approx(7 / 10)
    assert s["mean_acc"] == pytest.approx((2 / 3 + 3 / 4 + 2 / 3) / 3)
    assert s["fw_iou"] == pytest.approx(0.3 * 0.5 + 0.4 * 0.6 + 0.3 * 0.5)


def test_ignore_index_none_and_out_of_range_labels():
    t = torch.tensor([0, 1, 255])
    with pytest.raises(ValueError, match="255"):
        confusion_matrix(torch.tensor([0, 1, 1]), t, 2, ignore_index=None)
    with pytest.raises(ValueError, match="class 5"):
        confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 5, 1]), 2)
    with pytest.raises(ValueError, match="prediction"):
        confusion_matrix(torch.tensor([0, 7, 1]), torch.tensor([0, 1, 1]), 2)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long), 2)
    cm = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, -1]), 2, ignore_index=-1)
    assert cm.tolist() == [[1, 0], [0, 1]]


def test_logits_and_indices_and_lists_agree():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 12, 10, generator=g)
    target = torch.randint(0, 4, (3, 12, 10), generator=g)
    target[:, :2] = 255
    by_logits, by_index, by_list = (SemanticEvaluator(NAMES) for _ in range(3))
    by_logits.update(logits, target)
    by_index.update(logits.argmax(1), target)
    by_list.update(list(logits), list(target))  # per-image [C, H, W] logits
    a, b, c = by_logits.compute(), by_index.compute(), by_list.compute()
    assert a == b == c
    assert torch.equal(by_logits.cm, by_list.cm)


def test_lists_of_different_sizes_accumulate():
    ev = SemanticEvaluator(NAMES)
    preds = [torch.zeros(5, 7, dtype=torch.long), torch.ones(3, 4, dtype=torch.long)]
    targets = [torch.zeros(5, 7, dtype=torch.long), torch.full((3, 4), 2)]
    ev.update(preds, targets)
    assert int(ev.cm.sum()) == 35 + 12
    s = ev.compute()
    assert s["iou/bg"] == 1.0 and s["iou/road"] == 0.0 and s["iou/car"] == 0.0
    assert s["pixel_acc"] == pytest.approx(35 / 47)
    ev.reset()
    assert int(ev.cm.sum()) == 0 and math.isnan(ev.compute()["miou"])


@pytest.mark.parametrize("ignore_index", [255, None])
def test_per_class_iou_matches_torchmetrics(ignore_index):
    g = torch.Generator().manual_seed(1)
    n = 6
    target = torch.randint(0, n, (4, 32, 24), generator=g)
    pred = torch.where(
        torch.rand(4, 32, 24, generator=g) < 0.6, target, torch.randint(0, n, (4, 32, 24), generator=g)
    )
    if ignore_index is not None:
        target[torch.rand(4, 32, 24, generator=g) < 0.1] = ignore_index
    names = [str(i) for i in range(n)]
    ev = SemanticEvaluator(names, ignore_index=ignore_index)
    ev.update(pred[:2], target[:2])
    ev.update(pred[2:], target[2:])
    ours = np.array([ev.compute()[f"iou/{c}"] for c in names])
    ref = MulticlassJaccardIndex(n, average=None, ignore_index=ignore_index)(pred, target).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert ev.compute()["miou"] == pytest.approx(float(ref.mean()), abs=1e-6)


def test_plots(tmp_path):
    ev = SemanticEvaluator(NAMES)
    assert ev.plots(tmp_path) == []  # nothing seen yet
    ev.update(PRED[None], TARGET[None])
    paths = ev.plots(tmp_path)
    assert [p.name for p in paths] == ["confusion_matrix.png", "per_class_iou.png"]
    assert all(p.stat().st_size > 0 for p in paths)
