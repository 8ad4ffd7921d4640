"""The detector's loss: IoU-aware classification plus GIoU box regression over task-aligned targets.

:func:`detection_loss` takes the model's raw outputs (class logits and decoded boxes per anchor
point), assigns targets with :func:`~pixelmind.tasks.detect.assign.task_aligned_assign` and returns
``{"loss", "loss_cls", "loss_box"}``. Both parts are sums normalised by the sum of the soft class
targets, as in TOOD and YOLOv8, so an image without objects adds only negatives to the class term.

Class term: quality focal loss (Li et al. 2020, "Generalized Focal Loss"), binary cross-entropy
against the IoU-aware targets weighted by ``|target - p| ** 2``, so the many easy negatives weigh
little without an alpha to tune; ``"bce"`` (YOLOv8) and varifocal (Zhang et al. 2021) are the
alternatives. Box term: ``1 - GIoU`` of each positive with its object, weighted by its class target.

Example:
    >>> import torch
    >>> from pixelmind.tasks.detect.assign import anchor_points
    >>> pts, st = anchor_points((32, 32), (8, 16))
    >>> boxes = torch.cat([pts - st[:, None], pts + st[:, None]], -1)[None]
    >>> targets = [{"boxes": torch.tensor([[4.0, 4, 20, 20]]), "labels": torch.tensor([0])}]
    >>> out = detection_loss(torch.zeros(1, 20, 2), boxes, targets, (32, 32), (8, 16))
    >>> sorted(out), bool(out["loss"] > 0)
    (['loss', 'loss_box', 'loss_cls'], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss

from pixelmind.nn.distill import sigmoid_kl
from pixelmind.tasks.detect.assign import anchor_points, task_aligned_assign

ClsLoss = Literal["qfl", "vfl", "bce"]

__all__ = ["ClsLoss", "classification_loss", "detection_loss", "distillation_loss", "distribution_focal_loss", "pad_targets"]


def pad_targets(targets: Sequence[dict], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image ``{"boxes", "labels"}`` as padded ``boxes [B, M, 4]``, ``labels [B, M]``, ``valid [B, M]``.

    Example:
        >>> b, l, v = pad_targets([{"boxes": torch.ones(2, 4), "labels": torch.tensor([0, 1])},
        ...                        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}], "cpu")
        >>> b.shape, v.tolist()
        (torch.Size([2, 2, 4]), [[True, True], [False, False]])
    """
    m = max((len(t["labels"]) for t in targets), default=0)
    boxes = torch.zeros(len(targets), m, 4, device=device)
    labels = torch.zeros(len(targets), m, dtype=torch.long, device=device)
    valid = torch.zeros(len(targets), m, dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        n = len(t["labels"])
        boxes[i, :n] = torch.as_tensor(t["boxes"], dtype=torch.float32, device=device).reshape(n, 4)
        labels[i, :n] = torch.as_tensor(t["labels"], device=device).reshape(n)
        valid[i, :n] = True
    return boxes, labels, valid


def classification_loss(logits: Tensor, target: Tensor, kind: ClsLoss = "qfl") -> Tensor:
    """Elementwise IoU-aware classification loss of ``logits`` against soft ``target`` in [0, 1].

    Example:
        >>> logits, target = torch.tensor([4.0, -4.0]), torch.tensor([0.9, 0.0])
        >>> [round(classification_loss(logits, target, k).sum().item(), 4) for k in ("qfl", "vfl", "bce")]
        [0.0028, 0.3763, 0.4363]
    """
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if kind == "bce":
        return bce
    p = logits.sigmoid().detach()
    if kind == "qfl":
        return bce * (target - p).square()
    # varifocal: positives weighted by their target, negatives focal with alpha 0.75, gamma 2
    return bce * torch.where(target > 0, target, 0.75 * p.square())


def detection_loss(
    cls_logits: Tensor,
    boxes: Tensor,
    targets: Sequence[dict],
    image_size: tuple[int, int],
    strides: Sequence[int],
    topk: int = 10,
    alpha: float = 1.0,
    beta: float = 6.0,
    cls_loss: ClsLoss = "qfl",
    cls_weight: float = 1.0,
    box_weight: float = 2.0,
    box_logits: Tensor | None = None,
    dfl_weight: float = 0.25,
) -> dict[str, Tensor]:
    """Loss of a batch of raw outputs against per-image targets.

    Args:
        cls_logits: ``[B, A, C]`` class logits (the IoU-aware quality is folded into them).
        boxes: ``[B, A, 4]`` decoded xyxy boxes in input pixels.
        targets: per image ``{"boxes": [N, 4] xyxy pixels, "labels": [N] 0-based}``; N may be 0.
        image_size: ``(H, W)`` of the (padded) input batch.
        strides: the model's pyramid strides, ascending.
        topk, alpha, beta: task-aligned assignment settings (:func:`task_aligned_assign`).
        cls_loss: ``"qfl"``, ``"vfl"`` or ``"bce"`` (:func:`classification_loss`).
        cls_weight, box_weight: weights of the two terms in ``"loss"``.
        box_logits: ``[B, A, 4, n]`` per-side distance distributions over ``0 .. n - 1`` strides, from a
            detector that predicts them; adds the distribution focal loss (:func:`distribution_focal_loss`).
        dfl_weight: its weight in ``"loss"`` (0.25 as in Generalized Focal Loss, beside GIoU at 2).

    Returns:
        ``{"loss": weighted sum, "loss_cls": ..., "loss_box": ...}`` (unweighted parts; ``"loss_dfl"``
        with ``box_logits``), float32 scalars.
    """
    cls_logits, boxes = cls_logits.float(), boxes.float()
    points, point_strides = anchor_points(image_size, strides, cls_logits.device)
    if points.shape[0] != cls_logits.shape[1]:
        raise ValueError(
            f"{cls_logits.shape[1]} predictions per image, but an input of {tuple(image_size)} with strides "
            f"{tuple(strides)} has {points.shape[0]} anchor points: wrong image_size?"
        )
    gt_boxes, gt_labels, gt_valid = pad_targets(targets, cls_logits.device)
    a = task_aligned_assign(
        cls_logits.detach().sigmoid(), boxes.detach(), points, gt_boxes, gt_labels, gt_valid, topk, alpha, beta
    )
    norm = a.target_scores.sum().clamp(min=1.0)
    loss_cls = classification_loss(cls_logits, a.target_scores, cls_loss).sum() / norm
    fg = a.foreground
    out: dict[str, Tensor] = {}
    if fg.any():
        weight = a.target_scores.sum(-1)[fg]
        giou = generalized_box_iou_loss(boxes[fg], a.target_boxes[fg], reduction="none")
        loss_box = (giou * weight).sum() / norm
        if box_logits is not None:
            where = points.expand(len(boxes), -1, -1)[fg]
            target = a.target_boxes[fg]
            ltrb = torch.cat([where - target[:, :2], target[:, 2:] - where], 1) / point_strides.expand(len(boxes), -1)[fg, None]
            dfl = distribution_focal_loss(box_logits[fg].float(), ltrb)
            out["loss_dfl"] = (dfl * weight).sum() / norm
    else:  # zeros that keep the graph (and DDP's gradient sync) whole
        loss_box = boxes.sum() * 0.0
        if box_logits is not None:
            out["loss_dfl"] = box_logits.sum() * 0.0
    loss = cls_weight * loss_cls + box_weight * loss_box + dfl_weight * out.get("loss_dfl", 0.0)
    return {"loss": loss, "loss_cls": loss_cls.detach(), "loss_box": loss_box.detach(),
            **{k: v.detach() for k, v in out.items()}}  # fmt: skip


def distribution_focal_loss(logits: Tensor, distances: Tensor) -> Tensor:
    """Distribution focal loss (Li et al. 2020) of per-side distributions ``[P, 4, n]`` against distances ``[P, 4]``.

    A distance ``d`` (in strides, clamped into ``[0, n - 1)``) between bins ``i`` and ``i + 1`` is the
    two-bin target ``(i + 1 - d, d - i)``: the cross-entropy against it is least when the softmax puts
    that mass on those two bins, whose expectation is then ``d``. Returns the mean over the four sides, ``[P]``.

    Example:
        >>> logits = torch.full((1, 4, 16), -20.0)
        >>> logits[..., 3] = logits[..., 4] = 20.0  # half on 3, half on 4 strides
        >>> [round(v, 3) for v in distribution_focal_loss(logits, torch.full((1, 4), 3.5)).tolist()]
        [0.693]
    """
    n = logits.shape[-1]
    d = distances.clamp(0, n - 1 - 1e-3)
    left = d.floor().long()
    to_right = d - left
    logp = logits.log_softmax(-1)
    at = lambda i: logp.gather(-1, i[..., None]).squeeze(-1)  # noqa: E731
    return -(at(left) * (1 - to_right) + at(left + 1) * to_right).mean(-1)


def distillation_loss(cls_logits: Tensor, boxes: Tensor, teacher_logits: Tensor, teacher_boxes: Tensor) -> tuple[Tensor, Tensor]:
    """``(class term, box term)`` of a student's raw outputs against a teacher's at the same anchor points.

    Class term: the binary KL of the student's sigmoid scores to the teacher's (every anchor and
    class: the teacher's "nothing here" teaches too). Box term: ``1 - GIoU`` of the student's box
    with the teacher's, weighted by the teacher's best class score, so that the boxes the teacher
    believes in count and the background's arbitrary ones do not. Both are normalised by the sum
    of those weights (at least 1), as :func:`detection_loss` normalises by its soft targets.

    Args:
        cls_logits, teacher_logits: ``[B, A, C]`` class logits.
        boxes, teacher_boxes: ``[B, A, 4]`` decoded xyxy boxes in input pixels.

    Example:
        >>> logits, boxes = torch.zeros(1, 2, 3), torch.tensor([[[0.0, 0, 8, 8], [8, 8, 16, 16]]])
        >>> [round(v.item(), 4) for v in distillation_loss(logits, boxes, logits, boxes)]
        [0.0, 0.0]
        >>> [round(v.item(), 4) for v in distillation_loss(logits + 2, boxes + 4, logits, boxes)]
        [2.6027, 1.0794]
    """
    weight = teacher_logits.detach().float().sigmoid().amax(-1)  # [B, A]
    norm = weight.sum().clamp(min=1.0)
    loss_cls = sigmoid_kl(cls_logits, teacher_logits.detach()).sum() / norm
    giou = generalized_box_iou_loss(boxes.float().flatten(0, 1), teacher_boxes.detach().float().flatten(0, 1), reduction="none")
    loss_box = (giou.view_as(weight) * weight).sum() / norm
    return loss_cls, loss_box
