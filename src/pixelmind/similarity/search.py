"""Index building, search and pair verification on top of :mod:`~pixelmind.similarity.extract`.

Example:
    >>> from pixelmind.api import Model
    >>> model = Model.load("best.safetensors")                          # doctest: +SKIP
    >>> build_index(model, "gallery/", "gallery.index")                 # doctest: +SKIP
    >>> next(search_index(model, "gallery.index", "query.jpg", k=3))    # doctest: +SKIP
    {'source': 'query.jpg', 'neighbours': [{'source': '...', 'score': 0.93}, ...]}
    >>> verify_pair(model, "a.jpg", "b.jpg")["same"]                    # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pixelmind.errors import ConfigError, DataError
from pixelmind.similarity.extract import FeatureExtractor, embed_files, iter_embeddings, weights_fingerprint
from pixelmind.similarity.index import VectorIndex


def model_info(model: Any) -> dict[str, Any]:
    """What an index records about the model that made its vectors."""
    return {"task": model.meta.task, "model": model.meta.model, "imgsz": model.meta.imgsz,
            "weights": str(model.weights_path) if model.weights_path else None,
            "weights_sha256": weights_fingerprint(model.weights_path)}  # fmt: skip


def build_index(model: Any, source: Any, out: str | Path, kind: str = "auto", batch: int = 64,
                on_item: Callable[[bool], None] | None = None) -> dict[str, Any]:
    """Embed every image of ``source`` and save a :class:`VectorIndex` in folder ``out``; returns its info and errors."""
    vectors, paths, errors = embed_files(model, source, batch, on_item)
    index = VectorIndex.build(vectors, paths, model_info(model), kind)
    index.save(out)
    return {**index.info, "index": str(out), "skipped": len(errors), "errors": errors[:20]}


def search_index(model: Any, index: VectorIndex | str | Path, source: Any, k: int = 5, batch: int = 64) -> Iterator[dict[str, Any]]:
    """One ``{"source", "neighbours": [{"id", "source", "score"}]}`` per query image (``error`` for unreadable ones)."""
    index = index if isinstance(index, VectorIndex) else VectorIndex.load(index)
    index.check_model(weights_fingerprint(model.weights_path), model.weights_path)
    extractor = FeatureExtractor(model)
    if extractor.dim != index.info["dim"]:
        raise DataError(f"{model.weights_path}: gives {extractor.dim}-value vectors; the index holds {index.info['dim']}-value ones")
    for path, item in iter_embeddings(extractor, source, batch):
        if isinstance(item, str):
            yield {"source": path, "error": item}
            continue
        scores, ids = index.search(item[None], k)
        yield {"source": path, "neighbours": [{"id": int(i), "source": index.items[i], "score": round(float(s), 6)}
                                              for s, i in zip(scores[0], ids[0]) if i >= 0]}  # fmt: skip


def verify_pair(model: Any, a: Any, b: Any, threshold: float | None = None) -> dict[str, Any]:
    """Same identity or not: the cosine similarity of two images' embeddings against a threshold.

    ``threshold`` defaults to the one embed training stored (the validation pairs' best accuracy).
    """
    from pixelmind.data.decode import load_image

    threshold = threshold if threshold is not None else model.meta.extra.get("threshold")
    if threshold is None:
        raise ConfigError(f"{model.weights_path}: these weights store no verification threshold "
                          "(only embed training does): give --threshold")  # fmt: skip
    images = [im if not isinstance(im, (str, Path)) else load_image(im) for im in (a, b)]
    va, vb = FeatureExtractor(model)(images)
    score = float(np.dot(va, vb))
    return {"a": str(a), "b": str(b), "score": round(score, 6), "threshold": round(float(threshold), 6), "same": score >= threshold}
