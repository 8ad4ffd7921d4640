"""Text-line data sets written for the ocr tests: generated lines as PNG files with a labels.tsv."""

from __future__ import annotations

from pathlib import Path

from pixelmind.tasks.ocr.synth import TextLines


def write_lines(root: Path, n: int, split: str = "train", seed: int = 0, broken: bool = False) -> Path:
    """``root/<split>/*.png`` and ``root/<split>/labels.tsv``; ``broken`` adds a listed corrupt PNG."""
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    lines = TextLines(n, seed=seed, split=split)
    rows = []
    for i in range(n):
        image, text = lines[i]
        image.save(folder / f"{i:03d}.png")
        rows.append(f"{i:03d}.png\t{text}")
    if broken:
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
        rows.append("broken.png\tbroken")
    (folder / "labels.tsv").write_text("\n".join(rows) + "\n")
    return root
