"""onnxruntime vs PyTorch eager latency for a classifier at batch 1 and 32 (median of repeats).

Both use the same number of threads (all cores). Target: onnxruntime >= 1.5x faster at batch 1.

    python bench/onnx_latency.py [--model resnet18] [--imgsz 128]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from _common import machine, median_time

from pixelmind.export.onnx import OnnxModule, export_onnx, max_abs_diff
from pixelmind.tasks.base import Meta
from pixelmind.tasks.classify.models import build_classifier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()

    torch.manual_seed(0)
    net = build_classifier(args.model, args.classes, args.imgsz).eval()
    meta = Meta(task="classify", model=args.model, class_names=[str(i) for i in range(args.classes)], imgsz=args.imgsz)
    path = Path(tempfile.mkdtemp()) / "model.onnx"
    export_onnx(net, meta, path)
    ort = OnnxModule(path, threads=torch.get_num_threads())
    print(f"machine: {machine()}; model {args.model} at {args.imgsz} px")
    for batch in (1, 32):
        x = torch.randn(batch, 3, args.imgsz, args.imgsz)
        repeat = args.repeat if batch == 1 else max(5, args.repeat // 6)
        with torch.inference_mode():
            t_torch = median_time(lambda: net(x), repeat)  # noqa: B023 - called at once
        t_ort = median_time(lambda: ort(x), repeat)  # noqa: B023 - called at once
        diff = max_abs_diff(net, ort, x)
        print(f"batch {batch:2d}: PyTorch eager {t_torch * 1e3:7.2f} ms  onnxruntime {t_ort * 1e3:7.2f} ms  "
              f"speed-up {t_torch / t_ort:.2f}x  (target >= 1.5x at batch 1)  max|diff| {diff:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
