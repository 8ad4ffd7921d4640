"""Where a model lives.

Example:
    >>> import torch
    >>> model_device(torch.nn.Linear(1, 1)).type
    'cpu'
"""

from __future__ import annotations

import torch


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter; CPU for parameter-free modules (e.g. ONNX sessions)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
