"""Structured channel pruning to a FLOPs target (torch-pruning), then fine-tuning through the normal engine.

torch-pruning traces the network into a dependency graph, so that the channels of every layer joined
by a residual sum, a concatenation or a depthwise convolution go together; layers whose output
channels must stay (classifier heads, box predictors, image-output convolutions: the task's
``prune_ignored_layers``) only lose input channels. Channels are ranked by the L2 norm of their
weights over the whole group (``GroupMagnitudeImportance``) and removed uniformly, the same share
of every layer, in a few iterative steps until the FLOPs are at most ``1 - amount`` of the original.

:func:`finetune_pruned` prunes a trained :class:`~pixelmind.api.Model` and fine-tunes it with the
recipe stored in its weights, through :meth:`~pixelmind.api.Model.train`: the run directory, report,
``best.safetensors`` and ``train --resume`` are those of any run. The pruned widths travel in the
weights (:mod:`pixelmind.optimize.structure`), so ``Model.load`` and ``pixelmind predict`` need nothing else.

FLOPs here are 2 x the multiply-accumulates that ``tp.utils.count_ops_and_params`` counts, as in
:func:`pixelmind.optimize.measure.count_flops`.

Example:
    >>> import torch
    >>> from pixelmind.tasks.classify.models import build_classifier
    >>> net = build_classifier("pm_cnn_t", num_classes=10, imgsz=16)
    >>> s = prune_network(net, torch.zeros(1, 3, 16, 16), 0.5, ignored_layers=[net.head[-1]])
    >>> s["flops_ratio"] <= 0.5, net(torch.zeros(2, 3, 16, 16)).shape
    (True, torch.Size([2, 10]))
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelmind.errors import ConfigError, PixelmindError

#: the largest share of a layer's channels pruning may remove (torch-pruning keeps at least one)
MAX_CHANNEL_RATIO = 0.9
#: the finest step of the channel ratio near the target (1 % of each layer's channels)
FINE_STEP = 0.01
#: fine-tuning epochs: the original run's divided by this (at least one). bench/RESULTS.md §19, Fashion-MNIST
#: pm_cnn_s pruned 50 %: top-1 lost 2.05 points after 2 of 8 epochs at 0.3x lr, 1.13 after 4 at 0.3x, 0.71 after 4 at 1x
EPOCH_DIVISOR = 2
#: fine-tuning learning rate: this share of the original recipe's (with its warm-up and cosine decay);
#: 1x also beat 0.3x on digits (top-1 0.9944 vs 0.9916 after 4 of 12 epochs)
LR_SHARE = 1.0
_MAX_STEPS = 200

__all__ = ["check_amount", "example_input", "finetune_pruned", "prune_model", "prune_network"]


def check_amount(amount: Any) -> float:
    """``amount`` (the share of FLOPs to remove) as a float in (0, 0.95], else a one-line ConfigError.

    Example:
        >>> check_amount(1.5)  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        pixelmind.errors.ConfigError: prune: the share of FLOPs to remove must lie in (0, 0.95] (got 1.5), e.g. 0.5 for half
    """
    ok = isinstance(amount, (int, float)) and not isinstance(amount, bool) and 0 < amount <= 0.95
    if not ok:
        raise ConfigError(f"prune: the share of FLOPs to remove must lie in (0, 0.95] (got {amount!r}), e.g. 0.5 for half")
    return float(amount)


@contextmanager
def _quiet():
    # torch-pruning warns about every parameter it prunes without a layer (ViT position embeddings ...)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"torch_pruning.*")
        yield


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:160] if text else ''}"


def _inconsistent(name: str, err: BaseException) -> PixelmindError:
    return PixelmindError(f"{name}: torch-pruning could not narrow this model consistently ({_first_line(err)}); it cannot be pruned")


def _count(net: nn.Module, inputs: tuple[torch.Tensor, ...], name: str) -> tuple[int, int]:
    """(FLOPs, parameters) of one forward pass; a pass that fails means pruning broke the network."""
    import torch_pruning as tp

    try:
        with _quiet(), torch.no_grad():
            macs, params = tp.utils.count_ops_and_params(net, inputs)
    except Exception as err:  # noqa: BLE001 - any failure of the pruned network is the same refusal
        raise _inconsistent(name, err) from None
    return 2 * int(macs), int(params)


def _next_ratio(ratio: float, target: float, prunable: float) -> float:
    """The channel ratio to prune to next: just short of the model's guess, or one fine step when close.

    The FLOPs of the prunable layers fall as ``(1 - ratio)**2`` (input and output channels both go);
    ``prunable`` is the share of the FLOPs they hold, fitted from the steps so far.
    """
    need = (1 - target) / max(prunable, 1e-6)
    guess = MAX_CHANNEL_RATIO if need >= 1 else 1 - math.sqrt(1 - need)
    # rounding to whole channels makes the real curve steeper or flatter than the model: move most of the way
    nxt = ratio + 0.8 * (guess - ratio) if guess - ratio > 2 * FINE_STEP else ratio + FINE_STEP
    return min(max(nxt, ratio + FINE_STEP), MAX_CHANNEL_RATIO)


def _build_pruner(net: nn.Module, inputs: tuple, ignored: list[nn.Module], round_to: int | None,
                  schedule: list[float], name: str):  # fmt: skip
    import torch_pruning as tp

    def scheduler(ratio: float, steps: int) -> list[float]:
        # the channel ratio of each step is chosen as the FLOPs come in (the list is filled step by step)
        return schedule if ratio > 0 else [0.0] * (steps + 1)

    try:
        with _quiet():
            return tp.pruner.BasePruner(
                net, inputs, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=MAX_CHANNEL_RATIO,
                iterative_steps=_MAX_STEPS, iterative_pruning_ratio_scheduler=scheduler, ignored_layers=ignored,
                round_to=round_to,
            )  # fmt: skip
    except Exception as err:  # noqa: BLE001 - tracing runs the model's own code: any error means it cannot be traced
        raise PixelmindError(f"{name}: torch-pruning cannot trace this model ({_first_line(err)})") from None


def prune_network(net: nn.Module, example_inputs: torch.Tensor | tuple[torch.Tensor, ...], amount: float,
                  ignored_layers: list[nn.Module], round_to: int | None = None, *, name: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Remove channels from ``net`` in place until its FLOPs are at most ``1 - amount`` of what they were.

    Args:
        net: the network (its training/eval mode is kept).
        example_inputs: one input batch (or a tuple of the forward's arguments) to trace and count FLOPs on.
        amount: the share of FLOPs to remove, in (0, 0.95]: 0.5 halves them.
        ignored_layers: layers whose output channels must stay (their input channels may go).
        round_to: keep every layer's channel count a multiple of this (e.g. 8 for tensor cores).
        name: the model's name in error messages (default: its class name).

    Returns:
        JSON-safe ``{"flops_before", "flops_after", "params_before", "params_after", "flops_ratio",
        "channel_ratio", "steps", "seconds"}``; ``channel_ratio`` is the share of channels removed
        from each prunable layer.

    Raises:
        ConfigError: ``amount`` outside (0, 0.95].
        PixelmindError: torch-pruning cannot trace the model, left it inconsistent, or the target is out
            of reach with the layers that must stay (each one line naming the model). The network may
            then be partly pruned: prune a copy when the original matters.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3), torch.nn.ReLU(), torch.nn.Conv2d(32, 4, 3))
        >>> s = prune_network(net, torch.zeros(1, 3, 8, 8), 0.5, ignored_layers=[net[2]])
        >>> net[0].out_channels, round(s["flops_ratio"], 2)
        (15, 0.47)
    """
    amount = check_amount(amount)
    name = name or type(net).__name__
    inputs = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    was_training, t0 = net.training, time.perf_counter()
    schedule = [0.0] * (_MAX_STEPS + 1)
    pruner = _build_pruner(net, inputs, list(ignored_layers), round_to, schedule, name)
    flops0, params0 = _count(net, inputs, name)
    ratio, flops, params, steps, prunable = 0.0, flops0, params0, 0, 1.0
    target = 1 - amount
    while flops > target * flops0:
        if ratio >= MAX_CHANNEL_RATIO - 1e-9 or steps >= _MAX_STEPS:
            raise PixelmindError(f"{name}: pruning {MAX_CHANNEL_RATIO:.0%} of the channels leaves {flops / flops0:.0%} of the FLOPs; "
                                 f"--prune {amount:g} is out of reach with the layers that must keep their channels")  # fmt: skip
        steps += 1
        ratio = schedule[steps] = _next_ratio(ratio, target, prunable)
        try:
            with _quiet():
                pruner.step()
        except Exception as err:  # noqa: BLE001 - a dependency graph torch-pruning built wrongly fails anywhere
            raise _inconsistent(name, err) from None
        flops, params = _count(net, inputs, name)
        if flops < flops0:  # fit the prunable share only once channels actually went
            prunable = min(1.0, (1 - flops / flops0) / (1 - (1 - ratio) ** 2))
    net.train(was_training)
    return {"flops_before": flops0, "flops_after": flops, "params_before": params0, "params_after": params,
            "flops_ratio": flops / flops0, "channel_ratio": round(ratio, 4), "steps": steps,
            "seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip


def example_input(net: nn.Module, meta: Any) -> torch.Tensor:
    """A zero batch of one image as ``net`` takes it: the channels of its first convolution, ``meta.imgsz``
    rounded up to the network's stride (detect, segment).

    Example:
        >>> from pixelmind.tasks.base import Meta
        >>> example_input(torch.nn.Conv2d(1, 4, 3), Meta("enhance", "m", imgsz=30)).shape
        torch.Size([1, 1, 30, 30])
    """
    first = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    channels = first.in_channels if first is not None else meta.extra.get("channels", 3)
    stride = int(getattr(net, "pixelmind_stride", 1) or 1)
    size = -(-meta.imgsz // stride) * stride
    param = next(net.parameters(), None)
    return torch.zeros(1, channels, size, size, device=param.device if param is not None else "cpu")


def prune_model(model: Any, amount: float, round_to: int | None = None) -> tuple[nn.Module, Any, dict[str, Any]]:
    """A pruned copy of a loaded model's network, without fine-tuning; ``model`` keeps its own network.

    Returns:
        (the pruned network on the CPU, a copy of ``model.meta`` whose ``extra["pruned"]`` records the
        widths and the summary, the summary of :func:`prune_network` plus ``amount`` and ``source``).
        Saved with :func:`pixelmind.engine.checkpoint.save_weights`, the pair loads with ``Model.load``.

    Raises:
        ConfigError: a bad ``amount``; a task or model that cannot be pruned (one line with the reason).
        PixelmindError: torch-pruning cannot handle the network (one line naming the model).

    Example:
        >>> net, meta, s = prune_model(Model.load("best.safetensors"), 0.5)  # doctest: +SKIP
        >>> save_weights("pruned.safetensors", net.state_dict(), meta)      # doctest: +SKIP
    """
    from pixelmind.optimize.structure import combine, snapshot, structure_changes

    amount = check_amount(amount)
    task, meta = model.task, model.meta
    net = copy.deepcopy(model.net).cpu()
    ignored = task.prune_ignored_layers(net)  # refuses (one line) what the task cannot prune
    before = snapshot(net)
    summary = prune_network(net, example_input(net, meta), amount, ignored, round_to, name=meta.model)
    summary = {"amount": amount, **summary, "source": str(model.weights_path) if model.weights_path else None}
    pruned_meta = copy.deepcopy(meta)
    pruned_meta.extra.pop("qat", None)  # a resumed fine-tuning run must not fake-quantize
    # weights pruned before: the builder makes the unpruned network, so the record keeps both rounds
    pruned_meta.extra["pruned"] = {**combine(meta.extra.get("pruned"), structure_changes(before, net)), "summary": summary}
    return net, pruned_meta, summary


def _check_round_trip(task: Any, net: nn.Module, meta: Any, example: torch.Tensor) -> None:
    """A network rebuilt from the stored structure must compute what the pruned one does, before any training."""
    from pixelmind.config import TrainConfig
    from pixelmind.optimize.structure import build_network

    fresh = build_network(task, TrainConfig(task=meta.task, data="?"), meta)
    fresh.load_state_dict(net.state_dict())
    with torch.no_grad():
        a, b = net.eval()(example), fresh.eval()(example)
    pairs = zip(a, b) if isinstance(a, (tuple, list)) else [(a, b)]
    if not all(torch.equal(x, y) for x, y in pairs if torch.is_tensor(x)):
        raise PixelmindError(f"{meta.model}: the pruned widths could not be recorded faithfully; it cannot be pruned")


def finetune_pruned(model: Any, data: str | None, amount: float, epochs: int | None = None, console: Any = None,
                    round_to: int | None = None, **train_overrides: Any) -> tuple[dict[str, float], Path, dict[str, Any]]:  # fmt: skip
    """Prune a trained model to ``1 - amount`` of its FLOPs and fine-tune it with its own recipe.

    The run is an ordinary training run (``runs/<task>/<original run>-pruned<percent>``: report.md,
    results.csv, weights/best.safetensors and last.safetensors, resumable with ``pixelmind train --resume``);
    its weights record the pruned widths, so ``Model.load`` rebuilds the pruned network. ``model`` itself
    is left as it was.

    Args:
        model: a :class:`~pixelmind.api.Model` loaded from pixelmind ``.safetensors`` weights.
        data: the data to fine-tune on (default: the data the weights were trained on).
        amount: the share of FLOPs to remove, in (0, 0.95].
        epochs: fine-tuning epochs (default: half of the original run's, at least one).
        round_to: keep channel counts multiples of this.
        **train_overrides: any :class:`~pixelmind.config.TrainConfig` field (``lr``, ``project``, ``name``,
            ``teacher`` ...); the default lr is :data:`LR_SHARE` of the original recipe's.

    Returns:
        (the fine-tuned best weights' validation metrics, the run directory, the pruning summary of
        :func:`prune_network` plus ``amount`` and ``source``).

    Raises:
        ConfigError: a bad ``amount``, a task or model that cannot be pruned (one line with the reason).
        PixelmindError: torch-pruning cannot handle the network (one line naming the model).

    Example:
        >>> from pixelmind import Model  # doctest: +SKIP
        >>> metrics, run_dir, s = finetune_pruned(Model.load("runs/classify/exp/weights/best.safetensors"), None, 0.5)  # doctest: +SKIP
        >>> run_dir.name, round(s["flops_ratio"], 2)  # doctest: +SKIP
        ('exp-pruned50', 0.49)
    """
    from pixelmind.export.onnx import is_exported
    from pixelmind.optimize.finetune import finetune, finetune_config

    amount = check_amount(amount)
    if is_exported(model._require_net()):
        raise PixelmindError(f"{model.weights_path}: pruning needs PyTorch weights (.safetensors), not an exported model")
    data = data or model.config.get("data")
    if not data:
        raise ConfigError("data: give --data (the weights do not name their training data)")
    config = finetune_config(model, data, f"pruned{round(amount * 100)}", epochs, EPOCH_DIVISOR, LR_SHARE, train_overrides)
    net, meta, summary = prune_model(model, amount, round_to)
    _check_round_trip(model.task, net, meta, example_input(net, meta))
    (console.print if console is not None else print)(
        f"pruned {meta.model}: FLOPs {summary['flops_before']:,} -> {summary['flops_after']:,} ({summary['flops_ratio']:.3f}x), "
        f"parameters {summary['params_before']:,} -> {summary['params_after']:,}; fine-tuning for {config['epochs']} epoch(s)"
    )  # fmt: skip
    metrics, run_dir = finetune(net, meta, config, console)
    return metrics, run_dir, summary
