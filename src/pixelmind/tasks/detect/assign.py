"""Label assignment for the anchor-free detector: anchor points and task-aligned assignment (TOOD).

Every location of every pyramid level is one *anchor point*, the centre of its cell in input pixels,
ordered level by level (strides ascending) and row-major within a level: the order in which the model
emits its predictions. :func:`task_aligned_assign` decides, per image, which points learn which object
(Feng et al. 2021, "TOOD", as YOLOv8 uses it): among the points whose centre lies inside a ground-truth
box, the ``topk`` with the highest alignment ``score ** alpha * iou ** beta`` (the predicted score of
the object's class and the IoU of the predicted box with it) become its positives; a point claimed by
several objects keeps the one its box overlaps most. The class target of a positive is its alignment
rescaled so that each object's best point gets that point's IoU, which makes the class score an
IoU-aware quality estimate.

Example:
    >>> import torch
    >>> points, strides = anchor_points((64, 64), (8, 16, 32))
    >>> points.shape, strides[:1].item(), points[0].tolist()
    (torch.Size([84, 2]), 8.0, [4.0, 4.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Assignment", "anchor_points", "pairwise_iou", "task_aligned_assign"]


def anchor_points(
    image_size: tuple[int, int], strides: Sequence[int], device: torch.device | None = None
) -> tuple[Tensor, Tensor]:
    """Cell centres ``[A, 2]`` (x, y pixels) and their strides ``[A]`` for an ``(H, W)`` input.

    H and W must be multiples of the largest stride (the model's convention); the order matches the
    model's outputs.

    Example:
        >>> pts, st = anchor_points((32, 64), (16, 32))
        >>> pts.shape, st.tolist()[-2:], pts[-1].tolist()
        (torch.Size([10, 2]), [32.0, 32.0], [48.0, 16.0])
    """
    h, w = image_size
    points, steps = [], []
    for s in strides:
        ys, xs = torch.meshgrid(
            torch.arange(h // s, device=device, dtype=torch.float32),
            torch.arange(w // s, device=device, dtype=torch.float32),
            indexing="ij",
        )
        points.append((torch.stack([xs, ys], -1).reshape(-1, 2) + 0.5) * s)
        steps.append(torch.full((points[-1].shape[0],), float(s), device=device))
    return torch.cat(points), torch.cat(steps)


def pairwise_iou(a: Tensor, b: Tensor, eps: float = 1e-9) -> Tensor:
    """IoU of xyxy boxes that broadcast against each other (``[..., 4]``), e.g. ``[B, M, 1, 4]`` with
    ``[B, 1, A, 4]`` gives ``[B, M, A]``.

    Example:
        >>> pairwise_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]])).tolist()
        [0.3333333432674408]
    """
    lt, rb = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + eps)


@dataclass
class Assignment:
    """What each anchor point of each image learns.

    Attributes:
        foreground: bool ``[B, A]``, the positives.
        target_boxes: ``[B, A, 4]`` xyxy pixels, the assigned object's box (meaningless where not foreground).
        target_scores: ``[B, A, C]``, the IoU-aware class targets (0 on negatives and other classes).
        gt_index: int64 ``[B, A]``, the assigned object (0 where not foreground).
    """

    foreground: Tensor
    target_boxes: Tensor
    target_scores: Tensor
    gt_index: Tensor


@torch.no_grad()
def task_aligned_assign(
    scores: Tensor,
    pred_boxes: Tensor,
    points: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    gt_valid: Tensor,
    topk: int = 10,
    alpha: float = 1.0,
    beta: float = 6.0,
    eps: float = 1e-9,
) -> Assignment:
    """Task-aligned assignment (TOOD) of a batch of padded ground truth to anchor points.

    Candidates of an object are the points strictly inside its box, plus the point nearest to its
    centre, so that an object smaller than a cell (or cut by the border) still gets one positive.

    Args:
        scores: ``[B, A, C]`` predicted class probabilities (after the sigmoid), detached.
        pred_boxes: ``[B, A, 4]`` predicted xyxy boxes, detached.
        points: ``[A, 2]`` anchor points (x, y).
        gt_boxes: ``[B, M, 4]`` xyxy ground truth, padded to the most objects in an image.
        gt_labels: int64 ``[B, M]`` class indices (any value where padded).
        gt_valid: bool ``[B, M]``, False on padding.
        topk: positives per object, at most.
        alpha: weight of the class score in the alignment.
        beta: weight of the IoU in the alignment.
        eps: guards the divisions.

    Returns:
        The :class:`Assignment`.

    Example:
        >>> pts, _ = anchor_points((32, 32), (8,))
        >>> boxes = torch.cat([pts - 6, pts + 6], -1)[None]  # every point predicts a 12 px box around itself
        >>> a = task_aligned_assign(torch.full((1, 16, 2), 0.5), boxes, pts, torch.tensor([[[0.0, 0, 16, 16]]]),
        ...                         torch.tensor([[1]]), torch.tensor([[True]]), topk=3)
        >>> a.foreground.sum().item(), a.target_scores[0, :, 0].max().item(), bool((a.target_scores[0, :, 1] > 0).any())
        (3, 0.0, True)
    """
    b, n_points, n_classes = scores.shape
    m = gt_boxes.shape[1]
    if m == 0:
        return Assignment(
            torch.zeros(b, n_points, dtype=torch.bool, device=scores.device),
            torch.zeros(b, n_points, 4, device=scores.device),
            torch.zeros_like(scores),
            torch.zeros(b, n_points, dtype=torch.long, device=scores.device),
        )
    # candidates: points inside the box, plus the point nearest the box centre
    lt = points[None, None] - gt_boxes[..., None, :2]  # [B, M, A, 2]
    rb = gt_boxes[..., None, 2:] - points[None, None]
    candidate = torch.cat([lt, rb], -1).amin(-1) > eps  # [B, M, A]
    centre = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
    nearest = (points[None, None] - centre[..., None, :]).square().sum(-1).argmin(-1, keepdim=True)
    candidate.scatter_(-1, nearest, True)
    candidate &= gt_valid[..., None]

    iou = pairwise_iou(gt_boxes[:, :, None], pred_boxes[:, None])  # [B, M, A]
    labels = gt_labels.clamp(0, n_classes - 1)
    cls = scores.transpose(1, 2).gather(1, labels[..., None].expand(-1, -1, n_points))  # [B, M, A]
    align = cls.pow(alpha) * iou.pow(beta) * candidate
    top = align.topk(min(topk, n_points), dim=-1).indices
    positive = torch.zeros_like(candidate).scatter_(-1, top, True) & candidate  # [B, M, A]

    # a point claimed by several objects keeps the one its predicted box overlaps most
    gt_index = torch.where(positive, iou, -1.0).argmax(1)  # [B, A]
    foreground = positive.any(1)
    positive = (torch.arange(m, device=scores.device)[None, :, None] == gt_index[:, None]) & foreground[:, None]

    align = align * positive
    best_align = align.amax(-1, keepdim=True)
    best_iou = (iou * positive).amax(-1, keepdim=True)
    quality = (align * best_iou / (best_align + eps)).amax(1)  # [B, A]
    target_labels = labels.gather(1, gt_index)
    target_scores = torch.nn.functional.one_hot(target_labels, n_classes).to(scores.dtype)
    target_scores *= (quality * foreground)[..., None]
    target_boxes = gt_boxes.gather(1, gt_index[..., None].expand(-1, -1, 4))
    return Assignment(foreground, target_boxes, target_scores, gt_index)
