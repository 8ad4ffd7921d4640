"""FGSM and PGD in pixel space: ``eps`` is a change of pixel values in [0, 1] (``8/255`` is eight grey levels).

Networks see normalised inputs ``(pixel - mean) / std``; the attack de-normalises, steps and clips in
[0, 1] pixel space, then normalises again, so one ``eps`` means the same on every model.

Example:
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    >>> x, y = torch.rand(4, 3, 2, 2), torch.tensor([0, 1, 0, 1])
    >>> loss = lambda inp: torch.nn.functional.cross_entropy(net(inp), y)
    >>> adv = pgd(loss, x, PixelSpace((0.0,) * 3, (1.0,) * 3), eps=4 / 255, steps=3)
    >>> bool((adv - x).abs().max() <= 4 / 255 + 1e-6), bool(loss(adv) > loss(x))
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

ATTACKS = ("fgsm", "pgd")


@dataclass(frozen=True)
class PixelSpace:
    """The normalisation between pixels in [0, 1] and what the network sees."""

    mean: Sequence[float]
    std: Sequence[float]

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1) if x.ndim == 4 else (-1, 1, 1)
        channels = x.shape[-3]
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device)[:channels].view(shape)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device)[:channels].view(shape)
        return mean, std

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x * std + mean

    def from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(pixels)
        return (pixels - mean) / std


def _grad(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(x), x)
    return grad


def fgsm(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, space: PixelSpace, eps: float) -> torch.Tensor:
    """One signed-gradient step of size ``eps`` (Goodfellow et al., 2015) on normalised inputs ``x``."""
    pixels = space.to_pixels(x)
    step = _grad(lambda p: loss_fn(space.from_pixels(p)), pixels).sign()
    return space.from_pixels((pixels + eps * step).clamp(0, 1)).detach()


def pgd(loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, space: PixelSpace, eps: float, steps: int = 10,
        alpha: float | None = None, seed: int = 0) -> torch.Tensor:  # fmt: skip
    """Projected gradient descent in the L-inf ``eps`` ball (Madry et al., 2018): a seeded random start,
    ``steps`` signed steps of ``alpha`` (default ``2.5 * eps / steps``), projected after each."""
    pixels = space.to_pixels(x).detach()
    alpha = 2.5 * eps / steps if alpha is None else alpha
    g = torch.Generator(device="cpu").manual_seed(seed)
    start = (torch.rand(pixels.shape, generator=g, dtype=pixels.dtype) * 2 - 1).to(pixels.device) * eps
    adv = (pixels + start).clamp(0, 1)
    for _ in range(steps):
        step = _grad(lambda p: loss_fn(space.from_pixels(p)), adv).sign()
        adv = torch.min(torch.max(adv + alpha * step, pixels - eps), pixels + eps).clamp(0, 1)
    return space.from_pixels(adv).detach()


def attack(name: str, loss_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, space: PixelSpace, eps: float,
           steps: int = 10, seed: int = 0) -> torch.Tensor:  # fmt: skip
    """``fgsm`` or ``pgd`` by name."""
    if name == "fgsm":
        return fgsm(loss_fn, x, space, eps)
    if name == "pgd":
        return pgd(loss_fn, x, space, eps, steps, seed=seed)
    from pixelmind.errors import ConfigError

    raise ConfigError(f"attack: unknown attack {name!r} (choose from: {', '.join(ATTACKS)})")


def adversarial_batch(task: Any, model: torch.nn.Module, batch: Any, meta: Any, cfg: Any, step: int = 0) -> Any:
    """``batch`` with its images replaced by adversarial ones (``train --set adv_train=pgd``, Madry et al.).

    The images first go through the task's training-time preparation (uint8 augmentation), the attack
    runs with the model in eval mode (batch-norm statistics untouched), and training resumes.
    """
    batch = task.attack_batch(batch, meta, train=True)
    space = task.pixel_space(meta)
    was_training = model.training
    model.eval()
    try:
        adv = attack(cfg.adv_train, lambda x: task.attack_loss(model, (x, *batch[1:])), batch[0], space, cfg.adv_eps,
                     cfg.adv_steps, seed=step)  # fmt: skip
    finally:
        model.train(was_training)
    return (adv, *batch[1:])
