"""Compression data: random crops of a folder of images for training, whole images for evaluation.

``--data`` is ``photos`` (built in), a folder of images (split by ``val_fraction``) or a folder
with ``train/`` and ``val/`` subfolders, as for the enhance task. Samples are float images
``[C, H, W]`` in [0, 1]; the target is the image itself.

Example:
    >>> from pixelmind.config import TrainConfig
    >>> bundle = load_compress_data(TrainConfig(task="compress", data="photos", imgsz=64))
    >>> tuple(bundle.train[0].shape)
    (3, 64, 64)
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

from pixelmind.data.datasets import BadSample
from pixelmind.data.decode import ImageDecodeError
from pixelmind.tasks.base import DataBundle
from pixelmind.tasks.enhance.data import (
    CACHE_PIXELS,
    ImageStore,
    clean_image_splits,
    random_patch,
    total_pixels,
)


class CropDataset(Dataset):
    """``length`` random ``crop`` x ``crop`` patches with flips and transposes; patch i from image i % n."""

    def __init__(self, store: ImageStore, crop: int, length: int) -> None:
        self.store, self.crop, self.length = store, crop, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return random_patch(self.store, index, self.crop)


class WholeImageDataset(Dataset):
    """Whole images, for evaluation (the codec pads them itself)."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int):
        try:
            return self.store.get(index).float() / 255
        except ImageDecodeError as err:
            return BadSample(str(self.store.paths[index]), str(err))


def load_compress_data(cfg: Any, evaluate_all: bool = False) -> DataBundle:
    """Train crops and whole val images for ``cfg``; ``evaluate_all`` makes every image a val image."""
    crop = cfg.imgsz or 256
    train_paths, val_paths, source = clean_image_splits(cfg.data, cfg.val_fraction, cfg.seed, evaluate_all)
    if cfg.limit:
        train_paths = train_paths[: cfg.limit]
    cache = total_pixels(train_paths + val_paths) <= CACHE_PIXELS
    length = cfg.epoch_samples or max(len(train_paths), 1000)
    train = CropDataset(ImageStore(train_paths, cfg.max_pixels, 3, cache), crop, length)
    val = WholeImageDataset(ImageStore(val_paths, cfg.max_pixels, 3, cache))
    summary = {"source": source, "train_images": len(train_paths), "val_images": len(val_paths),
               "crop": crop, "crops_per_epoch": length}  # fmt: skip
    return DataBundle(train, val, [], summary, {"train_data": str(cfg.data)})
