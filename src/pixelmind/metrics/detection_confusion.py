"""The detection confusion matrix: which class each object was found as, what was missed, what was invented.

Per image, detections scoring at least ``conf`` are matched one-to-one to ground-truth boxes whatever
their classes, greedily by IoU (highest first, pairs below ``iou`` never match), as Ultralytics' and
YOLOv5's confusion matrices do. A matched pair counts at ``[true class, predicted class]``; an
unmatched object at ``[true class, background]`` (missed); an unmatched detection at
``[background, predicted class]`` (a false positive). Crowd regions are not objects: detections
left unmatched that overlap one (IoU >= ``iou``) are not counted, as COCO ignores them.

Example:
    >>> import numpy as np
    >>> gts = [(np.array([[0.0, 0, 10, 10], [20, 20, 30, 30]]), np.array([0, 1]))]
    >>> dets = [(np.array([[0.0, 0, 10, 10], [50, 50, 60, 60]]), np.array([0.9, 0.8]), np.array([1, 1]))]
    >>> detection_confusion_matrix(gts, dets, num_classes=2).tolist()  # rows: true a, b, background
    [[0, 1, 0], [0, 0, 1], [0, 1, 0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["detection_confusion_matrix"]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every xyxy box in ``a`` [N, 4] with every one in ``b`` [M, 4]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def detection_confusion_matrix(
    gts: Sequence[tuple[np.ndarray, np.ndarray]],
    dets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    num_classes: int,
    conf: float = 0.25,
    iou: float = 0.45,
) -> np.ndarray:
    """``[C + 1, C + 1]`` counts: true classes in rows, predicted in columns, background last.

    Args:
        gts: per image ``(boxes [N, 4] xyxy, labels [N])`` or ``(boxes, labels, iscrowd [N])``.
        dets: per image ``(boxes [M, 4] xyxy, scores [M], labels [M])``, in the same image order.
        num_classes: C.
        conf: detections below this score are ignored (the threshold predict reports at).
        iou: the least IoU for a detection and an object to match.
    """
    if len(gts) != len(dets):
        raise ValueError(f"{len(dets)} detection lists for {len(gts)} images")
    cm = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    bg = num_classes
    for gt, (d_boxes, d_scores, d_labels) in zip(gts, dets):
        g_boxes, g_labels = gt[0], gt[1]
        crowd = gt[2] if len(gt) > 2 else np.zeros(len(g_labels), bool)
        keep = d_scores >= conf
        d_boxes, d_labels = d_boxes[keep], d_labels[keep]
        crowd_boxes, g_boxes, g_labels = g_boxes[crowd], g_boxes[~crowd], g_labels[~crowd]
        g_done, d_done = np.zeros(len(g_labels), bool), np.zeros(len(d_labels), bool)
        if len(g_labels) and len(d_labels):
            ious = _iou(g_boxes, d_boxes)
            gi, di = np.nonzero(ious >= iou)
            for k in np.argsort(-ious[gi, di], kind="stable"):
                g, d = gi[k], di[k]
                if not g_done[g] and not d_done[d]:
                    g_done[g] = d_done[d] = True
                    cm[g_labels[g], d_labels[d]] += 1
        if len(crowd_boxes) and len(d_labels):
            d_done |= (_iou(d_boxes, crowd_boxes) >= iou).any(axis=1)
        np.add.at(cm, (g_labels[~g_done], bg), 1)
        np.add.at(cm, (bg, d_labels[~d_done]), 1)
    return cm
