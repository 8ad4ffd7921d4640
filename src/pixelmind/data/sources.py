"""Resolve what the user passes to predict (file, folder, glob, list) into image paths, lazily.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); open(os.path.join(d, "a.png"), "wb").close()
    >>> [p.name for p in iter_sources(d)]
    ['a.png']
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from pixelmind.data.decode import is_image_file
from pixelmind.data.medical import frame_count, split_frame
from pixelmind.errors import DataError


class ResolvedPaths:
    """Paths already resolved by :func:`iter_sources` (e.g. one rank's shard); passed through as they are.

    Wrap a lazy iterable of paths in it to hand it to ``Model.predict_iter`` without resolving it again.
    """

    def __init__(self, paths: Iterable[str | Path]) -> None:
        self.paths = paths

    def __iter__(self) -> Iterator[Path]:
        return (Path(p) for p in self.paths)


def walk_files(root: str | Path) -> Iterator[Path]:
    """Yield the files under ``root`` depth-first, one directory listed (and sorted) at a time.

    Order: the entries of each directory sorted by name, each subdirectory walked where its name
    sorts; this is exactly ``sorted(root.rglob("*"))`` (paths compare part by part), so ``a/x.png``
    comes before ``a-b.png``, which comes before ``a.png``. Memory is bounded by the directories on the
    current path, not the tree: the first file comes before later directories are even listed.
    Symlinked directories are not entered (as ``rglob``); unreadable directories are skipped.
    """
    root = Path(root)
    stack: list[Iterator[os.DirEntry]] = []

    def listing(folder: str) -> Iterator[os.DirEntry]:
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            return iter(())
        entries.sort(key=lambda e: e.name)
        return iter(entries)

    stack.append(listing(str(root)))
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                stack.append(listing(entry.path))
            elif entry.is_file():
                yield Path(entry.path)
        except OSError:
            continue


def iter_sources(source: str | Path | Sequence[str | Path] | ResolvedPaths,
                 suffixes: tuple[str, ...] | None = None) -> Iterator[Path]:
    """Yield image paths from a file, a folder (recursively, sorted), a glob pattern or a list of those.

    ``suffixes``: look for files with these suffixes (e.g. ``(".pmc",)``) instead of images.

    Multi-page TIFF, multi-frame DICOM and NIfTI volumes yield one ``file#k`` per page, frame or slice
    (see :mod:`pixelmind.data.medical`). A ``.txt`` file is read as a list of paths, one per line. Paths are yielded as they are found:
    folders are walked one directory at a time (see :func:`walk_files` for the order) and ``.txt``
    lists line by line, so huge folders stream with bounded memory. A :class:`ResolvedPaths` is
    passed through unchanged.
    """
    if isinstance(source, ResolvedPaths):
        yield from source
        return
    if isinstance(source, (list, tuple)):
        for s in source:
            yield from iter_sources(s, suffixes)
        return
    from pixelmind.video.io import is_video

    wanted = (lambda p: Path(p).suffix.lower() in suffixes) if suffixes else (lambda p: is_image_file(p) or is_video(p))
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        for p in walk_files(path):
            if wanted(p):
                yield from _frames(p, suffixes)
    elif path.is_file() and path.suffix.lower() == ".txt":
        with path.open() as f:
            for line in f:
                line = line.rstrip("\r\n")
                if line.strip() and not line.startswith("#"):
                    yield (path.parent / line.strip()) if not Path(line.strip()).is_absolute() else Path(line.strip())
    elif path.is_file() or split_frame(path)[1] is not None:
        yield from _frames(path, suffixes)
    elif not suffixes and "://" in text and is_video(text):  # a stream URL: opened by the video reader
        yield Path(text)
    elif any(c in text for c in "*?["):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise DataError(f"{text}: the pattern matches no files")
        for m in matches:
            if wanted(m):
                yield from _frames(Path(m), suffixes)
    else:
        raise DataError(f"{text}: no such file, folder or pattern")


_MULTI_FRAME = (".tif", ".tiff", ".dcm", ".dicom", ".nii", ".nii.gz")


def _frames(path: Path, suffixes: tuple[str, ...] | None) -> Iterator[Path]:
    """The file itself, or ``file#0`` .. ``file#n-1`` for an image file of several pages, frames or slices."""
    n = frame_count(path) if not suffixes and str(path).lower().endswith(_MULTI_FRAME) else 1
    if n > 1:
        yield from (Path(f"{path}#{k}") for k in range(n))
    else:
        yield path
