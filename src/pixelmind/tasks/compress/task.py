"""The compression task: learned codecs trained for a rate-distortion trade-off, writing real files.

The loss is ``lambda * 255^2 * MSE + bpp`` (or ``lambda * (1 - MS-SSIM) + bpp``); ``--quality 1..8``
picks lambda from CompressAI's table so that quality levels are comparable with the literature.
After training, :meth:`CompressTask.finalize` fixes the integer entropy-coding tables, which are
stored in the weights file; from then on evaluation measures real files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from pixelmind.nn.device import model_device
from pixelmind.tasks.base import DataBundle, Meta, Task
from pixelmind.tasks.compress.models import MODELS, build_codec

#: lambda per quality level 1..8 (Ballé/Minnen training points, as tabulated by CompressAI)
LAMBDAS = {
    "mse": (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800),
    "ms_ssim": (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00),
}


def lambda_for(quality: int, distortion: str = "mse") -> float:
    """The rate-distortion lambda of ``quality`` (1 = smallest files, 8 = best quality).

    Example:
        >>> lambda_for(3)
        0.0067
    """
    return LAMBDAS[distortion][quality - 1]


def bits_per_pixel(likelihoods: dict[str, torch.Tensor], pixels: int) -> torch.Tensor:
    """The rate term: ``-sum(log2 p) / pixels`` over every latent's likelihoods."""
    return sum(torch.log(lik).sum() for lik in likelihoods.values()) / (-math.log(2) * pixels)


def tables_ready(model: torch.nn.Module) -> bool:
    """True when the model's integer tables are fixed (after :meth:`CompressTask.finalize`)."""
    return all(int(m.lengths.sum()) > 0 for m in model.modules() if hasattr(m, "lengths") and hasattr(m, "counts"))


@dataclass
class CompressResult:
    """One compressed image: the ``.pmc`` bytes, its rate and, when decoded, its quality.

    Example:
        >>> r = CompressResult(b"x" * 100, (20, 10))
        >>> r.to_dict()["bpp"]
        4.0
    """

    data: bytes
    size: tuple[int, int]  # (width, height)
    decoded: Any = None  # PIL.Image, the reconstruction
    psnr: float | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    file_suffix: str = ".pmc"

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.size[0] * self.size[1])

    def to_dict(self) -> dict[str, Any]:
        out = {"width": self.size[0], "height": self.size[1], "bytes": len(self.data), "bpp": round(self.bpp, 5),
               "ms": round(self.seconds * 1000, 1), **self.extra}  # fmt: skip
        if self.psnr is not None:
            out["psnr"] = round(self.psnr, 3)
        return out

    def render(self, image=None):
        """The decoded image (what the file holds)."""
        return self.decoded

    def save(self, path) -> None:
        from pathlib import Path

        Path(path).write_bytes(self.data)


def _stack_or_list(samples: list[torch.Tensor]):
    if len({s.shape for s in samples}) == 1:
        return torch.stack(samples)
    return list(samples)


class CompressTask(Task):
    name = "compress"
    models = MODELS
    primary_metric = "rd_loss"
    robust_unsupported = "a codec's metric is its own rate and distortion; corrupt the images and run pixelmind rd instead"
    metric_mode = "min"
    optimize_unsupported = (
        "a bitstream must decode to the same image on every machine: the integer entropy-coding tables are "
        "fixed on the fp32 transforms, and an INT8 or pruned transform would need new tables and a retrained "
        "rate-distortion trade-off (train a smaller --quality/model instead)")
    dynamic_image_size = True
    explain_methods = ("bits",)
    defaults = {
        "model": "mean_scale_s",
        "quality": 3,
        "distortion": "mse",
        "epochs": 10,
        "batch": 8,
        "imgsz": 128,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "clip_grad": 1.0,
        "channels_last": True,  # 0.31 -> 0.28 s per training step of mean_scale_s on 2 CPU cores
        "augment": "none",
    }

    def recipe(self, cfg: Any) -> dict[str, Any]:
        """A small mean-scale hyperprior on 128-px crops at quality 3 (bench/RESULTS.md)."""
        out = dict(self.defaults)
        quality, distortion = cfg.quality or out["quality"], cfg.distortion or out["distortion"]
        out["lmbda"] = lambda_for(quality, distortion)
        return out

    def load_data(self, cfg: Any, meta: Meta | None = None) -> DataBundle:
        from pixelmind.tasks.compress.data import load_compress_data

        evaluate_all = meta is not None and str(cfg.data) != meta.extra.get("train_data")
        bundle = load_compress_data(cfg, evaluate_all=evaluate_all)
        if meta is None:
            bundle.meta_extra.update(quality=cfg.quality, lmbda=cfg.lmbda, distortion=cfg.distortion)
        return bundle

    def build_model(self, cfg: Any, meta: Meta) -> torch.nn.Module:
        net = build_codec(meta.model, **meta.model_kwargs)
        if cfg.imgsz and cfg.imgsz % net.stride:
            from pixelmind.errors import ConfigError

            raise ConfigError(f"imgsz: {cfg.imgsz} must be a multiple of {net.stride} for {meta.model} (its total downsampling)")
        # the header of this model's files: validation measures the very files predict (compress) writes
        net.file_header = (meta.model, int(meta.extra.get("quality") or 0))
        return net

    def collate(self, samples):
        return _stack_or_list(samples)

    def setup_training(self, cfg: Any, meta: Meta) -> None:
        self._lmbda, self._distortion = cfg.lmbda, cfg.distortion or "mse"

    def _distortion_term(self, x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mse = F.mse_loss(x_hat, x)
        if getattr(self, "_distortion", "mse") == "ms_ssim":
            from pixelmind.metrics.rate_distortion import ms_ssim_loss

            return self._lmbda * ms_ssim_loss(x_hat, x), mse
        return self._lmbda * 255**2 * mse, mse

    def training_step(self, model, batch, step: int, optimizer_idx: int = 0) -> dict[str, torch.Tensor]:
        out = model(batch)
        bpp = bits_per_pixel(out["likelihoods"], batch.shape[0] * batch.shape[-2] * batch.shape[-1])
        distortion, mse = self._distortion_term(out["x_hat"], batch)
        return {"loss": distortion + bpp, "bpp": bpp.detach(), "psnr": -10 * torch.log10(mse.detach() + 1e-10)}

    def validation_step(self, model, batch) -> tuple[list[dict[str, Any]], list[torch.Tensor]]:
        """Per image: the estimated rate from the likelihoods and, once tables are fixed, the real file."""
        from pixelmind.tasks.compress.codec import decode_image, encode_image, pad_to_stride

        codec = model.module if hasattr(model, "module") else model
        real = tables_ready(codec)
        preds = []
        for x in batch:
            h, w = x.shape[-2:]
            padded, _, _ = pad_to_stride(x, codec.stride)
            out = codec(padded[None])
            pred = {"x_hat": out["x_hat"][0, :, :h, :w].clamp(0, 1), "bpp_est": float(bits_per_pixel(out["likelihoods"], h * w))}
            if real:
                t0 = time.perf_counter()
                data = encode_image(codec, x, *getattr(codec, "file_header", ("eval", 0)))
                t1 = time.perf_counter()
                pred["x_hat"] = decode_image(codec, data)
                pred.update(bpp=len(data) * 8 / (h * w), encode_s=t1 - t0, decode_s=time.perf_counter() - t1)
            preds.append(pred)
        return preds, list(batch)

    def evaluator(self, meta: Meta):
        from pixelmind.metrics.compress import CompressEvaluator

        distortion = meta.extra.get("distortion") or "mse"
        return CompressEvaluator(lmbda=meta.extra.get("lmbda") or lambda_for(3, distortion), distortion=distortion)

    def finalize(self, model, val_loader, meta: Meta, cfg: Any) -> dict[str, Any]:
        """Fix the integer entropy-coding tables (stored as buffers in the weights file)."""
        codec = model.module if hasattr(model, "module") else model
        codec.update_tables()
        return {"tables": "fixed"}

    def export_parts(self, model, inputs) -> list[tuple[str, torch.nn.Module, Any]]:
        """The encoder transform (image -> latents ``y``) and the decoder transform (quantized ``y`` -> image).

        Entropy coding and the exact hyper-synthesis stay in Python: they are integer work, not network work.
        """
        from pixelmind.tasks.compress.codec import pad_to_stride

        batches = [inputs] if torch.is_tensor(inputs) else list(inputs)
        images = [torch.stack([pad_to_stride(x, model.stride)[0] for x in b]) for b in batches]
        with torch.no_grad():
            latents = [torch.round(model.g_a(x)) for x in images]
        return [("encoder", model.g_a, images), ("decoder", model.g_s, latents)]

    def preprocess(self, meta: Meta):
        from pixelmind.tasks.enhance.data import to_tensor

        return lambda image: to_tensor(image, 3)

    def explain_targets(self, model, x, meta: Meta, classes=None, **_: Any):
        from pixelmind.tasks.compress.explain import BitsMap, bits_target

        network = BitsMap(model)
        with torch.no_grad():
            bpp = float(network(x).mean())
        return network, [bits_target(bpp)]

    @torch.inference_mode()
    def predict(self, model, images: Sequence[Any], meta: Meta, decode: bool = True,
                progress: Callable[[int, int], None] | None = None, **_: Any) -> list[CompressResult]:  # fmt: skip
        """Compress PIL images into ``.pmc`` bytes; ``decode`` also decodes them and measures PSNR."""
        from PIL import Image

        from pixelmind.metrics.image_quality import psnr
        from pixelmind.tasks.compress.codec import decode_image, encode_image

        tf, device = self.preprocess(meta), model_device(model)
        quality = int(meta.extra.get("quality") or 0)
        results = []
        for image in images:
            t0 = time.perf_counter()
            x = tf(image).to(device)
            data = encode_image(model, x, meta.model, quality)
            result = CompressResult(data, image.size, seconds=time.perf_counter() - t0)
            if decode:
                x_hat = (decode_image(model, data) * 255).round().cpu()
                result.decoded = Image.fromarray(x_hat.byte().permute(1, 2, 0).numpy())
                result.psnr = psnr(x_hat, (x.cpu() * 255).round())
            results.append(result)
        return results


TASK = CompressTask()
