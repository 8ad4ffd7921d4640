"""Encode and decode seconds per 768x512 image on the CPU: pixelmind codecs against Pillow's AVIF, same run.

The image is scikit-image's ``coffee`` photo resized to 768x512 (the Kodak size). AVIF is encoded at
the quality whose bpp is closest to the pixelmind file's (speed 6, Pillow's default), so both
codecs do comparable work. Times are medians of repeated runs, file I/O excluded.

    .venv/bin/python bench/compress_speed.py bench/out/compress/cpu/q3.safetensors [more weights ...]
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np
import torch
from _common import machine, median_time
from PIL import Image


def test_image() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.coffee()).resize((768, 512), Image.Resampling.LANCZOS)


def measure(path: str, image: Image.Image, repeat: int) -> str:
    """One table row: the codec's encode/decode medians and AVIF's at the matched bpp."""
    from pixelmind.api import Model
    from pixelmind.metrics.rate_distortion import match_bpp
    from pixelmind.tasks.compress.codec import decode_image, encode_image
    from pixelmind.tasks.enhance.data import to_tensor

    model = Model.load(path)
    net, name, x = model.net, model.meta.model, to_tensor(image, 3)
    with torch.inference_mode():
        data = encode_image(net, x, name, 0)
        enc = median_time(lambda: encode_image(net, x, name, 0), repeat, warmup=1)
        dec = median_time(lambda: decode_image(net, data), repeat, warmup=1)
    bpp = len(data) * 8 / (768 * 512)
    quality, avif, _ = match_bpp(image, "avif", bpp)
    avif_enc = median_time(lambda: image.save(io.BytesIO(), format="AVIF", quality=quality, speed=6), repeat, warmup=1)
    avif_dec = median_time(lambda: np.asarray(Image.open(io.BytesIO(avif)).convert("RGB")), repeat, warmup=1)
    return (f"| {path} | {name} | {bpp:.3f} | {enc:.3f} | {dec:.3f} | {quality} | {len(avif) * 8 / (768 * 512):.3f} | "
            f"{avif_enc:.3f} | {avif_dec:.3f} | {enc / avif_enc:.2f}x | {dec / avif_dec:.2f}x |")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", nargs="+")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = test_image()
    print(machine())
    print("| weights | model | bpp | encode s | decode s | AVIF q | AVIF bpp | AVIF encode s | AVIF decode s | encode ratio | decode ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in args.weights:
        print(measure(path, image, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
