"""Embedding data: identities (classes) split so that the validation identities are never trained on.

Sources are those of classification (built-in ``digits``, IDX folders (the held-out identities
measured on their test-split images), ``train/``+``val/`` trees,
a folder of identity folders, a CSV ``path,identity[,split]``). Without a given split, a seeded
``val_fraction`` of the *identities* is held out: verification and retrieval are then measured
on people (or objects) the model has never seen, as face verification is. Training identities
get indices ``0..K-1``; the held-out ones follow.

An LFW-style pairs file (``--set pairs=pairs.txt``) replaces the drawn verification pairs: its
images become the validation set. It holds ``name n1 n2`` (same identity) and ``name1 n1 name2
n2`` (different) lines, images at ``<root>/<name>/<name>_<n:04d>.<ext>`` (LFW's layout), or
``path_a path_b 0|1`` lines; a first line of counts (``10 300``) is skipped.

Example:
    >>> from pixelmind.config import TrainConfig
    >>> b = load_embedding_data(TrainConfig(task="embed", data="digits", imgsz=16, augment="none"))
    >>> b.meta_extra["train_identities"], len(b.class_names)
    (8, 10)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from pixelmind.data import builtin, formats
from pixelmind.data.decode import is_image_file
from pixelmind.errors import DataError
from pixelmind.tasks.base import DataBundle
from pixelmind.tasks.classify.data import NO_HFLIP, VAL_DIR_NAMES, _array_bundle, _file_bundle

MIN_IDENTITIES = 4


def split_identities(names: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded ``(train identities, held-out identities)``: at least 2 of each.

    Example:
        >>> split_identities(list("abcdefghij"), 0.2, 0)
        (['a', 'b', 'c', 'd', 'e', 'f', 'g', 'j'], ['h', 'i'])
    """
    if len(names) < MIN_IDENTITIES:
        raise DataError(f"embed needs at least {MIN_IDENTITIES} identities to hold some out for verification (found {len(names)})")
    order = sorted(names)
    random.Random(seed).shuffle(order)
    n_val = min(max(2, round(len(names) * val_fraction)), len(names) - 2)
    held_out = set(order[:n_val])
    return [n for n in sorted(names) if n not in held_out], [n for n in sorted(names) if n in held_out]


def load_embedding_data(cfg: Any, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) -> DataBundle:
    """Read ``cfg.data`` into train/val identity sets.

    ``bundle.pairs`` is ``{"a", "b", "same", "identities", "names"}`` when ``cfg.pairs`` names a
    pairs file (val targets are then positions in the pairs' image list; ``identities`` maps them
    to indices of the folder ``names``), else None (pairs are drawn from the held-out identities).
    """
    source = cfg.data
    path = Path(source).expanduser()
    if source in builtin.BUILTIN:
        images, labels, names = builtin.BUILTIN[source]()
        bundle = _identity_arrays(cfg, images, labels, names, mean, std, source, source not in NO_HFLIP)
    elif not path.exists():
        raise DataError(f"{source}: no such file or folder (built-in data sets: {', '.join(builtin.BUILTIN)})")
    elif path.is_dir() and (idx := formats.find_idx_split(path, "train")):
        images = torch.from_numpy(formats.read_idx(idx[0]).copy()).unsqueeze(1)
        labels = torch.from_numpy(formats.read_idx(idx[1]).astype("int64"))
        test = None
        if test_idx := formats.find_idx_split(path, "test"):  # held-out identities are measured on test images
            test = (torch.from_numpy(formats.read_idx(test_idx[0]).copy()).unsqueeze(1),
                    torch.from_numpy(formats.read_idx(test_idx[1]).astype("int64")))  # fmt: skip
        n = int(labels.max()) + 1
        names = formats.FASHION_MNIST_CLASSES if "fashion" in str(path).lower() and n == 10 else [str(i) for i in range(n)]
        bundle = _identity_arrays(cfg, images, labels, names, mean, std, str(path), "fashion" in str(path).lower(), test)
    elif path.is_file() and path.suffix.lower() == ".csv":
        rows, splits = formats.csv_samples(path)
        if splits:
            unknown = sorted(set(splits) - {"train", *VAL_DIR_NAMES})
            if unknown:
                raise DataError(f"{path}: unknown split names {unknown}; use train or one of {', '.join(VAL_DIR_NAMES)}")
            train = [r for r, s in zip(rows, splits) if s == "train"]
            val = [r for r, s in zip(rows, splits) if s != "train"]
            bundle = _given_split(cfg, train, val, mean, std, str(path))
        else:
            bundle = _identity_files(cfg, rows, mean, std, str(path))
    elif path.is_dir():
        val_dir = next((path / d for d in VAL_DIR_NAMES if (path / d).is_dir()), None)
        if (path / "train").is_dir() and val_dir is not None:
            bundle = _given_split(cfg, _named_samples(path / "train"), _named_samples(val_dir), mean, std, str(path))
        else:
            root = path / "train" if (path / "train").is_dir() else path
            bundle = _identity_files(cfg, _named_samples(root), mean, std, str(path))
    else:
        raise DataError(f"{source}: not a data set (expected a folder, a .csv manifest or one of: {', '.join(builtin.BUILTIN)})")
    bundle.pairs = None
    if getattr(cfg, "pairs", None):
        _use_pairs_file(cfg, bundle, Path(cfg.pairs).expanduser(), path if path.is_dir() else None, mean, std)
    return bundle


def _named_samples(root: Path) -> list[tuple[Path, str]]:
    samples, names = formats.imagefolder_samples(root)
    return [(p, names[y]) for p, y in samples]


def _identity_arrays(cfg, images, labels, names, mean, std, source, hflip, test=None) -> DataBundle:
    """In-memory images; ``test`` ``(images, labels)`` (an IDX test split) gives the held-out identities' images."""
    train_names, val_names = split_identities(list(names), cfg.val_fraction, cfg.seed)
    order = train_names + val_names
    new_index = torch.tensor([order.index(n) for n in names])
    labels = new_index[labels]
    train = labels < len(train_names)
    val_images, val_labels = (images[~train], labels[~train]) if test is None else (test[0], new_index[test[1]])
    held_out = val_labels >= len(train_names)
    val_images, val_labels = val_images[held_out], val_labels[held_out]
    bundle = _array_bundle(cfg, images[train], labels[train], val_images, val_labels, order, mean, std, source, hflip)
    bundle.meta_extra["train_identities"] = len(train_names)
    return bundle


def _identity_files(cfg, rows: list[tuple[Path, str]], mean, std, source) -> DataBundle:
    train_names, val_names = split_identities(sorted({y for _, y in rows}), cfg.val_fraction, cfg.seed)
    held_out = set(val_names)
    return _given_split(cfg, [r for r in rows if r[1] not in held_out], [r for r in rows if r[1] in held_out], mean, std, source)


def _given_split(cfg, train_rows, val_rows, mean, std, source) -> DataBundle:
    """Train identities index ``0..K-1``; val identities not among them follow (a closed set shares indices)."""
    train_names = sorted({y for _, y in train_rows})
    if len(train_names) < 2:
        raise DataError(f"{source}: metric learning needs at least 2 training identities (found {len(train_names)})")
    names = train_names + sorted({y for _, y in val_rows} - set(train_names))
    index = {n: i for i, n in enumerate(names)}
    train = [(p, index[y]) for p, y in train_rows]
    val = [(p, index[y]) for p, y in val_rows]
    bundle = _file_bundle(cfg, train, range(len(train)), val, range(len(val)), names, mean, std, source)
    bundle.meta_extra["train_identities"] = len(train_names)
    return bundle


def read_pairs_file(path: Path, root: Path | None = None) -> list[tuple[Path, Path, bool]]:
    """``(image a, image b, same)`` from an LFW-style pairs file (see the module docstring).

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "pairs.txt"
        >>> _ = f.write_text("2 1\\nAnn 1 2\\nAnn 1 Bob 3\\n")
        >>> [(a.name, b.name, s) for a, b, s in read_pairs_file(f, Path("/faces"))]
        [('Ann_0001.jpg', 'Ann_0002.jpg', True), ('Ann_0001.jpg', 'Bob_0003.jpg', False)]
    """
    root = root or path.parent
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the pairs file ({str(err).splitlines()[0][:120]})") from None
    pairs = []
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#") or all(f.isdigit() for f in fields) and len(fields) <= 2:
            continue
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            pairs.append((_lfw_image(root, fields[0], fields[1]), _lfw_image(root, fields[0], fields[2]), True))
        elif len(fields) == 4 and fields[1].isdigit() and fields[3].isdigit():
            pairs.append((_lfw_image(root, fields[0], fields[1]), _lfw_image(root, fields[2], fields[3]), False))
        elif len(fields) == 3 and fields[2] in ("0", "1"):
            a, b = (Path(f) if Path(f).is_absolute() else root / f for f in fields[:2])
            pairs.append((a, b, fields[2] == "1"))
        else:
            raise DataError(f"{path}:{lineno}: expected 'name n1 n2', 'name1 n1 name2 n2' or 'path_a path_b 0|1', got {line.strip()!r}")
    if not pairs:
        raise DataError(f"{path}: no pairs in the file")
    return pairs


def _lfw_image(root: Path, name: str, number: str) -> Path:
    stem = f"{name}_{int(number):04d}"
    folder = root / name
    found = [p for p in folder.glob(stem + ".*") if is_image_file(p)] if folder.is_dir() else []
    return found[0] if found else folder / f"{stem}.jpg"  # a missing file is reported when it is read


def _use_pairs_file(cfg, bundle: DataBundle, pairs_path: Path, data_root: Path | None, mean, std) -> None:
    """Make the pairs file's images the val set; its targets are positions (the evaluator maps them to pairs)."""
    from pixelmind.data.datasets import FileDataset
    from pixelmind.data.transforms import eval_transform

    root = data_root / "val" if data_root is not None and (data_root / "val").is_dir() else data_root
    pairs = read_pairs_file(pairs_path, root)
    images = sorted({str(p) for a, b, _ in pairs for p in (a, b)})
    position = {p: i for i, p in enumerate(images)}
    bundle.val = FileDataset([(p, i) for i, p in enumerate(images)], eval_transform(cfg.imgsz, mean, std), cfg.max_pixels)
    folders = sorted({Path(p).parent.name for p in images})
    identity = [folders.index(Path(p).parent.name) for p in images]
    bundle.pairs = {
        "a": [position[str(a)] for a, _, _ in pairs], "b": [position[str(b)] for _, b, _ in pairs],
        "same": [s for _, _, s in pairs], "identities": identity, "names": folders,
    }  # fmt: skip
    per_class = {n: {"train": c["train"], "val": 0} for n, c in bundle.summary.get("per_class", {}).items()}
    for i in identity:
        per_class.setdefault(folders[i], {"train": 0, "val": 0})["val"] += 1
    bundle.summary.update(val_samples=len(images), per_class=per_class, pairs_file=str(pairs_path), pairs=len(pairs))
