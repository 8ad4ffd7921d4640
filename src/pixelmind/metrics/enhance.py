"""Enhancement evaluation with the literature's protocol, and the classical baseline beside the model.

Per image: PSNR and SSIM on RGB and on the BT.601 Y channel, after rounding to 8-bit levels,
with a border of ``scale`` pixels cropped for super-resolution. The baseline is what a user
has without a model: MATLAB-compatible bicubic upsampling for SR, the degraded input itself
for denoising, JPEG and blur. The headline ``psnr``/``ssim`` follow the field: Y channel for
SR, RGB for restoration (colour denoising papers report RGB).

Example:
    >>> import torch
    >>> ev = EnhanceEvaluator(scale=1)
    >>> clean = torch.rand(3, 16, 16)
    >>> ev.update([clean], [(clean, (clean + 0.05).clamp(0, 1))])
    >>> ev.compute()["psnr"] >= 99
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pixelmind.data.imresize import imresize
from pixelmind.metrics.image_quality import psnr, ssim


def baseline_for(lq: torch.Tensor, scale: int) -> torch.Tensor:
    """The no-model answer: MATLAB's bicubic ``imresize`` of the 8-bit LR image for ``scale`` > 1, else the input."""
    if scale == 1:
        return lq.clamp(0, 1)
    levels = (lq.clamp(0, 1) * 255).round().to(torch.uint8)  # uint8 in, as MATLAB: rounded after each pass
    return imresize(levels, scale=scale).float() / 255


def _levels(x: torch.Tensor) -> torch.Tensor:
    return (x.detach().float().cpu().clamp(0, 1) * 255).round()


class EnhanceEvaluator:
    """Accumulates per-image PSNR/SSIM of the model and of the baseline; keeps a few images for the figure.

    ``update(preds, targets)``: ``preds`` a list of ``[C, H, W]`` outputs in [0, 1]; ``targets``
    a list of ``(clean, degraded)`` pairs. A clean image with one channel while the output has three
    is a file stored grey, scored on grey levels.
    """

    def __init__(self, scale: int = 1, keep: int = 3) -> None:
        self.scale = scale
        self.border = scale if scale > 1 else 0
        self.rows: list[dict[str, float]] = []
        self.examples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.keep = keep

    def _scores(self, out: torch.Tensor, clean: torch.Tensor, prefix: str) -> dict[str, float]:
        # a target stored grey has one channel: score the output's grey level on it, as the MATLAB
        # scripts behind the published figures do (BT.601 Y would squeeze it into 16..235: +1.3 dB on Set14's img_003)
        grey = clean.shape[0] == 1
        if grey and out.shape[0] == 3:
            out = out.mean(0, keepdim=True).round()
        s = {
            f"{prefix}psnr_rgb": psnr(out, clean, crop_border=self.border),
            f"{prefix}ssim_rgb": ssim(out, clean, crop_border=self.border),
        }
        s[f"{prefix}psnr_y"] = s[f"{prefix}psnr_rgb"] if grey else psnr(out, clean, crop_border=self.border, y_channel=True)
        s[f"{prefix}ssim_y"] = s[f"{prefix}ssim_rgb"] if grey else ssim(out, clean, crop_border=self.border, y_channel=True)
        return s

    def update(self, preds: Any, targets: Any) -> None:
        for pred, (clean, lq) in zip(preds, targets):
            out, ref = _levels(pred), _levels(clean)
            base = _levels(baseline_for(lq.detach().float().cpu(), self.scale))
            row = {**self._scores(out, ref, ""), **self._scores(base, ref, "baseline_")}
            self.rows.append(row)
            if len(self.examples) < self.keep:
                self.examples.append((lq.detach().float().cpu(), base / 255, out / 255, ref / 255))

    def compute(self) -> dict[str, float]:
        if not self.rows:
            return {}
        mean = {k: sum(r[k] for r in self.rows) / len(self.rows) for k in self.rows[0]}
        head = "y" if self.scale > 1 else "rgb"
        out = {"psnr": mean[f"psnr_{head}"], "ssim": mean[f"ssim_{head}"],
               "baseline_psnr": mean[f"baseline_psnr_{head}"], "baseline_ssim": mean[f"baseline_ssim_{head}"]}  # fmt: skip
        out["gain_db"] = out["psnr"] - out["baseline_psnr"]
        out.update({k: v for k, v in mean.items() if not k.startswith("baseline_")})
        return out

    def summary(self) -> dict[str, Any]:
        baseline = "bicubic (MATLAB-compatible imresize)" if self.scale > 1 else "the degraded input"
        protocol = (f"PSNR/SSIM on 8-bit levels; headline on the {'Y channel (BT.601)' if self.scale > 1 else 'RGB channels'}"
                    f"{f', border of {self.border} px cropped' if self.border else ''}")  # fmt: skip
        return {"baseline": baseline, "protocol": protocol, "per_image": self.rows}

    def plots(self, out_dir: Path) -> list[Path]:
        from pixelmind.viz.plots import plot_enhance_examples, plot_per_image_psnr

        if not self.rows:
            return []
        head = "y" if self.scale > 1 else "rgb"
        out_dir = Path(out_dir)
        paths = [plot_per_image_psnr([r[f"psnr_{head}"] for r in self.rows], [r[f"baseline_psnr_{head}"] for r in self.rows],
                                     out_dir / "psnr_per_image.png", "bicubic" if self.scale > 1 else "input")]  # fmt: skip
        if self.examples:
            paths.append(plot_enhance_examples(self.examples, out_dir / "examples.png", self.scale))
        return paths
