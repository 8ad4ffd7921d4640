"""Detector training step speed on the CPU: fp32 NCHW (the baseline) against channels-last and bf16 autocast.

One training step (forward, a loss on every output, backward, SGD step) of a randomly initialised
detector on a random batch, timed after one warm-up step; images/s for each variant and its ratio to the
fp32 NCHW baseline measured in the same run. bf16 runs only where the CPU computes it natively
(AVX512-BF16 or AMX; elsewhere it is emulated and slower).

    OMP_NUM_THREADS=1 taskset -c 0 python bench/detect_train_speed.py [--models pmdet_s pmdet_n] [--imgsz 416]
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import machine

from pixelmind.tasks.detect.models import build_detector


def images_per_s(name: str, imgsz: int, batch: int, channels_last: bool, bf16: bool, steps: int) -> float:
    torch.manual_seed(0)
    net = build_detector(name, num_classes=3).train()
    x = torch.randn(batch, 3, imgsz, imgsz)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)  # the detector converts NCHW inputs to its weights' format itself
        loss = sum(o.float().mean() for o in out)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["pmdet_s", "pmdet_n"])
    ap.add_argument("--imgsz", type=int, default=416)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    print(f"machine: {machine()}; native bf16: {native}; imgsz {args.imgsz}, batch {args.batch}, {args.steps} timed steps")
    print("| model | memory format | precision | train images/s | vs fp32 NCHW |\n|---|---|---|---|---|")
    for name in args.models:
        base = None
        for cl, bf16 in ((False, False), (True, False), (False, True), (True, True)):
            if bf16 and not native:
                continue
            speed = images_per_s(name, args.imgsz, args.batch, cl, bf16, args.steps)
            base = base or speed
            print(f"| {name} | {'channels-last' if cl else 'NCHW'} | {'bf16' if bf16 else 'fp32'} | {speed:.2f} | "
                  f"{speed / base:.2f}x |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
