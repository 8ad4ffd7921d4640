"""Embedding networks: any classification backbone (built-in CNNs or timm CNNs and ViTs) with a
``dim``-wide head, a BatchNorm neck and L2-normalised output, plus the metric-learning loss.

The loss comes from pytorch-metric-learning (a well-kept implementation of ArcFace, CosFace,
SupCon and triplet with miners). ArcFace and CosFace hold one learned centre per training
identity: they live in the network's ``criterion`` so that they are saved, optimised and resumed
with it, but are never part of inference or export.

Example:
    >>> import torch
    >>> net = build_embedder("pm_cnn_t", dim=16, imgsz=32, loss="arcface", identities=5)
    >>> emb = net.eval()(torch.rand(2, 3, 32, 32))
    >>> tuple(emb.shape), round(float(emb.norm(dim=1)[0]), 4)
    ((2, 16), 1.0)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelmind.errors import ConfigError
from pixelmind.tasks.classify.models import MODELS, build_classifier

#: the metric-learning losses (``--loss``); the default depends on the data (:func:`pixelmind.tasks.embed.task.default_loss`)
LOSSES = ("arcface", "cosface", "supcon", "triplet")


class MetricLoss(nn.Module):
    """``loss(embeddings, labels)`` of one pytorch-metric-learning loss, with a miner for triplet.

    ArcFace and CosFace's class centres are this module's ``centres`` parameter; the library's
    loss object is made on first use, so loading weights for inference does not import it.
    """

    def __init__(self, name: str, dim: int, identities: int) -> None:
        super().__init__()
        if name not in LOSSES:
            raise ConfigError(f"loss: {name!r} is not an embedding loss; choose from: {', '.join(LOSSES)}")
        self.name = name
        self.centres = nn.Parameter(torch.randn(dim, identities)) if name in ("arcface", "cosface") else None
        self.__dict__["_loss"] = None  # not a submodule: the centres are saved once, under this module

    def _make(self):
        from pytorch_metric_learning import losses, miners

        identities = self.centres.shape[1] if self.centres is not None else 0
        dim = self.centres.shape[0] if self.centres is not None else 0
        miner = None
        if self.name == "arcface":  # margin 28.6 degrees (0.5 rad) as in the paper; scale 30 trains small sets stably
            loss = losses.ArcFaceLoss(identities, dim, margin=28.6, scale=30)
        elif self.name == "cosface":
            loss = losses.CosFaceLoss(identities, dim, margin=0.35, scale=30)
        elif self.name == "supcon":
            loss = losses.SupConLoss(temperature=0.1)
        else:  # triplet with semi-hard mining (FaceNet): negatives farther than the positive, inside the margin
            loss = losses.TripletMarginLoss(margin=0.2)
            miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
        if self.centres is not None:
            loss.W = self.centres
        self.__dict__["_loss"] = (loss, miner)
        return loss, miner

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss, miner = self._loss or self._make()
        embeddings = embeddings.float()  # the angular margins need float32 under AMP
        return loss(embeddings, labels, miner(embeddings, labels) if miner is not None else None)


class EmbeddingNet(nn.Module):
    """``body`` (a classifier whose head outputs ``dim`` values) -> BatchNorm -> L2 normalisation."""


    def __init__(self, body: nn.Module, dim: int, criterion: MetricLoss) -> None:
        super().__init__()
        self.body = body
        self.neck = nn.BatchNorm1d(dim)
        self.criterion = criterion

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Unit-length embeddings; with ``labels``, the training loss instead (inside forward, for DDP)."""
        emb = F.normalize(self.neck(self.body(x)), dim=1)
        return emb if labels is None else self.criterion(emb, labels)


def build_embedder(name: str, dim: int, imgsz: int, loss: str, identities: int, pretrained: bool = False) -> EmbeddingNet:
    """An :class:`EmbeddingNet` on the classification backbone ``name`` (registered or timm)."""
    if dim < 2:
        raise ConfigError(f"model_kwargs: dim must be at least 2 (got {dim})")
    return EmbeddingNet(build_classifier(name, dim, imgsz, pretrained), dim, MetricLoss(loss, dim, max(identities, 2)))


__all__ = ["LOSSES", "MODELS", "EmbeddingNet", "MetricLoss", "build_embedder"]
