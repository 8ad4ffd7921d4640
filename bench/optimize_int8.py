"""INT8 post-training quantization of a trained model: metric drop and onnxruntime speed-up, fp32 vs INT8 in one run.

Runs ``Model.optimize(quantize="int8")`` (the same code as ``pixelmind optimize``) and prints the
figure beside its baseline, the fp32 ONNX export of the same weights, measured in the same run.
Goals (issue "Model compression for deployment"): classify >= 2x faster at batch 1 with <= 1
point top-1 drop; detect <= 1 point mAP50-95 drop; segment and enhance: speed-up and drop reported.

    python bench/optimize_int8.py --weights runs/classify/fashion/weights/best.safetensors
    python bench/optimize_int8.py --weights W --data D --calibration entropy --threads 1
    python bench/optimize_int8.py --untrained resnet18 --imgsz 128   # speed of a larger network (metric meaningless)
    python bench/optimize_int8.py --weights W --backend torch         # PT2E int8 vs fp32, both under torch.compile
    python bench/optimize_int8.py --weights runs/enhance/sr/weights/best.safetensors --qat-epochs 1  # PTQ vs QAT
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import machine, peak_rss_mb


def _untrained_weights(model: str, imgsz: int, out: str) -> str:
    """Random-init classifier weights for the ten digits classes: its metric means nothing, its speed is real."""
    from pixelmind.config import TrainConfig
    from pixelmind.engine.checkpoint import save_weights
    from pixelmind.tasks import get_task
    from pixelmind.tasks.base import Meta

    meta = Meta(task="classify", model=model, class_names=[str(i) for i in range(10)], imgsz=imgsz)
    net = get_task("classify").build_model(TrainConfig(task="classify", data="digits"), meta)
    path = f"{out}/untrained_{model}.safetensors"
    save_weights(path, net.state_dict(), meta, {"task": "classify", "data": "digits", "imgsz": imgsz})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None)
    parser.add_argument("--untrained", default=None, metavar="MODEL",
                        help="speed only: an untrained classifier (e.g. resnet18) on the built-in digits at --imgsz")
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--data", default=None, help="default: the data the weights were trained on")
    parser.add_argument("--calibration", default="minmax", choices=["minmax", "entropy", "percentile"])
    parser.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "torch"],
                        help="torch: PT2E + torch.compile, both sides timed in PyTorch (needs torchao)")
    parser.add_argument("--calib-images", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime and torch threads (default: all cores)")
    parser.add_argument("--qat-epochs", type=int, default=None,
                        help="also run quantization-aware fine-tuning for this many epochs and compare its INT8 drop with PTQ's")
    parser.add_argument("--out", default=None, help="keep the optimized model and report here")
    args = parser.parse_args()

    import torch

    from pixelmind.api import Model
    from pixelmind.optimize import measure

    if args.threads:
        torch.set_num_threads(args.threads)
        original = measure.ort_latency_ms
        measure.ort_latency_ms = lambda *a, **k: original(*a, **{**k, "threads": args.threads})
    out = args.out or tempfile.mkdtemp(prefix="pm_int8_")
    if args.untrained:
        args.weights = _untrained_weights(args.untrained, args.imgsz, out)
    elif not args.weights:
        parser.error("give --weights or --untrained")
    t0 = time.perf_counter()
    r = Model.load(args.weights).optimize(out, data=args.data, quantize="int8", calibration=args.calibration, backend=args.backend,
                                          calib_images=args.calib_images, max_drop=float("inf"))  # fmt: skip
    key, o, q = r["primary_metric"], r["original"], r["optimized"]
    print(f"machine: {machine()}; backend {args.backend}, threads: {args.threads or 'default'}")
    print(f"{r['task']} {r['model']} on {r['data']}, input {'x'.join(map(str, r['input_shape']))}, "
          f"calibration {args.calibration} on {r['steps'][0]['calibration_images']} training images")  # fmt: skip
    print(f"val {key}: fp32 {o['metrics'][key]:.4f}  int8 {q['metrics'][key]:.4f}  drop {r['metric_drop']:+.4f}")
    for b in (1, 16):
        a, c = o[f"latency_b{b}_ms"], q[f"latency_b{b}_ms"]
        print(f"latency batch {b}: fp32 {a:.3f} ms  int8 {c:.3f} ms  speed-up {a / c:.2f}x")
    print(f"ONNX file: fp32 {o['file_mb']:.3f} MB  int8 {q['file_mb']:.3f} MB  ratio {r['size_ratio']:.2f}")
    if args.qat_epochs:
        t = time.perf_counter()
        qr = Model.load(args.weights).optimize(f"{out}/qat", data=args.data, quantize="int8", calibration=args.calibration,
                                               calib_images=args.calib_images, max_drop=float("inf"), qat=True,
                                               qat_epochs=args.qat_epochs, project=f"{out}/runs")  # fmt: skip
        print(f"QAT ({args.qat_epochs} epochs, {time.perf_counter() - t:.0f} s) then int8: {qr['optimized']['metrics'][key]:.4f}  "
              f"drop {qr['metric_drop']:+.4f} (PTQ {r['metric_drop']:+.4f}); fake-quantized validation "
              f"{qr['steps'][0]['fake_quant_metric']:.4f}")  # fmt: skip
    print(f"wall {time.perf_counter() - t0:.0f} s, peak RSS {peak_rss_mb():.0f} MB, report {out}/report.md")


if __name__ == "__main__":
    main()
