"""Segmentation data sets: ``(image, mask)`` for semantic models, ``(image, target dict)`` for instance models.

Where the samples come from is decided by :mod:`pixelmind.data.masks` (semantic layouts: folders,
image/mask pairs, Pascal VOC, COCO rasterised) and :mod:`pixelmind.data.instances` (COCO
instances, YOLO-seg); the built-in ``shapes`` set comes from :mod:`pixelmind.data.shapes`. This
module turns them into torch data sets with mask-aware augmentation (torchvision.transforms.v2:
the mask moves with the image and is resampled nearest-neighbour; padding in a mask is the
ignore index, so padded pixels never count as background).

Example:
    >>> from pixelmind.config import TrainConfig
    >>> bundle = load_segment_data(TrainConfig(task="segment", data="shapes", imgsz=64, limit=8))
    >>> image, mask = bundle.train[0]
    >>> tuple(image.shape), tuple(mask.shape), bundle.class_names[0]
    ((3, 64, 64), (64, 64), 'background')
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from pixelmind.data.datasets import BadSample
from pixelmind.data.decode import ImageDecodeError, load_image
from pixelmind.errors import DataError
from pixelmind.tasks.base import DataBundle

#: the built-in synthetic data set (seeded; circles, squares, triangles on textured backgrounds)
SHAPES = "shapes"
#: training images per epoch when a data set has fewer (tiny sets such as ISBI's 24 slices)
MIN_EPOCH_SAMPLES = 400
#: decoded images of a data set up to this many pixels in all are kept in memory
CACHE_PIXELS = 200_000_000


def train_transform(imgsz: int, ignore_index: int, mean, std, scale: tuple[float, float] = (0.5, 2.0),
                    colour: bool = True, flip: bool = True) -> v2.Compose:  # fmt: skip
    """Random scale, ``imgsz`` crop (padded with the ignore index), flip and colour jitter; image and mask together.

    ``scale`` is the range of the random resize relative to the image's own size (mmseg-style
    ratio jitter), so objects are seen larger and smaller than they are.
    """
    steps = [] if scale == (1.0, 1.0) else [_RandomRatioResize(scale)]
    steps.append(v2.RandomCrop(imgsz, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}))
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    if colour:
        steps.append(v2.ColorJitter(0.25, 0.25, 0.25, 0.02))
    steps += [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), v2.Normalize(mean, std)]
    return v2.Compose(steps)


def eval_transform(mean, std) -> v2.Compose:
    """The whole image, normalised; the model pads it to its stride and crops the logits back."""
    return v2.Compose([v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), v2.Normalize(mean, std)])


class _RandomRatioResize(torch.nn.Module):
    """Resize image and mask by one random factor in ``scale`` (nearest-neighbour for the mask)."""

    def __init__(self, scale: tuple[float, float]) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, image, mask):
        lo, hi = self.scale
        if lo == hi == 1.0:
            return image, mask
        factor = float(torch.empty(1).uniform_(lo, hi))
        h, w = image.shape[-2:]
        size = [max(1, round(h * factor)), max(1, round(w * factor))]
        return v2.functional.resize(image, size, antialias=True), v2.functional.resize(mask, size)


class SemanticDataset(Dataset):
    """``(image float [3, H, W], mask int64 [H, W])`` from decoded images and masks (``read``)."""

    def __init__(self, count: int, read: Callable[[int], tuple[Any, np.ndarray]], transform: Callable,
                 length: int | None = None, names: list[str] | None = None, cache: bool = False) -> None:  # fmt: skip
        self.count, self.read, self.transform, self.names = count, read, transform, names
        self.length = length or count
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if cache else None

    def __len__(self) -> int:
        return self.length

    def _load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        image, mask = self.read(i)
        pair = (uint8_tensor(image), torch.from_numpy(mask.astype(np.int64)))
        if self.cache is not None:
            self.cache[i] = pair
        return pair

    def __getitem__(self, index: int):
        i = index % self.count
        try:
            image, mask = self._load(i)
        except (ImageDecodeError, DataError) as err:
            return BadSample(self.names[i] if self.names else f"sample {i}", str(err))
        image, mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


class InstanceDataset(Dataset):
    """``(image float [3, H, W] in 0..1, {"boxes", "labels", "masks", "iscrowd"})`` for instance models.

    Labels are 0-based class indices; the task shifts them for models with a background class.
    Training samples are flipped at random (boxes and masks with them).
    """

    def __init__(self, count: int, read: Callable[[int], tuple[Any, dict[str, np.ndarray]]], train: bool,
                 length: int | None = None, names: list[str] | None = None) -> None:  # fmt: skip
        self.count, self.read, self.train, self.names = count, read, train, names
        self.length = length or count
        self.flip = v2.RandomHorizontalFlip()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        i = index % self.count
        try:
            image, target = self.read(i)
        except (ImageDecodeError, DataError) as err:
            return BadSample(self.names[i] if self.names else f"sample {i}", str(err))
        x = tv_tensors.Image(uint8_tensor(image))
        h, w = x.shape[-2:]
        boxes = tv_tensors.BoundingBoxes(torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=(h, w))
        masks = tv_tensors.Mask(torch.as_tensor(target["masks"], dtype=torch.uint8).reshape(-1, h, w))
        if self.train:
            x, boxes, masks = self.flip(x, boxes, masks)
        out = {
            "boxes": boxes.as_subclass(torch.Tensor),
            "labels": torch.as_tensor(target["labels"], dtype=torch.int64).reshape(-1),
            "masks": masks.as_subclass(torch.Tensor),
            "iscrowd": torch.as_tensor(target.get("iscrowd", np.zeros(len(target["labels"]), bool)), dtype=torch.bool).reshape(-1),
        }
        return x.as_subclass(torch.Tensor).float() / 255, out


def uint8_tensor(image) -> torch.Tensor:
    """A PIL RGB image (or ``H x W x 3`` array) as a uint8 ``[3, H, W]`` tensor without an extra copy.

    ``np.asarray`` of a PIL image is read-only; the tensor is only ever read, so torch's warning
    about non-writable arrays is silenced rather than paid for with a copy (192 MB at 8000x8000).
    """
    import warnings

    if hasattr(image, "convert") and image.mode != "RGB":  # convert() copies even an RGB image
        image = image.convert("RGB")
    arr = np.asarray(image)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)


def collate_semantic(samples: list[tuple[torch.Tensor, torch.Tensor]]):
    """Stack equal-sized samples (training crops); keep whole validation images of different sizes as lists."""
    if len({(a.shape, b.shape) for a, b in samples}) == 1:
        return torch.stack([a for a, _ in samples]), torch.stack([b for _, b in samples])
    return [a for a, _ in samples], [b for _, b in samples]


def collate_instances(samples: list[tuple[torch.Tensor, dict[str, torch.Tensor]]]):
    """Images and targets as lists (each image has its own size and number of instances)."""
    return [a for a, _ in samples], [b for _, b in samples]


# ------------------------------------------------------------------------------------------- loading
def load_segment_data(cfg: Any, class_names: list[str] | None = None, mean=(0.485, 0.456, 0.406),
                      std=(0.229, 0.224, 0.225), instance: bool = False) -> DataBundle:  # fmt: skip
    """Train/val data sets for ``cfg.data`` (``shapes``, or a folder in any layout the readers know).

    Args:
        class_names: the classes a trained model knows (evaluation): the data must use the same.
        instance: instance targets (boxes, labels, masks) instead of index masks.
    """
    if str(cfg.data) == SHAPES:
        bundle = _shapes_bundle(cfg, mean, std, instance)
    elif instance:
        bundle = _instance_bundle(cfg)
    else:
        bundle = _semantic_bundle(cfg, mean, std)
    if class_names is not None and list(class_names) != list(bundle.class_names):
        raise DataError(f"{cfg.data}: classes {bundle.class_names} differ from the model's {list(class_names)}")
    return bundle


def _epoch_length(cfg: Any, count: int) -> int:
    return cfg.epoch_samples or max(count, MIN_EPOCH_SAMPLES)


def _shapes_bundle(cfg: Any, mean, std, instance: bool) -> DataBundle:
    from pixelmind.data import shapes

    size = cfg.imgsz or 64
    train_idx, val_idx = shapes.shapes_indices("train"), shapes.shapes_indices(cfg.split)
    if cfg.limit:
        train_idx = train_idx[: cfg.limit]
    seed = cfg.seed

    if instance:
        train = InstanceDataset(len(train_idx), partial(_shapes_instances, train_idx, size, seed), True, _epoch_length(cfg, len(train_idx)))
        val = InstanceDataset(len(val_idx), partial(_shapes_instances, val_idx, size, seed), False)
        names = list(shapes.CLASS_NAMES)
    else:
        # no colour or scale jitter: colours and sizes are random by construction, and the jitter
        # slowed learning (with it, 12 epochs reached mIoU 0.59; bench/RESULTS.md §10)
        train = SemanticDataset(len(train_idx), partial(_shapes_semantic, train_idx, size, seed),
                                train_transform(size, 255, mean, std, (1.0, 1.0), colour=False), _epoch_length(cfg, len(train_idx)), cache=True)  # fmt: skip
        val = SemanticDataset(len(val_idx), partial(_shapes_semantic, val_idx, size, seed), eval_transform(mean, std), cache=True)
        names = ["background", *shapes.CLASS_NAMES]
    summary = {"source": f"built-in shapes ({size} px, seed {seed})", "layout": "shapes", "train_images": len(train_idx),
               "val_images": len(val_idx), "classes": len(names)}  # fmt: skip
    extra = {"ignore_index": 255, "train_data": SHAPES}
    if cfg.class_weights == "auto" and not instance:
        pixels = sum(np.bincount(_shapes_semantic(train_idx, size, seed, i)[1].ravel(), minlength=len(names)) for i in range(len(train_idx)))
        extra["auto_class_weights"] = auto_class_weights(pixels)
    return DataBundle(train, val, names, summary, extra)


def _semantic_bundle(cfg: Any, mean, std) -> DataBundle:
    from pixelmind.data.masks import find_semantic_data

    data = find_semantic_data(cfg.data, cfg.val_fraction, cfg.seed, cfg.split)
    cmap = data.class_map
    train_items = [it for it in data.train if it.mask is not None or it.coco is not None]
    val_items = [it for it in data.val if it.mask is not None or it.coco is not None]
    if cfg.limit:
        train_items = train_items[: cfg.limit]
    if not train_items or not val_items:
        raise DataError(f"{cfg.data}: needs labelled images in train and val (found {len(train_items)} and {len(val_items)})")

    cache = _total_pixels([it.image for it in train_items + val_items]) <= CACHE_PIXELS
    crop = cfg.imgsz or 256
    # augment none: random crops only (the crop is how whole images become batches)
    jitter = {} if cfg.augment != "none" else {"scale": (1.0, 1.0), "colour": False, "flip": False}
    train = SemanticDataset(len(train_items), partial(_read_semantic, train_items, cmap, cfg.max_pixels),
                            train_transform(crop, cmap.ignore_index, mean, std, **jitter),
                            _epoch_length(cfg, len(train_items)), names=[str(it.image) for it in train_items], cache=cache)  # fmt: skip
    val = SemanticDataset(len(val_items), partial(_read_semantic, val_items, cmap, cfg.max_pixels), eval_transform(mean, std), names=[str(it.image) for it in val_items], cache=cache)
    summary = {"source": str(cfg.data), "layout": data.layout, "train_images": len(train_items), "val_images": len(val_items),
               "classes": len(cmap.names), "ignore_index": cmap.ignore_index,
               "unlabelled_images": sum(it.mask is None and it.coco is None for it in data.train + data.val)}  # fmt: skip
    for note in data.notes:
        summary.setdefault("notes", []).append(note)
    extra = {"ignore_index": cmap.ignore_index, "colors": [list(c) for c in cmap.colors], "train_data": str(cfg.data)}
    if cfg.class_weights == "auto":
        from pixelmind.data.masks import pixel_counts

        extra["auto_class_weights"] = auto_class_weights(pixel_counts(data, "train"))
    return DataBundle(train, val, list(cmap.names), summary, extra)


def auto_class_weights(pixels: np.ndarray) -> list[float]:
    """Class weights from pixel counts: ``1 / sqrt(share)``, mean 1; classes with no pixel get the largest weight.

    The square root (rather than ``1 / share``) keeps a rare class from dominating the loss.

    Example:
        >>> auto_class_weights(np.array([900, 100]))
        [0.5, 1.5]
    """
    share = pixels / max(int(pixels.sum()), 1)
    w = np.where(share > 0, 1 / np.sqrt(np.maximum(share, 1e-12)), 0.0)
    w[share == 0] = w.max() if w.max() > 0 else 1.0
    return [round(float(v), 6) for v in w / w.mean()]


def _instance_bundle(cfg: Any) -> DataBundle:
    from pixelmind.data.instances import find_instance_data

    data = find_instance_data(cfg.data, cfg.val_fraction, cfg.seed, cfg.split)
    train_items = data.train[: cfg.limit] if cfg.limit else data.train

    train = InstanceDataset(len(train_items), partial(_read_instances, train_items, cfg.max_pixels), True, _epoch_length(cfg, len(train_items)),
                            names=[str(it.image) for it in train_items])  # fmt: skip
    val = InstanceDataset(len(data.val), partial(_read_instances, data.val, cfg.max_pixels), False, names=[str(it.image) for it in data.val])
    summary = {"source": str(cfg.data), "layout": data.layout, "train_images": len(train_items), "val_images": len(data.val),
               "classes": len(data.class_names), "label_warnings": len(data.warnings)}  # fmt: skip
    return DataBundle(train, val, list(data.class_names), summary, {"train_data": str(cfg.data)})


def _total_pixels(paths: list[Path]) -> int:
    from pixelmind.tasks.enhance.data import total_pixels

    return total_pixels(paths)


# Readers are module-level functions bound with functools.partial, so data sets pickle into loader workers.
def _shapes_semantic(indices, size: int, seed: int, i: int):
    from pixelmind.data import shapes

    s = shapes.shapes_sample(indices[i], size=size, seed=seed)
    return s.image, shapes.semantic_mask(s)


def _shapes_instances(indices, size: int, seed: int, i: int):
    from pixelmind.data import shapes

    s = shapes.shapes_sample(indices[i], size=size, seed=seed)
    return s.image, {"boxes": s.boxes, "labels": s.labels, "masks": s.masks}


def _read_semantic(items, cmap, max_pixels: int, i: int):
    from pixelmind.data.masks import read_mask

    image = load_image(items[i].image, max_pixels)
    return image, read_mask(items[i], cmap, image.size)


def _read_instances(items, max_pixels: int, i: int):
    from pixelmind.data.instances import instance_masks

    item = items[i]
    image = load_image(item.image, max_pixels)
    return image, {"boxes": item.boxes, "labels": item.labels, "masks": instance_masks(item), "iscrowd": item.iscrowd}
