"""Embed images with a loaded :class:`~pixelmind.api.Model`: unit-length float32 vectors, in batches.

The task's ``feature_network`` hook gives the network (embed: the model; classify: the model
without its last linear layer); the vectors are L2-normalised, so that the inner product is the
cosine similarity everywhere (verification scores, faiss indexes, near-duplicates).

Example:
    >>> from pixelmind.api import Model
    >>> vectors, paths, errors = embed_files(Model.load("best.safetensors"), "gallery/")  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelmind.data.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, load_image
from pixelmind.errors import DataError
from pixelmind.nn.device import model_device


class FeatureExtractor:
    """``extractor(images) -> np.ndarray [N, dim]`` for PIL images, with ``model``'s preprocessing."""

    def __init__(self, model: Any) -> None:
        net = model._require_net()
        self.meta = model.meta
        self.network = model.task.feature_network(net, model.meta)
        self.transform = model.task.preprocess(model.meta)
        self.device = model_device(self.network)

    @torch.inference_mode()
    def __call__(self, images: list[Any]) -> np.ndarray:
        x = torch.stack([self.transform(im) for im in images]).to(self.device)
        out = self.network(x)
        out = out.flatten(1) if out.dim() > 2 else out
        return torch.nn.functional.normalize(out.float(), dim=1).cpu().numpy()

    @property
    def dim(self) -> int:
        from PIL import Image

        return int(self([Image.new("RGB", (self.meta.imgsz, self.meta.imgsz))]).shape[1])


def iter_embeddings(extractor: FeatureExtractor, source: Any, batch: int = 64, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[tuple[str, np.ndarray | str]]:
    """``(path, vector)`` per readable image of ``source`` (file, folder, glob, list), ``(path, error)`` otherwise."""
    from pixelmind.data.sources import iter_sources

    paths = iter_sources(source)
    while chunk := list(itertools.islice(paths, batch)):
        decoded = []
        for p in chunk:
            try:
                decoded.append((str(p), load_image(p, max_pixels)))
            except ImageDecodeError as err:
                decoded.append((str(p), str(err)))
        good = [(p, im) for p, im in decoded if not isinstance(im, str)]
        vectors = iter(extractor([im for _, im in good]) if good else [])
        for p, im in decoded:
            yield (p, im) if isinstance(im, str) else (p, next(vectors))


def embed_files(model: Any, source: Any, batch: int = 64, on_item: Callable[[bool], None] | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """``(vectors [N, dim] float32, their paths, one-line errors of the unreadable files)``.

    ``on_item(error)`` is called once per file (a progress bar).

    Raises:
        DataError: no image of ``source`` could be read.
    """
    extractor = FeatureExtractor(model)
    vectors, paths, errors = [], [], []
    for path, item in iter_embeddings(extractor, source, batch):
        if isinstance(item, str):
            errors.append(item)
        else:
            vectors.append(item)
            paths.append(path)
        if on_item is not None:
            on_item(isinstance(item, str))
    if not vectors:
        raise DataError(f"{source}: no readable image" + (f" ({len(errors)} unreadable)" if errors else ""))
    return np.stack(vectors).astype(np.float32), paths, errors


def weights_fingerprint(path: str | Path | None) -> str | None:
    """The SHA-256 of a weights file (which model's vectors an index holds); None without a file."""
    from pixelmind.engine.checkpoint import sha256_file

    return sha256_file(path) if path is not None and Path(path).is_file() else None
