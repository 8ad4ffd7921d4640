"""Rate-distortion report: several quality levels of a codec against Pillow's JPEG, WebP and AVIF.

Each weights file is one point (its real ``.pmc`` files on every image of ``data``); each
classical codec is swept over its quality range on the same images. The report gives the
curves (PSNR and MS-SSIM against bpp, means over images), Bjøntegaard delta rates against each
classical codec, and plots.

Example:
    >>> rd_report(["q1.safetensors", "q3.safetensors"], "images/", "runs/rd")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: qualities swept per classical codec (Pillow's scales: JPEG 1-95, WebP 0-100, AVIF 0-100)
CLASSICAL_QUALITIES = {
    "jpeg": (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95),
    "webp": (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95),
    "avif": (10, 20, 30, 40, 50, 60, 70, 80, 90),
}


def _codec_point(weights: str | Path, data: str, device: str) -> dict[str, Any]:
    from pixelmind.api import Model
    from pixelmind.config import make_config
    from pixelmind.engine.evaluate import run_validation
    from pixelmind.engine.trainer import make_loader
    from pixelmind.metrics.compress import CompressEvaluator
    from pixelmind.nn.device import model_device

    model = Model.load(weights, device=device)
    if model.meta.task != "compress":
        from pixelmind.errors import WeightsError

        raise WeightsError(f"{weights}: a {model.meta.task} model; the RD report needs compress weights")
    cfg = make_config({"task": "compress", "data": data, "model": model.meta.model, "batch": 1, "workers": 0})
    bundle = model.task.load_data(cfg, model.meta)
    evaluator = CompressEvaluator(lmbda=model.meta.extra.get("lmbda") or 1.0, classical=())
    loader = make_loader(bundle.val, model.task, cfg, train=False, pin=False)
    metrics = run_validation(model.task, model.net, evaluator, loader, model_device(model.net)).compute()
    return {"weights": str(weights), "model": model.meta.model, "quality": model.meta.extra.get("quality"),
            "images": len(evaluator.rows), **metrics}  # fmt: skip


def rd_report(weights: Sequence[str | Path], data: str, out_dir: str | Path, device: str = "cpu",
              codecs: Sequence[str] = ("jpeg", "webp", "avif"),
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Measure every weights file and every classical codec on ``data``; write rd.json, rd.md and plots.

    Returns:
        ``{"pixelmind": [points], "<codec>": [points], "bd_rate": {codec: percent}, ...}`` where
        a point is ``{"bpp", "psnr", "ms_ssim", ...}`` (means over the images).
    """
    from pixelmind.config import make_config
    from pixelmind.metrics.bd_rate import bd_rate
    from pixelmind.metrics.rate_distortion import classical_rd_points
    from pixelmind.tasks.compress.data import load_compress_data
    from pixelmind.viz.plots import plot_rate_distortion

    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ours = []
    for w in weights:
        say(f"pixelmind: {w}")
        ours.append(_codec_point(w, data, device))
    ours.sort(key=lambda p: p["bpp"])
    bundle = load_compress_data(make_config({"task": "compress", "data": data}), evaluate_all=True)
    images = [bundle.val.store.get(i) for i in range(len(bundle.val))]
    from PIL import Image

    pil = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in images]
    report: dict[str, Any] = {"data": data, "images": len(pil), "pixelmind": ours}
    for codec in codecs:
        say(f"{codec}: {len(CLASSICAL_QUALITIES[codec])} qualities")
        report[codec] = classical_rd_points(pil, codec, CLASSICAL_QUALITIES[codec])
    report["bd_rate_psnr"], report["bd_rate_ms_ssim"] = {}, {}
    for codec in codecs:
        anchor = report[codec]
        for metric in ("psnr", "ms_ssim"):
            try:
                value = bd_rate([p["bpp"] for p in anchor], [_quality_db(p, metric) for p in anchor],
                                [p["bpp"] for p in ours], [_quality_db(p, metric) for p in ours])  # fmt: skip
            except ValueError as err:
                value = f"n/a ({err})"
            report[f"bd_rate_{metric}"][codec] = value
    (out_dir / "rd.json").write_text(json.dumps(report, indent=2, default=float))
    names = {"pixelmind": ours, **{c.upper(): report[c] for c in codecs}}
    plot_rate_distortion({n: [(p["bpp"], p["psnr"]) for p in pts] for n, pts in names.items()}, out_dir / "rd_psnr.png",
                         title=f"{data}: {len(pil)} images")  # fmt: skip
    plot_rate_distortion({n: [(p["bpp"], _quality_db(p, "ms_ssim")) for p in pts] for n, pts in names.items()},
                         out_dir / "rd_ms_ssim.png", metric="MS-SSIM (dB)", title=f"{data}: {len(pil)} images")  # fmt: skip
    (out_dir / "rd.md").write_text(markdown(report, codecs))
    return report


def _quality_db(point: dict[str, Any], metric: str) -> float:
    """PSNR as is; MS-SSIM in dB (``-10 log10(1 - MS-SSIM)``), the scale on which BD-rates are taken."""
    import math

    if metric == "psnr":
        return point["psnr"]
    return -10 * math.log10(max(1 - point["ms_ssim"], 1e-10))


def markdown(report: dict[str, Any], codecs: Sequence[str]) -> str:
    """The report as a Markdown table of points and BD-rates."""
    lines = [f"# Rate-distortion on {report['data']} ({report['images']} images)", "",
             "| codec | quality | bpp | PSNR (dB) | MS-SSIM |", "|---|---|---|---|---|"]  # fmt: skip
    for p in report["pixelmind"]:
        lines.append(f"| pixelmind {p['model']} | {p['quality']} | {p['bpp']:.4f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} |")
    for codec in codecs:
        for p in report[codec]:
            lines.append(f"| {codec} | {p['quality']} | {p['bpp']:.4f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} |")
    lines += ["", "BD-rate of pixelmind against each codec (negative: fewer bits for the same quality):", "",
              "| anchor | BD-rate (PSNR) | BD-rate (MS-SSIM dB) |", "|---|---|---|"]  # fmt: skip
    for codec in codecs:
        cells = [report[f"bd_rate_{m}"][codec] for m in ("psnr", "ms_ssim")]
        lines.append(f"| {codec} | " + " | ".join(f"{c:+.1f} %" if isinstance(c, float) else c for c in cells) + " |")
    return "\n".join(lines) + "\n"
