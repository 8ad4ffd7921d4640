"""Task-free knowledge-distillation losses, used by the tasks' ``distillation_step`` hooks.

A student learns from a frozen teacher's outputs on the same inputs (Hinton et al. 2015,
"Distilling the Knowledge in a Neural Network"): the training loss becomes
``(1 - alpha) * task loss + alpha * distillation loss`` (:func:`blend`). Each function is zero
when the student's outputs equal the teacher's and positive otherwise.

Example:
    >>> import torch
    >>> t = torch.tensor([[2.0, 0.0, -1.0]])
    >>> softmax_kl(t, t).item(), softmax_kl(torch.zeros(1, 3), t).item() > 0
    (0.0, True)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["blend", "sigmoid_kl", "softmax_kl"]


def softmax_kl(
    student: Tensor, teacher: Tensor, temperature: float = 4.0, dim: int = 1, mask: Tensor | None = None
) -> Tensor:
    """``KL(softmax(teacher / T) || softmax(student / T)) * T^2``, summed over ``dim`` and averaged over the rest.

    The ``T^2`` keeps the gradient's scale independent of ``T`` (Hinton et al.), so ``alpha`` means
    the same at any temperature.

    Args:
        student, teacher: logits of the same shape (classify ``[B, C]``; segment ``[B, C, H, W]``).
        temperature: softens both distributions; above 1 the teacher's ranking of the wrong
            classes carries more of the signal.
        dim: the class dimension.
        mask: optional boolean mask of the positions to average over (the shape without ``dim``),
            e.g. the labelled pixels; no position left gives 0 (still part of the graph).

    Example:
        >>> import torch
        >>> s, t = torch.zeros(2, 4), torch.tensor([[3.0, 0, 0, 0], [0, 0, 0, 3.0]])
        >>> round(softmax_kl(s, t, temperature=1.0).item(), 4)
        0.8572
    """
    s = F.log_softmax(student.float() / temperature, dim)
    t = F.log_softmax(teacher.float() / temperature, dim)
    per_position = (t.exp() * (t - s)).sum(dim) * temperature**2
    if mask is None:
        return per_position.mean()
    if not mask.any():
        return student.sum() * 0.0
    return per_position[mask].mean()


def sigmoid_kl(student: Tensor, teacher: Tensor) -> Tensor:
    """Elementwise binary KL ``KL(sigmoid(teacher) || sigmoid(student))`` of independent (per-class) logits.

    Computed as ``BCE(student, p_t) - BCE(teacher, p_t)``: the cross-entropy against the teacher's
    scores minus their own entropy, so the value is 0 where the logits agree; the gradient is the
    cross-entropy's. Unreduced, so a caller can weight and normalise it (detection anchors).

    Example:
        >>> import torch
        >>> [round(v, 4) for v in sigmoid_kl(torch.tensor([0.0, 2.0]), torch.tensor([0.0, -2.0])).tolist()]
        [0.0, 1.5232]
    """
    s, t = student.float(), teacher.float()
    p = t.sigmoid()
    cross = F.binary_cross_entropy_with_logits(s, p, reduction="none")
    kl = cross - F.binary_cross_entropy_with_logits(t, p, reduction="none")
    return kl.clamp(min=0)  # float rounding may leave -1e-8 where the logits agree


def blend(task_loss: Tensor, distill_loss: Tensor, alpha: float, **parts: Tensor) -> dict[str, Tensor]:
    """The training step's output: ``loss = (1 - alpha) * task + alpha * distill``, both parts logged.

    Args:
        parts: further detached figures to log (e.g. a detector's class and box distillation terms).

    Example:
        >>> import torch
        >>> out = blend(torch.tensor(2.0), torch.tensor(1.0), 0.25)
        >>> {k: v.item() for k, v in out.items()}
        {'loss': 1.75, 'loss_task': 2.0, 'loss_distill': 1.0}
    """
    loss = (1.0 - alpha) * task_loss + alpha * distill_loss
    return {"loss": loss, "loss_task": task_loss.detach(), "loss_distill": distill_loss.detach(),
            **{k: v.detach() for k, v in parts.items()}}  # fmt: skip
