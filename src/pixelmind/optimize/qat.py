"""Quantization-aware fine-tuning (``optimize --qat``): train the weights to survive the INT8 rounding.

The network is fine-tuned with fake quantization (``torch.fake_quantize_*``: round to the INT8 grid
in the forward pass, straight-through gradients in the backward pass) in the places where
:func:`~pixelmind.optimize.quantize.quantize_onnx` will quantize: the weights of every ``Conv2d`` and
``Linear`` per output channel (symmetric int8), and their input activations per tensor (uint8, the
range a moving average of the observed min/max, always holding 0). The layers whose outputs feed no
other convolution or linear layer (the heads: logits, box distances, output pixels) stay in float,
as the ONNX quantizer leaves them. Afterwards the fine-tuned float weights are calibrated and
quantized by onnxruntime as in post-training quantization; they have learnt to sit where the
rounding costs little.

The fine-tuning is an ordinary run through the engine (``runs/<task>/<run>-qat``, report, results.csv;
its validation already sees the simulated INT8 network), so it picks the best epoch on the metric
that matters. ``train --resume`` of such a run continues with fake quantization (the weights record
``meta.extra["qat"]``).

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1))
    >>> attach_fake_quant(net, torch.zeros(1, 3, 8, 8))  # the 1x1 head stays float
    ['0']
    >>> out = net.train()(torch.rand(2, 3, 8, 8)); detach_fake_quant(net)
    1
"""

from __future__ import annotations

import copy
import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: the moving-average constant of the activation ranges (torch's MovingAverageMinMaxObserver uses 0.01)
RANGE_MOMENTUM = 0.01
#: fine-tuning epochs: the original run's divided by this (at least one)
EPOCH_DIVISOR = 4
#: fine-tuning learning rate: this share of the original recipe's (QAT starts from a trained model)
LR_SHARE = 0.1
_FORWARD = "_pm_fp32_forward"

__all__ = ["attach_fake_quant", "detach_fake_quant", "finetune_qat", "head_layers"]


class _Range:
    """A layer's observed input range, shared (not copied) by the EMA copy of the network that is validated."""

    def __init__(self) -> None:
        self.low: float | None = None
        self.high: float | None = None

    def __deepcopy__(self, memo: dict) -> _Range:
        return self

    def update(self, x: torch.Tensor) -> None:
        low, high = min(0.0, x.min().item()), max(0.0, x.max().item())
        if self.low is None:
            self.low, self.high = low, high
        else:
            self.low += RANGE_MOMENTUM * (low - self.low)
            self.high += RANGE_MOMENTUM * (high - self.high)


def _fake_quant_activation(x: torch.Tensor, rng: _Range, training: bool) -> torch.Tensor:
    if training:
        rng.update(x.detach())
    if rng.low is None or rng.high - rng.low < 1e-8:
        return x
    scale = (rng.high - rng.low) / 255
    zero_point = int(min(255, max(0, round(-rng.low / scale))))
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


def _fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    amax = w.detach().abs().flatten(1).amax(dim=1).clamp_min(1e-8)
    zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, (amax / 127).float(), zero, 0, -127, 127)


def _qat_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = _fake_quant_activation(x, self._pm_range, self.training)
    w = _fake_quant_weight(self.weight)
    return self._conv_forward(x, w, self.bias) if isinstance(self, nn.Conv2d) else F.linear(x, w, self.bias)


def head_layers(net: nn.Module, example: torch.Tensor) -> set[str]:
    """Names of the ``Conv2d``/``Linear`` layers whose output reaches no other such layer (the heads).

    Found on the autograd graph of one forward pass, so it holds for any wiring (residuals, FPNs, skips).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(36, 2))
        >>> sorted(head_layers(net, torch.zeros(1, 3, 5, 5)))
        ['2']
    """
    layers = {name: m for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    inputs: dict[str, Any] = {}
    outputs: dict[Any, str] = {}

    def record(name: str):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            inputs[name], outputs[out.grad_fn] = args[0].grad_fn, name

        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in layers.items()]
    was_training = net.training
    try:
        with torch.enable_grad():
            net.eval()(example.detach().clone().requires_grad_(True))
    finally:
        for h in hooks:
            h.remove()
        net.train(was_training)
    feeding: set[str] = set()  # layers whose output lies upstream of some layer's input
    for start in inputs.values():
        stack, seen = [start], set()
        while stack:
            fn = stack.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            if fn in outputs:
                feeding.add(outputs[fn])
            stack.extend(f for f, _ in fn.next_functions)
    return {name for name in layers if name not in feeding}


def attach_fake_quant(net: nn.Module, example: torch.Tensor) -> list[str]:
    """Fake-quantize, in place, the weights and inputs of every Conv2d/Linear of ``net`` but the heads.

    The state dict is unchanged (the forward is replaced per layer, nothing is registered), so the
    engine's checkpoints load into a plain network. Returns the names of the fake-quantized layers.
    """
    heads = head_layers(net, example)
    names = []
    for name, m in net.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and name not in heads and not hasattr(m, _FORWARD):
            m._pm_range = _Range()
            setattr(m, _FORWARD, m.forward)
            m.forward = types.MethodType(_qat_forward, m)
            names.append(name)
    return names


def detach_fake_quant(net: nn.Module) -> int:
    """Undo :func:`attach_fake_quant` in place; returns how many layers were restored."""
    count = 0
    for m in net.modules():
        if hasattr(m, _FORWARD):
            del m.forward, m._pm_range
            delattr(m, _FORWARD)
            count += 1
    return count


def finetune_qat(model: Any, data: str, epochs: int | None = None, console: Any = None, **train_overrides: Any):
    """Fine-tune a trained model with fake quantization through the engine; returns (metrics, run directory).

    Args:
        model: a :class:`~pixelmind.api.Model` loaded from pixelmind ``.safetensors`` weights (pruned ones too).
        data: the data to fine-tune on.
        epochs: default a quarter of the original run's (at least one); the lr is :data:`LR_SHARE` of its recipe's.
        **train_overrides: any :class:`~pixelmind.config.TrainConfig` field.

    Example:
        >>> metrics, run_dir = finetune_qat(Model.load("best.safetensors"), "digits")  # doctest: +SKIP
        >>> run_dir.name  # doctest: +SKIP
        'exp-qat'
    """
    from pixelmind.optimize.finetune import finetune, finetune_config
    from pixelmind.optimize.prune import example_input

    config = finetune_config(model, data, "qat", epochs, EPOCH_DIVISOR, LR_SHARE, train_overrides)
    net = copy.deepcopy(model.net).cpu()
    layers = attach_fake_quant(net, example_input(net, model.meta))
    meta = copy.deepcopy(model.meta)
    meta.extra["qat"] = {"layers": len(layers)}
    say = console.print if console is not None else print
    say(f"quantization-aware fine-tuning: {len(layers)} layers fake-quantized (INT8 weights per channel, UINT8 inputs), "
        f"{config['epochs']} epoch(s) at lr {config['lr']:g}")
    return finetune(net, meta, config, console)
