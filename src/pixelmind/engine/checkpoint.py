"""Self-describing safetensors weights and atomic training checkpoints.

A weights file holds the model tensors and, in its metadata, the task's :class:`Meta`
(task, model, classes, preprocessing), the training config and the package version, so it
needs nothing else to be used. ``last.safetensors`` also carries the training state
(optimizer, scheduler, EMA, epoch, RNG) under ``__train__.``/``__ema__.`` keys, so one
atomic rename keeps weights and state consistent when a run is killed.

Example:
    >>> import torch, tempfile, os
    >>> from pixelmind.tasks.base import Meta
    >>> p = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> save_weights(p, {"w": torch.ones(2)}, Meta(task="classify", model="m", class_names=["a"]))
    >>> state, meta, _ = load_weights(p)
    >>> meta.class_names, state["w"].tolist()
    (['a'], [1.0, 1.0])
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from pixelmind.errors import WeightsError
from pixelmind.tasks.base import Meta

FORMAT = "pixelmind-weights-1"
TRAIN_PREFIX = "__train__."
EMA_PREFIX = "__ema__."


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; clone makes each tensor its own.
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def save_weights(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    meta: Meta,
    config: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> None:
    """Write model weights (plus optional extra tensors) with self-describing metadata, atomically."""
    from pixelmind import __version__

    metadata = {"format": FORMAT, "pixelmind_version": __version__, "meta": meta.to_json()}
    if config is not None:
        metadata["config"] = json.dumps(config)
    metadata.update(extra_metadata or {})
    tensors = _plain(state_dict)
    tensors.update(_plain(extra_tensors or {}))
    _atomic_save(tensors, metadata, Path(path))


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except Exception as err:  # noqa: BLE001
        raise WeightsError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0][:120]})") from None


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], Meta, dict[str, str]]:
    """Read a pixelmind weights file: (model state dict, Meta, raw metadata); training keys are left out.

    Raises:
        WeightsError: missing, corrupt, or not written by pixelmind.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    metadata = read_metadata(path)
    if metadata.get("format") != FORMAT or "meta" not in metadata:
        raise WeightsError(f"{path}: safetensors file without pixelmind metadata (use --weights with train to fine-tune from it)")
    try:
        tensors = load_file(str(path))
        meta = Meta.from_json(metadata["meta"])
    except Exception as err:  # noqa: BLE001
        raise WeightsError(f"{path}: corrupt weights file ({str(err).splitlines()[0][:120]})") from None
    state = {k: v for k, v in tensors.items() if not k.startswith((TRAIN_PREFIX, EMA_PREFIX))}
    return state, meta, metadata


def load_train_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The training state stored in ``last.safetensors``: (tensors by key, JSON state)."""
    from safetensors.torch import load_file

    metadata = read_metadata(path)
    if "train_state" not in metadata:
        raise WeightsError(f"{path}: holds no training state; resume from a run's weights/last.safetensors")
    tensors = load_file(str(path))
    return {k: v for k, v in tensors.items() if k.startswith((TRAIN_PREFIX, EMA_PREFIX))}, json.loads(metadata["train_state"])


def flatten_optimizer(prefix: str, state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and plain JSON."""
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, pstate in state["state"].items():
        plain["state"][str(pid)] = {}
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}{pid}.{key}"] = value
                plain["state"][str(pid)][key] = "__tensor__"
            else:
                plain["state"][str(pid)][key] = value
    return tensors, plain


def unflatten_optimizer(prefix: str, tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state = {}
    for pid, pstate in plain["state"].items():
        state[int(pid)] = {k: (tensors[f"{prefix}{pid}.{k}"] if v == "__tensor__" else v) for k, v in pstate.items()}
    return {"state": state, "param_groups": plain["param_groups"]}


def load_state_into(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Load local weights (pixelmind/any safetensors, or a .pth read with weights_only) into ``model``.

    Tensors whose shape differs (e.g. a head for another class count) are skipped and named in
    the returned messages, so fine-tuning from other weights works.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            for key in ("state_dict", "model", "model_state_dict"):
                if isinstance(state, dict) and isinstance(state.get(key), dict):
                    state = state[key]
    except Exception as err:  # noqa: BLE001
        raise WeightsError(f"{path}: cannot read weights ({str(err).splitlines()[0][:160]})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v) and not k.startswith("__")}
    own = model.state_dict()
    reshaped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    usable = {k: v for k, v in state.items() if k in own and k not in reshaped}
    if not usable:
        raise WeightsError(f"{path}: no tensor matches this model (is it for another architecture?)")
    model.load_state_dict(usable, strict=False)
    messages = [f"loaded {len(usable)}/{len(own)} tensors from {path} (sha256 {sha256_file(path)[:16]})"]
    if reshaped:
        messages.append(f"re-initialised {len(reshaped)} tensors with another shape (e.g. the head): {', '.join(reshaped[:4])}")
    missing = [k for k in own if k not in usable and k not in reshaped]
    if missing:
        messages.append(f"{len(missing)} model tensors not in the file keep their initial values")
    return messages
