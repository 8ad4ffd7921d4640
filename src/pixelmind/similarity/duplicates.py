"""Near-duplicate images: pairs whose embeddings are nearly parallel (``pixelmind check --weights``).

Exact duplicates share bytes and perceptual hashes catch resized or recompressed copies; an
embedding also catches crops, colour shifts and re-shoots of one scene, which poison a
train/val split the same way.

Example:
    >>> import numpy as np
    >>> v = np.array([[1, 0], [0.999, 0.045], [0, 1]], np.float32)
    >>> v /= np.linalg.norm(v, axis=1, keepdims=True)
    >>> [(a, b) for a, b, _ in near_duplicate_pairs(v, 0.99)]
    [(0, 1)]
"""

from __future__ import annotations

import numpy as np


def near_duplicate_pairs(vectors: np.ndarray, threshold: float, neighbours: int = 10) -> list[tuple[int, int, float]]:
    """``(i, j, cosine)`` with ``i < j`` for every pair among each vector's nearest ``neighbours``
    at or above ``threshold``, most similar first."""
    from pixelmind.similarity.index import VectorIndex

    count = len(vectors)
    if count < 2:
        return []
    index = VectorIndex.build(vectors, [""] * count, {})
    scores, ids = index.search(vectors, min(neighbours + 1, count))
    rows = np.repeat(np.arange(count), ids.shape[1])
    cols, sims = ids.ravel(), scores.ravel()
    keep = (cols >= 0) & (cols != rows) & (sims >= threshold)
    pairs: dict[tuple[int, int], float] = {}
    for i, j, s in zip(rows[keep], cols[keep], sims[keep]):
        pairs[(int(min(i, j)), int(max(i, j)))] = float(s)
    return sorted(((i, j, s) for (i, j), s in pairs.items()), key=lambda p: -p[2])
