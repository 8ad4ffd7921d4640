"""What an explanation explains: a scalar of the network's output per image, and the layers CAMs read.

A task's ``explain_targets`` hook returns the network to explain (one tensor out, a batch dimension
first) and one :class:`ExplainTarget` per thing to explain (a class, a box, a region, the model's
change, the bits); everything else in :mod:`pixelmind.explain` is task-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pixelmind.errors import ConfigError


@dataclass
class ExplainTarget:
    """One thing to explain.

    Args:
        name: a short label for file names and the report ("class cat", "box 0 circle").
        score: one image's network output -> a differentiable scalar (logit space), what gradients follow.
        prob: one image's network output -> the scalar faithfulness curves follow (a probability where
            there is one); ``None``: ``score`` divided by its value on the unchanged image.
        maps: task-specific maps read off one image's network output (``"difference"``, ``"bits"``).
        info: JSON-safe details for the report (label, index, box, score).

    Example:
        >>> t = ExplainTarget("class 1", score=lambda out: out[1], prob=lambda out: out.softmax(0)[1])
        >>> float(t(torch.tensor([0.0, 0.0])))  # grad-cam calls targets on one image's output
        0.0
    """

    name: str
    score: Callable[[torch.Tensor], torch.Tensor]
    prob: Callable[[torch.Tensor], torch.Tensor] | None = None
    maps: dict[str, Callable[[torch.Tensor], torch.Tensor]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return self.score(output)


def is_vit(model: nn.Module) -> bool:
    """A timm Vision Transformer (ViT, DeiT): patch tokens in ``blocks``, with a class token."""
    return hasattr(model, "blocks") and hasattr(model, "patch_embed") and getattr(model, "cls_token", None) is not None


def vit_reshape(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Tokens ``[B, N, C]`` of a timm ViT -> a feature map ``[B, C, h, w]`` (prefix tokens dropped)."""
    prefix = getattr(model, "num_prefix_tokens", 1)

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:]
        h, w = _grid(model, patches.shape[1])
        return patches.reshape(patches.shape[0], h, w, patches.shape[2]).permute(0, 3, 1, 2)

    return reshape


def _grid(model: nn.Module, n: int) -> tuple[int, int]:
    grid = getattr(model.patch_embed, "grid_size", None)
    if grid is not None and grid[0] * grid[1] == n:
        return int(grid[0]), int(grid[1])
    side = int(round(n**0.5))
    return side, n // side


def cam_layers(network: nn.Module, x: torch.Tensor, within: nn.Module | None = None) -> tuple[list[nn.Module], Any]:
    """The layer(s) CAM methods weigh, found by running ``network`` once on ``x``: ``(layers, reshape)``.

    A timm ViT: the last block's first norm, reshaped to the patch grid. Otherwise the last module
    (of ``within``, default the whole network) whose output is a spatial map (``[B, C, h, w]``,
    ``h * w > 1``) other than the network's own output: the last convolutional stage of a classifier,
    a segmenter's decoder.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> layers, _ = cam_layers(net, torch.rand(1, 3, 8, 8))
        >>> type(layers[0]).__name__
        'ReLU'
    """
    root = within or network
    vit = next((m for m in root.modules() if is_vit(m)), None)
    if vit is not None:
        return [vit.blocks[-1].norm1], vit_reshape(vit)
    seen: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda mod, _i, out: seen.append((mod, out))) for m in root.modules() if m is not root]
    try:
        with torch.no_grad():
            final = network(x)
    finally:
        for h in hooks:
            h.remove()
    final_ptr = final.data_ptr() if torch.is_tensor(final) else None
    spatial = [m for m, out in seen if torch.is_tensor(out) and out.ndim == 4 and out.is_floating_point()
               and out.shape[-1] * out.shape[-2] > 1 and out.data_ptr() != final_ptr]  # fmt: skip
    if not spatial:
        raise ConfigError("method: this model has no convolutional feature map for a CAM; use --method ig or gradient")
    return [spatial[-1]], None
