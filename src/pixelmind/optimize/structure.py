"""The architecture of a pruned network, kept in its self-describing weights file.

Structured pruning changes layer widths, so the registered builder alone no longer makes a network
that the pruned weights fit. What pruning changed is stored, JSON-safe, in ``meta.extra["pruned"]``:
per module name the changed attributes (``in_channels``, ``out_channels``, ``groups``, ``num_features``,
``in_features``, ``normalized_shape`` ...) and the new shapes of its own parameters and buffers.
:func:`build_network` is the one place that makes a network from a :class:`~pixelmind.tasks.base.Meta`
(``Model.load``, ``train --resume``): the task's builder, then :func:`apply_structure`.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1))
    >>> before = snapshot(net)
    >>> net[0] = nn.Conv2d(3, 5, 3); net[1] = nn.BatchNorm2d(5); net[2] = nn.Conv2d(5, 4, 1)  # as pruning would
    >>> structure = structure_changes(before, net)
    >>> sorted(structure["modules"]), structure["modules"]["0"]["attrs"]
    (['0', '1', '2'], {'out_channels': 5})
    >>> fresh = apply_structure(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1)), structure)
    >>> fresh.load_state_dict(net.state_dict())
    <All keys matched successfully>
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from pixelmind.errors import WeightsError

#: the version of the stored layout; a file with another one is refused rather than misread
FORMAT = 1

#: the width attributes torch-pruning may change (torch's layer types and timm's, which reuse these names)
WIDTH_ATTRS = (
    "in_channels", "out_channels", "groups",   # Conv*d, ConvTranspose*d
    "num_features",                            # BatchNorm*d (and timm's BatchNormAct2d)
    "in_features", "out_features",             # Linear
    "normalized_shape",                        # LayerNorm (and timm's LayerNorm2d)
    "num_channels", "num_groups",              # GroupNorm
    "num_parameters",                          # PReLU
    "embedding_dim",                           # Embedding
    "embed_dim", "kdim", "vdim", "head_dim", "num_heads",  # MultiheadAttention
)  # fmt: skip

__all__ = ["FORMAT", "apply_structure", "build_network", "combine", "pruned_summary", "snapshot", "structure_changes"]


def _width_value(value: Any) -> int | list[int] | None:
    """An attribute as JSON (an int or a list of ints), or None for anything else (not a width)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    return None


def _describe(module: nn.Module) -> dict[str, dict[str, Any]]:
    attrs = {a: v for a in WIDTH_ATTRS if (v := _width_value(getattr(module, a, None))) is not None}
    params = {n: list(p.shape) for n, p in module._parameters.items() if p is not None}
    buffers = {n: list(b.shape) for n, b in module._buffers.items() if b is not None}
    return {"attrs": attrs, "params": params, "buffers": buffers}


def snapshot(net: nn.Module) -> dict[str, dict[str, dict[str, Any]]]:
    """Widths and tensor shapes of every module of ``net``, by module name (the root is ``""``).

    Taken before pruning, it is what :func:`structure_changes` compares the pruned network with.
    """
    return {name: _describe(m) for name, m in net.named_modules()}


def structure_changes(before: dict[str, dict[str, dict[str, Any]]], net: nn.Module) -> dict[str, Any]:
    """What differs between the :func:`snapshot` ``before`` and ``net`` now: the JSON for ``meta.extra["pruned"]``.

    Only changed entries are kept, so the record stays small for large networks.

    Raises:
        ValueError: pruning added or removed modules (structured pruning only narrows them).
    """
    now = snapshot(net)
    if now.keys() != before.keys():
        raise ValueError(f"modules changed: {sorted(set(now) ^ set(before))[:5]} (structured pruning only narrows layers)")
    modules: dict[str, dict[str, dict[str, Any]]] = {}
    for name, entry in now.items():
        changed = {kind: {k: v for k, v in values.items() if before[name][kind].get(k) != v} for kind, values in entry.items()}
        changed = {kind: values for kind, values in changed.items() if values}
        if changed:
            modules[name] = changed
    return {"format": FORMAT, "modules": modules}


def combine(previous: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    """The structure of a network pruned again: ``changes`` (against the pruned network) over ``previous``.

    Entries hold absolute widths and shapes, so the later value of each one wins.

    Example:
        >>> a = {"format": 1, "modules": {"0": {"attrs": {"out_channels": 6}}, "1": {"attrs": {"num_features": 6}}}}
        >>> combine(a, {"format": 1, "modules": {"0": {"attrs": {"out_channels": 4}}}})["modules"]["0"]["attrs"]
        {'out_channels': 4}
    """
    modules = copy.deepcopy((previous or {}).get("modules", {}))
    for name, entry in changes["modules"].items():
        into = modules.setdefault(name, {})
        for kind, values in entry.items():
            into.setdefault(kind, {}).update(values)
    return {"format": FORMAT, "modules": modules}


def apply_structure(net: nn.Module, structure: dict[str, Any]) -> nn.Module:
    """Narrow a freshly built (unpruned) ``net`` in place to ``structure`` so that the pruned weights load into it.

    Attributes are set and the changed parameters and buffers replaced by zero tensors of the stored
    shapes (same dtype, device and ``requires_grad``); ``load_state_dict`` then fills them.

    Raises:
        WeightsError: the structure is of another format or names what ``net`` does not have.

    Example:
        >>> net = apply_structure(nn.Linear(8, 2), {"format": 1, "modules": {"": {"attrs": {"in_features": 5},
        ...     "params": {"weight": [2, 5]}}}})
        >>> net.in_features, tuple(net.weight.shape)
        (5, (2, 5))
    """
    if not isinstance(structure, dict) or structure.get("format") != FORMAT:
        found = structure.get("format") if isinstance(structure, dict) else type(structure).__name__
        raise WeightsError(f"pruned structure: format {found!r}, this pixelmind reads format {FORMAT}")
    modules = dict(net.named_modules())
    for name, entry in structure.get("modules", {}).items():
        module = modules.get(name)
        if module is None:
            raise WeightsError(f"pruned structure: names module {name!r}, which {type(net).__name__} does not have")
        for attr, value in entry.get("attrs", {}).items():
            setattr(module, attr, tuple(value) if isinstance(value, list) else value)
        for kind, table in (("params", module._parameters), ("buffers", module._buffers)):
            for tname, shape in entry.get(kind, {}).items():
                old = table.get(tname)
                if old is None:
                    raise WeightsError(f"pruned structure: module {name!r} has no {kind[:-1]} {tname!r}")
                new = torch.zeros(shape, dtype=old.dtype, device=old.device)
                table[tname] = nn.Parameter(new, requires_grad=old.requires_grad) if kind == "params" else new
    return net


def build_network(task: Any, cfg: Any, meta: Any) -> nn.Module:
    """The task's network for ``meta``, narrowed to the pruned structure the weights record (if any).

    Example:
        >>> from pixelmind.config import TrainConfig
        >>> from pixelmind.tasks import get_task
        >>> from pixelmind.tasks.base import Meta
        >>> meta = Meta("classify", "pm_cnn_t", ["a", "b"], 16)
        >>> meta.extra["pruned"] = {"format": 1, "modules": {"head.3": {"attrs": {"in_features": 20},
        ...     "params": {"weight": [2, 20]}}}}
        >>> build_network(get_task("classify"), TrainConfig(data="digits"), meta).head[3].in_features
        20
    """
    net = task.build_model(cfg, meta)
    structure = meta.extra.get("pruned")
    return apply_structure(net, structure) if structure else net


def pruned_summary(meta: Any) -> str | None:
    """One line saying how the weights' network was pruned (for the run report), or None if it was not."""
    structure = meta.extra.get("pruned")
    if not structure:
        return None
    s = structure.get("summary", {})
    if not s:
        return f"{len(structure.get('modules', {}))} layers narrowed"
    return (f"{s.get('amount', 0):.0%} of the FLOPs removed by channel pruning: FLOPs {s['flops_before']:,} -> "
            f"{s['flops_after']:,} ({s['flops_ratio']:.3f}x), parameters {s['params_before']:,} -> {s['params_after']:,}"
            + (f", from {s['source']}" if s.get("source") else ""))  # fmt: skip
