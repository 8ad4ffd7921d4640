"""What ``pixelmind explain`` explains in a detector: one map per detected box.

A box's target follows its own anchor's class logit (for gradients) and, for the faithfulness
curves, the best ``IoU x confidence`` of any anchor with that box (D-RISE's similarity, Petsiuk et
al. 2021): when deleting pixels moves the detection to a neighbouring anchor it still counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import box_iou

from pixelmind.explain.pipeline import class_indices
from pixelmind.explain.targets import ExplainTarget
from pixelmind.tasks.detect.postprocess import postprocess


def box_targets(network: torch.nn.Module, x: torch.Tensor, names: Sequence[str], conf: float,
                classes: Sequence[str | int] | None = None, max_boxes: int = 20) -> list[ExplainTarget]:  # fmt: skip
    """One target per detection of ``network`` (packed ``[B, A, C + 4]`` outputs) on ``x`` above ``conf``.

    Example:
        >>> out = torch.full((1, 3, 6), -9.0); out[0, 1, 1] = 5.0; out[0, :, 2:] = torch.tensor([0.0, 0, 8, 8])
        >>> [t.name for t in box_targets(lambda x: out, None, ["a", "b"], 0.25)]
        ['box 0 b']
    """
    n = len(names)
    with torch.no_grad():
        packed = network(x)[0].float()
    (det,) = postprocess((packed[None, :, :n], packed[None, :, n:]), score_thresh=conf, max_det=max_boxes)
    wanted = set(class_indices(classes, names) or range(n))
    targets = []
    for i, (box, label, score) in enumerate(zip(det["boxes"], det["labels"].tolist(), det["scores"].tolist())):
        if label not in wanted:
            continue
        overlap = box_iou(packed[:, n:], box[None])[:, 0]
        anchor = int(torch.where(overlap > 0.9, packed[:, label], torch.tensor(-1e9)).argmax())

        def similarity(out: torch.Tensor, box=box, label=label) -> torch.Tensor:
            return (box_iou(out[:, n:].float(), box[None])[:, 0] * out[:, label].float().sigmoid()).max()

        targets.append(ExplainTarget(
            f"box {i} {names[label]}", score=lambda out, a=anchor, c=label: out[a, c], prob=similarity,
            info={"label": names[label], "index": label, "score": round(score, 4), "box": [round(v, 2) for v in box.tolist()]},
        ))  # fmt: skip
    return targets
