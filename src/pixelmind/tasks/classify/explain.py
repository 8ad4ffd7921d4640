"""What ``pixelmind explain`` explains in a classifier: the predicted (or asked-for) classes' logits."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pixelmind.explain.pipeline import class_indices
from pixelmind.explain.targets import ExplainTarget


def class_targets(model: torch.nn.Module, x: torch.Tensor, names: Sequence[str], classes: Sequence[str | int] | None,
                  temperature: float = 1.0) -> list[ExplainTarget]:  # fmt: skip
    """One target per class in ``classes`` (names or indices), else the top-1 class of ``x``.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> [t.name for t in class_targets(net, torch.rand(1, 3, 2, 2), ["cat", "dog"], ["dog"])]
        ['class dog']
    """
    with torch.no_grad():
        probs = (model(x)[0].float() / temperature).softmax(0)
    wanted = class_indices(classes, names) or [int(probs.argmax())]
    return [
        ExplainTarget(
            f"class {names[c]}",
            score=lambda out, c=c: out[c],
            prob=lambda out, c=c: (out.float() / temperature).softmax(0)[c],
            info={"label": names[c], "index": c, "prob": float(probs[c])},
        )
        for c in wanted
    ]
