"""Deletion and insertion AUC (Petsiuk et al., RISE, 2018): does the map point at what the model uses?

Deletion removes the most important pixels first (set to zero: the data set's mean colour after
normalisation) and follows the target's score down: a faithful map makes it fall fast (low AUC).
Insertion starts from a blurred copy of the image and puts the most important pixels back: the score
should rise fast (high AUC). These are RISE's choices; a blurred deletion baseline was measured less
telling (bench/RESULTS.md: a small digit stays readable when blurred, so every map scores alike).
Each is compared with random maps on the same image in the same run; a map is only worth looking
at when it beats them.

Example:
    >>> from torch import nn
    >>> from pixelmind.explain.targets import ExplainTarget
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1))
    >>> t = ExplainTarget("out", lambda out: out[0])
    >>> curve = deletion_insertion(net, torch.rand(1, 3, 8, 8), torch.rand(8, 8).numpy(), t)
    >>> sorted(curve)
    ['deletion_auc', 'insertion_auc']
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pixelmind.explain.targets import ExplainTarget


def _blurred(x: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2.functional import gaussian_blur

    side = min(x.shape[-2:])
    k = max(3, (side // 4) | 1)
    return gaussian_blur(x, [k, k], [k / 3, k / 3])


@torch.no_grad()
def _curves(network: nn.Module, x: torch.Tensor, order: torch.Tensor, target: ExplainTarget, steps: int,
            batch: int = 16) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Scores after removing / inserting the first ``k / steps`` of ``order`` (pixel indices), k = 0..steps."""
    h, w = x.shape[-2:]
    removed, base = torch.zeros_like(x), _blurred(x)
    counts = [round(k * h * w / steps) for k in range(steps + 1)]
    rank = torch.empty(h * w, dtype=torch.long)
    rank[order] = torch.arange(h * w)
    masks = torch.stack([(rank < c).reshape(1, h, w) for c in counts]).to(x.dtype).to(x.device)  # [S, 1, H, W]

    def scores(inputs: torch.Tensor) -> np.ndarray:
        out = []
        for i in range(0, len(inputs), batch):
            for o in network(inputs[i : i + batch]):
                out.append(float((target.prob or target.score)(o)))
        return np.asarray(out)

    deletion = scores(x * (1 - masks) + removed * masks)
    insertion = scores(base * (1 - masks) + x * masks)
    if target.prob is None:  # no probability: relative to the unchanged image's score
        ref = deletion[0] if abs(deletion[0]) > 1e-12 else 1.0
        deletion, insertion = deletion / ref, insertion / ref
    return deletion, insertion


def _auc(curve: np.ndarray) -> float:
    return float((curve[:-1] + curve[1:]).sum() / 2 / (len(curve) - 1))  # the trapezoid rule on [0, 1]


def deletion_insertion(network: nn.Module, x: torch.Tensor, saliency: np.ndarray, target: ExplainTarget,
                       steps: int = 20) -> dict[str, float]:  # fmt: skip
    """Deletion and insertion AUC of one map ``[H, W]`` (the input's size) for ``target`` on ``x`` ``[1, C, H, W]``."""
    order = torch.from_numpy(np.ascontiguousarray(saliency)).flatten().argsort(descending=True, stable=True)
    deletion, insertion = _curves(network, x, order, target, steps)
    return {"deletion_auc": _auc(deletion), "insertion_auc": _auc(insertion)}


def random_baseline(network: nn.Module, x: torch.Tensor, target: ExplainTarget, steps: int = 20, repeats: int = 3,
                    seed: int = 0) -> dict[str, float]:  # fmt: skip
    """The same AUCs for random maps (seeded), averaged over ``repeats``: what noise scores."""
    g = torch.Generator().manual_seed(seed)
    h, w = x.shape[-2:]
    runs = [deletion_insertion(network, x, torch.rand(h, w, generator=g).numpy(), target, steps) for _ in range(repeats)]
    return {f"random_{k}": float(np.mean([r[k] for r in runs])) for k in runs[0]}
