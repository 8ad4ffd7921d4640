"""What ``pixelmind explain`` explains in a semantic segmenter: each predicted class's region.

A region's score is the class's mean logit over the pixels predicted as that class on the unchanged
image (Vinogradova et al., "Towards interpretable semantic segmentation via gradient-weighted
class activation mapping", 2020); the faithfulness curves follow its mean probability there.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pixelmind.explain.pipeline import class_indices
from pixelmind.explain.targets import ExplainTarget


class PaddedSegmenter(nn.Module):
    """A segmenter run on any H and W (padded to its stride, cropped back): one ``[B, C, H, W]`` output."""

    def __init__(self, model: nn.Module, stride: int) -> None:
        super().__init__()
        self.model, self.stride = model, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from pixelmind.tasks.segment.task import padded_logits

        return padded_logits(self.model, x, self.stride)


def region_targets(network: nn.Module, x: torch.Tensor, names: Sequence[str], classes: Sequence[str | int] | None = None,
                   max_regions: int = 10) -> list[ExplainTarget]:  # fmt: skip
    """One target per class predicted on ``x`` (largest regions first), or per class asked for.

    Example:
        >>> net = nn.Conv2d(3, 2, 1)
        >>> len(region_targets(net, torch.rand(1, 3, 8, 8), ["bg", "fg"], ["fg"]))
        1
    """
    with torch.no_grad():
        pred = network(x)[0].argmax(0)
    areas = torch.bincount(pred.flatten(), minlength=len(names))
    wanted = class_indices(classes, names) or [int(c) for c in areas.argsort(descending=True) if areas[c] > 0][:max_regions]
    targets = []
    for c in wanted:
        region = pred == c
        if not region.any():  # an asked-for class the model does not predict: the whole image
            region = torch.ones_like(region)
        targets.append(ExplainTarget(
            f"region {names[c]}",
            score=lambda out, c=c, r=region: out[c][r].mean(),
            prob=lambda out, c=c, r=region: out.float().softmax(0)[c][r].mean(),
            info={"label": names[c], "index": c, "area": round(float(areas[c]) / pred.numel(), 4)},
        ))  # fmt: skip
    return targets
