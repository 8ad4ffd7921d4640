"""The enhancement task: super-resolution, denoising, JPEG-artifact removal and deblurring.

One task with a degradation setting (``--degradation sr|denoise|jpeg|deblur``); the data set
degrades clean images on the fly (or reads paired images) and yields ``(degraded, clean)``.
Inference is tiled with feathered blending, so any image size runs in bounded memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from pixelmind.errors import ConfigError
from pixelmind.nn.device import model_device
from pixelmind.tasks.base import DataBundle, Meta, Task
from pixelmind.tasks.enhance.models import MODELS, build_enhancer

#: validation images larger than this many pixels per side run tiled (bounded memory on big val images)
VAL_TILE = 512


@dataclass
class EnhanceResult:
    """One enhanced image and its sizes.

    Example:
        >>> from PIL import Image
        >>> r = EnhanceResult(Image.new("RGB", (8, 6)), (4, 3), 2)
        >>> r.to_dict()["width"], r.to_dict()["scale"]
        (8, 2)
    """

    image: Any  # PIL.Image
    input_size: tuple[int, int]
    scale: int
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    #: enhanced images are saved losslessly
    file_suffix: str = ".png"

    def to_dict(self) -> dict[str, Any]:
        w, h = self.image.size
        return {"width": w, "height": h, "input_width": self.input_size[0], "input_height": self.input_size[1],
                "scale": self.scale, "ms": round(self.seconds * 1000, 1), **self.extra}  # fmt: skip

    def render(self, image=None):
        """The enhanced image (the input is not drawn on)."""
        return self.image


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """A smooth L1: ``mean(sqrt((pred - target)^2 + eps^2))`` (LapSRN, Restormer)."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": F.l1_loss,
    "mse": F.mse_loss,
    "charbonnier": charbonnier,
}


def _stack_or_list(samples: list[tuple[torch.Tensor, torch.Tensor]]):
    """Stack equal-sized samples (training crops); keep whole images of different sizes as lists."""
    if len({(a.shape, b.shape) for a, b in samples}) == 1:
        from torch.utils.data import default_collate

        return default_collate(samples)
    return [a for a, _ in samples], [b for _, b in samples]


class EnhanceTask(Task):
    name = "enhance"
    models = MODELS
    primary_metric = "psnr"
    metric_mode = "max"
    dynamic_image_size = True
    explain_methods = ("difference", "gradient", "ig")
    optimize_max_drop = 0.3  # dB of PSNR
    defaults = {
        "model": "edsr_s",
        "degradation": "sr",
        "epochs": 10,
        "batch": 16,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "loss": "l1",
        "channels_last": False,
        "augment": "none",
    }

    def recipe(self, cfg: Any) -> dict[str, Any]:
        """An EDSR-small on 48-px input patches (SR: 48 x scale clean pixels), 10 epochs of 1000 crops (bench/RESULTS.md)."""
        from pixelmind.tasks.enhance.data import detect_channels, paired_scale

        out = dict(self.defaults)
        kind = cfg.degradation or "sr"
        scale = cfg.scale or (2 if kind == "sr" else 1)
        if (pairs := paired_scale(cfg.data)) is not None:  # paired data say their own scale
            scale = pairs
            kind = "sr" if pairs > 1 else (cfg.degradation if cfg.degradation not in (None, "sr") else "denoise")
        out.update(degradation=kind, scale=scale if kind == "sr" else 1, imgsz=48 * scale if kind == "sr" else 48)
        out["channels"] = detect_channels(cfg.data)
        return out

    def load_data(self, cfg: Any, meta: Meta | None = None) -> DataBundle:
        from pixelmind.tasks.enhance.data import load_enhance_data

        if meta is None:
            return load_enhance_data(cfg)
        # evaluate / export: the degradation and channels the weights were trained for; data other
        # than the training data is a test set, evaluated whole
        keys = ("degradation", "scale", "noise_sigma", "jpeg_quality", "blur", "channels")
        settings = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.extra.items() if k in keys}
        if meta.extra.get("paired"):
            settings.pop("degradation", None)
        return load_enhance_data(cfg.model_copy(update=settings), evaluate_all=str(cfg.data) != meta.extra.get("train_data"))

    def build_model(self, cfg: Any, meta: Meta) -> torch.nn.Module:
        return build_enhancer(meta.model, scale=meta.extra.get("scale", 1), channels=meta.extra.get("channels", 3), **meta.model_kwargs)

    def prune_ignored_layers(self, model) -> list[torch.nn.Module]:
        """The image-output convolution and every convolution feeding a PixelShuffle; the Transformers are refused.

        A PixelShuffle turns each block of ``scale**2`` channels into one; torch-pruning would narrow
        them one by one, so those convolutions keep their outputs (their inputs are still narrowed).
        """
        from pixelmind.tasks.enhance.transformers import Restormer, SwinIR

        if isinstance(model, (SwinIR, Restormer)):
            raise ConfigError(self.pruning_unsupported(
                f"{type(model).__name__}'s attention splits its channels into heads of the width it was built with; "
                "prune a CNN (espcn, edsr_s, edsr_baseline, dncnn)"))  # fmt: skip
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        shuffled = [seq[i - 1] for seq in model.modules() if isinstance(seq, torch.nn.Sequential)
                    for i, m in enumerate(seq) if i > 0 and isinstance(m, torch.nn.PixelShuffle)]  # fmt: skip
        return convs[-1:] + shuffled

    def collate(self, samples):
        return _stack_or_list(samples)

    def setup_training(self, cfg: Any, meta: Meta) -> None:
        if (cfg.loss or "l1") not in LOSSES:
            raise ConfigError(f"loss: enhance takes {', '.join(LOSSES)} (got {cfg.loss!r})")
        self._loss = LOSSES[cfg.loss or "l1"]

    def _task_loss(self, model, lq: torch.Tensor, hq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(pixel loss, prediction, training PSNR)`` of a batch."""
        pred = model(lq)
        loss = getattr(self, "_loss", F.l1_loss)(pred, hq)
        with torch.no_grad():
            mse = F.mse_loss(pred.clamp(0, 1), hq)
        return loss, pred, -10 * torch.log10(mse + 1e-10)

    def training_step(self, model, batch, step: int, optimizer_idx: int = 0) -> dict[str, torch.Tensor]:
        loss, _, psnr = self._task_loss(model, *batch)
        return {"loss": loss, "psnr": psnr}

    def check_teacher(self, meta: Meta, teacher_meta: Meta) -> None:
        """The teacher must undo the same degradation into the same output (scale, channels)."""
        for key in ("degradation", "scale", "channels"):
            mine, theirs = meta.extra.get(key), teacher_meta.extra.get(key)
            if mine != theirs:
                raise ConfigError(f"teacher: trained with {key} {theirs!r}, the student with {key} {mine!r}; "
                                  "an enhancement teacher must undo the same degradation at the same scale")  # fmt: skip

    def distillation_step(self, model, teacher, batch, step: int, cfg: Any) -> dict[str, torch.Tensor]:
        """The pixel loss to the clean image plus the L1 to the teacher's output on the same degraded input."""
        from pixelmind.nn.distill import blend

        lq, hq = batch
        loss, pred, psnr = self._task_loss(model, lq, hq)
        with torch.no_grad():
            target = teacher(lq)
        return {**blend(loss, F.l1_loss(pred.float(), target.float()), cfg.distill_alpha), "psnr": psnr}

    def _enhance(self, model, lq: torch.Tensor, scale: int) -> torch.Tensor:
        """One image ``[C, H, W]`` -> ``[C, H*s, W*s]`` in [0, 1]; large images run tiled."""
        from pixelmind.nn.tiling import tiled_apply

        if max(lq.shape[-2:]) <= VAL_TILE:
            return model(lq[None])[0].clamp(0, 1)
        return tiled_apply(model, lq, scale=scale, tile=VAL_TILE // 2, overlap=32).clamp(0, 1)

    def validation_step(self, model, batch) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        lq, hq = batch
        scale = hq[0].shape[-1] // lq[0].shape[-1]
        if torch.is_tensor(lq) and max(lq.shape[-2:]) <= VAL_TILE:
            preds = list(model(lq).clamp(0, 1))
        else:
            preds = [self._enhance(model, x, scale) for x in lq]
        return preds, list(zip(hq, lq))

    def evaluator(self, meta: Meta):
        from pixelmind.metrics.enhance import EnhanceEvaluator

        return EnhanceEvaluator(scale=meta.extra.get("scale", 1))

    def preprocess(self, meta: Meta):
        from pixelmind.tasks.enhance.data import to_tensor

        channels = meta.extra.get("channels", 3)
        return lambda image: to_tensor(image, channels)

    def pixel_space(self, meta: Meta):
        """Enhancers take [0, 1] pixels as they are."""
        from pixelmind.robust.attacks import PixelSpace

        return PixelSpace((0.0,) * 3, (1.0,) * 3)

    def explain_targets(self, model, x, meta: Meta, classes=None, **_: Any):
        from pixelmind.tasks.enhance.explain import ChangeMap, change_target

        return ChangeMap(model, meta.extra.get("scale", 1)), [change_target()]

    @torch.inference_mode()
    def predict(self, model, images: Sequence[Any], meta: Meta, tile: int = 256, overlap: int = 32,
                progress: Callable[[int, int], None] | None = None, **_: Any) -> list[EnhanceResult]:  # fmt: skip
        """Enhance PIL images with tiled inference (``tile`` input pixels, ``overlap`` blended)."""
        from PIL import Image

        from pixelmind.nn.tiling import tiled_apply_uint8

        tf, scale = self.preprocess(meta), meta.extra.get("scale", 1)
        device = model_device(model)
        results = []
        for image in images:
            t0 = time.perf_counter()
            x = tf(image).to(device)
            out = tiled_apply_uint8(model, x, scale=scale, tile=tile, overlap=overlap, progress=progress)
            pil = Image.fromarray(out[..., 0] if out.shape[-1] == 1 else out)
            results.append(EnhanceResult(pil, image.size, scale, time.perf_counter() - t0))
        return results


TASK = EnhanceTask()
