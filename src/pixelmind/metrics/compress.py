"""Compression evaluation: rate from the real file, distortion of the decoded image, classical codecs beside it.

Per image: bpp of the ``.pmc`` file (and the model's estimate from its likelihoods), PSNR on RGB
8-bit levels, MS-SSIM, encode and decode seconds; and, at the same bpp, what Pillow's JPEG,
WebP and AVIF achieve on that image (quality found by bisection; on the first ``MATCH_IMAGES``
images only, since AVIF's search costs seconds per image). Before the entropy-coding
tables are fixed (during training) only the estimate exists and ``bpp`` is the estimate.

Example:
    >>> import torch
    >>> ev = CompressEvaluator(lmbda=0.0067, classical=())
    >>> x = torch.rand(3, 16, 16)
    >>> ev.update([{"x_hat": x, "bpp_est": 0.5}], [x])
    >>> round(ev.compute()["bpp"], 3), ev.compute()["psnr"] >= 99
    (0.5, True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelmind.metrics.image_quality import psnr
from pixelmind.metrics.rate_distortion import CLASSICAL_CODECS, match_bpp, ms_ssim

#: images compared with the classical codecs at matched bpp (the bisection costs ~1 s per image)
MATCH_IMAGES = 8


def _levels(x: torch.Tensor) -> torch.Tensor:
    return (x.detach().float().cpu().clamp(0, 1) * 255).round()


def _pil(levels: torch.Tensor):
    from PIL import Image

    return Image.fromarray(levels.byte().permute(1, 2, 0).numpy())


class CompressEvaluator:
    """Accumulates per-image rate and distortion; ``classical`` codecs are matched in bpp on real files."""

    def __init__(self, lmbda: float, classical: tuple[str, ...] = CLASSICAL_CODECS, distortion: str = "mse") -> None:
        self.lmbda, self.classical, self.distortion = lmbda, classical, distortion
        self.rows: list[dict[str, float]] = []

    def update(self, preds: list[dict[str, Any]], targets: list[torch.Tensor]) -> None:
        for pred, target in zip(preds, targets):
            out, ref = _levels(pred["x_hat"]), _levels(target)
            real = "bpp" in pred
            row = {"bpp": pred.get("bpp", pred["bpp_est"]), "bpp_est": pred["bpp_est"], "psnr": psnr(out, ref),
                   "ms_ssim": ms_ssim(out / 255, ref / 255), "mse": float(((out - ref) ** 2).mean()) / 255**2}  # fmt: skip
            if real:
                row.update(encode_ms=pred["encode_s"] * 1000, decode_ms=pred["decode_s"] * 1000)
            if real and len(self.rows) < MATCH_IMAGES:
                original = np.asarray(_pil(ref))
                for codec in self.classical:
                    _, data, decoded = match_bpp(_pil(ref), codec, row["bpp"])
                    row[f"{codec}_bpp"] = len(data) * 8 / (ref.shape[-1] * ref.shape[-2])
                    row[f"{codec}_psnr"] = psnr(torch.from_numpy(np.asarray(decoded).copy()).permute(2, 0, 1).float(),
                                                torch.from_numpy(original.copy()).permute(2, 0, 1).float())  # fmt: skip
            self.rows.append(row)

    def compute(self) -> dict[str, float]:
        if not self.rows:
            return {}
        keys = [k for k in self.rows[0] if all(k in r for r in self.rows)]
        mean = {k: sum(r[k] for r in self.rows) / len(self.rows) for k in keys}
        # the training objective, so that the best checkpoint is the best trade-off it was trained for
        distortion = self.lmbda * (1 - mean["ms_ssim"]) if self.distortion == "ms_ssim" else self.lmbda * 255**2 * mean["mse"]
        out = {"rd_loss": distortion + mean["bpp"]}
        out.update({k: v for k, v in mean.items() if k != "mse"})
        matched = [r for r in self.rows if f"{self.classical[0]}_psnr" in r] if self.classical else []
        if matched:  # the classical codecs at matched bpp, and ours on the same images
            out["psnr_on_matched"] = sum(r["psnr"] for r in matched) / len(matched)
            for codec in self.classical:
                out[f"{codec}_psnr"] = sum(r[f"{codec}_psnr"] for r in matched) / len(matched)
        if "encode_ms" in mean:
            out["bpp_gap_pct"] = 100 * (mean["bpp"] - mean["bpp_est"]) / max(mean["bpp_est"], 1e-12)
        return out

    def summary(self) -> dict[str, Any]:
        real = bool(self.rows) and "encode_ms" in self.rows[0]
        rate = "bpp of the real .pmc files (header included)" if real else "bpp estimated from the likelihoods (tables not fixed yet)"
        matched = (f"; {', '.join(self.classical)} (Pillow) at the same bpp per image on the first {MATCH_IMAGES} images"
                   if real and self.classical else "")  # fmt: skip
        return {"protocol": f"{rate}; PSNR on RGB 8-bit levels; MS-SSIM on RGB{matched}", "per_image": self.rows}

    def plots(self, out_dir: Path) -> list[Path]:
        from pixelmind.viz.plots import plot_rate_distortion

        if not self.rows or "encode_ms" not in self.rows[0]:
            return []
        matched = [r for r in self.rows if "jpeg_bpp" in r or not self.classical]
        points = {"pixelmind": [(r["bpp"], r["psnr"]) for r in matched]}
        for codec in self.classical:
            points[codec.upper()] = [(r[f"{codec}_bpp"], r[f"{codec}_psnr"]) for r in matched]
        curves = {name: sorted(p) for name, p in points.items()}
        return [plot_rate_distortion(curves, Path(out_dir) / "rd_per_image.png", title="per image, matched bpp")]
