"""The generation task: GANs and diffusion models, unconditional or per class, with FID/KID.

A GAN trains with two optimizers (discriminator = optimizer 0, generator = 1) and a
diffusion model with one; the engine only sees ``configure_optimizers`` and
``training_step``. Validation draws as many samples as real validation images (a fixed
seed per batch, so figures repeat) and feeds ``(fake, real)`` uint8 batches to the FID/KID
evaluator. FID needs a feature extractor: ``--feature-weights`` (a pixelmind classifier
trained on this domain) or ``--fid-weights`` (an Inception weights file); without one the
run keeps its last epoch and the report says why. Sample grids go to
``<run>/samples/epoch_XXX.png`` after every epoch.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pixelmind.errors import ConfigError, PixelmindError
from pixelmind.tasks.base import DataBundle, Meta, Task
from pixelmind.tasks.generate.data import to_uint8
from pixelmind.tasks.generate.models import build_generator, load_models

#: seed of validation batch 0's samples (batch i uses VAL_SEED + i)
VAL_SEED = 1234
#: seed of the per-epoch sample grids
GRID_SEED = 0
NO_FID = ("no FID/KID: pass --feature-weights (a pixelmind classifier trained on this domain) or "
          "--fid-weights (an Inception weights file); the run keeps its last epoch")  # fmt: skip
#: recipe per model family: optimizer steps wanted, lr, batch, validation samples, Adam betas
RECIPES = {
    "gan": {"steps": 4000, "lr": 2e-4, "batch": 64, "val_samples": 2000, "betas": (0.0, 0.99)},
    "diffusion": {"steps": 12000, "lr": 2e-4, "batch": 64, "val_samples": 500, "betas": (0.9, 0.999)},
}


@dataclass
class GenerateResult:
    """One generated image with what made it (seed, class).

    Example:
        >>> from PIL import Image
        >>> GenerateResult(Image.new("L", (8, 8)), 0, 7, "3").to_dict()
        {'index': 0, 'seed': 7, 'class': '3', 'width': 8, 'height': 8}
    """

    image: Any  # PIL.Image
    index: int
    seed: int
    class_name: str | None = None
    file_suffix: str = ".png"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "seed": self.seed, "class": self.class_name, "width": self.image.size[0], "height": self.image.size[1]}

    def render(self, image=None):
        return self.image


class NoExtractorEvaluator:
    """Stands in for FID/KID when no feature extractor was given: counts real images, says what is missing."""

    def __init__(self) -> None:
        self.images = 0

    def update(self, preds: Any, targets: torch.Tensor) -> None:
        self.images += len(targets)

    def compute(self) -> dict[str, float]:
        return {"val_images": float(self.images)} if self.images else {}

    def summary(self) -> dict[str, Any]:
        return {"fid_note": NO_FID}

    def plots(self, out_dir: Path) -> list[Path]:
        return []


def _family(name: str) -> str:
    return "gan" if name.startswith("gan") else "diffusion"


def class_index(meta: Meta, class_name: str | int | None) -> int | None:
    """The index of ``class_name`` among the model's classes (case-insensitive); a one-line error otherwise."""
    if class_name is None:
        return None
    names = meta.class_names if meta.extra.get("conditional", True) else []
    if not names:
        raise ConfigError(f"class: {meta.model} is unconditional; it takes no class (got {class_name!r})")
    lowered = {n.lower(): i for i, n in enumerate(names)}
    key = str(class_name).strip().lower()
    if key not in lowered:
        raise ConfigError(f"class: unknown class {class_name!r}; the model's classes: {', '.join(names)}")
    return lowered[key]


class GenerateTask(Task):
    name = "generate"
    primary_metric = "fid"
    robust_unsupported = "a generator has no input image to perturb"
    metric_mode = "min"
    optimize_unsupported = (
        "a sample is judged by FID over thousands of images, not by a per-image metric a parity gate can check, "
        "and a diffusion sampler is a loop of network calls outside one exportable graph")
    defaults = {"model": "gan", "batch": 64, "lr": 2e-4, "weight_decay": 0.0, "ema": True, "augment": "none",
                "channels_last": False}  # fmt: skip

    def __init__(self) -> None:
        self._extractors: dict[tuple, Any] = {}
        self._draw = True
        self._val_batch = 0
        self._steps: int | None = None
        self._guidance: float | None = None

    @property
    def models(self):  # type: ignore[override]
        return load_models()  # importing the model modules registers them

    # -- data and models ---------------------------------------------------------------------
    def recipe(self, cfg: Any) -> dict[str, Any]:
        """GAN by default; imgsz 28 (IDX, digits) or 32 (image folders); epochs for about 4k (GAN) / 12k (diffusion) steps (5-150)."""
        from pixelmind.tasks.generate.data import _has_idx, is_idx_file

        out = dict(self.defaults)
        model = cfg.model or "gan"
        r = RECIPES[_family(model)]
        path = Path(str(cfg.data)).expanduser()
        arrays = cfg.data == "digits" or (path.is_file() and is_idx_file(path)) or (path.is_dir() and _has_idx(path))
        out["imgsz"] = 28 if arrays else 32
        n = cfg.limit or _count_images(cfg.data)
        batch = cfg.batch or r["batch"]
        steps_per_epoch = max(1, int(n * (1 - cfg.val_fraction)) // batch) if n else 100
        out.update(lr=r["lr"], batch=r["batch"], val_samples=r["val_samples"],
                   epochs=int(min(150, max(5, round(r["steps"] / steps_per_epoch)))))  # fmt: skip
        if _family(model) == "diffusion":
            out["sample_steps"] = 25  # validation samples every epoch: half the default 50 DDIM steps
        return out

    def load_data(self, cfg: Any, meta: Meta | None = None) -> DataBundle:
        from pixelmind.tasks.generate.data import load_generate_data

        if meta is None:
            bundle = load_generate_data(cfg)
            bundle.meta_extra.update(_eval_settings(cfg))
            return bundle
        # evaluate / export: the weights' channels and size; FID settings given now win over stored ones
        # (the evaluator is built from meta alone, so they travel in this in-memory meta)
        meta.extra.update({k: v for k, v in _eval_settings(cfg).items() if v is not None})
        cfg = cfg.model_copy(update={"channels": meta.extra.get("channels"), "imgsz": meta.imgsz})
        return load_generate_data(cfg, evaluate_all=str(cfg.data) != meta.extra.get("train_data"))

    def build_model(self, cfg: Any, meta: Meta) -> torch.nn.Module:
        kwargs = dict(meta.model_kwargs)
        conditional = bool(kwargs.pop("conditional", True)) and meta.num_classes > 1
        meta.extra["conditional"] = conditional
        return build_generator(meta.model, meta.imgsz, meta.extra.get("channels", 3), meta.num_classes if conditional else 0, **kwargs)

    # -- training ----------------------------------------------------------------------------
    def configure_optimizers(self, model: Any, cfg: Any, steps_per_epoch: int) -> list[tuple[Any, Any]]:
        from pixelmind.engine.optim import build_scheduler

        betas = RECIPES[model.kind if model.kind in RECIPES else "diffusion"]["betas"]
        if model.kind == "gan":
            opts = [torch.optim.Adam(model.discriminator_parameters(), lr=cfg.lr, betas=betas),
                    torch.optim.Adam(model.generator_parameters(), lr=cfg.lr, betas=betas)]  # fmt: skip
            # a constant lr after warm-up, as DCGAN and SNGAN: decaying one player's lr unbalances the game
            cfg = cfg.model_copy(update={"scheduler": "constant"})
        else:
            opts = [torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay or 0.0)]
        return [(o, build_scheduler(o, cfg, steps_per_epoch)) for o in opts]

    def setup_training(self, cfg: Any, meta: Meta) -> None:
        if not (meta.extra.get("fid_weights") or meta.extra.get("feature_weights")):
            sys.stderr.write(f"note: {NO_FID}\n")

    def training_step(self, model, batch, step: int, optimizer_idx: int = 0) -> dict[str, torch.Tensor]:
        images, labels = batch
        net = getattr(model, "module", model)  # the Accelerate/DDP wrapper holds the model's own methods
        labels = labels if getattr(net, "num_classes", 0) else None
        if net.kind == "gan":
            # logged as loss0 (discriminator) and loss1 (generator)
            return net.d_loss(images, labels) if optimizer_idx == 0 else net.g_loss(len(images), labels)
        return net.loss(images, labels)

    # -- validation --------------------------------------------------------------------------
    def evaluator(self, meta: Meta):
        # a new evaluator starts a validation pass: batch seeds restart, so every pass draws the same samples
        self._val_batch = 0
        self._steps, self._guidance = meta.extra.get("sample_steps"), meta.extra.get("guidance")
        extractor = self._extractor(meta)
        self._draw = extractor is not None  # without an extractor, sampling would be wasted work
        if extractor is None:
            return NoExtractorEvaluator()
        from pixelmind.metrics.generation import GenerationEvaluator

        reference = f"{meta.extra.get('train_data', '?')} validation images"
        return GenerationEvaluator(extractor, reference_name=reference)

    def _extractor(self, meta: Meta):
        key = (meta.extra.get("feature_weights"), meta.extra.get("fid_weights"), meta.extra.get("channels", 3))
        if key[0] is None and key[1] is None:
            return None
        if key not in self._extractors:
            from pixelmind.metrics.generation import load_extractor

            self._extractors[key] = load_extractor(key[0], key[1], key[2])
        return self._extractors[key]

    def validation_step(self, model, batch) -> tuple[torch.Tensor | None, torch.Tensor]:
        images, labels = batch
        real = to_uint8(images).cpu()
        if not self._draw:
            return None, real
        net = getattr(model, "module", model)
        g = torch.Generator().manual_seed(VAL_SEED + self._val_batch)
        self._val_batch += 1
        noise = torch.randn(net.noise_shape(len(images)), generator=g).to(images.device)
        fake = net.sample(len(images), labels if getattr(net, "num_classes", 0) else None, generator=None, noise=noise,
                          steps=self._steps, guidance=self._guidance)  # fmt: skip
        return to_uint8(fake).cpu(), real

    def on_epoch_end(self, model, epoch: int, run_dir: Path) -> None:
        """Write ``samples/epoch_XXX.png``: 8 samples per class row (conditional) or an 8x8 grid, fixed seed."""
        from pixelmind.tasks.generate.sampling import generate, image_grid

        classes = getattr(model, "num_classes", 0)
        labels = torch.arange(min(classes, 16)).repeat_interleave(8) if classes else None
        n = len(labels) if labels is not None else 64
        images = generate(model, n, labels, GRID_SEED, steps=self._steps, guidance=self._guidance)
        path = run_dir / "samples" / f"epoch_{epoch + 1:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image_grid(images, nrow=8).save(path)

    # -- inference ---------------------------------------------------------------------------
    def preprocess(self, meta: Meta) -> Callable[[Any], torch.Tensor]:
        """A PIL image as the model's training data sees it (``[C, S, S]`` in [-1, 1]); generation takes no input."""
        from pixelmind.tasks.generate.data import ImageTransform

        return ImageTransform(meta.imgsz, meta.extra.get("channels", 3))

    def predict(self, model, images: Sequence[Any], meta: Meta, n: int = 16, class_name: str | None = None,
                seed: int | None = None, steps: int | None = None, guidance: float | None = None,
                interpolate: int | None = None, rows: int = 1, batch: int = 64, **_: Any) -> list[GenerateResult]:  # fmt: skip
        """Generate ``n`` images (no input images: generation takes parameters in their place).

        Args:
            class_name: the class of every sample; None cycles through the classes (conditional models).
            seed: sample ``i`` uses seed ``seed + i``; None draws a seed (reported in each result).
            interpolate: instead, ``rows`` strips of ``interpolate`` frames along the great circle
                between the noise of seeds ``seed + 2r`` and ``seed + 2r + 1``.
        """
        from pixelmind.tasks.generate.sampling import generate, interpolation_noise, to_pil

        if images:
            raise PixelmindError("generate weights make images from noise and take no input images: "
                                 "use pixelmind generate --weights W --n 16 -o OUT")  # fmt: skip
        if seed is None:
            seed = random.SystemRandom().randrange(2**31 - 2**20)
        fixed = class_index(meta, class_name)
        classes = meta.class_names if getattr(model, "num_classes", 0) else []
        if interpolate is not None:
            if interpolate < 2:
                raise ConfigError(f"interpolate: at least 2 frames (got {interpolate})")
            noise = torch.cat([interpolation_noise(model, interpolate, seed + 2 * r, seed + 2 * r + 1) for r in range(rows)])
            row_class = [fixed if fixed is not None else r % len(classes) for r in range(rows)] if classes else None
            labels = torch.tensor(row_class).repeat_interleave(interpolate) if row_class else None
            seeds = [seed + 2 * (i // interpolate) for i in range(len(noise))]
        else:
            if n < 1:
                raise ConfigError(f"n: at least 1 image (got {n})")
            noise = None
            labels = torch.full((n,), fixed) if fixed is not None else (torch.arange(n) % len(classes) if classes else None)
            seeds = [seed + i for i in range(n)]
        out = generate(model, len(seeds), labels, seed, steps=steps, guidance=guidance, batch=batch, noise=noise)
        return [GenerateResult(to_pil(img), i, s, classes[int(labels[i])] if labels is not None else None)
                for i, (img, s) in enumerate(zip(out, seeds))]  # fmt: skip

    def export_parts(self, model, inputs) -> list[tuple[str, Any, Any]]:
        """The GAN generator as ``noise [n, latent (+ one-hot class)] -> images``; diffusion samplers are refused."""
        from pixelmind.tasks.generate.gan import GAN, GeneratorExport

        if not isinstance(model, GAN):
            raise PixelmindError(f"export: {type(model).__name__} is a diffusion model, whose sampler is a loop of "
                                 "many network calls; export supports GAN generators (use the .safetensors weights "
                                 "with pixelmind generate)")  # fmt: skip
        n = max(2, min(64, len(inputs) if torch.is_tensor(inputs) else 8))
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(model.noise_shape(n), generator=g)
        return [("", GeneratorExport(model).eval(), GeneratorExport.inputs(model, noise, None))]


def _eval_settings(cfg: Any) -> dict[str, Any]:
    if cfg.fid_weights and cfg.feature_weights:  # fail before training, not at the first validation
        raise ConfigError("feature_weights: give --feature-weights or --fid-weights, not both (their figures are not comparable)")
    return {"fid_weights": _abs(cfg.fid_weights), "feature_weights": _abs(cfg.feature_weights),
            "sample_steps": cfg.sample_steps, "guidance": cfg.guidance}  # fmt: skip


def _abs(path: str | None) -> str | None:
    if path is None or path == "hub":  # "hub": the FID Inception download, when online
        return path
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{path}: weights file not found")
    return str(p.resolve())


def _count_images(source: str) -> int | None:
    """Training images of a data source, from headers or a directory walk; None if unknown."""
    from pixelmind.data.decode import is_image_file
    from pixelmind.tasks.classify.data import idx_train_count
    from pixelmind.tasks.generate.data import is_idx_file

    if source == "digits":
        return 1797
    path = Path(source).expanduser()
    if path.is_dir():
        if (count := idx_train_count(source)) is not None:
            return count
        return sum(1 for p in path.rglob("*") if p.is_file() and is_image_file(p)) or None
    if path.is_file() and is_idx_file(path):
        from pixelmind.data.formats import read_idx_shape

        shape = read_idx_shape(path)
        return shape[0] if shape else None
    return None


TASK = GenerateTask()
