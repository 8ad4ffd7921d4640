"""Enhancement throughput (input megapixels/s) of every registered model, with Pillow bicubic as the baseline.

Batch 1, a 256x256 RGB input, PyTorch eager under inference_mode, and onnxruntime for the same
weights; on CUDA too when a GPU is present. Random weights: the speed does not depend on them.

    .venv/bin/python bench/enhance_throughput.py --scale 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from _common import machine, median_time
from PIL import Image


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--models", default=None, help="comma-separated (default: all registered)")
    args = ap.parse_args()
    from pixelmind.export.onnx import OnnxModule, export_onnx
    from pixelmind.tasks.base import Meta
    from pixelmind.tasks.enhance.models import MODELS, build_enhancer

    mp = args.size * args.size / 1e6
    img = Image.new("RGB", (args.size, args.size))
    bicubic = median_time(lambda: img.resize((args.size * args.scale,) * 2, Image.Resampling.BICUBIC), 20)
    print(f"machine: {machine()}; input {args.size}x{args.size}, x{args.scale}")
    print(f"baseline Pillow bicubic: {mp / bicubic:.1f} MP/s")
    print(f"{'model':14s} {'params':>8s} {'torch MP/s':>11s} {'ort MP/s':>9s} {'cuda MP/s':>10s} {'torch/bicubic':>14s}")
    names = args.models.split(",") if args.models else list(MODELS)
    x = torch.rand(1, 3, args.size, args.size)
    tmp = Path(tempfile.mkdtemp())
    for name in names:
        net = build_enhancer(name, scale=args.scale, channels=3).eval()
        params = sum(p.numel() for p in net.parameters())
        with torch.inference_mode():
            t = median_time(lambda net=net: net(x), args.repeat, warmup=1)
        meta = Meta(task="enhance", model=name, imgsz=64, extra={"scale": args.scale, "channels": 3})
        ort = OnnxModule(export_onnx(net, meta, tmp / f"{name}.onnx", dynamic_hw=True))
        t_ort = median_time(lambda ort=ort: ort(x), args.repeat, warmup=1)
        cuda = "-"
        if torch.cuda.is_available():
            gnet, gx = net.cuda(), x.cuda()
            with torch.inference_mode():
                t_gpu = median_time(lambda g=gnet, v=gx: (g(v), torch.cuda.synchronize()), args.repeat * 4, warmup=3)
            cuda = f"{mp / t_gpu:.1f}"
        print(f"{name:14s} {params / 1e6:7.3f}M {mp / t:11.3f} {mp / t_ort:9.3f} {cuda:>10s} {bicubic / t:14.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
