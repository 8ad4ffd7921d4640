"""What an optimize report compares: parameters, FLOPs, file size and onnxruntime latency.

Example:
    >>> import torch
    >>> net = torch.nn.Conv2d(3, 8, 3, padding=1)
    >>> count_flops(net, torch.zeros(1, 3, 8, 8))  # 2 * MACs: 8*8 positions x 8 out x 27 in
    27648
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch


def count_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def count_flops(net: torch.nn.Module, example: torch.Tensor) -> int:
    """FLOPs (2 x multiply-accumulates) of one forward pass on ``example``, by torch's own counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net.eval()(example)
    return int(counter.get_total_flops())


def latency_ms(run, shape: tuple[int, ...], repeat: int = 50, warmup: int = 5, budget_s: float = 20.0) -> float:
    """Median milliseconds of ``run(x)`` on a seeded random float32 array ``x`` of ``shape``.

    Stops early after ``budget_s`` seconds of timing (large models at batch 16), keeping at least 5 runs.

    Example:
        >>> latency_ms(lambda x: x.sum(), (1, 3, 8, 8), repeat=5) > 0
        True
    """
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(warmup):
        run(x)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeat and (len(times) < 5 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def ort_latency_ms(path: str | Path, shape: tuple[int, ...], threads: int | None = None, **timing) -> float:
    """:func:`latency_ms` of one onnxruntime call (CPU provider) of the ONNX file ``path``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return latency_ms(lambda x: session.run(None, {name: x}), shape, **timing)


def torch_latency_ms(module: torch.nn.Module, shape: tuple[int, ...], **timing) -> float:
    """:func:`latency_ms` of one PyTorch CPU forward of ``module`` (a warm-up call compiles a compiled one)."""
    with torch.inference_mode():
        return latency_ms(lambda x: module(torch.from_numpy(x)), shape, **timing)
