"""Map-style data sets over files or in-memory arrays that never crash on a bad sample.

A sample that fails to decode becomes a :class:`BadSample`; :class:`SkipBadCollate` drops it
from the batch and hands the list of skipped files to the engine, which counts them in the
report. This works the same with any number of loader workers.

Example:
    >>> import torch
    >>> ds = ArrayDataset(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    >>> image, label = ds[1]
    >>> tuple(image.shape), int(label)
    ((3, 8, 8), 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from pixelmind.data.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, load_image


@dataclass(frozen=True)
class BadSample:
    """Placeholder for a sample whose file could not be decoded."""

    path: str
    reason: str


class FileDataset(Dataset):
    """Samples ``(path, target)`` decoded with :func:`~pixelmind.data.decode.load_image`."""

    def __init__(
        self,
        samples: Sequence[tuple[str | Path, Any]],
        transform: Callable | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.samples = [(str(p), t) for p, t in samples]
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[Any]:
        return [t for _, t in self.samples]

    def __getitem__(self, index: int) -> tuple[Any, Any] | BadSample:
        path, target = self.samples[index]
        try:
            image = load_image(path, self.max_pixels)
        except ImageDecodeError as err:
            return BadSample(path, str(err))
        return (self.transform(image) if self.transform else image), target


class ArrayDataset(Dataset):
    """In-memory uint8 images ``[N, C, H, W]`` (C = 1 or 3) with targets; grey becomes 3-channel."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, transform: Callable | None = None) -> None:
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise ValueError("images must be a uint8 tensor [N, C, H, W]")
        self.images = images
        self._targets = targets
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    @property
    def targets(self) -> list[Any]:
        return self._targets.tolist()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        image = self.images[index]
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        return (self.transform(image) if self.transform else image), self._targets[index]


class Subset(Dataset):
    """A view of some indices of a data set that keeps its own transform."""

    def __init__(self, base: Dataset, indices: Sequence[int]) -> None:
        self.base = base
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> list[Any]:
        all_targets = self.base.targets
        return [all_targets[i] for i in self.indices]

    def __getitem__(self, index: int) -> Any:
        return self.base[self.indices[index]]


class SkipBadCollate:
    """Wraps a task's collate: drops BadSamples and returns ``(batch_or_None, skipped)``."""

    def __init__(self, collate: Callable[[list[Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, samples: list[Any]) -> tuple[Any, list[BadSample]]:
        good = [s for s in samples if not isinstance(s, BadSample)]
        bad = [s for s in samples if isinstance(s, BadSample)]
        return (self.collate(good) if good else None), bad
