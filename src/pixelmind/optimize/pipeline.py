"""``pixelmind optimize``: a trained model in, a smaller and faster one out, with its accuracy cost measured.

Steps, each optional but one of the first two required:

1. ``prune``: structured channel pruning to a FLOPs target, then fine-tuning through the normal
   engine (a run directory of its own); ``distill`` makes the original model the teacher.
2. ``quantize="int8"``: static INT8 of the (pruned) model's ONNX export, calibrated on training images;
   ``qat`` fine-tunes with fake quantization first (:mod:`pixelmind.optimize.qat`), for when PTQ loses too much.
3. Always: parameters, FLOPs, file size, onnxruntime latency at batch 1 and 16 and the task's
   metric on the validation data, original (fp32) against optimized, measured in the same run;
   ``report.md``, ``report.json`` and ``plots/optimize.png`` in ``out_dir``. A metric drop over
   ``max_drop`` fails the run (after the report is written).

Example:
    >>> from pixelmind import Model  # doctest: +SKIP
    >>> report = optimize(Model.load("best.safetensors"), "opt/", quantize="int8")  # doctest: +SKIP
    >>> report["optimized"]["file"], report["speedup_b1"]  # doctest: +SKIP
    ('opt/model.int8.onnx', 2.1)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from pixelmind.errors import ConfigError, PixelmindError
from pixelmind.optimize.measure import count_flops, count_params, ort_latency_ms, torch_latency_ms
from pixelmind.optimize.quantize import calibration_batches, quantize_onnx

LATENCY_BATCHES = (1, 16)


class OptimizeGateError(PixelmindError):
    """The optimized model lost more of its metric than allowed (the report is written all the same)."""


def _say(console: Any, text: str) -> None:
    (console.print if console is not None else print)(text)


def _check_request(model: Any, quantize: str | None, prune: float | None, distill: bool, qat: bool) -> None:
    from pixelmind.export.onnx import is_exported

    if is_exported(model._require_net()):
        raise PixelmindError(f"{model.weights_path}: optimize needs PyTorch weights (.safetensors), not an exported model")
    if model.task.optimize_unsupported:
        raise PixelmindError(f"optimize: the {model.task.name} task is not supported: {model.task.optimize_unsupported}")
    if quantize not in (None, "int8"):
        raise ConfigError(f"quantize: must be int8 (got {quantize!r})")
    if qat and quantize is None:
        raise ConfigError("qat: quantization-aware fine-tuning prepares INT8, so give --quantize int8 too")
    if quantize is None and not prune:
        raise ConfigError("optimize: nothing to do: give --quantize int8 and/or --prune AMOUNT")
    if distill and not prune:
        raise ConfigError("distill: distillation fine-tunes a pruned model, so give --prune too "
                          "(to distil into a new model: pixelmind train --teacher W)")  # fmt: skip


def _calibration(model: Any, data: str, n: int) -> list[Any]:
    """``n`` training images as the network sees them (no augmentation), seeded."""
    from pixelmind.config import make_config

    meta = model.meta
    base = {k: v for k, v in model.config.items() if k in ("degradation", "scale", "noise_sigma", "jpeg_quality", "blur", "channels")}
    cfg = make_config({"task": meta.task, "data": data, "model": meta.model, "imgsz": meta.imgsz, "batch": 16, "augment": "none",
                       "seed": meta.extra.get("seed", 0), "val_fraction": meta.extra.get("val_fraction", 0.2), **base})  # fmt: skip
    bundle = model.task.load_data(cfg, meta)
    return model.task.calibration_inputs(bundle.train, meta, n, seed=meta.extra.get("seed", 0))


def _compiled(net: torch.nn.Module) -> torch.nn.Module:
    """The fp32 baseline of the torch backend: the network under torch.compile with frozen weights, as Pt2Module runs."""
    import torch._inductor.config as inductor

    compiled = torch.compile(net.eval().cpu())

    def run(x: torch.Tensor) -> torch.Tensor:
        with inductor.patch(freezing=True):
            return compiled(x)

    return run


def _measure(net: torch.nn.Module, path: Path, shape: tuple[int, ...], metrics: dict[str, float],
             runner: Any = None) -> dict[str, Any]:  # fmt: skip
    """Size, FLOPs and latency of one side of the report; ``runner`` times a PyTorch module instead of the ONNX file."""
    row: dict[str, Any] = {"file": str(path), "file_mb": path.stat().st_size / 1e6, "metrics": metrics,
                           "params": count_params(net), "flops": count_flops(net.cpu(), torch.zeros(1, *shape))}  # fmt: skip
    for b in LATENCY_BATCHES:
        row[f"latency_b{b}_ms"] = torch_latency_ms(runner, (b, *shape)) if runner is not None else ort_latency_ms(path, (b, *shape))
    return row


def optimize(model: Any, out_dir: str | Path, data: str | None = None, quantize: str | None = None,
             prune: float | None = None, distill: bool = False, calibration: str = "minmax", calib_images: int = 128,
             per_channel: bool = True, max_drop: float | None = None, epochs: int | None = None, qat: bool = False,
             qat_epochs: int | None = None, backend: str = "onnxruntime", console: Any = None, **train_overrides: Any) -> dict[str, Any]:  # fmt: skip
    """Prune and/or quantize ``model`` (a loaded :class:`~pixelmind.api.Model`) into ``out_dir``; returns the report.

    Args:
        data: the data set for calibration, fine-tuning and the metric (default: the training data).
        prune: the share of FLOPs to remove (0.5: half), followed by fine-tuning for ``epochs``.
        distill: fine-tune the pruned model with the original as its teacher.
        qat: fine-tune with fake INT8 quantization before quantizing, for ``qat_epochs`` (default: a quarter of the
            original run's); a run directory of its own, like pruning's.
        backend: ``onnxruntime`` (a QDQ ``.int8.onnx``) or ``torch`` (a PT2E ``.int8.pt2`` program run by
            ``torch.compile``; minmax calibration only; latency of both sides measured in PyTorch, compiled).
        calibration: ``minmax``, ``entropy`` or ``percentile`` (see :func:`~pixelmind.optimize.quantize.quantize_onnx`).
        max_drop: the largest drop of the task's primary metric allowed, in its own units
            (default: the task's ``optimize_max_drop``: 0.01 = one point of top-1/mAP/mIoU, 0.3 dB of PSNR).

    Raises:
        OptimizeGateError: the metric dropped more than ``max_drop`` (``report.json`` says by how much).
    """
    from pixelmind.api import Model

    _check_request(model, quantize, prune, distill, qat)
    if backend not in ("onnxruntime", "torch"):
        raise ConfigError(f"backend: must be onnxruntime or torch (got {backend!r})")
    if backend == "torch" and calibration != "minmax":
        raise ConfigError(f"calibration: the torch backend calibrates minmax only (got {calibration!r})")
    task, meta = model.task, model.meta
    data = data or model.config.get("data")
    if not data:
        raise ConfigError("data: give --data (the weights do not name their training data)")
    max_drop = task.optimize_max_drop if max_drop is None else max_drop
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    key = task.primary_metric

    _say(console, f"optimize {meta.task} {meta.model}: measuring the original on the validation data of {data}")
    before = model.val(data=data)
    steps: list[dict[str, Any]] = []
    candidate, prune_run = model, None
    if prune:
        from pixelmind.optimize.prune import finetune_pruned

        if distill:
            train_overrides["teacher"] = str(model.weights_path)
        _, prune_run, summary = finetune_pruned(model, data, prune, epochs=epochs, console=console, **train_overrides)
        candidate = Model.load(Path(prune_run) / "weights" / "best.safetensors")
        steps.append({"step": "prune", "amount": prune, "distill": distill, "run_dir": str(prune_run), **summary})
    if qat:
        from pixelmind.optimize.qat import finetune_qat

        qat_metrics, qat_run = finetune_qat(candidate, data, epochs=qat_epochs, console=console, **train_overrides)
        candidate = Model.load(Path(qat_run) / "weights" / "best.safetensors")
        steps.append({"step": "qat", "run_dir": str(qat_run), "fake_quant_metric": qat_metrics.get(key),
                      "layers": candidate.meta.extra["qat"]["layers"]})  # fmt: skip

    _say(console, "exporting to ONNX (parity checked against PyTorch)")
    original_onnx, _ = model.export("onnx", out / "original.onnx", data=data)
    final = original_onnx
    if candidate is not model:  # pruned and/or QAT fine-tuned: its own fp32 export is what gets quantized
        final, _ = candidate.export("onnx", out / f"{'pruned' if prune else 'model'}{'.qat' if qat else ''}.onnx", data=data)
    calib = _calibration(model, data, calib_images) if quantize else []
    if quantize:
        _say(console, f"INT8 ({backend}): calibrating ({calibration}) on {len(calib)} training images")
        stem = "pruned.int8" if prune else "model.int8"
        if backend == "torch":
            from pixelmind.optimize.pt2e import quantize_pt2e

            int8 = out / f"{stem}.pt2"
            info = quantize_pt2e(candidate.net, candidate.meta, calibration_batches(calib), int8, task.dynamic_image_size)
            steps.append({"step": "quantize", "format": "pt2e-int8", **info})
        else:
            int8 = out / f"{stem}.onnx"
            steps.append({"step": "quantize", "format": "onnx-qdq-int8",
                          **quantize_onnx(final, int8, calibration_batches(calib), calibration, per_channel)})  # fmt: skip
        final = int8
    _say(console, f"measuring {final.name} on the validation data")
    result = Model.load(final)  # as a user loads it (a .pt2 compiles once here, for val and the timing)
    after = result.val(data=data)

    shape = tuple(calib[0].shape) if calib and len({tuple(x.shape) for x in calib}) == 1 else (
        meta.extra.get("channels", 3), meta.imgsz, meta.imgsz)  # fmt: skip
    timed = final.suffix == ".pt2"
    _say(console, f"{'torch.compile' if timed else 'onnxruntime'} latency at batch {' and '.join(map(str, LATENCY_BATCHES))}, "
                  f"input {'x'.join(map(str, shape))}")  # fmt: skip
    original = _measure(model.net, original_onnx, shape, before, _compiled(model.net) if timed else None)
    optimized = _measure(candidate.net, final, shape, after, result.net if timed else None)
    sign = 1 if task.metric_mode == "max" else -1
    drop = sign * (before.get(key, float("nan")) - after.get(key, float("nan")))
    report = {
        "task": meta.task, "model": meta.model, "weights": str(model.weights_path), "data": data,
        "steps": steps, "input_shape": list(shape), "primary_metric": key, "metric_mode": task.metric_mode,
        "original": original, "optimized": optimized,
        "speedup_b1": original["latency_b1_ms"] / optimized["latency_b1_ms"],
        "speedup_b16": original["latency_b16_ms"] / optimized["latency_b16_ms"],
        "size_ratio": optimized["file_mb"] / original["file_mb"],
        "metric_drop": drop, "max_drop": max_drop, "passed": bool(drop <= max_drop), "wall_s": time.perf_counter() - t0,
    }  # fmt: skip
    from pixelmind.optimize.report import write_report

    written = write_report(report, out)
    _say(console, f"{key}: {before.get(key, float('nan')):.4f} -> {after.get(key, float('nan')):.4f}  "
                  f"latency b1 {report['speedup_b1']:.2f}x  b16 {report['speedup_b16']:.2f}x  "
                  f"file {report['size_ratio']:.2f}x  ({', '.join(p.name for p in written)} in {out})")  # fmt: skip
    if not report["passed"]:
        raise OptimizeGateError(f"{final}: {key} dropped by {drop:.4g} (from {before[key]:.4f} to {after[key]:.4f}), more than "
                                f"--max-drop {max_drop:g}; the model is kept for inspection, the report is in {out}")  # fmt: skip
    return report
