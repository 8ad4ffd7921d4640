"""The teacher of a distillation run (``train --teacher W``): checked against the student, loaded frozen.

Task-agnostic: the engine checks what every task shares (a pixelmind weights file, the same task,
the same classes and preprocessing), the task's ``check_teacher`` what only it knows (a model
family without a distillation loss, another super-resolution scale), and the task's
``distillation_step`` uses the teacher. Every refusal is one line that names the file.

Example:
    >>> from pixelmind.tasks import get_task
    >>> from pixelmind.tasks.base import Meta
    >>> cfg = TrainConfig(task="classify", data="digits", teacher="missing.safetensors")
    >>> load_teacher(get_task("classify"), cfg, Meta("classify", "pm_cnn_t"))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    pixelmind.errors.WeightsError: teacher: missing.safetensors: weights file not found
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pixelmind.config import TrainConfig  # noqa: F401 - used by the example
from pixelmind.engine import checkpoint as ckpt
from pixelmind.errors import ConfigError, WeightsError
from pixelmind.tasks.base import Meta, Task

#: files that hold an exported network: no autograd-friendly PyTorch module, no Meta to check
EXPORTED_SUFFIXES = (".onnx", ".torchscript", ".ts", ".pt2")

__all__ = ["check_teacher_meta", "load_teacher", "read_teacher_meta"]


def read_teacher_meta(path: str | Path) -> Meta:
    """The :class:`Meta` of a teacher weights file, read from its metadata alone (no tensors loaded).

    Raises:
        ConfigError: an exported model (``.onnx``, ``.torchscript``).
        WeightsError: a missing file, or one that is not pixelmind weights.
    """
    path = Path(path)
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        raise ConfigError(
            f"teacher: {path} is an exported model; distillation needs the PyTorch weights (.safetensors) it came from"
        )
    if not path.is_file():
        raise WeightsError(f"teacher: {path}: weights file not found")
    try:
        metadata = ckpt.read_metadata(path)
    except WeightsError as err:
        raise WeightsError(f"teacher: {err}") from None
    if metadata.get("format") != ckpt.FORMAT or "meta" not in metadata:
        raise WeightsError(
            f"teacher: {path}: not pixelmind weights (a safetensors file without pixelmind metadata)"
        )
    try:
        return Meta.from_json(metadata["meta"])
    except (ValueError, TypeError) as err:
        raise WeightsError(f"teacher: {path}: corrupt metadata ({str(err)[:120]})") from None


def _names(names: list[str], most: int = 6) -> str:
    shown = ", ".join(names[:most]) + (f", ... ({len(names)} in all)" if len(names) > most else "")
    return f"[{shown}]"


def check_teacher_meta(task: Task, meta: Meta, teacher_meta: Meta, path: str | Path) -> None:
    """Refuse a teacher whose outputs do not correspond to the student's; one line naming ``path``.

    Checked in this order: the task, what the task refuses (:meth:`Task.check_teacher`), the
    classes (same names, same order: logit ``i`` must mean the same class in both), the input
    normalisation, and for fixed-size tasks the image size.
    """
    if teacher_meta.task != task.name:
        raise ConfigError(
            f"teacher: {path} holds a {teacher_meta.task} model; a {task.name} student needs a {task.name} teacher"
        )
    try:
        task.check_teacher(meta, teacher_meta)
    except ConfigError as err:  # the task does not know the file: name it here
        raise ConfigError(f"teacher: {path}: {str(err).removeprefix('teacher: ')}") from None
    if list(teacher_meta.class_names) != list(meta.class_names):
        raise ConfigError(f"teacher: {path} was trained on classes {_names(teacher_meta.class_names)}, this data has "
                          f"{_names(meta.class_names)}; the teacher needs the same classes in the same order")  # fmt: skip
    if tuple(teacher_meta.mean) != tuple(meta.mean) or tuple(teacher_meta.std) != tuple(meta.std):
        raise ConfigError(f"teacher: {path} normalises images with mean {teacher_meta.mean} std {teacher_meta.std}, "
                          f"the student with mean {meta.mean} std {meta.std}; both see the same input tensors")  # fmt: skip
    if teacher_meta.imgsz != meta.imgsz and not task.dynamic_image_size:
        raise ConfigError(f"teacher: {path} was trained at imgsz {teacher_meta.imgsz}, the student at {meta.imgsz}; "
                          f"{task.name} models take one input size (train the student with --imgsz {teacher_meta.imgsz})")  # fmt: skip


def load_teacher(task: Task, cfg: Any, meta: Meta) -> tuple[torch.nn.Module, Meta]:
    """The checked, frozen teacher network of ``cfg.teacher`` (eval mode, no gradients, on the CPU) and its Meta.

    The engine moves it to the training device; it never reaches an optimizer or a checkpoint.

    Raises:
        ConfigError, WeightsError: one line naming the file (see :func:`check_teacher_meta`).
    """
    from pixelmind.api import Model

    path = Path(cfg.teacher)
    teacher_meta = read_teacher_meta(path)
    check_teacher_meta(task, meta, teacher_meta, path)
    try:
        net = Model.load(path).net
    except WeightsError as err:
        raise WeightsError(f"teacher: {err}") from None
    net.eval().requires_grad_(False)
    return net, teacher_meta
