"""The classification task: the contract of :mod:`pixelmind.tasks.base` for labels and probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from pixelmind.errors import ConfigError
from pixelmind.nn.device import model_device
from pixelmind.nn.memory_format import match_memory_format
from pixelmind.tasks.base import DataBundle, Meta, Task
from pixelmind.tasks.classify.data import load_classification_data
from pixelmind.tasks.classify.models import MODELS, build_classifier


@dataclass
class ClassificationResult:
    """Top-k labels and probabilities for one image.

    Example:
        >>> r = ClassificationResult(["cat", "dog"], [0.9, 0.1], [0, 1])
        >>> r.to_dict()["label"]
        'cat'
    """

    labels: list[str]
    probs: list[float]
    indices: list[int]
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.labels[0], "prob": round(self.probs[0], 6)}
        out["topk"] = [{"label": n, "index": i, "prob": round(p, 6)} for n, i, p in zip(self.labels, self.indices, self.probs)]
        if self.source is not None:
            out = {"source": self.source, **out}
        return out

    def render(self, image):
        """The image with its top-k labels written on a banner."""
        from pixelmind.viz.draw import draw_label_banner

        lines = [f"{n} {p:.1%}" for n, p in zip(self.labels, self.probs)]
        return draw_label_banner(image, lines)


class ClassifyTask(Task):
    name = "classify"
    models = MODELS
    primary_metric = "top1"
    test_split = True
    metric_mode = "max"
    defaults = {
        "model": "pm_cnn_s",
        "epochs": 12,
        "imgsz": 32,
        "batch": 128,
        "lr": 3e-3,
        "weight_decay": 0.05,
        "augment": "light",
        "channels_last": True,
    }
    explain_methods = ("gradcam", "gradcam++", "eigencam", "scorecam", "rollout", "ig", "gradient")

    def recipe(self, cfg: Any) -> dict[str, Any]:
        """Small images (digits, MNIST-like) train a small CNN near their native size; photos a ResNet-18."""
        from pixelmind.tasks.classify.data import idx_train_count, native_image_size

        out = dict(self.defaults)
        native = native_image_size(cfg.data)
        if native is not None and native <= 64:
            out["imgsz"] = max(16, 4 * round(max(native, 8) * (2 if native < 16 else 1) / 4))
            if (idx_train_count(cfg.data) or 0) >= 20_000:  # MNIST-sized: fewer, larger steps (bench/RESULTS.md)
                out.update(epochs=8, batch=256, label_smoothing=0.1)
        elif native is not None:
            out.update(model="resnet18", imgsz=128, batch=32, lr=1e-3, augment="trivial")
        return out

    def load_data(self, cfg: Any, meta: Meta | None = None) -> DataBundle:
        if meta is None:
            return load_classification_data(cfg)
        return load_classification_data(cfg, meta.class_names, meta.mean, meta.std)

    def build_model(self, cfg: Any, meta: Meta) -> torch.nn.Module:
        return build_classifier(meta.model, meta.num_classes, meta.imgsz, pretrained=getattr(cfg, "pretrained", False))

    def prune_ignored_layers(self, model) -> list[torch.nn.Module]:
        """The classifier (one output per class) and, in Vision Transformers, the qkv projections.

        timm's attention splits qkv outputs into heads of a fixed width, which channel groups do not
        follow; with qkv kept, a ViT loses embedding and MLP channels only.
        """
        heads = model.get_classifier() if hasattr(model, "get_classifier") else [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1:]
        heads = list(heads) if isinstance(heads, (tuple, list)) else [heads]
        attention = [m for name, m in model.named_modules()
                     if name.rsplit(".", 1)[-1] in ("qkv", "q", "k", "v", "kv") or isinstance(m, torch.nn.MultiheadAttention)]  # fmt: skip
        return heads + attention

    def setup_training(self, cfg: Any, meta: Meta) -> None:
        from pixelmind.data.batch_transforms import BatchAugment
        from pixelmind.data.transforms import batch_mix

        self._mix = batch_mix(meta.num_classes, cfg.mixup, cfg.cutmix)
        self._smoothing = cfg.label_smoothing or 0.0
        # in-memory data sets hand over uint8 batches (augment light or none): augment them here, on the device
        light = (cfg.augment or "light") == "light"
        self._batch_augment = BatchAugment(
            meta.mean, meta.std, hflip=light and meta.extra.get("hflip", True),
            scale=(0.75, 1.0) if light else (1.0, 1.0), ratio=(0.85, 1.18) if light else (1.0, 1.0),
        )  # fmt: skip

    def _task_loss(self, model, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(cross-entropy, logits, the images the model saw)``: augmented, mixed when mixup/cutmix are on."""
        images, labels = batch
        if images.dtype == torch.uint8:
            images = self._batch_augment(images)
        images = match_memory_format(model, images)
        mix = getattr(self, "_mix", None)
        if mix is not None:
            images, labels = mix(images, labels)
        logits = model(images)
        return F.cross_entropy(logits, labels, label_smoothing=getattr(self, "_smoothing", 0.0)), logits, images

    def training_step(self, model, batch, step: int, optimizer_idx: int = 0) -> dict[str, torch.Tensor]:
        return {"loss": self._task_loss(model, batch)[0]}

    def distillation_step(self, model, teacher, batch, step: int, cfg: Any) -> dict[str, torch.Tensor]:
        """Cross-entropy plus the softened-logits KL to the teacher, which sees the same (mixed) images."""
        from pixelmind.nn.distill import blend, softmax_kl

        loss, logits, images = self._task_loss(model, batch)
        with torch.no_grad():
            teacher_logits = teacher(images)
        return blend(loss, softmax_kl(logits, teacher_logits, cfg.distill_temperature), cfg.distill_alpha)

    def validation_step(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch
        return model(match_memory_format(model, images)), labels

    def evaluator(self, meta: Meta):
        from pixelmind.metrics.classification import ClassificationEvaluator

        return ClassificationEvaluator(meta.class_names, meta.extra.get("temperature", 1.0))

    def preprocess(self, meta: Meta):
        from pixelmind.data.transforms import eval_transform

        return eval_transform(meta.imgsz, meta.mean, meta.std)

    def postprocess(self, logits: torch.Tensor, meta: Meta, topk: int = 5, sources: Sequence[str] | None = None):
        """Logits -> results; shared by the PyTorch and the ONNX runtime paths."""
        probs = (logits.float() / meta.extra.get("temperature", 1.0)).softmax(1)
        k = min(topk, probs.shape[1])
        values, indices = probs.topk(k, dim=1)
        return [
            ClassificationResult(
                [meta.class_names[j] for j in idx.tolist()], val.tolist(), idx.tolist(), sources[i] if sources else None
            )
            for i, (val, idx) in enumerate(zip(values, indices))
        ]

    @torch.inference_mode()
    def predict(self, model, images, meta: Meta, topk: int = 5, **_: Any) -> list[ClassificationResult]:
        tf = self.preprocess(meta)
        x = torch.stack([tf(im) for im in images]).to(model_device(model))
        return self.postprocess(model(x), meta, topk)

    def explain_targets(self, model, x, meta: Meta, classes=None, **_: Any):
        from pixelmind.tasks.classify.explain import class_targets

        return model, class_targets(model, x, meta.class_names, classes, meta.extra.get("temperature", 1.0))

    def labelling(self):
        from pixelmind.tasks.classify.labelling import ClassifyLabelling

        return ClassifyLabelling()

    def feature_network(self, model, meta: Meta) -> torch.nn.Module:
        """A copy of the classifier without its last linear layer: the penultimate features."""
        import copy

        if not isinstance(model, torch.nn.Module) or not any(isinstance(m, torch.nn.Linear) for m in model.modules()):
            raise ConfigError(f"{self.name}: features need the .safetensors weights (an export keeps only the class scores)")
        net = copy.deepcopy(model).eval()
        if hasattr(net, "reset_classifier"):  # timm models
            net.reset_classifier(0)
            return net
        name = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Linear)][-1]
        parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
        setattr(parent, name.rpartition(".")[2], torch.nn.Identity())
        return net

    def attack_batch(self, batch, meta: Meta, train: bool = False):
        """uint8 batches (in-memory data): augmented as in training, else normalised."""
        from pixelmind.data.batch_transforms import normalize_uint8

        images, labels = batch
        if images.dtype == torch.uint8:
            images = self._batch_augment(images) if train else normalize_uint8(images, meta.mean, meta.std)
        return images, labels

    def attack_loss(self, model, batch) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(model(match_memory_format(model, images)), labels)

    def calibration_inputs(self, dataset, meta: Meta, n: int, seed: int = 0) -> list[torch.Tensor]:
        """In-memory training images come as uint8 (normalized on the device in training): normalize them here."""
        from pixelmind.data.batch_transforms import normalize_uint8

        images = super().calibration_inputs(dataset, meta, n, seed)
        return [normalize_uint8(x[None], meta.mean, meta.std)[0] if x.dtype == torch.uint8 else x for x in images]

    def finalize(self, model, val_loader, meta: Meta, cfg: Any) -> dict[str, Any]:
        """With ``calibrate``: fit a temperature on the validation logits and store it in the weights."""
        if not cfg.calibrate:
            return {}
        from pixelmind.engine.evaluate import run_validation
        from pixelmind.metrics.classification import ClassificationEvaluator, fit_temperature

        ev = run_validation(self, model, ClassificationEvaluator(meta.class_names), val_loader, model_device(model))
        return {"temperature": fit_temperature(ev.logits, ev.targets)}

TASK = ClassifyTask()
