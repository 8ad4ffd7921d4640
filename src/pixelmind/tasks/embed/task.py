"""The embed task: image embeddings learned with a metric loss, for verification and similarity search.

The contract of :mod:`pixelmind.tasks.base` with identities as classes: batches are ``(images,
identity)``; the network maps images to unit-length vectors (:mod:`pixelmind.tasks.embed.models`);
validation embeds held-out identities and measures verification (ROC AUC, EER, TAR at FAR) and
retrieval (recall@k, mAP@R) (:mod:`pixelmind.metrics.embedding`). Preprocessing and batch
augmentation are classification's (this task extends :class:`ClassifyTask`).

Example:
    >>> from pixelmind.tasks import get_task
    >>> get_task("embed").primary_metric
    'map@r'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pixelmind.errors import ConfigError
from pixelmind.nn.device import model_device
from pixelmind.nn.memory_format import match_memory_format
from pixelmind.tasks.base import DataBundle, Meta, Task
from pixelmind.tasks.classify.task import ClassifyTask
from pixelmind.tasks.embed.models import LOSSES, MODELS, build_embedder

DEFAULT_DIM = 128
#: from this many training identities ArcFace is the default loss; below, SupCon (bench/RESULTS.md section 23)
ARCFACE_FROM = 100


def default_loss(identities: int) -> str:
    """SupCon for few identities (it generalised better to unseen ones on Fashion-MNIST); ArcFace for many.

    ArcFace learns one centre per identity: with a handful of identities it separates those few
    and transfers less; SupCon learns from pairs in the batch, which random batches of many
    identities rarely hold, so faces-scale data (thousands of identities) keeps ArcFace.

    Example:
        >>> default_loss(6), default_loss(5000)
        ('supcon', 'arcface')
    """
    return "arcface" if identities >= ARCFACE_FROM else "supcon"


@dataclass
class EmbeddingResult:
    """One image's unit-length embedding.

    Example:
        >>> EmbeddingResult([0.6, 0.8]).to_dict()
        {'dim': 2, 'embedding': [0.6, 0.8]}
    """

    vector: list[float]
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dim": len(self.vector), "embedding": [round(v, 6) for v in self.vector]}
        return {"source": self.source, **out} if self.source is not None else out

    def render(self, image):
        """The image with a banner naming the embedding's size (the vector itself is in the JSON)."""
        from pixelmind.viz.draw import draw_label_banner

        return draw_label_banner(image, [f"embedding: {len(self.vector)} values"])


class EmbedTask(ClassifyTask):
    name = "embed"
    models = MODELS
    primary_metric = "map@r"  # mAP@R: informative where recall@1 saturates (few held-out identities)
    metric_mode = "max"
    # held-out mAP@R often peaks early on few identities and then falls (bench/RESULTS.md section 23):
    # stop after 5 epochs without improvement; the best checkpoint is kept either way
    defaults = {**ClassifyTask.defaults, "epochs": 20, "patience": 5}
    explain_methods = ()
    robust_unsupported = "adversarial attacks on embeddings are not built yet"
    optimize_unsupported = "optimizing embedding models is not built yet"
    # no distillation loss for embeddings yet: the base class's refusal, not classification's KL
    distillation_step = Task.distillation_step
    check_teacher = Task.check_teacher

    def recipe(self, cfg: Any) -> dict[str, Any]:
        out = super().recipe(cfg)
        out.pop("label_smoothing", None)
        if out["epochs"] == ClassifyTask.defaults["epochs"]:  # small data: more epochs (large sets keep classify's)
            out["epochs"] = self.defaults["epochs"]
        return out

    def load_data(self, cfg: Any, meta: Meta | None = None) -> DataBundle:
        """Identities split for open-set evaluation; ``meta`` (existing weights) does not fix them:
        an embedding is evaluated on identities it has never seen, of any data set."""
        from pixelmind.tasks.embed.data import load_embedding_data

        bundle = load_embedding_data(cfg) if meta is None else load_embedding_data(cfg, meta.mean, meta.std)
        self._pairs = bundle.pairs
        if meta is None:
            bundle.meta_extra["loss"] = cfg.loss or default_loss(bundle.meta_extra["train_identities"])
            if bundle.meta_extra["loss"] not in LOSSES:
                raise ConfigError(f"loss: embed takes {', '.join(LOSSES)} (got {cfg.loss!r})")
        return bundle

    def build_model(self, cfg: Any, meta: Meta) -> torch.nn.Module:
        dim = int((meta.model_kwargs or {}).get("dim", DEFAULT_DIM))
        identities = meta.extra.get("train_identities", meta.num_classes)
        return build_embedder(meta.model, dim, meta.imgsz, meta.extra.get("loss", LOSSES[0]), identities,
                              pretrained=getattr(cfg, "pretrained", False))  # fmt: skip

    def setup_training(self, cfg: Any, meta: Meta) -> None:
        if cfg.mixup or cfg.cutmix:
            raise ConfigError("mixup/cutmix: mixed images have no single identity; metric learning cannot use them")
        super().setup_training(cfg, meta)

    def _embed_loss(self, model, batch) -> torch.Tensor:
        images, labels = batch
        if images.dtype == torch.uint8:
            images = self._batch_augment(images)
        return model(match_memory_format(model, images), labels)

    def training_step(self, model, batch, step: int, optimizer_idx: int = 0) -> dict[str, torch.Tensor]:
        return {"loss": self._embed_loss(model, batch)}

    def evaluator(self, meta: Meta):
        from pixelmind.metrics.embedding import EmbeddingEvaluator

        return EmbeddingEvaluator(meta.class_names, seed=meta.extra.get("seed", 0), pairs=getattr(self, "_pairs", None))

    def postprocess(self, embeddings: torch.Tensor, meta: Meta, sources: Sequence[str] | None = None, **_: Any):
        """Network outputs -> results; shared by the PyTorch and the ONNX runtime paths."""
        vectors = torch.nn.functional.normalize(embeddings.float(), dim=1)
        return [EmbeddingResult(v.tolist(), sources[i] if sources else None) for i, v in enumerate(vectors)]

    @torch.inference_mode()
    def predict(self, model, images, meta: Meta, **_: Any) -> list[EmbeddingResult]:
        tf = self.preprocess(meta)
        x = torch.stack([tf(im) for im in images]).to(model_device(model))
        return self.postprocess(model(x), meta)

    def labelling(self):
        return Task.labelling(self)  # identities are not labels to pre-label or fix: the base refusal, not classify's

    def feature_network(self, model, meta: Meta) -> torch.nn.Module:
        return model

    def attack_loss(self, model, batch) -> torch.Tensor:
        images, labels = batch
        return model(match_memory_format(model, images), labels)

    def finalize(self, model, val_loader, meta: Meta, cfg: Any) -> dict[str, Any]:
        """Store the validation pairs' accuracy-maximising threshold: ``pixelmind verify``'s default."""
        from pixelmind.engine.evaluate import run_validation

        ev = run_validation(self, model, self.evaluator(meta), val_loader, model_device(model))
        threshold = ev.compute().get("threshold")
        return {"threshold": threshold} if threshold is not None else {}


TASK = EmbedTask()
