"""Embedding metrics: verification (ROC AUC, EER, TAR at a FAR) and retrieval (recall@k, mAP@R).

Verification scores pairs of images by the cosine similarity of their embeddings: same identity or
not. Retrieval asks each image for its nearest neighbours among all the others (leave-one-out), as
in Musgrave et al. 2020 ("A Metric Learning Reality Check"), whose mAP@R this follows.

Example:
    >>> import torch
    >>> emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]]), dim=1)
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> retrieval_metrics(emb, labels)["recall@1"]
    1.0
    >>> verification_metrics(*pair_scores(emb, labels, seed=0))["auc"]
    1.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

FARS = (1e-3, 1e-2)


def sample_pairs(labels: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``n`` positive and ``n`` negative index pairs ``(a, b, same)``, seeded; every pair when fewer exist.

    Example:
        >>> a, b, same = sample_pairs(np.array([0, 0, 1, 1]), 10)
        >>> int(same.sum()), int((~same).sum())
        (2, 4)
    """
    labels = np.asarray(labels)
    count = len(labels)
    rng = np.random.default_rng(seed)
    if count * (count - 1) // 2 <= 2 * n:  # small sets: every pair
        a, b = np.triu_indices(count, k=1)
        return a, b, labels[a] == labels[b]
    order = np.argsort(labels, kind="stable")
    _, starts, sizes = np.unique(labels[order], return_index=True, return_counts=True)
    multi = np.flatnonzero(sizes > 1)
    pos_a = pos_b = np.empty(0, int)
    if len(multi):  # an identity in proportion to its images, then two different images of it
        g = rng.choice(multi, n, p=sizes[multi] / sizes[multi].sum())
        i = rng.integers(0, sizes[g])
        j = (i + rng.integers(1, sizes[g])) % sizes[g]
        pos_a, pos_b = order[starts[g] + i], order[starts[g] + j]
    neg_a, neg_b = rng.integers(0, count, 4 * n), rng.integers(0, count, 4 * n)
    keep = labels[neg_a] != labels[neg_b]
    neg_a, neg_b = neg_a[keep][:n], neg_b[keep][:n]
    a, b = np.concatenate([pos_a, neg_a]), np.concatenate([pos_b, neg_b])
    return a, b, labels[a] == labels[b]


def pair_scores(emb: torch.Tensor, labels: torch.Tensor, n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities and same-identity flags of seeded pairs from ``emb`` (L2-normalised rows)."""
    a, b, same = sample_pairs(labels.numpy(), n, seed)
    emb = emb.float()
    return (emb[a] * emb[b]).sum(1).numpy(), same


def verification_metrics(scores: np.ndarray, same: np.ndarray) -> dict[str, float]:
    """ROC AUC, EER, TAR at FAR 1e-3 and 1e-2, and the accuracy-maximising threshold.

    Example:
        >>> verification_metrics(np.array([0.9, 0.8, 0.3, 0.1]), np.array([True, True, False, False]))["eer"]
        0.0
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    same = np.asarray(same, bool)
    if same.all() or not same.any():
        return {}
    fpr, tpr, thr = roc_curve(same, scores)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    positives, negatives = same.sum(), (~same).sum()
    accuracy = (tpr * positives + (1 - fpr) * negatives) / (positives + negatives)
    best = int(np.argmax(accuracy))
    out = {"auc": float(roc_auc_score(same, scores)), "eer": float((fpr[i] + fnr[i]) / 2)}
    for far in FARS:
        out[f"tar@far={far:g}"] = float(tpr[fpr <= far].max()) if (fpr <= far).any() else 0.0
    out["threshold"] = float(min(thr[best], 1.0))  # roc_curve's first threshold is +inf
    out["verify_accuracy"] = float(accuracy[best])
    return out


def retrieval_metrics(emb: torch.Tensor, labels: torch.Tensor, ks=(1, 5, 10), chunk: int = 512) -> dict[str, float]:
    """Leave-one-out recall@k (a same-identity image among the k nearest) and mAP@R over all queries.

    Queries whose identity has no other image are left out. Cosine similarity on normalised rows.
    """
    emb, labels = emb.float(), labels.long()
    count = len(labels)
    relevant = torch.bincount(labels)[labels] - 1  # R: the other images of each query's identity
    valid = relevant > 0
    if count < 2 or not valid.any():
        return {}
    hits = {k: 0.0 for k in ks if k < count}
    ap_sum = 0.0
    width = min(count - 1, max(max(ks), int(relevant.max())))
    for start in range(0, count, chunk):
        q = torch.arange(start, min(start + chunk, count))
        sims = emb[q] @ emb.T
        sims[torch.arange(len(q)), q] = -float("inf")  # never the query itself
        order = sims.topk(width, dim=1).indices  # only the first R (and k) ranks count
        rel = labels[order] == labels[q, None]
        for k in hits:
            hits[k] += float(rel[:, :k].any(1)[valid[q]].sum())
        r = relevant[q]
        within = torch.arange(width)[None] < r[:, None]
        precision = rel.cumsum(1) / torch.arange(1, width + 1)[None]
        ap = (precision * rel * within).sum(1) / r.clamp(min=1)
        ap_sum += float(ap[valid[q]].sum())
    n_valid = float(valid.sum())
    out = {f"recall@{k}": v / n_valid for k, v in hits.items()}
    out["map@r"] = ap_sum / n_valid
    return out


class EmbeddingEvaluator:
    """Collects embeddings and identity labels over a validation pass; verification and retrieval at the end.

    Args:
        max_pairs: positive (and as many negative) pairs drawn for verification, seeded.
        pairs: fixed pairs from an LFW-style pairs file instead of drawn ones: ``{"a", "b", "same",
            "identities", "names"}`` (:func:`pixelmind.tasks.embed.data.load_embedding_data`); the targets
            are then positions in the pairs' image list, ``identities`` their identity indices.
    """

    def __init__(self, class_names: list[str] | None = None, max_pairs: int = 20_000, seed: int = 0, pairs=None) -> None:
        self.class_names = list(class_names or [])
        self.max_pairs, self.seed, self.pairs = max_pairs, seed, pairs
        self._emb: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._cache: dict[str, Any] | None = None

    def update(self, preds: torch.Tensor, targets: torch.Tensor) -> None:
        self._emb.append(torch.nn.functional.normalize(preds.detach().float().cpu(), dim=1))
        self._labels.append(targets.detach().long().cpu())
        self._cache = None

    @property
    def embeddings(self) -> torch.Tensor:
        return torch.cat(self._emb) if self._emb else torch.empty(0, 0)

    @property
    def labels(self) -> torch.Tensor:
        targets = torch.cat(self._labels) if self._labels else torch.empty(0, dtype=torch.long)
        return torch.as_tensor(self.pairs["identities"])[targets] if self.pairs is not None else targets

    def _scores(self) -> tuple[np.ndarray, np.ndarray]:
        if self.pairs is None:
            return pair_scores(self.embeddings, self.labels, self.max_pairs, self.seed)
        row = np.full(len(self.pairs["identities"]), -1)
        row[torch.cat(self._labels).numpy()] = np.arange(sum(len(t) for t in self._labels))
        a, b = row[self.pairs["a"]], row[self.pairs["b"]]
        keep = (a >= 0) & (b >= 0)  # pairs with an unreadable image are left out
        emb = self.embeddings
        return (emb[a[keep]] * emb[b[keep]]).sum(1).numpy(), np.asarray(self.pairs["same"], bool)[keep]

    def compute(self) -> dict[str, float]:
        if self._cache is None:
            if len(self.labels) < 2:
                return {}
            scores, same = self._scores()
            self._cache = {**verification_metrics(scores, same), **retrieval_metrics(self.embeddings, self.labels)}
            self._cache_pairs = (int(same.sum()), int((~same).sum()))
        return dict(self._cache)

    def summary(self) -> dict[str, Any]:
        metrics = self.compute()
        if not metrics:
            return {}
        identities = torch.unique(self.labels).tolist()
        names = self.pairs["names"] if self.pairs is not None else self.class_names
        return {
            "images": len(self.labels),
            "identities": len(identities),
            "identity_names": [names[i] for i in identities[:50] if i < len(names)],
            "pairs": {"same": self._cache_pairs[0], "different": self._cache_pairs[1], "from": "pairs file" if self.pairs else "drawn, seeded"},
            "threshold": metrics.get("threshold"),
        }

    def plots(self, out_dir: Path) -> list[Path]:
        from pixelmind.viz.embedding_plots import plot_embedding_map, plot_roc

        if len(self.labels) < 2:
            return []
        scores, same = self._scores()
        out = [plot_roc(scores, same, Path(out_dir) / "roc.png")] if same.any() and not same.all() else []
        return out + [plot_embedding_map(self.embeddings.numpy(), self.labels.numpy(), self.class_names,
                                         Path(out_dir) / "embedding_tsne.png", seed=self.seed)]  # fmt: skip
