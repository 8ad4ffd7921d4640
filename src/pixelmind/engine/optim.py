"""Optimizers and learning-rate schedules with warm-up, stepped once per optimizer update.

Example:
    >>> import torch
    >>> from pixelmind.config import TrainConfig
    >>> cfg = TrainConfig(data="digits", epochs=2, lr=0.1, warmup_epochs=0)
    >>> opt = build_optimizer(torch.nn.Linear(2, 2), cfg)
    >>> sched = build_scheduler(opt, cfg, steps_per_epoch=10)
    >>> opt.param_groups[0]["lr"]
    0.1
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norms and embeddings (1-D parameters), as timm and nanoGPT do."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: Any, lr: float | None = None) -> torch.optim.Optimizer:
    lr = lr if lr is not None else cfg.lr
    groups = param_groups(model, cfg.weight_decay if cfg.weight_decay is not None else 0.05)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=lr)


def lr_factor(step: int, total: int, warmup: int, kind: str, step_every: int, gamma: float = 0.1) -> float:
    """Multiplier of the base lr at optimizer step ``step``: linear warm-up then the schedule."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    if kind == "step":
        return gamma ** ((step - warmup) // max(step_every, 1))
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine to 1 % of the base lr


class _Schedule:
    """Picklable lr-lambda so that scheduler state dicts stay plain data."""

    def __init__(self, total: int, warmup: int, kind: str, step_every: int) -> None:
        self.total, self.warmup, self.kind, self.step_every = total, warmup, kind, step_every

    def __call__(self, step: int) -> float:
        return lr_factor(step, self.total, self.warmup, self.kind, self.step_every)


def build_scheduler(opt: torch.optim.Optimizer, cfg: Any, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-update LambdaLR: ``cfg.scheduler`` over ``cfg.epochs`` after ``cfg.warmup_epochs`` of warm-up."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total // 2)
    return torch.optim.lr_scheduler.LambdaLR(opt, _Schedule(total, warmup, cfg.scheduler, cfg.step_size * steps_per_epoch))
