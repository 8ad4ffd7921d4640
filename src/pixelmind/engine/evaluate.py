"""One validation pass, shared by training, ``Model.val`` and tasks' ``finalize`` hooks.

Example:
    >>> from pixelmind.tasks import get_task  # doctest: +SKIP
    >>> run_validation(task, model, task.evaluator(meta), loader, device).compute()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch


def run_validation(task: Any, model: torch.nn.Module, evaluator: Any, loader: Any, device: torch.device,
                   skipped: dict[str, str] | None = None) -> Any:  # fmt: skip
    """Feed every batch of ``loader`` through ``task.validation_step`` into ``evaluator``.

    ``loader`` yields ``(batch, bad_samples)`` (see :class:`~pixelmind.data.datasets.SkipBadCollate`);
    unreadable files are recorded in ``skipped`` (path -> reason). Returns the evaluator.
    """
    from accelerate.utils import send_to_device

    model.eval()
    with torch.inference_mode():
        for batch, bad in loader:
            if skipped is not None:
                skipped.update({b.path: b.reason for b in bad})
            if batch is None:
                continue
            preds, targets = task.validation_step(model, send_to_device(batch, device))
            evaluator.update(preds, targets)
    return evaluator
