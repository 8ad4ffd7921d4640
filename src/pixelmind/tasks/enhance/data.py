"""Enhancement data: clean images degraded on the fly, or paired low/high-quality images.

Layouts read from ``--data`` (detected, no conversion step):

* ``photos``: scikit-image's bundled photos (built in, offline).
* a folder of clean images (searched recursively), split by ``val_fraction``; or with
  ``train/`` and ``val/`` subfolders. Degraded on the fly by :class:`Degradation`.
* paired folders matched by file stem: ``lq/`` + ``hq/`` (also ``lr``/``hr``, ``input``/``target``,
  ``noisy``/``clean``, ``low``/``high``, ``gt``), at the top or under ``train/`` and ``val/``;
  or one folder of ``NAME_LR.png`` + ``NAME_HR.png`` files (the Set5/Set14 layout). The scale
  comes from the size ratio; a pair whose sizes do not match it is named at load time.

Samples are ``(degraded, clean)`` float tensors ``[C, H, W]`` in [0, 1]; training samples are
random crops of ``imgsz`` (the clean side) with flips and 90-degree rotations.

Example:
    >>> from pixelmind.config import TrainConfig
    >>> cfg = TrainConfig(task="enhance", data="photos", imgsz=32, degradation="sr", scale=2, channels=3)
    >>> lq, hq = load_enhance_data(cfg).train[0]
    >>> tuple(lq.shape), tuple(hq.shape)
    ((3, 16, 16), (3, 32, 32))
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from pixelmind.data.datasets import BadSample
from pixelmind.data.decode import ImageDecodeError, is_image_file, load_image, to_rgb
from pixelmind.errors import DataError
from pixelmind.tasks.base import DataBundle
from pixelmind.tasks.enhance.degrade import Degradation

LQ_NAMES = ("lq", "lr", "low", "input", "noisy", "degraded")
HQ_NAMES = ("hq", "hr", "high", "gt", "target", "clean")
PAIR_SUFFIXES = (("_lr", "_hr"), ("_lq", "_hq"), ("_lq", "_gt"))
#: decode every image once and keep it in memory when the whole set is at most this many pixels
CACHE_PIXELS = 150_000_000


def to_uint8_tensor(image: Image.Image, channels: int) -> torch.Tensor:
    """A PIL image as uint8 ``[channels, H, W]`` (``channels`` 1 = luma, 3 = RGB)."""
    rgb = to_rgb(image)  # the same conversion as decoding a file (alpha over white, 16-bit scaled)
    arr = np.asarray(rgb.convert("L") if channels == 1 else rgb)
    t = torch.from_numpy(arr.copy())
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def to_tensor(image: Image.Image, channels: int) -> torch.Tensor:
    """A PIL image as float ``[channels, H, W]`` in [0, 1] (``channels`` 1 = luma, 3 = RGB)."""
    return to_uint8_tensor(image, channels).float() / 255


def is_grey(image: Image.Image) -> bool:
    """True when the image has no colour (grey mode, or RGB with R = G = B)."""
    if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return True
    arr = np.asarray(image.convert("RGB").resize((64, 64)))
    return bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())


def stored_grey(path: Path) -> bool:
    """True when the file itself stores one grey channel (read from the header only).

    Evaluation scores such an image on its own grey values, as the MATLAB scripts behind the
    published SR figures do; an RGB file with grey content is scored on its BT.601 Y like any RGB file.
    """
    try:
        with Image.open(path) as im:
            return im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
    except Exception:  # noqa: BLE001 - unreadable files are reported by the loader
        return False


def mod_crop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the bottom/right so that both sides are multiples of ``scale`` (the SR protocol)."""
    h, w = x.shape[-2:]
    return x[..., : h - h % scale, : w - w % scale]


def random_flip_rotate(*images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The same random horizontal flip, vertical flip and transpose for every image (8 orientations)."""
    if random.random() < 0.5:
        images = tuple(x.flip(-1) for x in images)
    if random.random() < 0.5:
        images = tuple(x.flip(-2) for x in images)
    if random.random() < 0.5:
        images = tuple(x.transpose(-1, -2) for x in images)
    return images


class ImageStore:
    """Images by index as uint8 ``[C, H, W]``: decoded once up front when the set is small, else on each access.

    Decoding up front (in the main process) lets loader workers share the pixels instead of each
    decoding every image again each epoch.
    """

    def __init__(self, paths: Sequence[Path], max_pixels: int, channels: int, cache: bool) -> None:
        self.paths = [Path(p) for p in paths]
        self.max_pixels, self.channels = max_pixels, channels
        self.cache: list[torch.Tensor | ImageDecodeError] | None = None
        if cache:
            self.cache = [self._decode_or_error(i) for i in range(len(self.paths))]

    def __len__(self) -> int:
        return len(self.paths)

    def _decode_or_error(self, i: int) -> torch.Tensor | ImageDecodeError:
        try:
            return to_uint8_tensor(load_image(self.paths[i], self.max_pixels), self.channels)
        except ImageDecodeError as err:
            return err

    def get(self, i: int) -> torch.Tensor:
        """Image ``i``; raises :class:`ImageDecodeError` for an unreadable file."""
        item = self.cache[i] if self.cache is not None else self._decode_or_error(i)
        if isinstance(item, ImageDecodeError):
            raise item
        return item


class CleanCropDataset(Dataset):
    """Random ``crop`` x ``crop`` patches of clean images, degraded on the fly: ``(degraded, clean)``.

    ``length`` patches make one epoch; patch ``i`` comes from image ``i % len(images)``.
    """

    def __init__(self, store: ImageStore, crop: int, degrade: Degradation, length: int) -> None:
        self.store, self.crop, self.degrade, self.length = store, crop, degrade, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        clean = random_patch(self.store, index, self.crop)
        return clean if isinstance(clean, BadSample) else (self.degrade(clean), clean)


def random_patch(store: ImageStore, index: int, crop: int) -> torch.Tensor | BadSample:
    """A random ``crop`` x ``crop`` float patch of image ``index % len(store)``, flipped/transposed at random."""
    i = index % len(store)
    try:
        image = store.get(i)
    except ImageDecodeError as err:
        return BadSample(str(store.paths[i]), str(err))
    (patch,) = random_flip_rotate(random_crop(image, crop).float() / 255)
    return patch.contiguous()


def random_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """A random ``size`` x ``size`` crop; smaller images are edge-padded up to ``size`` first."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        x = torch.nn.functional.pad(x[None].float(), (0, max(0, size - w), 0, max(0, size - h)), mode="replicate")[0].to(x.dtype)
        h, w = x.shape[-2:]
    top, left = random.randint(0, h - size), random.randint(0, w - size)
    return x[..., top : top + size, left : left + size]


class CleanFullDataset(Dataset):
    """Whole clean images (mod-cropped to the scale) with a degradation fixed per index: validation."""

    def __init__(self, store: ImageStore, degrade: Degradation, seed: int) -> None:
        self.store, self.degrade, self.seed = store, degrade, seed

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int):
        try:
            clean = mod_crop(self.store.get(index), self.degrade.scale).float() / 255
        except ImageDecodeError as err:
            return BadSample(str(self.store.paths[index]), str(err))
        g = torch.Generator().manual_seed(self.seed * 100_003 + index)
        degraded = self.degrade(clean.contiguous(), g)
        return degraded, _score_channels(clean, self.store.paths[index])


def _score_channels(clean: torch.Tensor, path: Path) -> torch.Tensor:
    """The validation target: one channel for a file stored grey (see :func:`stored_grey`), else as loaded."""
    return clean[:1] if len(clean) == 3 and stored_grey(path) else clean


class PairedDataset(Dataset):
    """Low/high-quality file pairs; aligned random crops (``crop`` on the clean side) or whole images."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]], scale: int, channels: int, crop: int | None,
                 max_pixels: int, length: int | None = None) -> None:  # fmt: skip
        self.pairs, self.scale, self.channels, self.crop = list(pairs), scale, channels, crop
        self.max_pixels, self.length = max_pixels, length or len(self.pairs)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        lq_path, hq_path = self.pairs[index % len(self.pairs)]
        try:
            lq = to_tensor(load_image(lq_path, self.max_pixels), self.channels)
            hq = to_tensor(load_image(hq_path, self.max_pixels), self.channels)
        except ImageDecodeError as err:
            return BadSample(str(lq_path), str(err))
        s = self.scale
        hq = hq[..., : lq.shape[-2] * s, : lq.shape[-1] * s]
        if self.crop is None:
            return lq, _score_channels(hq, hq_path)
        c = self.crop // s
        top, left = random.randint(0, max(0, lq.shape[-2] - c)), random.randint(0, max(0, lq.shape[-1] - c))
        lq = lq[..., top : top + c, left : left + c]
        hq = hq[..., top * s : (top + c) * s, left * s : (left + c) * s]
        return random_flip_rotate(lq, hq)


# -- layout detection ------------------------------------------------------------------------
def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p) and not p.name.startswith("."))


def _child(folder: Path, names: Sequence[str]) -> Path | None:
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.is_dir() and p.name.lower() in names:
            return p
    return None


def _match_pairs(lq_dir: Path, hq_dir: Path) -> list[tuple[Path, Path]]:
    hq = {p.stem.lower(): p for p in _images_in(hq_dir)}
    pairs, missing = [], []
    for p in _images_in(lq_dir):
        stem = p.stem.lower()
        for a, b in PAIR_SUFFIXES:
            if stem.endswith(a) and stem[: -len(a)] + b in hq:
                stem = stem[: -len(a)] + b
        (pairs.append((p, hq[stem])) if stem in hq else missing.append(p.name))
    if missing:
        raise DataError(f"{lq_dir}: {len(missing)} images have no same-named partner in {hq_dir} (e.g. {missing[0]})")
    return pairs


def _suffix_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """``NAME_LR.png`` + ``NAME_HR.png`` in one folder (the Set5/Set14 layout)."""
    files = {p.stem.lower(): p for p in folder.iterdir() if p.is_file() and is_image_file(p)}
    pairs = []
    for a, b in PAIR_SUFFIXES:
        for stem, p in sorted(files.items()):
            if stem.endswith(a) and stem[: -len(a)] + b in files:
                pairs.append((p, files[stem[: -len(a)] + b]))
    return pairs


def find_pairs(root: Path) -> dict[str, list[tuple[Path, Path]]] | None:
    """Paired splits ``{"train": [...], "val": [...]}`` (either may be empty), or None for clean images."""
    splits: dict[str, list[tuple[Path, Path]]] = {}
    for split in ("train", "val"):
        base = _child(root, (split, "valid", "validation", "test") if split == "val" else (split,))
        if base is not None and (lq := _child(base, LQ_NAMES)) and (hq := _child(base, HQ_NAMES)):
            splits[split] = _match_pairs(lq, hq)
    if splits:
        return splits
    if (lq := _child(root, LQ_NAMES)) and (hq := _child(root, HQ_NAMES)):
        return {"all": _match_pairs(lq, hq)}
    if pairs := _suffix_pairs(root):
        return {"all": pairs}
    return None


def pair_scale(pairs: Sequence[tuple[Path, Path]]) -> int:
    """The integer scale shared by every pair (from image headers); a pair that breaks it is an error."""
    scale = None
    for lq, hq in pairs:
        try:
            with Image.open(lq) as a, Image.open(hq) as b:
                (lw, lh), (hw, hh) = a.size, b.size
        except Exception:  # noqa: BLE001 - unreadable files are skipped and reported by the loader
            continue
        s = max(1, round(hw / lw))
        if not (lw * s <= hw < (lw + 1) * s and lh * s <= hh < (lh + 1) * s):
            raise DataError(f"{hq}: {hw}x{hh} is not an integer multiple of its partner {lq.name} ({lw}x{lh})")
        if scale is not None and s != scale:
            raise DataError(f"{hq}: scale x{s} differs from the other pairs' x{scale}")
        scale = s
    if scale is None:
        raise DataError(f"{pairs[0][0].parent}: no readable image pairs")
    return scale


def _split(items: list[Any], val_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    if len(items) < 2:
        raise DataError(f"need at least 2 images to split into train and val (found {len(items)})")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = min(len(items) - 1, max(1, round(len(items) * val_fraction)))
    return [items[i] for i in sorted(order[n_val:])], [items[i] for i in sorted(order[:n_val])]


def clean_image_splits(data: str, val_fraction: float, seed: int, evaluate_all: bool = False) -> tuple[list[Path], list[Path], str]:
    """Train and val paths of clean images for ``data`` (``photos`` or a folder), and a description.

    ``evaluate_all``: without a train/val split in the folder, every image is used for both.
    """
    if data == "photos":
        from pixelmind.data.builtin import photo_paths

        paths = photo_paths()
        train, val = (paths, paths) if evaluate_all else _split(paths, val_fraction, seed)
        return train, val, "photos (scikit-image's bundled photos)"
    root = Path(data)
    if not root.is_dir():
        raise DataError(f"{data}: not a folder of images (or the built-in name photos)")
    tr, va = _child(root, ("train",)), _child(root, ("val", "valid", "validation"))
    if tr is not None and va is not None:
        train, val = _images_in(tr), _images_in(va)
    elif evaluate_all:
        train = val = _images_in(root)
    else:
        train, val = _split(_images_in(root), val_fraction, seed)
    if not train or not val:
        raise DataError(f"{data}: no images found (looked for {', '.join(sorted({e for e in ('.png', '.jpg', '.tif', '.bmp', '.webp')}))} files)")
    return train, val, str(root)


def paired_scale(data: str) -> int | None:
    """The scale of a paired data set (see :func:`find_pairs`), or None for clean images."""
    pairs = find_pairs(Path(data)) if Path(data).is_dir() else None
    return pair_scale([p for split in pairs.values() for p in split]) if pairs else None


def detect_channels(data: str) -> int:
    """1 when every one of up to 8 sampled training images is greyscale, else 3."""
    try:
        pairs = find_pairs(Path(data)) if Path(data).is_dir() else None
        paths = [hq for split in pairs.values() for _, hq in split] if pairs else clean_image_splits(data, 0.2, 0)[0]
    except DataError:
        return 3
    grey = 0
    sample = paths[:: max(1, len(paths) // 8)][:8]
    for p in sample:
        try:
            with Image.open(p) as im:
                grey += is_grey(im)
        except Exception:  # noqa: BLE001 - unreadable files are reported later by the loader
            pass
    return 1 if sample and grey == len(sample) else 3


def load_enhance_data(cfg: Any, evaluate_all: bool = False) -> DataBundle:
    """Train/val data sets for ``cfg`` (see the module docstring for the layouts).

    ``evaluate_all``: a test set; without its own train/val split every image goes to ``val``.
    """
    channels = cfg.channels or 3
    crop = cfg.imgsz or 96
    root = Path(cfg.data)
    pairs = find_pairs(root) if root.is_dir() else None
    if pairs is not None:
        if "all" in pairs:
            train_pairs, val_pairs = (pairs["all"], pairs["all"]) if evaluate_all else _split(pairs["all"], cfg.val_fraction, cfg.seed)
        else:
            train_pairs, val_pairs = pairs.get("train", []), pairs.get("val", [])
            if not train_pairs or not val_pairs:
                train_pairs, val_pairs = _split(train_pairs + val_pairs, cfg.val_fraction, cfg.seed)
        scale = pair_scale(train_pairs + val_pairs)
        if crop % scale:
            raise DataError(f"imgsz: {crop} must be a multiple of the data's scale x{scale}")
        length = cfg.epoch_samples or max(len(train_pairs), 1000)
        if cfg.limit:
            train_pairs = train_pairs[: cfg.limit]
        train = PairedDataset(train_pairs, scale, channels, crop, cfg.max_pixels, length)
        val = PairedDataset(val_pairs, scale, channels, None, cfg.max_pixels)
        kind = cfg.degradation or ("sr" if scale > 1 else "denoise")
        degradation = {"degradation": kind, "scale": scale, "paired": True}
        if cfg.scale and cfg.scale != scale:
            raise DataError(f"{root}: the pairs are x{scale} but scale {cfg.scale} was asked for")
        summary = {"source": str(root), "layout": "paired", "train_pairs": len(train_pairs), "val_pairs": len(val_pairs), "scale": scale}
    else:
        degrade = Degradation.from_config(cfg)
        if crop % degrade.scale:
            raise DataError(f"imgsz: {crop} must be a multiple of the scale x{degrade.scale}")
        train_paths, val_paths, source = clean_image_splits(cfg.data, cfg.val_fraction, cfg.seed, evaluate_all)
        if cfg.limit:
            train_paths = train_paths[: cfg.limit]
        total = total_pixels(train_paths + val_paths)
        length = cfg.epoch_samples or max(len(train_paths), 1000)
        cache = total <= CACHE_PIXELS
        train = CleanCropDataset(ImageStore(train_paths, cfg.max_pixels, channels, cache), crop, degrade, length)
        val = CleanFullDataset(ImageStore(val_paths, cfg.max_pixels, channels, cache), degrade, cfg.seed)
        degradation = degrade.to_dict()
        summary = {"source": source, "layout": "clean images, degraded on the fly", "train_images": len(train_paths),
                   "val_images": len(val_paths), "degradation": degrade.describe(), "crops_per_epoch": length}  # fmt: skip
    summary["channels"] = channels
    return DataBundle(train, val, [], summary, {**degradation, "channels": channels, "train_data": str(cfg.data)})


def total_pixels(paths: Sequence[Path]) -> int:
    total = 0
    for p in paths:
        try:
            with Image.open(p) as im:
                total += im.size[0] * im.size[1]
        except Exception:  # noqa: BLE001 - counted as unreadable later
            pass
    return total
