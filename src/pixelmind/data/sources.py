"""Resolve what the user passes to predict (file, folder, glob, list) into image paths, lazily.

Example:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); open(os.path.join(d, "a.png"), "wb").close()
    >>> [p.name for p in iter_sources(d)]
    ['a.png']
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from pathlib import Path

from pixelmind.data.decode import is_image_file
from pixelmind.errors import DataError


def iter_sources(source: str | Path | Sequence[str | Path], suffixes: tuple[str, ...] | None = None) -> Iterator[Path]:
    """Yield image paths from a file, a folder (recursively, sorted), a glob pattern or a list of those.

    ``suffixes``: look for files with these suffixes (e.g. ``(".pmc",)``) instead of images.

    A ``.txt`` file is read as a list of paths, one per line. Paths are yielded as they are found,
    so huge folders stream with bounded memory per directory level.
    """
    if isinstance(source, (list, tuple)):
        for s in source:
            yield from iter_sources(s, suffixes)
        return
    wanted = (lambda p: Path(p).suffix.lower() in suffixes) if suffixes else is_image_file
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and wanted(p):
                yield p
    elif path.is_file() and path.suffix.lower() == ".txt":
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                yield (path.parent / line.strip()) if not Path(line.strip()).is_absolute() else Path(line.strip())
    elif path.is_file():
        yield path
    elif any(c in text for c in "*?["):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise DataError(f"{text}: the pattern matches no files")
        for m in matches:
            if wanted(m):
                yield Path(m)
    else:
        raise DataError(f"{text}: no such file, folder or pattern")
