"""From the detector's raw outputs to detections: score threshold, top-k, class-aware NMS, max detections.

A pure function of the raw outputs (``cls_logits [B, A, C]``, ``boxes [B, A, 4]``, as the model or
its ONNX export returns them, tensors or numpy arrays), so the PyTorch and onnxruntime paths share it.
Every (point, class) pair whose score passes the threshold is a candidate (multi-label, as YOLOv8
evaluates: a point may vote for two classes it cannot tell apart), and NMS is
:func:`torchvision.ops.batched_nms`, which never suppresses across classes.

Example:
    >>> import torch
    >>> logits = torch.tensor([[[3.0, -9.0], [2.0, -9.0], [-9.0, 1.0]]])
    >>> boxes = torch.tensor([[[0.0, 0, 10, 10], [1.0, 1, 10, 10], [0.0, 0, 10, 10]]])
    >>> det = postprocess((logits, boxes), score_thresh=0.5)[0]
    >>> det["labels"].tolist(), [round(s, 3) for s in det["scores"].tolist()]
    ([0, 1], [0.953, 0.731])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchvision.ops import batched_nms

__all__ = ["postprocess"]


def postprocess(
    raw_outputs: Sequence[Any],
    score_thresh: float = 0.25,
    iou_thresh: float = 0.6,
    max_det: int = 100,
    pre_nms_topk: int = 1000,
    image_size: tuple[int, int] | None = None,
) -> list[dict[str, Tensor]]:
    """Detections per image from the raw outputs of a detector.

    Args:
        raw_outputs: ``(cls_logits [B, A, C], boxes [B, A, 4] xyxy pixels)``, torch tensors or numpy arrays.
        score_thresh: least score (sigmoid of the logit, an IoU-aware confidence) kept; 0.25 for
            predictions shown to people, about 0.001 for mAP evaluation.
        iou_thresh: boxes of one class overlapping a better one by more than this are dropped.
        max_det: most detections per image.
        pre_nms_topk: most candidates per image that enter NMS (the best scores), which bounds its cost.
        image_size: ``(H, W)``; when given, boxes are clipped to the image.

    Returns:
        Per image ``{"boxes": float [K, 4] xyxy, "scores": float [K], "labels": int64 [K] 0-based}``,
        ``K <= max_det``, sorted by score, highest first.
    """
    cls_logits, boxes = (torch.as_tensor(x) for x in raw_outputs[:2])
    n_classes = cls_logits.shape[-1]
    results = []
    for logits, bxs in zip(cls_logits.float(), boxes.float()):
        scores = logits.sigmoid().flatten()  # [A * C], point-major
        keep = torch.nonzero(scores > score_thresh).squeeze(1)
        if keep.numel() > pre_nms_topk:
            keep = keep[scores[keep].topk(pre_nms_topk).indices]
        scores, labels, cand = scores[keep], keep % n_classes, bxs[keep // n_classes]
        if image_size is not None:
            h, w = image_size
            cand = torch.stack([cand[:, 0].clamp(0, w), cand[:, 1].clamp(0, h),
                                cand[:, 2].clamp(0, w), cand[:, 3].clamp(0, h)], 1)  # fmt: skip
        kept = batched_nms(cand, scores, labels, iou_thresh)[:max_det]  # sorted by score
        results.append({"boxes": cand[kept], "scores": scores[kept], "labels": labels[kept]})
    return results
