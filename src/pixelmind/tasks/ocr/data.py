"""Text-line data for the ocr task: transcript files, ICDAR-style ``gt.txt`` and the built-in generator.

Forms of ``--data``:

- ``textlines``: the built-in generator (:mod:`pixelmind.tasks.ocr.synth`), 20,000 training and 1,000
  validation lines in the DejaVu fonts; ``textlines-heldout`` validates on Liberation fonts instead.
- a folder with ``train/labels.tsv`` and ``val/labels.tsv`` (or ``gt.txt``), or one ``labels.tsv`` /
  ``gt.txt`` split by a seeded ``--val-fraction``; or such a file itself.
- Lines are ``path<TAB>text`` (paths relative to the file) or ICDAR's ``path, "text"``. A line that is
  neither stops loading with ``file:line``; unreadable images are skipped and listed in report.md.

Every image becomes ``3 x H x W`` (``H = imgsz``, ``W = 4 H``): scaled to height H keeping its aspect,
squeezed where it is wider than W, and padded on the right with its own background.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from pixelmind.data.datasets import FileDataset
from pixelmind.errors import DataError
from pixelmind.tasks.base import DataBundle

BUILTIN = {"textlines": "train", "textlines-heldout": "heldout"}
LABEL_FILES = ("labels.tsv", "gt.txt", "labels.txt")
WIDTH_PER_HEIGHT = 4
_ICDAR = re.compile(r'^(?P<path>[^,]+),\s*"(?P<text>.*)"\s*$')


def line_transform(height: int, mean, std, width: int | None = None):
    """PIL line image -> normalised ``[3, height, width]`` tensor (aspect kept, right padding with the background).

    Example:
        >>> tf = line_transform(32, (0.5,) * 3, (0.5,) * 3)
        >>> tf(Image.new("RGB", (300, 20), "white")).shape
        torch.Size([3, 32, 128])
    """
    width = width or WIDTH_PER_HEIGHT * height
    mean_t, std_t = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)

    def tf(image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        w = min(width, max(1, round(image.width * height / max(image.height, 1))))
        arr = np.asarray(image.resize((w, height), Image.Resampling.BILINEAR))
        out = np.empty((height, width, 3), np.uint8)
        out[:, :w] = arr
        # the background continues: the median of the line's border pixels
        out[:, w:] = np.median(np.concatenate([arr[0], arr[-1], arr[:, -1]]), axis=0).astype(np.uint8)
        x = torch.from_numpy(out).permute(2, 0, 1).float().div_(255)
        return (x - mean_t) / std_t

    return tf


def read_transcripts(path: str | Path) -> list[tuple[Path, str]]:
    """``(image path, text)`` of a ``labels.tsv`` (``path<TAB>text``) or ICDAR ``gt.txt`` (``path, "text"``).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "gt.txt")
        >>> _ = open(p, "w").write('word_1.png, "Tiredness"\\nword_2.png\\tkills\\n')
        >>> [(s.name, t) for s, t in read_transcripts(p)]
        [('word_1.png', 'Tiredness'), ('word_2.png', 'kills')]
    """
    path = Path(path)
    out = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the transcripts ({str(err).splitlines()[0][:120]})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "\t" in line:
            name, text = line.split("\t", 1)
        elif m := _ICDAR.match(line):
            name, text = m["path"], m["text"].replace('\\"', '"')
        else:
            raise DataError(f"{path}:{lineno}: expected 'path<TAB>text' or 'path, \"text\"', got {line[:80]!r}")
        if not name.strip() or not text:
            raise DataError(f"{path}:{lineno}: an empty path or text")
        out.append((path.parent / name.strip(), text))
    if not out:
        raise DataError(f"{path}: no transcripts")
    return out


class GeneratedLines(Dataset):
    """The generator as a training set: ``(tensor, text)`` pairs."""

    def __init__(self, lines, transform) -> None:
        self.lines, self.transform = lines, transform

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        image, text = self.lines[i]
        return self.transform(image), text

    @property
    def texts(self) -> list[str]:
        return [self.lines[i][1] for i in range(len(self.lines))]


def _label_file(folder: Path) -> Path | None:
    return next((folder / n for n in LABEL_FILES if (folder / n).is_file()), None)


def find_line_data(source: str, val_fraction: float, seed: int, split: str = "val") -> tuple[list, list, str]:
    """``(train, val, layout)`` as ``(path, text)`` lists, for a folder or transcript file.

    ``split="test"``: ``val`` holds ``test/``'s lines (DataError when there is no such folder).
    """
    path = Path(source)
    if split == "test":
        if not (path.is_dir() and (tr := _label_file(path / "train")) and (te := _label_file(path / "test"))):
            raise DataError(f"{source}: no train/ and test/ with a transcript file each, so no test split to evaluate")
        return read_transcripts(tr), read_transcripts(te), "train/ + test/"
    if path.is_file():
        samples, layout = read_transcripts(path), path.name
    elif path.is_dir() and (tr := _label_file(path / "train")) and (va := _label_file(path / "val")):
        return read_transcripts(tr), read_transcripts(va), "train/ + val/"
    elif path.is_dir() and (one := _label_file(path)):
        samples, layout = read_transcripts(one), one.name
    else:
        raise DataError(f"{source}: not a text-line data set (expected {' or '.join(LABEL_FILES)}, "
                        f"train/ and val/ with one each, or one of: {', '.join(BUILTIN)})")  # fmt: skip
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(samples) * val_fraction)) if len(samples) > 1 else 0
    held = set(order[:n_val])
    return [s for i, s in enumerate(samples) if i not in held], [s for i, s in enumerate(samples) if i in held], layout


def load_line_data(cfg: Any, chars: list[str] | None, mean, std) -> DataBundle:
    """The training and validation sets; the charset is the training transcripts' characters unless given."""
    from pixelmind.tasks.ocr.synth import CHARSET, TextLines, heldout_fonts, training_fonts

    tf = line_transform(cfg.imgsz, mean, std)
    if cfg.data in BUILTIN:
        n = cfg.limit or 20_000
        train = GeneratedLines(TextLines(n, training_fonts(), cfg.seed, "train"), tf)
        fonts = heldout_fonts() if BUILTIN[cfg.data] == "heldout" else training_fonts()
        # the test split is generated like val from its own seed stream: lines never used to pick a checkpoint
        val = GeneratedLines(TextLines(max(200, min(1000, n // 10)), fonts, cfg.seed, cfg.split), tf)
        chars = chars or sorted(set(CHARSET))
        summary = {"source": f"{cfg.data} (generated, seed {cfg.seed})", "train_samples": len(train), "val_samples": len(val),
                   "train_fonts": "DejaVu", "val_fonts": "Liberation (not seen in training)" if fonts != training_fonts() else "DejaVu"}  # fmt: skip
        return DataBundle(train, val, chars, summary)
    train_s, val_s, layout = find_line_data(cfg.data, cfg.val_fraction, cfg.seed, cfg.split)
    if cfg.limit:
        train_s = train_s[: cfg.limit]
    if not train_s or not val_s:
        raise DataError(f"{cfg.data}: needs training and validation lines (got {len(train_s)} and {len(val_s)})")
    chars = chars or sorted({c for _, t in train_s for c in t})
    unknown = sorted({c for _, t in val_s for c in t} - set(chars))
    summary = {"source": cfg.data, "layout": layout, "train_samples": len(train_s), "val_samples": len(val_s),
               "characters": len(chars), "longest_text": max(len(t) for _, t in train_s + val_s)}  # fmt: skip
    if unknown:
        summary["val characters not in training"] = "".join(unknown)
    return DataBundle(FileDataset(train_s, tf, cfg.max_pixels), FileDataset(val_s, tf, cfg.max_pixels), chars, summary)
