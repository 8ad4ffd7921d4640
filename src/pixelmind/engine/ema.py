"""Exponential moving average of model weights, with a warm-up of the decay (as in timm's ModelEmaV3).

Example:
    >>> import torch
    >>> net = torch.nn.Linear(1, 1)
    >>> ema = ModelEMA(net, decay=0.9)
    >>> ema.update(net)
    >>> ema.updates
    1
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """Keeps ``module``, a frozen copy whose weights follow the trained model's."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        # Early on, average over fewer steps so the EMA is not stuck near the random init.
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        for ema_v, v in zip(self.module.state_dict().values(), model.state_dict().values()):
            if ema_v.dtype.is_floating_point:
                ema_v.lerp_(v.detach(), 1.0 - d)
            else:
                ema_v.copy_(v)
