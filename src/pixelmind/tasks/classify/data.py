"""Classification data: built-in ``digits``, IDX folders, ImageFolder trees and CSV manifests.

:func:`load_classification_data` looks at ``cfg.data`` and picks the reader:

* ``digits``: scikit-learn's handwritten digits, split by ``cfg.val_fraction``.
* a folder with ``train-images-idx3-ubyte[.gz]`` (MNIST/Fashion-MNIST): train and t10k splits.
* a folder with ``train/`` and ``val/`` (or ``valid/``, ``test/``) class folders.
* a folder of class folders: split into train/val, seeded and stratified.
* a ``.csv`` manifest ``path,label[,split]``.

Example:
    >>> from pixelmind.config import TrainConfig
    >>> b = load_classification_data(TrainConfig(data="digits", imgsz=16, augment="none"))
    >>> len(b.train) + len(b.val), b.class_names[:3]
    (1797, ['0', '1', '2'])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from pixelmind.data import builtin, formats
from pixelmind.data.datasets import ArrayDataset, FileDataset, Subset
from pixelmind.data.transforms import eval_transform, train_transform
from pixelmind.errors import DataError
from pixelmind.tasks.base import DataBundle

VAL_DIR_NAMES = ("val", "valid", "validation", "test")
#: data sources whose labels change when mirrored
NO_HFLIP = {"digits", "mnist"}


def _eval_names(test: bool, present: set[str]) -> tuple[str, ...]:
    """The split names evaluated: ``test`` alone for ``--split test``; else the val names (test only without them).

    Example:
        >>> _eval_names(False, {"train", "val", "test"}), _eval_names(False, {"train", "test"})
        (('val', 'valid', 'validation'), ('test',))
    """
    if test:
        return ("test",)
    named = tuple(n for n in VAL_DIR_NAMES if n != "test")
    return named if present & set(named) else ("test",)


def _resize_array(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a whole uint8 array once, so per-sample transforms on small images stay cheap."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = []
    for chunk in images.split(4096):
        x = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def _transforms(cfg: Any, mean, std, hflip: bool):
    return train_transform(cfg.imgsz, mean, std, cfg.augment or "light", hflip), eval_transform(cfg.imgsz, mean, std)


def _class_index(labels: list[str], class_names: list[str] | None, source: Path) -> tuple[list[int], list[str]]:
    names = class_names or sorted(set(labels))
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"{source}: labels {unknown[:5]} are not among the model's classes {names[:10]}")
    return [index[y] for y in labels], names


def load_classification_data(
    cfg: Any,
    class_names: list[str] | None = None,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
) -> DataBundle:
    """Read ``cfg.data`` into train/val data sets with transforms for ``cfg.imgsz``.

    Args:
        class_names: the model's classes when evaluating existing weights (keeps indices stable).

    Raises:
        DataError: the source is missing, empty or malformed (one line naming the file).
    """
    source = cfg.data
    path = Path(source).expanduser()
    test = getattr(cfg, "split", "val") == "test"
    if test and not (path.is_dir() and not formats.find_idx_split(path, "train") or path.suffix.lower() == ".csv"):
        raise DataError(f"{source}: no test split apart from val (a test/ folder or 'test' rows in a CSV manifest)")

    if source in builtin.BUILTIN:
        images, labels, names = builtin.BUILTIN[source]()
        return _array_bundle(cfg, images, labels, None, None, names, mean, std, source, hflip=source not in NO_HFLIP)

    if not path.exists():
        known = ", ".join(builtin.BUILTIN)
        raise DataError(f"{source}: no such file or folder (built-in data sets: {known})")

    if path.is_dir() and (idx := formats.find_idx_split(path, "train")):
        test = formats.find_idx_split(path, "test")
        train_x = torch.from_numpy(formats.read_idx(idx[0]).copy()).unsqueeze(1)
        train_y = torch.from_numpy(formats.read_idx(idx[1]).astype("int64"))
        val_x = val_y = None
        if test:
            val_x = torch.from_numpy(formats.read_idx(test[0]).copy()).unsqueeze(1)
            val_y = torch.from_numpy(formats.read_idx(test[1]).astype("int64"))
        n = int(max(train_y.max(), val_y.max() if val_y is not None else 0)) + 1
        names = formats.FASHION_MNIST_CLASSES if "fashion" in str(path).lower() and n == 10 else [str(i) for i in range(n)]
        hflip = "fashion" in str(path).lower()
        return _array_bundle(cfg, train_x, train_y, val_x, val_y, class_names or names, mean, std, str(path), hflip)

    if path.is_file() and path.suffix.lower() == ".csv":
        rows, splits = formats.csv_samples(path)
        labels, names = _class_index([y for _, y in rows], class_names, path)
        samples = [(p, y) for (p, _), y in zip(rows, labels)]
        if splits:
            unknown = sorted(set(splits) - {"train", *VAL_DIR_NAMES})
            if unknown:
                raise DataError(f"{path}: unknown split names {unknown}; use train or one of {', '.join(VAL_DIR_NAMES)}")
            train_idx = [i for i, s in enumerate(splits) if s == "train"]
            val_idx = [i for i, s in enumerate(splits) if s in _eval_names(test, set(splits))]
            if test and not val_idx:
                raise DataError(f"{path}: no rows with split 'test', so there is no test split to evaluate")
        else:
            train_idx, val_idx = formats.stratified_split(labels, cfg.val_fraction, cfg.seed)
        return _file_bundle(cfg, samples, train_idx, samples, val_idx, names, mean, std, str(path))

    if path.is_dir():
        val_dir = next((path / d for d in _eval_names(test, {p.name for p in path.iterdir()}) if (path / d).is_dir()), None)
        if test and val_dir is None:
            raise DataError(f"{path}: no test/ folder, so there is no test split to evaluate")
        if (path / "train").is_dir() and val_dir is not None:
            train_samples, names = formats.imagefolder_samples(path / "train", class_names)
            val_samples, _ = formats.imagefolder_samples(val_dir, names)
            return _file_bundle(
                cfg, train_samples, range(len(train_samples)), val_samples, range(len(val_samples)), names, mean, std, str(path)
            )
        root = path / "train" if (path / "train").is_dir() else path  # train/ alone: split it
        samples, names = formats.imagefolder_samples(root, class_names)
        train_idx, val_idx = formats.stratified_split([y for _, y in samples], cfg.val_fraction, cfg.seed)
        return _file_bundle(cfg, samples, train_idx, samples, val_idx, names, mean, std, str(path))

    raise DataError(f"{source}: not a data set (expected a folder, a .csv manifest or one of: {', '.join(builtin.BUILTIN)})")


def idx_train_count(source: str) -> int | None:
    """Number of training images of an IDX folder, from its header; None for other sources."""
    path = Path(source).expanduser()
    idx = formats.find_idx_split(path, "train") if path.is_dir() else None
    shape = formats.read_idx_shape(idx[0]) if idx else None
    return shape[0] if shape else None


def native_image_size(source: str, peek: int = 16) -> int | None:
    """The typical shorter side of the data's images, read from headers only; None if unknown."""
    from PIL import Image

    from pixelmind.data.decode import is_image_file

    if source in builtin.BUILTIN:
        return 8 if source == "digits" else None
    path = Path(source).expanduser()
    if path.is_dir() and (idx := formats.find_idx_split(path, "train")):
        shape = formats.read_idx_shape(idx[0])
        return min(shape[1:]) if shape and len(shape) == 3 else None
    if path.is_file() and path.suffix.lower() == ".csv":
        files = [p for p, _ in formats.csv_samples(path)[0][:peek]]
    elif path.is_dir():
        files = []
        for p in sorted(path.rglob("*")):
            if is_image_file(p):
                files.append(p)
                if len(files) >= peek:
                    break
    else:
        return None
    sides = []
    for f in files:
        try:
            with Image.open(f) as im:
                sides.append(min(im.size))
        except Exception:  # noqa: BLE001 - unreadable files are reported when the data loads
            continue
    return sorted(sides)[len(sides) // 2] if sides else None


def _limit(indices, limit: int | None):
    indices = list(indices)
    return indices[:limit] if limit else indices


def _array_bundle(cfg, train_x, train_y, val_x, val_y, names, mean, std, source, hflip) -> DataBundle:
    train_tf, eval_tf = _transforms(cfg, mean, std, hflip)
    size = cfg.imgsz
    if val_x is None:
        train_idx, val_idx = formats.stratified_split(train_y.tolist(), cfg.val_fraction, cfg.seed)
        train_x, val_x = train_x[train_idx], train_x[val_idx]
        train_y, val_y = train_y[train_idx], train_y[val_idx]
    train_idx = _limit(range(len(train_x)), cfg.limit)
    # light/none augmentation of in-memory images runs on whole batches (see ClassifyTask), not per sample
    batched = (cfg.augment or "light") in ("light", "none")
    train = ArrayDataset(_resize_array(train_x[train_idx], size), train_y[train_idx], None if batched else train_tf)
    val = ArrayDataset(_resize_array(val_x, size), val_y, eval_tf)
    return DataBundle(
        train, val, list(names), _summary(source, names, train.targets, val.targets, train_x.shape[-2:]), {"hflip": hflip}
    )


def _file_bundle(cfg, train_samples, train_idx, val_samples, val_idx, names, mean, std, source) -> DataBundle:
    train_tf, eval_tf = _transforms(cfg, mean, std, hflip=True)
    train = Subset(FileDataset(train_samples, train_tf, cfg.max_pixels), _limit(train_idx, cfg.limit))
    val = Subset(FileDataset(val_samples, eval_tf, cfg.max_pixels), list(val_idx))
    if len(train) == 0:
        raise DataError(f"{source}: no training samples")
    if len(val) == 0:
        raise DataError(f"{source}: no validation samples (add a val/ folder or more images per class)")
    return DataBundle(train, val, list(names), _summary(source, names, train.targets, val.targets, None), {"hflip": True})


def _summary(source, names, train_targets, val_targets, image_size) -> dict[str, Any]:
    counts = {n: [0, 0] for n in names}
    for y in train_targets:
        counts[names[y]][0] += 1
    for y in val_targets:
        counts[names[y]][1] += 1
    out: dict[str, Any] = {
        "source": source,
        "classes": len(names),
        "train_samples": len(train_targets),
        "val_samples": len(val_targets),
        "per_class": {n: {"train": c[0], "val": c[1]} for n, c in counts.items()},
    }
    if image_size is not None:
        out["image_size"] = f"{int(image_size[1])}x{int(image_size[0])}"
    return out
