"""Verification and retrieval metrics, checked against scikit-learn and pytorch-metric-learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelmind.metrics.embedding import (
    EmbeddingEvaluator,
    retrieval_metrics,
    sample_pairs,
    verification_metrics,
)


def _clustered(n_ids=12, per_id=9, dim=16, noise=0.8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_ids, dim, generator=g)
    labels = torch.arange(n_ids).repeat_interleave(per_id)
    emb = centres[labels] + noise * torch.randn(len(labels), dim, generator=g)
    return torch.nn.functional.normalize(emb, dim=1), labels


def test_retrieval_matches_pytorch_metric_learning():
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    emb, labels = _clustered()
    ours = retrieval_metrics(emb, labels, chunk=17)  # several chunks
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), device=torch.device("cpu"))
    ref = calc.get_accuracy(emb, labels)  # query = reference: leave-one-out like ours
    assert 0.2 < ours["recall@1"] < 0.99  # a set where the metric is not trivially 0 or 1
    assert ours["recall@1"] == pytest.approx(ref["precision_at_1"], abs=1e-6)
    assert ours["map@r"] == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-5)
    assert ours["recall@1"] <= ours["recall@5"] <= ours["recall@10"]


def test_verification_matches_sklearn_and_eer_definition():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    same = rng.random(4000) < 0.5
    scores = np.where(same, rng.normal(0.6, 0.15, 4000), rng.normal(0.2, 0.15, 4000))
    m = verification_metrics(scores, same)
    assert m["auc"] == pytest.approx(roc_auc_score(same, scores))
    # at the EER the false accepts and false rejects of the threshold agree
    far = (scores[~same] >= m["threshold"]).mean()
    assert 0.05 < m["eer"] < 0.15 and 0 < far < 0.2
    assert m["tar@far=0.001"] <= m["tar@far=0.01"] <= 1
    accuracy = ((scores >= m["threshold"]) == same).mean()
    assert m["verify_accuracy"] == pytest.approx(accuracy, abs=2e-3)
    assert verification_metrics(scores, np.ones(4000, bool)) == {}  # no negatives: nothing to verify


def test_sample_pairs_large_sets_are_right_and_seeded():
    labels = np.repeat(np.arange(50), [1 + i % 7 for i in range(50)])
    a, b, same = sample_pairs(labels, 500, seed=3)
    assert same[:500].all() and (a[:500] != b[:500]).all()  # positives: two different images of one identity
    assert (~same[500:]).all() and len(a) == 1000
    np.testing.assert_array_equal(a, sample_pairs(labels, 500, seed=3)[0])
    assert not np.array_equal(a, sample_pairs(labels, 500, seed=4)[0])


def test_evaluator_with_a_pairs_file_maps_positions_and_drops_missing_images():
    emb, labels = _clustered(n_ids=3, per_id=2, dim=4, noise=0.01)
    pairs = {"a": [0, 0, 2, 4], "b": [1, 2, 3, 5], "same": [True, False, True, True], "identities": labels.tolist(), "names": ["x", "y", "z"]}
    ev = EmbeddingEvaluator(["x", "y", "z"], pairs=pairs)
    ev.update(emb[:4], torch.arange(4))  # image 4 and 5 unreadable: the last pair cannot be scored
    assert ev.labels.tolist() == labels[:4].tolist()
    scores, same = ev._scores()
    assert same.tolist() == [True, False, True]
    assert ev.compute()["auc"] == 1.0
    assert ev.summary()["pairs"] == {"same": 2, "different": 1, "from": "pairs file"}
