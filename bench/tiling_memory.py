"""Peak memory of tiled x2 super-resolution vs an untiled forward, and tiled throughput.

A small real conv net (3x3 convs + PixelShuffle x2, random weights: memory does not depend on
them) upscales a random RGB image given as a float tensor. Each measurement runs in a fresh
subprocess so that one run's peak RSS cannot hide another's.

- 6000x4000 (24 MP): tiled (tile 256, overlap 32) into a uint8 array, measured; the untiled
  forward's memory is estimated from the activation sizes, not run.
- 1500x1000: tiled and untiled both measured (same uint8 output), as a measured ratio, beside
  the same estimate, which checks the estimate.

Target: tiled peak RSS close to input + uint8 output + a fixed overhead, far below untiled.

    python bench/tiling_memory.py [--size 6000x4000] [--small 1500x1000] [--channels 16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
from _common import machine, peak_rss_mb
from torch import nn

from pixelmind.nn.tiling import tiled_apply_uint8

MB = 2**20


def sr_net(channels: int, scale: int = 2) -> nn.Sequential:
    """Three 3x3 convs at ``channels`` wide, then 3x3 to 3*s*s channels and PixelShuffle."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, 3 * scale * scale, 3, padding=1),
        nn.PixelShuffle(scale),
    ).eval()


def untiled_estimate_mb(net: nn.Sequential, h: int, w: int) -> float:
    """Memory an untiled forward adds to a process holding the input: largest layer's input + output, uint8 result.

    Layer sizes are measured on a 32x32 input and scaled by the pixel count (they are
    proportional for a fully convolutional net); under inference_mode only one layer's input
    and output are alive at a time.
    """
    sizes = [3 * 32 * 32 * 4]
    x = torch.zeros(1, 3, 32, 32)
    with torch.inference_mode():
        for layer in net:
            x = layer(x)
            sizes.append(x.numel() * x.element_size())
    per_px = max(a + b for a, b in zip(sizes, sizes[1:])) / (32 * 32)
    out_u8 = x.shape[1] * h * w * (x.shape[2] // 32) ** 2
    return (per_px * h * w + out_u8) / MB


def child(mode: str, h: int, w: int, channels: int, tile: int, overlap: int) -> None:
    torch.set_grad_enabled(False)
    net = sr_net(channels)
    image = torch.rand(3, h, w)
    before = peak_rss_mb()
    t = time.perf_counter()
    if mode == "tiled":
        out = tiled_apply_uint8(net, image, scale=2, tile=tile, overlap=overlap, batch=4)
    else:
        with torch.inference_mode():
            y = net(image[None])[0]
            out = y.clamp_(0, 1).mul_(255).round_().to(torch.uint8).permute(1, 2, 0).numpy()
    seconds = time.perf_counter() - t
    assert out.shape == (2 * h, 2 * w, 3)
    print(json.dumps({"peak_mb": peak_rss_mb(), "before_mb": before, "seconds": seconds}))


def measure(mode: str, h: int, w: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--size", f"{w}x{h}", "--channels", str(args.channels)]
    cmd += ["--tile", str(args.tile), "--overlap", str(args.overlap)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="6000x4000", help="WxH of the large image")
    ap.add_argument("--small", default="1500x1000", help="WxH of the image where untiled also runs")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--child", choices=["tiled", "untiled"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    if args.child:
        child(args.child, h, w, args.channels, args.tile, args.overlap)
        return

    net = sr_net(args.channels)
    print(f"machine: {machine()}; x2 SR net: 4 convs, {args.channels} wide; tile {args.tile}, overlap {args.overlap}")  # fmt: skip
    sw, sh = map(int, args.small.split("x"))
    small = {mode: measure(mode, sh, sw, args) for mode in ("tiled", "untiled")}
    big = measure("tiled", h, w, args)
    for name, (hh, ww), tiled, untiled in [
        (args.small, (sh, sw), small["tiled"], small["untiled"]),
        (args.size, (h, w), big, None),
    ]:
        data_mb = (3 * hh * ww * 4 + 3 * 4 * hh * ww) / MB  # float input + uint8 x2 output
        est = untiled_estimate_mb(net, hh, ww)
        est_peak = tiled["before_mb"] + est  # same process state before the run
        rate = hh * ww / 1e6 / tiled["seconds"]
        added = tiled["peak_mb"] - tiled["before_mb"]
        print(f"{name:>9}: tiled   peak RSS {tiled['peak_mb']:6.0f} MB (+{added:.0f} MB during the run; "
              f"float input + uint8 output {data_mb:.0f} MB)  {rate:.2f} input MP/s")  # fmt: skip
        if untiled is None:
            print(f"{'':>9}  untiled not run: estimated peak RSS {est_peak:6.0f} MB (+{est:.0f} MB)  "
                  f"ratio untiled/tiled {est_peak / tiled['peak_mb']:.1f}x (estimated)")  # fmt: skip
        else:
            u_added = untiled["peak_mb"] - untiled["before_mb"]
            print(f"{'':>9}  untiled peak RSS {untiled['peak_mb']:6.0f} MB (+{u_added:.0f} MB; estimated +{est:.0f} MB)  "
                  f"ratio untiled/tiled {untiled['peak_mb'] / tiled['peak_mb']:.2f}x, during the run "
                  f"{u_added / max(added, 1):.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
