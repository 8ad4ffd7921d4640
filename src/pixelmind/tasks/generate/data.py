"""Generation data: images scaled to [-1, 1] with a class index (0 for unconditional data).

:func:`load_generate_data` reads ``cfg.data``:

* ``digits``: scikit-learn's 1,797 handwritten digits (8x8, upscaled to ``imgsz``), 10 classes.
* an IDX folder (``train-images-idx3-ubyte[.gz]``, labels and a ``t10k`` split optional), e.g.
  ``/usr/share/datasets/fashion-mnist``, or the path of one IDX images file.
* a folder of class folders (ImageFolder): class-conditional data.
* a folder of images (any depth, no class folders): unconditional data.

Channels (1 or 3) come from the data; images are resized on the shorter side and
centre-cropped to ``imgsz``. Unreadable image files are skipped and counted by the engine.

Example:
    >>> from pixelmind.config import TrainConfig
    >>> b = load_generate_data(TrainConfig(task="generate", data="digits", imgsz=28))
    >>> image, label = b.train[0]
    >>> tuple(image.shape), float(image.min()) >= -1, b.meta_extra["channels"]
    ((1, 28, 28), True, 1)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from pixelmind.data import builtin, formats
from pixelmind.data.datasets import FileDataset, Subset
from pixelmind.data.decode import is_image_file
from pixelmind.errors import DataError
from pixelmind.tasks.base import DataBundle

#: ``imgsz`` when the data does not say better (IDX and digits: 28 px, MNIST's own size)
DEFAULT_IMGSZ = 28


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``[.., C, H, W]`` -> float in [-1, 1] (0 -> -1, 255 -> 1)."""
    return x.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float images in [-1, 1] -> uint8 (the inverse of :func:`to_unit_range`, clamped).

    Example:
        >>> to_uint8(torch.tensor([-1.0, 0.0, 1.0])).tolist()
        [0, 128, 255]
    """
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` -> ``[N, C, size, size]``: shorter side to ``size`` (antialiased), centre crop."""
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        x = F.interpolate(x.float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[..., top : top + size, left : left + size].round().clamp(0, 255).to(torch.uint8)
    return x


class ArrayImages(Dataset):
    """In-memory uint8 images ``[N, C, S, S]`` (already at the training size) and class indices."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return to_unit_range(self.images[index]), int(self.labels[index])


class ImageTransform:
    """PIL image -> float ``[channels, size, size]`` in [-1, 1] (picklable for loader workers)."""

    def __init__(self, size: int, channels: int) -> None:
        self.size, self.channels = size, channels

    def __call__(self, image) -> torch.Tensor:
        from pixelmind.tasks.enhance.data import to_uint8_tensor

        return to_unit_range(resize_square(to_uint8_tensor(image, self.channels)[None], self.size)[0])


# -- readers -------------------------------------------------------------------------------
def _idx_images(path: Path) -> torch.Tensor:
    arr = formats.read_idx(path)
    if arr.ndim == 4 and arr.shape[-1] in (1, 3):  # [N, H, W, C] colour IDX
        return torch.from_numpy(arr.copy()).permute(0, 3, 1, 2).contiguous()
    if arr.ndim != 3:
        raise DataError(f"{path}: an IDX images file must be [N, H, W] (got shape {list(arr.shape)})")
    return torch.from_numpy(arr.copy()).unsqueeze(1)


def _idx_labels(path: Path | None, n: int) -> torch.Tensor | None:
    if path is None:
        return None
    arr = formats.read_idx(path)
    if arr.ndim != 1 or len(arr) != n:
        raise DataError(f"{path}: expected {n} labels for the images beside it (got shape {list(arr.shape)})")
    return torch.from_numpy(arr.astype(np.int64))


def labels_file_for(images: Path) -> Path | None:
    """The labels file beside an IDX images file (``x-images-idx3-ubyte`` -> ``x-labels-idx1-ubyte``)."""
    name = images.name.replace("-images-", "-labels-").replace("idx3", "idx1")
    candidate = images.with_name(name)
    return candidate if candidate != images and candidate.is_file() else None


def is_idx_file(path: Path) -> bool:
    name = path.name.lower()
    return "idx" in name and ("ubyte" in name or name.endswith((".idx", ".idx.gz")))


def _class_names(source: Path, n: int) -> list[str]:
    if "fashion" in str(source).lower() and n == 10:
        return list(formats.FASHION_MNIST_CLASSES)
    return [str(i) for i in range(n)]


def _read_arrays(cfg: Any, path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None, list[str]]:
    """(train images, train labels, val images or None, val labels or None, class names) of digits or IDX data."""
    if cfg.data in builtin.BUILTIN:
        images, labels, names = builtin.BUILTIN[cfg.data]()
        return images, labels, None, None, names
    if path.is_dir():
        train = formats.find_idx_split(path, "train")
        if train is None:  # images without labels: unconditional
            lone = next((p for p in sorted(path.iterdir()) if is_idx_file(p) and "images" in p.name), None)
            if lone is None:
                raise DataError(f"{path}: no train-images-idx3-ubyte[.gz] in this folder")
            train = (lone, labels_file_for(lone))
        test = formats.find_idx_split(path, "test")
    else:
        train, test = (path, labels_file_for(path)), None
    x = _idx_images(train[0])
    y = _idx_labels(train[1], len(x))
    vx = vy = None
    if test is not None:
        vx = _idx_images(test[0])
        vy = _idx_labels(test[1], len(vx))
        if vx.shape[1:] != x.shape[1:]:
            raise DataError(f"{test[0]}: images of shape {list(vx.shape[1:])}, the training images are {list(x.shape[1:])}")
    if y is None:
        return x, torch.zeros(len(x), dtype=torch.long), vx, None if vx is None else torch.zeros(len(vx), dtype=torch.long), []
    n = int(max(y.max(), vy.max() if vy is not None else 0)) + 1
    return x, y, vx, vy, _class_names(path, n)


def _folder_samples(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """ImageFolder (class folders holding images) or one folder of images (unconditional)."""
    loose = [p for p in sorted(root.iterdir()) if p.is_file() and is_image_file(p)]
    subdirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if subdirs and not loose:
        samples, names = formats.imagefolder_samples(root)
        return samples, names
    samples = [(p, 0) for p in sorted(root.rglob("*")) if p.is_file() and is_image_file(p)]
    if not samples:
        raise DataError(f"{root}: no image files in this folder")
    return samples, []


def _detect_channels(paths: list[Path], peek: int = 16) -> int:
    """1 when the first readable images are all grey, else 3."""
    from pixelmind.data.decode import ImageDecodeError, load_image
    from pixelmind.tasks.enhance.data import is_grey

    seen = 0
    for p in paths:
        try:
            image = load_image(p)
        except ImageDecodeError:
            continue
        if not is_grey(image):
            return 3
        seen += 1
        if seen >= peek:
            break
    return 1


def _split(labels: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    if len(set(labels)) > 1:
        return formats.stratified_split(labels, val_fraction, seed)
    order = list(range(len(labels)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_fraction)) if len(order) > 1 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def _cap(indices: list[int], limit: int | None, seed: int) -> list[int]:
    """At most ``limit`` indices, a seeded random choice (kept in order)."""
    if limit is None or len(indices) <= limit:
        return list(indices)
    return sorted(random.Random(seed).sample(list(indices), limit))


def load_generate_data(cfg: Any, evaluate_all: bool = False) -> DataBundle:
    """Read ``cfg.data`` into train/val data sets of ``(image in [-1, 1], class index)``.

    ``cfg.val_samples`` caps the validation images (FID reference set), ``cfg.limit`` the
    training images. ``evaluate_all``: data other than the training data is a test set; its
    whole (capped) set is the validation split.

    Raises:
        DataError: the source is missing, empty or malformed (one line naming the file).
    """
    source = str(cfg.data)
    path = Path(source).expanduser()
    size = cfg.imgsz or DEFAULT_IMGSZ
    val_cap = getattr(cfg, "val_samples", None)
    if source not in builtin.BUILTIN and not path.exists():
        raise DataError(f"{source}: no such file or folder (built-in data sets: {', '.join(builtin.BUILTIN)})")

    if source in builtin.BUILTIN or (path.is_file() and is_idx_file(path)) or (path.is_dir() and _has_idx(path)):
        x, y, vx, vy, names = _read_arrays(cfg, path)
        if vx is None:
            train_idx, val_idx = _split(y.tolist(), cfg.val_fraction, cfg.seed)
            if evaluate_all:
                train_idx, val_idx = [], list(range(len(x)))
            vx, vy, x, y = x[val_idx], y[val_idx], x[train_idx], y[train_idx]
        keep = _cap(list(range(len(x))), cfg.limit, cfg.seed)
        vkeep = _cap(list(range(len(vx))), val_cap, cfg.seed)
        x, y, vx, vy = x[keep], y[keep], vx[vkeep], vy[vkeep]
        channels = int(x.shape[1]) if len(x) else int(vx.shape[1])
        train, val = ArrayImages(resize_square(x, size), y), ArrayImages(resize_square(vx, size), vy)
        native = int(x.shape[-1]) if len(x) else int(vx.shape[-1])
    elif path.is_dir():
        samples, names = _folder_samples(path)
        labels = [t for _, t in samples]
        train_idx, val_idx = _split(labels, cfg.val_fraction, cfg.seed)
        if evaluate_all:
            train_idx, val_idx = [], list(range(len(samples)))
        train_idx, val_idx = _cap(train_idx, cfg.limit, cfg.seed), _cap(val_idx, val_cap, cfg.seed)
        channels = cfg.channels or _detect_channels([p for p, _ in samples])
        base = FileDataset(samples, ImageTransform(size, channels), max_pixels=cfg.max_pixels)
        train, val = Subset(base, train_idx), Subset(base, val_idx)
        native = None
    else:
        raise DataError(f"{source}: not generation data (expected a folder of images, class folders, IDX files or digits)")

    if len(names) < 2:  # one class is no condition
        names = []
    summary = {"source": source, "train_images": len(train), "val_images": len(val), "classes": len(names),
               "channels": channels, "image_size": size, "native_size": native}  # fmt: skip
    extra = {"channels": channels, "train_data": source}
    return DataBundle(train=train, val=val, class_names=names, summary=summary, meta_extra=extra)


def _has_idx(path: Path) -> bool:
    return any(is_idx_file(p) for p in path.iterdir() if p.is_file())
