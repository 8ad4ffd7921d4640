"""OCR: CRNN vs the Transformer recogniser on the same budget, scored on lines in fonts never seen in training.

Both train on the built-in generator (DejaVu fonts, ``--limit`` lines, ``--epochs`` each, the task's
recipe otherwise) and are scored on 1,000 generated held-out lines in the Liberation fonts
(``textlines-heldout``'s validation set): CER, word accuracy, 1-NED, training wall time and predict
lines/s. The baseline in the same run is Tesseract 5 (Debian's ``tesseract-ocr`` with the ``eng`` model,
``--psm 7``: one text line) on the same held-out images, when it is installed.

    python bench/ocr_compare.py [--limit 10000] [--epochs 4] [--models crnn_s tr_s]
    python bench/ocr_compare.py --weights runs/ocr/exp/weights/best.safetensors   # score trained models
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import machine, peak_rss_mb


def tesseract_read(images, work: Path) -> tuple[list[str], float]:
    texts, t = [], time.perf_counter()
    for i, image in enumerate(images):
        path = work / f"t{i}.png"
        image.save(path)
        out = subprocess.run(["tesseract", str(path), "stdout", "--psm", "7", "-l", "eng"], capture_output=True, text=True)
        texts.append(out.stdout.strip())
    return texts, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--models", nargs="+", default=["crnn_s", "tr_s"])
    ap.add_argument("--heldout", type=int, default=1000)
    ap.add_argument("--weights", nargs="+", type=Path, help="score these trained models instead of training (e.g. the default recipe's)")
    args = ap.parse_args()
    from pixelmind.api import Model
    from pixelmind.metrics.text import text_metrics
    from pixelmind.tasks.ocr.synth import TextLines, heldout_fonts

    heldout = TextLines(args.heldout, heldout_fonts(), seed=12345, split="heldout")
    images, truths = zip(*(heldout[i] for i in range(len(heldout))))
    work = Path(tempfile.mkdtemp(prefix="ocr_"))
    print(f"machine: {machine()}")
    trained = f"given weights {[str(w) for w in args.weights]}" if args.weights else \
        f"{args.limit} generated lines (DejaVu fonts) x {args.epochs} epochs"
    print(f"train: {trained}; "
          f"test: {len(truths)} generated lines in Liberation fonts (never seen in training)")  # fmt: skip
    rows = []
    for name in args.weights or args.models:
        if args.weights:  # trained elsewhere: no training time here
            model, wall = Model.load(name), float("nan")
            name = f"{model.meta.model} ({name.parent.parent.name})"
        else:
            model = Model(name, task="ocr")
            t = time.perf_counter()
            model.train(data="textlines", epochs=args.epochs, limit=args.limit, workers=1, project=str(work), name=name)
            wall = time.perf_counter() - t
        t = time.perf_counter()
        read = [r["text"] for r in model.predict(list(images), batch=64)]
        speed = len(read) / (time.perf_counter() - t)
        rows.append((name, text_metrics(read, list(truths)), wall, speed))
        print(f"  {name}: {rows[-1][1]}  train {wall:.0f} s  predict {speed:.0f} lines/s", flush=True)
    if shutil.which("tesseract"):
        read, secs = tesseract_read(images, work)
        rows.append(("tesseract 5 --psm 7", text_metrics(read, list(truths)), float("nan"), len(read) / secs))
        print(f"  tesseract: {rows[-1][1]}  {rows[-1][3]:.1f} lines/s (one process per line)")
    else:
        print("  tesseract: not installed (apt-get install tesseract-ocr tesseract-ocr-eng); no baseline")
    print("\n| model | CER | word acc | 1-NED | train wall | predict lines/s |\n|---|---|---|---|---|---|")
    for name, m, wall, speed in rows:
        print(f"| {name} | {m['cer']:.4f} | {m['word_acc']:.4f} | {m['ned']:.4f} | {wall:.0f} s | {speed:.0f} |")
    base = next((m for n, m, _, _ in rows if n.startswith("tesseract")), None)
    if base:
        for name, m, _, _ in rows[:-1]:
            print(f"{name}: CER {m['cer'] / max(base['cer'], 1e-9):.2f}x Tesseract's")
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
