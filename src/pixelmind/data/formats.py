"""Readers for classification data: ImageFolder, CSV manifests and MNIST-style IDX files.

Each reader returns a list of ``(path, class_index)`` samples (or arrays for IDX) and the
class names; malformed label files raise :class:`~pixelmind.errors.DataError` naming the
file and line.

Example:
    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> for c in ("cat", "dog"):
    ...     os.makedirs(os.path.join(root, c))
    ...     open(os.path.join(root, c, "x.png"), "wb").close()
    >>> samples, names = imagefolder_samples(root)
    >>> names, len(samples)
    (['cat', 'dog'], 2)
"""

from __future__ import annotations

import csv
import gzip
import random
import struct
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixelmind.data.decode import is_image_file
from pixelmind.errors import DataError

FASHION_MNIST_CLASSES = [
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
]  # fmt: skip


def imagefolder_samples(root: str | Path, class_names: Sequence[str] | None = None) -> tuple[list[tuple[Path, int]], list[str]]:
    """``root/<class>/<image>`` -> samples; ``class_names`` fixes the index order (e.g. for val)."""
    root = Path(root)
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise DataError(f"{root}: no class folders (expected {root}/<class>/<image files>)")
    names = list(class_names) if class_names is not None else found
    unknown = sorted(set(found) - set(names))
    if unknown:
        raise DataError(f"{root}: class folders {unknown} are not among the training classes {names}")
    index = {n: i for i, n in enumerate(names)}
    samples = [
        (p, index[d]) for d in found for p in sorted((root / d).rglob("*")) if p.is_file() and is_image_file(p)
    ]
    if not samples:
        raise DataError(f"{root}: class folders hold no image files ({', '.join(found[:5])})")
    return samples, names


def csv_samples(path: str | Path) -> tuple[list[tuple[Path, str]], list[str] | None]:
    """A CSV manifest ``path,label[,split]`` (header optional); paths are relative to the CSV file.

    Returns samples with *label strings* and, when a split column exists, each row's split.
    """
    path = Path(path)
    rows: list[tuple[Path, str]] = []
    splits: list[str] = []
    first = True
    # utf-8-sig: spreadsheet programs start CSV files with a BOM, which would hide the header
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            for lineno, row in enumerate(csv.reader(f), start=1):
                if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
                    continue
                # the header is the first row that is not a comment, wherever it is
                is_header = first and [c.strip().lower() for c in row[:2]] == ["path", "label"]
                first = False
                if is_header:
                    continue
                if len(row) not in (2, 3) or not row[0].strip() or not row[1].strip():
                    raise DataError(f"{path}:{lineno}: expected 'path,label[,split]', got {','.join(row)!r}")
                rows.append((path.parent / row[0].strip(), row[1].strip()))
                if len(row) == 3:
                    splits.append(row[2].strip().lower())
    except (OSError, UnicodeDecodeError, csv.Error) as err:  # a binary or unreadable file, not a manifest
        raise DataError(f"{path}: cannot read the CSV manifest ({str(err).splitlines()[0][:120]})") from None
    if not rows:
        raise DataError(f"{path}: no samples in the manifest")
    if splits and len(splits) != len(rows):
        raise DataError(f"{path}: some rows have a split column and some do not")
    return rows, (splits or None)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one MNIST-style IDX file (optionally gzipped) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08:
            raise DataError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
        shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
        arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        if arr.size != int(np.prod(shape)):
            raise DataError(f"{path}: truncated IDX file ({arr.size} of {int(np.prod(shape))} values)")
        return arr.reshape(shape)
    except (OSError, struct.error, EOFError) as err:
        raise DataError(f"{path}: cannot read IDX file ({err})") from None


def read_idx_shape(path: str | Path) -> tuple[int, ...] | None:
    """The array shape an IDX file declares in its header (no data read); None if the header is short."""
    path = Path(path)
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4:
            return None
        body = f.read(4 * head[3])
    return struct.unpack(f">{head[3]}I", body) if len(body) == 4 * head[3] else None


def find_idx_split(root: Path, split: str) -> tuple[Path, Path] | None:
    """Find ``<split>-images-idx3-ubyte[.gz]`` and its labels file (MNIST naming; 'test' = 't10k')."""
    prefixes = ["train"] if split == "train" else ["t10k", "test"]
    for prefix in prefixes:
        for suffix in ("", ".gz"):
            images = root / f"{prefix}-images-idx3-ubyte{suffix}"
            labels = root / f"{prefix}-labels-idx1-ubyte{suffix}"
            if images.is_file() and labels.is_file():
                return images, labels
    return None


def stratified_split(labels: Sequence[Any], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split keeping each class's share: at least one val sample per class with >= 2 samples."""
    by_class: dict[Any, list[int]] = defaultdict(list)
    for i, y in enumerate(labels):
        by_class[y].append(i)
    rng = random.Random(seed)
    train, val = [], []
    for y in sorted(by_class, key=str):
        idx = by_class[y]
        rng.shuffle(idx)
        n_val = round(len(idx) * val_fraction)
        n_val = min(max(n_val, 1 if len(idx) >= 2 else 0), len(idx) - 1) if len(idx) > 1 else 0
        val += idx[:n_val]
        train += idx[n_val:]
    return sorted(train), sorted(val)
