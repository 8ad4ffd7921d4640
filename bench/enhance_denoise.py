"""Colour denoising at sigma 25 on McMaster after a fixed CPU budget, against OpenCV's NL-means, same run.

Trains on images that are not McMaster (the shared raccoon photos plus scikit-image's bundled
photos), then evaluates on the 18 McMaster images with seeded noise (the same noisy images for
every method): the model, the noisy input, and OpenCV ``fastNlMeansDenoisingColored`` with the
best ``h`` of a small sweep (a fair baseline). PSNR on RGB, 8-bit levels, no border crop.

    .venv/bin/python bench/enhance_denoise.py --epochs 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import machine
from enhance_sr import SHARED, training_folder


def nlmeans_psnr(pairs, h: float) -> float:
    import cv2
    import numpy as np

    from pixelmind.metrics.image_quality import psnr

    values = []
    for noisy, clean in pairs:
        u8 = (noisy.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        den = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(u8), None, h, h, 7, 21)
        values.append(psnr(den.astype(np.float64), (clean * 255).round().permute(1, 2, 0).numpy()))
    return sum(values) / len(values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--samples", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--imgsz", type=int, default=None)
    args = ap.parse_args()
    mcmaster = SHARED / "denoise" / "McMaster"
    if not mcmaster.is_dir():
        print(f"skip: {mcmaster} not found")
        return 0
    try:
        import cv2  # noqa: F401
    except ImportError:
        print("skip: the NL-means baseline needs OpenCV: pip install -e '.[bench]'")
        return 0
    from pixelmind.api import Model

    tmp = Path(tempfile.mkdtemp(prefix="pm-dn-"))
    data = training_folder(tmp / "data")
    model = Model(args.model, task="enhance")
    t0 = time.perf_counter()
    model.train(data=str(data), degradation="denoise", noise_sigma=25.0, epochs=args.epochs, epoch_samples=args.samples,
                batch=args.batch, lr=args.lr, imgsz=args.imgsz, project=str(tmp / "runs"), name="dn")  # fmt: skip
    train_s = time.perf_counter() - t0
    m = model.val(data=str(mcmaster), batch=1)
    from pixelmind.config import make_config

    cfg = make_config({"task": "enhance", "data": str(mcmaster), "seed": model.meta.extra["seed"]})
    val = model.task.load_data(cfg, model.meta).val  # the very noisy images Model.val scored
    pairs = [val[i] for i in range(len(val))]
    t1 = time.perf_counter()
    best_h, best = max(((h, nlmeans_psnr(pairs, h)) for h in (10, 15, 20)), key=lambda t: t[1])
    nl_s = (time.perf_counter() - t1) / 3
    params = sum(p.numel() for p in model.net.parameters())
    print(f"\nmachine: {machine()}")
    print(f"model {model.meta.model}: {params / 1e6:.3f}M parameters, trained {train_s:.0f} s "
          f"({model.config['epochs']} epochs, crops {model.config['imgsz']} px, batch {model.config['batch']})")  # fmt: skip
    print(f"McMaster sigma 25, PSNR (RGB) over {len(pairs)} images:")
    print(f"  noisy input        {m['baseline_psnr']:.2f} dB")
    print(f"  OpenCV NL-means    {best:.2f} dB (h={best_h}, best of 10/15/20; {nl_s:.1f} s for the set)")
    print(f"  pixelmind model    {m['psnr']:.2f} dB  (SSIM {m['ssim']:.4f})  -> {m['psnr'] - best:+.2f} dB vs NL-means")
    return 0


if __name__ == "__main__":
    sys.exit(main())
