"""Detection predict throughput (images/s) on the CPU: PyTorch eager (as trained, and as predict runs it:
BatchNorm folded, channels-last) vs onnxruntime, batch 1 and 16.

The whole predict path of the task, as ``pixelmind predict`` runs it on decoded images: letterbox +
normalise, the network, score threshold 0.25 + class-aware NMS, boxes mapped back to the image.
The onnxruntime side runs the model exported by the task (one packed output, same postprocess),
with as many threads as PyTorch. Images: the raccoon validation photos (real sizes, letterboxed to
``--imgsz``) when ``../shared`` is there, else built-in shapes drawn at ``--imgsz``. Pass trained
``--weights`` for realistic NMS work; without them the network has random weights (the same
compute, almost no boxes to suppress), and the output says so.

    python bench/detect_throughput.py [--weights best.safetensors] [--model pmdet_s] [--imgsz 320]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import machine
from PIL import Image

from pixelmind.api import Model
from pixelmind.export.onnx import OnnxModule, export_onnx
from pixelmind.tasks.base import Meta
from pixelmind.tasks.detect.task import PackedOutputs

RACCOON = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "detection" / "raccoon"


def images(n: int, size: int) -> tuple[list[Image.Image], str]:
    if (RACCOON / "images").is_dir():
        paths = sorted((RACCOON / "images").glob("*.jpg"))[-n:]
        return [Image.open(p).convert("RGB") for p in paths], f"{len(paths)} raccoon photos"
    from pixelmind.data.shapes import shapes_sample

    return [Image.fromarray(shapes_sample(i, size=size).image) for i in range(n)], f"{n} shapes images at {size} px"


def throughput(task, net, pics: list[Image.Image], meta: Meta, batch: int, rounds: int) -> float:
    """Images per second over ``rounds`` passes through ``pics`` after one warm-up pass."""
    def one_pass() -> None:
        for i in range(0, len(pics), batch):
            task.predict(net, pics[i : i + batch], meta)

    one_pass()
    t = time.perf_counter()
    for _ in range(rounds):
        one_pass()
    return rounds * len(pics) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=None, help="trained detect weights (default: random weights)")
    ap.add_argument("--model", default="pmdet_s")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.weights:
        model = Model.load(args.weights)
    else:
        model = Model(args.model, task="detect")
        model.meta = Meta(task="detect", model=args.model, class_names=["raccoon"], imgsz=args.imgsz)
        model.net = model.task.build_model(None, model.meta).eval()
    task, net, meta = model.task, model.net.eval(), model.meta
    pics, what = images(args.images, meta.imgsz)
    path = Path(tempfile.mkdtemp()) / "det.onnx"
    export_onnx(PackedOutputs(net), meta, path, dynamic_hw=True)
    ort = OnnxModule(path, threads=torch.get_num_threads())
    print(f"machine: {machine()}")
    print(f"model {meta.model} ({'trained: ' + args.weights if args.weights else 'random weights'}), {meta.imgsz} px letterbox, {what}")
    fused = task.inference_network(net, meta)  # what Model.predict and serve run
    for batch in (1, 16):
        with torch.inference_mode():
            pt = throughput(task, net, pics, meta, batch, args.rounds)
            pt_fused = throughput(task, fused, pics, meta, batch, args.rounds)
        ox = throughput(task, ort, pics, meta, batch, args.rounds)
        print(f"batch {batch:2d}: PyTorch {pt:6.1f} images/s   folded BN + channels-last {pt_fused:6.1f} ({pt_fused / pt:.2f}x)   "
              f"onnxruntime {ox:6.1f} images/s   ratio onnxruntime/PyTorch {ox / pt:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
