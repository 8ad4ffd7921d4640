"""Semantic segmentation losses: cross-entropy, focal, soft Dice and their sums.

Every loss takes logits ``[B, C, H, W]`` and an int64 target ``[B, H, W]`` holding class indices, where
``ignore_index`` marks pixels (unlabelled, borders, padding) that count nowhere: they add nothing to a
loss and get a zero gradient. Half-precision logits are upcast to float32, so that mixed precision does
not round the small per-pixel terms away.

Example:
    >>> import torch
    >>> loss = segmentation_loss("ce+dice", num_classes=3)
    >>> target = torch.tensor([[[0, 1], [2, 255]]])
    >>> logits = 20.0 * torch.nn.functional.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2).float()
    >>> round(loss(logits, target).item(), 4)
    0.0
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelmind.errors import ConfigError

LOSSES = ("ce", "dice", "focal", "ce+dice", "focal+dice")

__all__ = ["LOSSES", "SegmentationLoss", "cross_entropy", "dice_loss", "focal_loss", "pixel_distillation_loss", "segmentation_loss"]


def _f32(logits: Tensor) -> Tensor:
    """float16/bfloat16 logits as float32; float32 and float64 (gradcheck) unchanged."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def cross_entropy(
    logits: Tensor, target: Tensor, ignore_index: int = 255, weight: Tensor | None = None
) -> Tensor:
    """Pixel-wise cross-entropy averaged over labelled pixels; torch's weighted mean when ``weight`` is set.

    With class weights the mean is ``sum(w[t] * ce) / sum(w[t])`` (torch's definition), so the loss stays
    on the same scale whatever the weights' magnitude. A batch with no labelled pixel gives 0, not NaN.

    Example:
        >>> logits = torch.zeros(1, 2, 1, 2)
        >>> round(cross_entropy(logits, torch.tensor([[[0, 255]]])).item(), 4)  # log(2)
        0.6931
    """
    logits = _f32(logits)
    if not (target != ignore_index).any():
        return logits.sum() * 0.0  # keeps the graph, so backward() still works on an all-ignored batch
    w = None if weight is None else weight.to(logits.device, logits.dtype)
    return F.cross_entropy(logits, target, weight=w, ignore_index=ignore_index)


def focal_loss(
    logits: Tensor, target: Tensor, gamma: float = 2.0, ignore_index: int = 255, alpha: Tensor | None = None
) -> Tensor:
    """Focal loss (Lin et al. 2017): per-pixel CE scaled by ``(1 - p_t) ** gamma``, class weights as alpha.

    The sum is divided by the sum of the alphas over labelled pixels (their count without alpha), the
    normalisation torch uses for weighted CE: at ``gamma=0`` this is exactly :func:`cross_entropy` with
    ``weight=alpha``, and confident pixels fade out as gamma grows.

    Example:
        >>> logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        >>> bool(torch.isclose(focal_loss(logits, target, gamma=0.0), cross_entropy(logits, target)))
        True
    """
    logits = _f32(logits)
    valid = target != ignore_index
    if not valid.any():
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")  # 0 where ignored
    pt = torch.exp(-ce)  # the probability of the true class, without a second softmax
    loss = (1.0 - pt).pow(gamma) * ce
    if alpha is None:
        return loss.sum() / valid.sum()
    # ignored pixels hold ignore_index, not a class: index alpha with a safe class and zero them out
    a = alpha.to(logits.device, logits.dtype)[torch.where(valid, target, 0)] * valid
    return (a * loss).sum() / a.sum().clamp_min(torch.finfo(a.dtype).tiny)


def dice_loss(logits: Tensor, target: Tensor, ignore_index: int = 255, eps: float = 1e-6) -> Tensor:
    """Soft multiclass Dice loss, ``1 - mean_c 2|P_c T_c| / (|P_c| + |T_c|)``, over the classes in the target.

    ``P_c`` is the softmax probability of class c, ``T_c`` its one-hot target, both summed over every
    labelled pixel of the batch (not per image: a small object in one image still counts). Only classes
    with at least one labelled pixel in the batch are averaged: for an absent class the ratio is 0 whatever
    the prediction, so it would add a constant, not a signal; cross-entropy or focal, which this loss is
    meant to be paired with, is what pushes absent classes down. No smoothing term, so a perfect prediction
    gives exactly 0. Ignored pixels are left out of the intersection and of both sums.

    Example:
        >>> target = torch.tensor([[[0, 1], [1, 1]]])
        >>> perfect = 30.0 * F.one_hot(target, 2).permute(0, 3, 1, 2).float()
        >>> round(dice_loss(perfect, target).item(), 6)
        0.0
        >>> round(dice_loss(torch.zeros(1, 2, 2, 2), target).item(), 4)  # p = 0.5: class Dice 1/3 and 3/5
        0.5333
    """
    logits = _f32(logits)
    num_classes = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)  # [B, 1, H, W]
    probs = logits.softmax(dim=1) * valid  # zero at ignored pixels: no term, no gradient
    onehot = F.one_hot(torch.where(valid[:, 0], target, 0), num_classes).permute(0, 3, 1, 2) * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    cardinality = probs.sum(dims) + onehot.sum(dims)
    present = onehot.sum(dims) > 0
    if not present.any():
        return logits.sum() * 0.0
    dice = 2.0 * inter / cardinality.clamp_min(eps)
    return 1.0 - dice[present].mean()


class SegmentationLoss(nn.Module):
    """A sum of named losses over ``(logits [B, C, H, W], target [B, H, W] int64)``; see :func:`segmentation_loss`.

    Class weights are a buffer, so ``.to(device)`` moves them; they are also moved to the logits' device
    on the fly, so a loss that was never moved still works.
    """

    def __init__(
        self,
        terms: tuple[str, ...],
        ignore_index: int = 255,
        class_weights: Tensor | None = None,
        gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.terms = terms
        self.ignore_index = ignore_index
        self.gamma = gamma
        self.register_buffer("class_weights", class_weights)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        total = _f32(logits).new_zeros(())
        for term in self.terms:
            if term == "ce":
                total = total + cross_entropy(logits, target, self.ignore_index, self.class_weights)
            elif term == "focal":
                total = total + focal_loss(logits, target, self.gamma, self.ignore_index, self.class_weights)
            else:
                total = total + dice_loss(logits, target, self.ignore_index)
        return total

    def extra_repr(self) -> str:
        return f"terms={'+'.join(self.terms)}, ignore_index={self.ignore_index}"


def segmentation_loss(
    name: str, num_classes: int, ignore_index: int = 255, class_weights: Tensor | None = None
) -> Callable[[Tensor, Tensor], Tensor]:
    """The semantic segmentation loss called ``name``: ``ce``, ``dice``, ``focal``, ``ce+dice`` or ``focal+dice``.

    Args:
        name: the loss; ``a+b`` is the plain sum of the two terms.
        num_classes: number of classes C (background included), the logits' channel count.
        ignore_index: target value of pixels that count nowhere (255: the usual "void" label).
        class_weights: optional ``[C]`` weights for CE (torch's ``weight``) and focal (its alpha);
            Dice is not weighted, it already balances classes.

    Returns:
        A module called as ``loss(logits [B, C, H, W], target [B, H, W] int64) -> scalar tensor``
        (float32 for half-precision logits).

    Raises:
        ConfigError: unknown name (the message lists the choices), or weights of the wrong size or sign.

    Example:
        >>> loss = segmentation_loss("focal+dice", num_classes=2, class_weights=torch.tensor([0.2, 0.8]))
        >>> loss(torch.randn(2, 2, 8, 8), torch.randint(0, 2, (2, 8, 8))).shape
        torch.Size([])
    """
    if name not in LOSSES:
        raise ConfigError(f"loss: unknown loss {name!r}; choose from: {', '.join(LOSSES)}")
    if num_classes < 1:
        raise ConfigError(f"num_classes: must be at least 1, got {num_classes!r}")
    if class_weights is not None:
        class_weights = torch.as_tensor(class_weights, dtype=torch.float32).flatten()
        if class_weights.numel() != num_classes:
            raise ConfigError(
                f"class_weights: expected {num_classes} weights (one per class), got {class_weights.numel()}"
            )
        if (class_weights < 0).any() or not torch.isfinite(class_weights).all() or class_weights.sum() <= 0:
            raise ConfigError(
                f"class_weights: must be finite, non-negative and not all 0, got {class_weights.tolist()}"
            )
    return SegmentationLoss(tuple(name.split("+")), ignore_index, class_weights)


def pixel_distillation_loss(
    logits: Tensor, teacher_logits: Tensor, target: Tensor, temperature: float = 4.0, ignore_index: int = 255
) -> Tensor:
    """Pixel-wise ``KL(softmax(teacher / T) || softmax(student / T)) * T^2`` over the labelled pixels.

    Teacher logits of another resolution (a model with a coarser output stride) are resized
    bilinearly to the student's first; pixels marked ``ignore_index`` in ``target`` count nowhere,
    as in the task loss (padding and void borders carry no knowledge worth matching).

    Example:
        >>> s, t = torch.zeros(1, 3, 4, 4), torch.randn(1, 3, 2, 2)
        >>> target = torch.zeros(1, 4, 4, dtype=torch.long)
        >>> pixel_distillation_loss(t, t, target[:, :2, :2]).item(), pixel_distillation_loss(s, t, target).item() > 0
        (0.0, True)
    """
    from pixelmind.nn.distill import softmax_kl

    if teacher_logits.shape[-2:] != logits.shape[-2:]:
        teacher_logits = F.interpolate(teacher_logits.float(), size=logits.shape[-2:], mode="bilinear", align_corners=False)
    return softmax_kl(logits, teacher_logits, temperature, dim=1, mask=target != ignore_index)
