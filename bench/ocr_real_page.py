"""OCR on real pixels: the words of scikit-image's scanned book page, against Tesseract on the same crops.

``skimage.data.page()`` is a photographed, unevenly lit page of a book (384 x 191 px, grey, slightly
curved lines), shipped inside the scikit-image wheel. Its 41 word images in the recognisers' charset (the code line
at the bottom has ``>``, ``=``, ``_``, brackets, which the generator does not render) were boxed and
transcribed by a developer here (:data:`WORDS`: the boxes were found by connected components of the ink and
corrected by eye where two lines touched). Each crop gets a 3 px margin. Scored: CER, word accuracy, 1-NED of
a trained ``ocr`` model (``--weights``) and of Tesseract 5 (``--psm 7``) on the same crops.

    python bench/ocr_real_page.py --weights runs/ocr/.../weights/best.safetensors
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from _common import machine

# (x1, y1, x2, y2) in the page's pixels, and the text, in reading order
WORDS = [
    ((7, 12, 142, 34), "Region-based"), ((151, 14, 292, 35), "segmentation"),
    ((6, 49, 24, 62), "Let"), ((33, 52, 47, 62), "us"), ((56, 49, 82, 63), "first"),
    ((90, 50, 158, 63), "determine"), ((168, 51, 222, 63), "markers"), ((231, 51, 244, 63), "of"),
    ((252, 51, 275, 64), "the"), ((283, 52, 317, 64), "coins"), ((325, 50, 348, 63), "and"),
    ((356, 50, 376, 62), "the"),
    ((6, 66, 82, 83), "background."), ((88, 67, 128, 80), "These"), ((134, 68, 188, 84), "markers"),
    ((193, 72, 215, 82), "are"), ((221, 67, 292, 84), "pixels that"), ((298, 72, 316, 82), "we"),
    ((321, 70, 343, 80), "can"), ((348, 66, 376, 80), "label"),
    ((6, 84, 104, 101), "unambiguously"), ((110, 89, 125, 98), "as"), ((133, 86, 177, 100), "either"),
    ((181, 86, 229, 102), "object"), ((232, 90, 246, 100), "or"), ((250, 86, 335, 103), "background."),
    ((344, 85, 376, 97), "Here,"),
    ((6, 100, 25, 112), "the"), ((31, 102, 84, 116), "markers"), ((89, 102, 110, 116), "are"),
    ((114, 104, 154, 117), "found"), ((160, 105, 174, 118), "at"), ((179, 105, 203, 118), "the"),
    ((207, 106, 234, 118), "two"), ((239, 104, 299, 119), "extreme"), ((301, 105, 335, 119), "parts"),
    ((340, 102, 353, 115), "of"), ((357, 101, 377, 114), "the"),
    ((7, 116, 68, 133), "histogram"), ((73, 121, 119, 136), "of grey"), ((123, 119, 170, 136), "values:"),
]  # fmt: skip
MARGIN = 3


def page_words():
    """The crops (RGB PIL images) and their transcripts."""
    from PIL import Image
    from skimage import data

    page = Image.fromarray(data.page()).convert("RGB")
    crops = [page.crop((x1 - MARGIN, y1 - MARGIN, x2 + MARGIN, y2 + MARGIN)) for (x1, y1, x2, y2), _ in WORDS]
    return crops, [text for _, text in WORDS]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="a trained ocr model")
    ap.add_argument("--sheet", type=Path, help="write a contact sheet of the crops with both readings")
    args = ap.parse_args()
    from pixelmind.api import Model
    from pixelmind.metrics.text import text_metrics

    crops, truths = page_words()
    print(f"machine: {machine()}\n{len(crops)} word crops of skimage.data.page() (a photographed book page)")
    model = Model.load(args.weights)
    ours = [r["text"] for r in model.predict(crops, batch=64)]
    rows = [(f"pixelmind {model.meta.model} ({Path(args.weights).name})", text_metrics(ours, truths))]
    theirs = None
    if shutil.which("tesseract"):
        work, theirs = Path(tempfile.mkdtemp(prefix="page_")), []
        for i, crop in enumerate(crops):
            crop.save(work / f"w{i}.png")
            out = subprocess.run(["tesseract", str(work / f"w{i}.png"), "stdout", "--psm", "7", "-l", "eng"],
                                 capture_output=True, text=True)  # fmt: skip
            theirs.append(out.stdout.strip())
        rows.append(("tesseract 5 --psm 7", text_metrics(theirs, truths)))
    else:
        print("tesseract: not installed (apt-get install tesseract-ocr tesseract-ocr-eng); no baseline")
    print("\n| reader | CER | word acc | 1-NED |\n|---|---|---|---|")
    for name, m in rows:
        print(f"| {name} | {m['cer']:.4f} | {m['word_acc']:.4f} | {m['ned']:.4f} |")
    if theirs is not None:
        print(f"CER {rows[0][1]['cer'] / max(rows[1][1]['cer'], 1e-9):.2f}x Tesseract's")
    misread = [(t, o) for t, o in zip(truths, ours) if t != o]
    print("our misreadings: " + ", ".join(f"{t!r}->{o!r}" for t, o in misread))
    if args.sheet:
        from pixelmind.viz.draw import draw_label_banner

        tiles = [draw_label_banner(c.resize((c.width * 3, c.height * 3)), [f"{o} | {t}"])
                 for c, o, t in zip(crops, ours, theirs or [""] * len(crops))]  # fmt: skip
        from PIL import Image

        sheet = Image.new("RGB", (max(t.width for t in tiles) * 4, sum(t.height for t in tiles[::4]) + 8), "white")
        y = 0
        for i in range(0, len(tiles), 4):
            x = 0
            for tile in tiles[i : i + 4]:
                sheet.paste(tile, (x, y))
                x += tile.width
            y += max(t.height for t in tiles[i : i + 4])
        sheet.save(args.sheet)
        print(f"sheet: {args.sheet}")


if __name__ == "__main__":
    main()
