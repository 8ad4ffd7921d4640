"""Attribution maps: the CAM family (pytorch-grad-cam), integrated gradients (captum), input gradients
and attention rollout, each a ``[H, W]`` float map in [0, 1] at the network input's size.

Example:
    >>> from torch import nn
    >>> from pixelmind.explain.targets import ExplainTarget
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    >>> m = attribution_map("gradcam", net, torch.rand(1, 3, 16, 16), ExplainTarget("c0", lambda out: out[0]))
    >>> m.shape, bool(0 <= m.min() and m.max() <= 1)
    ((16, 16), True)
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import torch
from torch import nn

from pixelmind.errors import ConfigError
from pixelmind.explain.targets import ExplainTarget, _grid, cam_layers, is_vit

CAM_METHODS = ("gradcam", "gradcam++", "eigencam", "scorecam")
GRADIENT_METHODS = ("ig", "gradient")
ALL_METHODS = (*CAM_METHODS, "rollout", *GRADIENT_METHODS)


def attribution_map(method: str, network: nn.Module, x: torch.Tensor, target: ExplainTarget,
                    layers: tuple[list[nn.Module], Any] | None = None) -> np.ndarray:  # fmt: skip
    """The ``method``'s map of ``target`` for one input ``x`` ``[1, C, H, W]``, scaled to [0, 1].

    ``layers`` is ``(target layers, reshape)`` for CAM methods (default: :func:`cam_layers`).
    Task-specific maps (``target.maps``) are read off the network's output and resized to ``x``.
    """
    if method in target.maps:
        with torch.no_grad():
            raw = target.maps[method](network(x)[0]).float()
        return _unit(_resize(raw, x.shape[-2:]))
    if method in CAM_METHODS:
        return _cam(method, network, x, target, layers or cam_layers(network, x))
    if method == "rollout":
        return _unit(_resize(attention_rollout(network, x), x.shape[-2:]))
    if method == "ig":
        return _integrated_gradients(network, x, target)
    if method == "gradient":
        return _input_gradient(network, x, target)
    raise ConfigError(f"method: unknown explanation method {method!r} (choose from: {', '.join(ALL_METHODS)})")


def _cam(method: str, network: nn.Module, x: torch.Tensor, target: ExplainTarget, layers: tuple[list[nn.Module], Any]) -> np.ndarray:
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM

    cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM, "scorecam": ScoreCAM}[method]
    target_layers, reshape = layers
    cam = cls(network, target_layers, reshape_transform=reshape)
    if method == "scorecam":
        cam.batch_size = 16
    try:  # ScoreCAM draws a tqdm bar per image on stderr: not ours to show
        with torch.enable_grad(), contextlib.redirect_stderr(io.StringIO()):
            out = cam(x, targets=[target])[0]
    finally:
        cam.activations_and_grads.release()
    return _unit(torch.from_numpy(np.nan_to_num(out)))


def _score_fn(network: nn.Module, target: ExplainTarget):
    return lambda inp: torch.stack([target.score(o) for o in network(inp)])


def _integrated_gradients(network: nn.Module, x: torch.Tensor, target: ExplainTarget, steps: int = 32) -> np.ndarray:
    """Integrated gradients from the all-zero input (the data set's mean colour after normalisation)."""
    from captum.attr import IntegratedGradients

    with torch.enable_grad():
        attr = IntegratedGradients(_score_fn(network, target)).attribute(x, baselines=torch.zeros_like(x), n_steps=steps,
                                                                         internal_batch_size=16)  # fmt: skip
    return _unit(attr[0].abs().sum(0), clip_percentile=99.0)


def _input_gradient(network: nn.Module, x: torch.Tensor, target: ExplainTarget) -> np.ndarray:
    """|d score / d input| summed over channels (a saliency map)."""
    with torch.enable_grad():
        inp = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_score_fn(network, target)(inp).sum(), inp)
    return _unit(grad[0].abs().sum(0), clip_percentile=99.0)


def attention_rollout(network: nn.Module, x: torch.Tensor, discard: float = 0.0) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) of a timm ViT: the class token's attention to each
    patch through all blocks, identity added for the residual path; ``[h, w]`` at the patch grid.

    The attention weights are recomputed from each block's ``qkv`` projection, because timm's fused
    attention never materialises them.
    """
    vit = next((m for m in network.modules() if is_vit(m)), None)
    if vit is None:
        raise ConfigError("method: rollout reads the attention of a Vision Transformer (ViT/DeiT); use gradcam for this model")
    qkvs: list[torch.Tensor] = []
    hooks = [blk.attn.qkv.register_forward_hook(lambda _m, _i, out: qkvs.append(out.detach())) for blk in vit.blocks]
    try:
        with torch.no_grad():
            network(x)
    finally:
        for h in hooks:
            h.remove()
    n = qkvs[0].shape[1]
    rollout = torch.eye(n)
    for blk, qkv in zip(vit.blocks, qkvs):
        heads = blk.attn.num_heads
        q, k, _ = qkv[0].reshape(n, 3, heads, -1).permute(1, 2, 0, 3)
        q, k = blk.attn.q_norm(q), blk.attn.k_norm(k)
        attn = (q @ k.transpose(-1, -2) * blk.attn.scale).softmax(-1).mean(0)
        if discard:
            flat = attn.flatten()
            flat[flat.argsort()[: int(flat.numel() * discard)]] = 0
        attn = attn + torch.eye(n)
        rollout = (attn / attn.sum(-1, keepdim=True)) @ rollout
    prefix = getattr(vit, "num_prefix_tokens", 1)
    h, w = _grid(vit, n - prefix)
    return rollout[0, prefix:].reshape(h, w)


def _resize(m: torch.Tensor, size) -> torch.Tensor:
    m = m.float()
    while m.ndim > 2:
        m = m.mean(0)
    return torch.nn.functional.interpolate(m[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]


def _unit(m: torch.Tensor, clip_percentile: float | None = None) -> np.ndarray:
    """A map scaled to [0, 1] (optionally clipped at a percentile: gradients have a few huge pixels)."""
    m = m.detach().float().cpu()
    m = torch.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0)
    if clip_percentile is not None and m.numel() > 1:
        m = m.clamp(max=float(torch.quantile(m.flatten(), clip_percentile / 100)))
    m = m - m.min()
    top = float(m.max())
    return (m / top if top > 0 else m).numpy().astype(np.float32)
