"""Sliding-window segmentation: throughput (megapixels/s) and peak memory vs image size.

The default semantic model (``unet_s``, random weights: speed and memory do not depend on
them) segments random RGB photos through the task's real predict path (uint8 image, blended
512-px tiles with 64 px overlap, arg-max band by band into a uint8 mask). Each measurement
runs in a fresh subprocess so one run's peak RSS cannot hide another's. Baseline, measured in
the same run: one untiled forward of the whole (padded) image, where it fits.

    python bench/segment_sliding.py [--sizes 512,1024,2048,4096,8000] [--untiled 512,1024,2048]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch
from _common import machine, peak_rss_mb


def child(mode: str, size: int, model: str) -> None:
    from PIL import Image

    from pixelmind.tasks.base import Meta
    from pixelmind.tasks.segment.task import TASK, padded_logits

    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    meta = Meta(task="segment", model=model, class_names=["background", "a", "b", "c"], imgsz=64)
    net = TASK.build_model(None, meta).eval()
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    net(torch.zeros(1, 3, 64, 64))  # one warm-up call (allocator, kernels)
    before = peak_rss_mb()
    t = time.perf_counter()
    if mode == "tiled":
        (result,) = TASK.predict(net, [image], meta, tile=512, overlap=64)
        mask = result.mask
    else:
        x = TASK.preprocess(meta)(image)[None]
        with torch.inference_mode():
            mask = padded_logits(net, x, 32)[0].argmax(0).to(torch.uint8).numpy()
    seconds = time.perf_counter() - t
    assert mask.shape == (size, size)
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "before_mb": before}))


def measure(mode: str, size: int, model: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(size), "--model", model],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="512,1024,2048,4096,8000")
    ap.add_argument("--untiled", default="512,1024,2048", help="sizes also run as one whole-image forward")
    ap.add_argument("--model", default="unet_s")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "SIZE"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.model)
        return
    print(f"machine: {machine()}; model {args.model}, tile 512, overlap 64")
    print("| image | tiled MP/s | tiled peak RSS (MB) | untiled MP/s | untiled peak RSS (MB) | memory ratio untiled/tiled |")
    print("|---|---|---|---|---|---|")
    untiled = {int(s) for s in args.untiled.split(",") if s}
    for size in [int(s) for s in args.sizes.split(",")]:
        mp = size * size / 1e6
        tiled = measure("tiled", size, args.model)
        row = f"| {size}x{size} | {mp / tiled['seconds']:.2f} | {tiled['peak_mb']:.0f} |"
        if size in untiled:
            whole = measure("untiled", size, args.model)
            row += f" {mp / whole['seconds']:.2f} | {whole['peak_mb']:.0f} | {whole['peak_mb'] / tiled['peak_mb']:.2f} |"
        else:
            row += " - | - | - |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
