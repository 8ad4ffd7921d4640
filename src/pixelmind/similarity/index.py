"""A faiss index of unit-length vectors on disk, with the paths and the model it was made with.

An index folder holds ``index.faiss`` (the vectors), ``items.jsonl`` (one ``{"id", "source"}``
per vector, in order) and ``index.json`` (format, kind, dim, count, and the weights' path and
SHA-256), so that a query embedded by another model is refused instead of answered wrongly.

Kinds (inner product = cosine similarity on unit vectors):

* ``flat``: exact search; the default below :data:`APPROXIMATE_FROM` vectors.
* ``hnsw``: a graph (M=32, efSearch=128): high recall, no training; the default above.
* ``ivf``: inverted lists (``4 sqrt(n)`` k-means cells, 1/16 of them probed): the least memory
  and the fastest build on millions of vectors.

bench/faiss_search.py measures their throughput and recall against exact search.

Example:
    >>> import numpy as np, tempfile
    >>> v = np.eye(4, dtype=np.float32)
    >>> idx = VectorIndex.build(v, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], {"weights_sha256": "x"})
    >>> folder = idx.save(Path(tempfile.mkdtemp()) / "gallery")
    >>> scores, ids = VectorIndex.load(folder).search(v[[2]], k=1)
    >>> int(ids[0, 0]), float(scores[0, 0])
    (2, 1.0)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pixelmind.errors import DataError

FORMAT = 1
KINDS = ("auto", "flat", "hnsw", "ivf")
#: below this many vectors exact search is fast enough (bench/RESULTS.md), above it HNSW by default
APPROXIMATE_FROM = 100_000


def choose_kind(count: int) -> str:
    """The index kind ``auto`` picks for ``count`` vectors.

    Example:
        >>> choose_kind(5_000), choose_kind(500_000)
        ('flat', 'hnsw')
    """
    return "flat" if count < APPROXIMATE_FROM else "hnsw"


def _faiss():
    import faiss

    return faiss


class VectorIndex:
    """Vectors in a faiss index, the ``items`` (paths) they came from and ``info`` about the model."""

    def __init__(self, index: Any, items: list[str], info: dict[str, Any]) -> None:
        self.index, self.items, self.info = index, items, info

    @classmethod
    def build(cls, vectors: np.ndarray, items: list[str], info: dict[str, Any], kind: str = "auto", seed: int = 0) -> VectorIndex:
        """Index ``vectors`` ``[N, dim]`` (unit rows); ``kind`` one of :data:`KINDS`."""
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        count, dim = vectors.shape
        if kind not in KINDS:
            raise DataError(f"kind: choose from {', '.join(KINDS)} (got {kind!r})")
        kind = choose_kind(count) if kind == "auto" else kind
        if kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 128
        else:
            cells = max(1, min(int(4 * math.sqrt(count)), count // 39))  # faiss wants >= 39 training points per cell
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, cells, faiss.METRIC_INNER_PRODUCT)
            sample = vectors[np.random.default_rng(seed).permutation(count)[: 256 * cells]]
            index.train(sample)
            index.nprobe = max(1, cells // 16)
        index.add(vectors)
        info = {**info, "format": FORMAT, "kind": kind, "dim": dim, "count": count}
        return cls(index, list(items), info)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _faiss().write_index(self.index, str(folder / "index.faiss"))
        with (folder / "items.jsonl").open("w") as f:
            for i, item in enumerate(self.items):
                f.write(json.dumps({"id": i, "source": item}) + "\n")
        (folder / "index.json").write_text(json.dumps(self.info, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> VectorIndex:
        """Read an index folder; a missing, corrupt or mismatched part gives a one-line DataError."""
        folder = Path(folder)
        if not (folder / "index.json").is_file():
            raise DataError(f"{folder}: not a pixelmind index (no index.json; make one with pixelmind index)")
        try:
            info = json.loads((folder / "index.json").read_text())
            items = [json.loads(line)["source"] for line in (folder / "items.jsonl").read_text().splitlines() if line.strip()]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{folder}: unreadable index metadata ({str(err).splitlines()[0][:120]})") from None
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise DataError(f"{folder}/index.json: not an index of format {FORMAT}")
        try:
            index = _faiss().read_index(str(folder / "index.faiss"))
        except RuntimeError:  # faiss reports truncated or foreign files as RuntimeError, with C++ details
            raise DataError(f"{folder}/index.faiss: not a readable faiss index (truncated or corrupt; rebuild it with pixelmind index)") from None
        if index.ntotal != len(items) or index.ntotal != info.get("count") or index.d != info.get("dim"):
            raise DataError(f"{folder}: index.faiss holds {index.ntotal} vectors of {index.d} values, "
                            f"but the metadata says {info.get('count')} of {info.get('dim')} ({len(items)} items)")  # fmt: skip
        return cls(index, items, info)

    def search(self, queries: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` ``[Q, k]``, best first; ids of -1 (score -inf) where fewer than k exist."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.index.d:
            raise DataError(f"queries have {queries.shape[-1]} values; the index holds vectors of {self.index.d}")
        scores, ids = self.index.search(queries, min(k, self.index.ntotal))
        return scores, ids

    def check_model(self, fingerprint: str | None, weights: str | Path) -> None:
        """Refuse queries from a model other than the one whose vectors the index holds."""
        made_with = self.info.get("weights_sha256")
        if fingerprint and made_with and fingerprint != made_with:
            raise DataError(f"{weights}: not the model this index was made with ({self.info.get('weights', '?')}, "
                            f"sha256 {made_with[:12]}); its vectors would not be comparable")  # fmt: skip
