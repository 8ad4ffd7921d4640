"""``pixelmind select``: which unlabelled images to label next (active learning).

``entropy`` / ``margin``: the images the model is least sure of, diversified: from the ``4 n`` most
uncertain, ``n`` are picked greedily far apart in feature space (so ten near-copies of one hard image
do not fill the batch). ``coreset``: k-centre greedy over the whole pool in feature space (covers the
data, ignores uncertainty). Features are the model's own embedding where its task gives one (classify),
else 16x16 grey thumbnails. Every pick comes with its reason.

Example:
    >>> picks = select_images(Model.load("cls.safetensors"), "pool/", n=100)  # doctest: +SKIP
    >>> picks[0]["reason"]                                                     # doctest: +SKIP
    'entropy 1.52 (2nd most uncertain of 5,000)'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pixelmind.errors import ConfigError, DataError
from pixelmind.label import labelling

STRATEGIES = ("entropy", "margin", "coreset", "random")


def k_center_greedy(features: np.ndarray, n: int, first: int = 0) -> tuple[list[int], list[float]]:
    """``n`` indices, each the farthest (Euclidean) from those already picked; and that distance.

    Example:
        >>> k_center_greedy(np.array([[0.0], [0.1], [5.0], [10.0]]), 3)
        ([0, 3, 2], [0.0, 10.0, 5.0])
    """
    picked, gaps = [first], [0.0]
    dist = np.linalg.norm(features - features[first], axis=1)
    while len(picked) < min(n, len(features)):
        i = int(dist.argmax())
        picked.append(i)
        gaps.append(float(dist[i]))
        dist = np.minimum(dist, np.linalg.norm(features - features[i], axis=1))
    return picked, gaps


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def _features(model, paths: list[str]) -> np.ndarray:
    """One vector per image, decoded 64 at a time (memory stays bounded by the vectors, not the images)."""
    from pixelmind.data.decode import load_image

    try:
        from pixelmind.similarity.extract import FeatureExtractor

        embed = FeatureExtractor(model)
    except ConfigError:  # detect/segment: no image embedding; small grey thumbnails still separate near-copies
        def embed(images):
            arr = np.stack([np.asarray(im.convert("L").resize((16, 16)), np.float32).ravel() / 255 for im in images])
            return arr - arr.mean(1, keepdims=True)
    return np.concatenate([embed([load_image(p) for p in paths[i : i + 64]]) for i in range(0, len(paths), 64)])


def select_images(model, pool: Any, n: int = 100, strategy: str = "entropy", seed: int = 0,
                  on_image: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The ``n`` images of ``pool`` to label next, best first, each ``{rank, image, score, reason}``."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy: one of {', '.join(STRATEGIES)} (got {strategy!r})")
    helper = labelling(model.meta.task)
    paths, scores = [], []
    # a low threshold: the doubtful boxes are the uncertainty
    for rec in model.predict_iter(pool, _keep_result=True, **helper.predict_options(model.meta, conf=0.05)):
        if "error" not in rec:
            u = helper.uncertainty(rec.pop("_result"))
            scores.append(u["entropy"] if strategy != "margin" else -u["margin"])
            paths.append(rec["source"])
        if on_image:
            on_image(rec)
    if not paths:
        raise DataError(f"{pool}: no readable image in the pool")
    total = len(paths)
    if strategy == "random":
        order = np.random.default_rng(seed).permutation(total)[:n]
        return [{"rank": r, "image": paths[i], "score": None, "reason": "random (baseline)"} for r, i in enumerate(order, 1)]
    if strategy == "coreset":
        feats = _features(model, paths)
        start = int(np.linalg.norm(feats - feats.mean(0), axis=1).argmin())  # the most typical image first
        picked, gaps = k_center_greedy(feats, n, start)
        return [{"rank": r, "image": paths[i], "score": round(g, 4),
                 "reason": "the most typical image" if r == 1 else f"{g:.3f} from every image picked before it"}
                for r, (i, g) in enumerate(zip(picked, gaps), 1)]  # fmt: skip
    by_uncertainty = sorted(range(total), key=lambda i: -scores[i])
    candidates = by_uncertainty[: max(4 * n, n)]
    place = {i: k for k, i in enumerate(by_uncertainty, 1)}
    feats = _features(model, [paths[i] for i in candidates])
    picked, gaps = k_center_greedy(feats, n, 0)
    name = "entropy" if strategy == "entropy" else "margin"
    rows = []
    for r, (j, g) in enumerate(zip(picked, gaps), 1):
        i = candidates[j]
        value = scores[i] if strategy == "entropy" else -scores[i]
        why = f"{name} {value:.3f} ({_ordinal(place[i])} most uncertain of {total:,})"
        rows.append({"rank": r, "image": paths[i], "score": round(value, 4),
                     "reason": why + (f", {g:.3f} from the images picked before it" if r > 1 else "")})
    return rows
