"""Fine-tuning a changed network (pruned, fake-quantized) with the recipe stored in its original weights.

The run is an ordinary training run through :meth:`~pixelmind.api.Model.train` (run directory,
report, ``best.safetensors``, ``train --resume``), named after the original run with a suffix
(``exp-pruned50``, ``exp-qat``), with fewer epochs and a lower learning rate than the original.

Example:
    >>> config = finetune_config(model, "digits", "qat", None, epoch_divisor=4, lr_share=0.1, overrides={})  # doctest: +SKIP
    >>> metrics, run_dir = finetune(net, meta, config)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from pixelmind.errors import ConfigError


def finetune_config(model: Any, data: str, suffix: str, epochs: int | None, epoch_divisor: int, lr_share: float,
                    overrides: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The original run's config for the fine-tuning run: ``epochs`` (default the original's // ``epoch_divisor``),
    ``lr_share`` of its learning rate, a run name of its own; ``overrides`` (TrainConfig fields) win.

    Raises:
        ConfigError: the weights hold no training config, or ``seed`` / ``val_fraction`` would change the split.
    """
    base = dict(model.config)
    if not base:
        raise ConfigError(f"{model.weights_path}: holds no training config to fine-tune with (use pixelmind weights, not an export)")
    original_epochs = int(base.get("epochs") or 3)
    path = model.weights_path
    source = path.parent.parent.name if path and path.parent.name == "weights" else None
    base.update(
        data=data, weights=None, pretrained=False, teacher=None, exist_ok=False,
        epochs=epochs or max(1, original_epochs // epoch_divisor),
        lr=(base.get("lr") or model.task.defaults.get("lr", 1e-3)) * lr_share,
        name=f"{source or base.get('name') or 'exp'}-{suffix}",
    )  # fmt: skip
    for key in ("seed", "val_fraction"):  # they choose the train/val split: another one would validate on trained-on images
        if overrides.get(key) is not None and overrides[key] != base.get(key):
            raise ConfigError(f"{key}: fine-tuning keeps the original run's {key} ({base.get(key)!r}), which chose its train/val split")
    base.update({k: v for k, v in overrides.items() if v is not None})
    return base


def finetune(net: nn.Module, meta: Any, config: dict[str, Any], console: Any = None) -> tuple[dict[str, float], Path]:
    """Train ``net`` (described by ``meta``) with ``config`` (:func:`finetune_config`); returns (best metrics, run directory)."""
    from pixelmind.api import Model

    runner = Model(meta.model, task=meta.task)
    metrics = runner.train(config=config, console=console, _network=(net.train(), meta))
    return metrics, runner.run_dir
