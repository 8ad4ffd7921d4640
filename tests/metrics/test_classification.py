"""ClassificationEvaluator against hand-computed numbers; temperature scaling; plots."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pixelmind.metrics.classification import ClassificationEvaluator, fit_temperature


def _logits_with_target_rank(target: int, rank: int, c: int = 7) -> torch.Tensor:
    """Logits over ``c`` classes where ``target`` has the given rank (1 = highest)."""
    others = [k for k in range(c) if k != target]
    order = others[: rank - 1] + [target] + others[rank - 1 :]  # classes from highest to lowest
    logits = torch.empty(c)
    for position, k in enumerate(order):
        logits[k] = float(c - position)
    return logits


def test_top1_top5_by_hand():
    ranks = [1, 1, 3, 5, 6, 7, 2, 1]  # rank of the true class in each sample
    targets = torch.tensor([0, 3, 6, 2, 5, 1, 4, 6])
    logits = torch.stack([_logits_with_target_rank(int(t), r) for t, r in zip(targets, ranks)])
    assert (
        logits.argsort(1, descending=True).argsort(1).gather(1, targets[:, None]).squeeze(1) + 1
    ).tolist() == ranks
    ev = ClassificationEvaluator([f"c{i}" for i in range(7)])
    ev.update(logits[:5], targets[:5])  # two updates: results are over everything seen
    ev.update(logits[5:], targets[5:])
    m = ev.compute()
    assert m["top1"] == pytest.approx(3 / 8)
    assert m["top5"] == pytest.approx(6 / 8)  # ranks 1, 1, 3, 5, 2, 1
    expected_loss = F.cross_entropy(logits, targets).item()
    assert m["loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert 0.0 <= m["ece"] <= 1.0


def test_no_top5_with_five_classes_or_fewer():
    ev = ClassificationEvaluator(list("abcde"))
    ev.update(torch.eye(5), torch.arange(5))
    m = ev.compute()
    assert "top5" not in m and m["top1"] == 1.0


def test_per_class_summary_by_hand():
    # predictions 0 0 1 2 2 2 for truths 0 1 1 2 2 0
    preds = torch.tensor([0, 0, 1, 2, 2, 2])
    targets = torch.tensor([0, 1, 1, 2, 2, 0])
    ev = ClassificationEvaluator(["cat", "dog", "emu"])
    ev.update(F.one_hot(preds, 3).float() * 4, targets)
    s = ev.summary()
    pc = s["per_class"]
    assert pc["cat"]["precision"] == pytest.approx(1 / 2) and pc["cat"]["recall"] == pytest.approx(1 / 2)
    assert pc["dog"]["precision"] == pytest.approx(1.0) and pc["dog"]["recall"] == pytest.approx(1 / 2)
    assert pc["dog"]["f1"] == pytest.approx(2 / 3)
    assert pc["emu"]["precision"] == pytest.approx(2 / 3) and pc["emu"]["recall"] == pytest.approx(1.0)
    assert pc["emu"]["f1"] == pytest.approx(0.8)
    assert [pc[n]["support"] for n in ("cat", "dog", "emu")] == [2, 2, 2]
    assert s["confusion_matrix"] == [[1, 0, 1], [1, 1, 0], [0, 0, 2]]  # rows: truth, columns: prediction
    m = ev.compute()
    assert m["top1"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    assert m["recall"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert m["f1"] == pytest.approx((1 / 2 + 2 / 3 + 0.8) / 3)


def test_empty_evaluator():
    ev = ClassificationEvaluator(["a", "b"])
    assert ev.compute() == {} and ev.summary() == {}


def test_plots_write_png_files(tmp_path):
    torch.manual_seed(0)
    ev = ClassificationEvaluator(["a", "b", "c", "d"])
    ev.update(torch.randn(40, 4), torch.randint(0, 4, (40,)))
    out = tmp_path / "plots"
    paths = ev.plots(out)
    assert sorted(p.name for p in paths) == ["confusion_matrix.png", "reliability.png"]
    for p in paths:
        assert p.parent == out and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(p) as im:
            assert im.size[0] > 100 and im.size[1] > 100
    assert ClassificationEvaluator(["a"]).plots(tmp_path / "none") == []


def test_fit_temperature_lowers_nll_of_overconfident_logits():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (600,), generator=g)
    # right about 70% of the time but always nearly certain
    noisy = torch.where(torch.rand(600, generator=g) < 0.7, y, torch.randint(0, 5, (600,), generator=g))
    logits = 15 * F.one_hot(noisy, 5).float() + torch.randn(600, 5, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "tensor with requires_grad to a scalar" warning
        t = fit_temperature(logits, y)
    assert t > 1.5
    before = F.cross_entropy(logits, y).item()
    after = F.cross_entropy(logits / t, y).item()
    assert after < 0.5 * before
    # the temperature is the minimum: nudging it either way does not help
    for factor in (0.8, 1.25):
        assert F.cross_entropy(logits / (t * factor), y).item() >= after - 1e-4
    # and the evaluator applies it
    ev = ClassificationEvaluator([str(i) for i in range(5)], temperature=t)
    ev.update(logits, y)
    m = ev.compute()
    assert m["loss"] == pytest.approx(after, rel=1e-5)
    assert ev.summary()["temperature"] == t
    plain = ClassificationEvaluator([str(i) for i in range(5)])
    plain.update(logits, y)
    assert m["top1"] == plain.compute()["top1"]  # scaling never changes the argmax
    assert m["ece"] < plain.compute()["ece"]


def test_fit_temperature_underconfident_logits_sharpen():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (300,), generator=g)
    logits = 0.2 * F.one_hot(y, 3).float() + 0.01 * torch.randn(300, 3, generator=g)  # right but timid
    t = fit_temperature(logits, y)
    assert t < 1.0
    assert math.isfinite(t) and 0.05 <= t
    assert F.cross_entropy(logits / t, y) < F.cross_entropy(logits, y)
