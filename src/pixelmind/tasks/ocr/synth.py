"""A seeded generator of text-line images rendered with real fonts, so the ocr task trains with no download.

Lines are words, numbers, dates, prices and licence plates, drawn in a font picked from the Debian font
packages (``fonts-dejavu-core`` for training; ``fonts-liberation``, never seen in training, for the
held-out set), then degraded: slant, perspective, blur, noise, contrast and background changes.
Sample ``i`` of a split depends on ``(seed, split, i)`` only, so the data set needs no disk and every
epoch and worker sees the same images.

Example:
    >>> image, text = TextLines(4, fonts=training_fonts()[:2], seed=0)[1]
    >>> image.mode, image.height, isinstance(text, str) and 0 < len(text) <= MAX_CHARS
    ('RGB', 32, True)
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pixelmind.errors import DataError

FONT_DIRS = {"train": Path("/usr/share/fonts/truetype/dejavu"), "heldout": Path("/usr/share/fonts/truetype/liberation")}
PACKAGES = {"train": "fonts-dejavu-core", "heldout": "fonts-liberation"}
CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-./:,€$% "
MAX_CHARS = 16  # a line fits 128 x 32 px at CTC's 32 time steps (repeats need a blank between them)
WORDS = (
    "the of and to in is was for on that with as by at from his her they have are this not but had all were "
    "when we there can an your which their said if do will each about how up out them then she many some so "
    "these would other into has more two like him see time could no make than first been its who now people "
    "my made over did down only way find use may water long little very after words called just where most "
    "know get through back much before go good new write our used me man too any day same right look think "
    "also around another came come work three word must because does part even place well such here take why "
    "help put different away again off went old number great tell men say small every found still between "
    "name should home big give air line set own under read last never us left end along while might next "
    "sound below saw something thought both few those always show large often together asked house world "
    "going want school important until form food keep children feet land side without boy once animal life "
    "enough took four head above kind began almost live page got earth need far hand high year mother light "
    "country father let night picture being study second soon story since white ever paper hard near sentence "
    "better best across during today however sure knew try told young sun thing whole hear example heard "
    "several change answer room sea against top turned learn point city play toward five himself usually money"
).split()


def _fonts(kind: str) -> list[Path]:
    fonts = sorted(p for p in FONT_DIRS[kind].glob("*.ttf") if "Math" not in p.name) if FONT_DIRS[kind].is_dir() else []
    if not fonts:
        raise DataError(f"text lines: no fonts in {FONT_DIRS[kind]} (apt-get install {PACKAGES[kind]})")
    return fonts


def training_fonts() -> list[Path]:
    """The DejaVu fonts (Sans, Serif, Mono, Condensed, bold and oblique)."""
    return _fonts("train")


def heldout_fonts() -> list[Path]:
    """The Liberation fonts: other shapes (Arial/Times/Courier metrics), never used in training."""
    return _fonts("heldout")


@lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def random_text(rng: random.Random) -> str:
    """One line: words, a number, a date, a price or a plate (at most MAX_CHARS characters)."""
    kind = rng.random()
    if kind < 0.45:
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 3))]
        style = rng.random()
        words = [w.capitalize() for w in words] if style < 0.3 else [w.upper() for w in words] if style < 0.45 else words
        text = " ".join(words)
    elif kind < 0.6:
        text = str(rng.randint(0, 10 ** rng.randint(1, 8)))
    elif kind < 0.72:
        y, m, d = rng.randint(1950, 2035), rng.randint(1, 12), rng.randint(1, 28)
        text = rng.choice([f"{y}-{m:02d}-{d:02d}", f"{d:02d}/{m:02d}/{y}", f"{d}.{m}.{y}"])
    elif kind < 0.82:
        text = rng.choice(["$", "€", ""]) + f"{rng.randint(0, 9999)},{rng.randint(0, 99):02d}" + rng.choice(["", " €", "%"])
    else:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        text = "".join(rng.choice(letters) for _ in range(2)) + "-" + f"{rng.randint(0, 999):03d}" + "-" + "".join(rng.choice(letters) for _ in range(2))
    return text[:MAX_CHARS].strip() or "0"


def render_line(text: str, font: Path, rng: random.Random, height: int = 32, degrade: bool = True) -> Image.Image:
    """``text`` drawn in ``font`` on a plain background, cropped to the text, ``height`` px high, RGB."""
    size = rng.randint(28, 44)
    f = _font(str(font), size)
    left, top, right, bottom = f.getbbox(text)
    pad = rng.randint(2, 8) if degrade else 4
    ink = rng.randint(0, 80) if degrade else 0
    paper = rng.randint(170, 255) if degrade else 255
    canvas = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), paper)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), text, font=f, fill=ink)
    if degrade:
        if rng.random() < 0.5:  # slant / perspective: a shear with a little vertical squeeze
            w, h = canvas.size
            shear = rng.uniform(-0.3, 0.3)
            canvas = canvas.transform((w + int(abs(shear) * h), h), Image.Transform.AFFINE,
                                      (1, shear, -shear * h if shear > 0 else 0, 0, 1, 0), fillcolor=paper)  # fmt: skip
        if rng.random() < 0.3:
            w, h = canvas.size
            dx = rng.uniform(0, 0.08) * w
            canvas = canvas.transform((w, h), Image.Transform.QUAD, (dx, 0, 0, h, w, h, w - dx, 0), fillcolor=paper)
        if rng.random() < 0.4:
            canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.3)))
    w, h = canvas.size
    canvas = canvas.resize((max(1, round(w * height / h)), height), Image.Resampling.BILINEAR)
    arr = np.asarray(canvas, np.float32)
    if degrade and rng.random() < 0.6:
        arr = arr + np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(2, 14), arr.shape)
    tint = np.array([rng.uniform(0.85, 1.0) for _ in range(3)] if degrade else [1.0, 1.0, 1.0], np.float32)
    rgb = np.clip(arr[..., None] * tint, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


class TextLines:
    """``n`` generated ``(image, text)`` pairs; ``fonts`` picks the font set (default: the training fonts).

    ``split`` and ``seed`` make distinct, reproducible sets (train, val and held-out never share a sample).
    """

    def __init__(self, n: int, fonts: list[Path] | None = None, seed: int = 0, split: str = "train", height: int = 32) -> None:
        self.n, self.fonts, self.seed, self.split, self.height = n, fonts or training_fonts(), seed, split, height

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Image.Image, str]:
        if not 0 <= i < self.n:
            raise IndexError(i)
        rng = random.Random(f"{self.seed}/{self.split}/{i}")
        text = random_text(rng)
        return render_line(text, rng.choice(self.fonts), rng, self.height), text
