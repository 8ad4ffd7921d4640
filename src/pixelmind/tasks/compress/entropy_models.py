"""Entropy models: the learned factorized density (Ballé 2018) and the conditional Gaussian.

Each model gives likelihoods for training (the rate term) and, after training,
integer frequency tables (:meth:`update_tables`) stored as buffers in the weights file, so that
the encoder and every decoder code with identical tables.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixelmind.tasks.compress import entropy

#: probability mass left outside a table's range (coded through the escape symbol)
TAIL_MASS = 1e-9
LIKELIHOOD_MIN = 1e-9
#: the factorized density covers symbols in [-FACTORIZED_RANGE, FACTORIZED_RANGE]; the rest escape
FACTORIZED_RANGE = 64
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64


def quantize(x: torch.Tensor, mode: str, offset: torch.Tensor | None = None) -> torch.Tensor:
    """``noise``: x + U(-0.5, 0.5) (training proxy); ``ste``: rounding with a straight-through gradient;
    ``round``: plain rounding. ``offset`` (e.g. a predicted mean) is subtracted before and added after."""
    if offset is not None:
        return quantize(x - offset, mode) + offset
    if mode == "noise":
        return x + torch.empty_like(x).uniform_(-0.5, 0.5)
    if mode == "ste":
        return x + (torch.round(x) - x).detach()
    return torch.round(x)


class FactorizedDensity(nn.Module):
    """A learned, channel-wise density for latents with no side information (the "entropy bottleneck").

    Each channel's cumulative function is a small monotone network ``R -> (0, 1)``
    (Ballé et al. 2018, appendix 6.1); the likelihood of a quantized value ``v`` is
    ``c(v + 0.5) - c(v - 0.5)``.

    Example:
        >>> density = FactorizedDensity(4)
        >>> lik = density(torch.randn(2, 4, 3, 3).round())
        >>> lik.shape, bool((lik > 0).all() and (lik <= 1).all())
        (torch.Size([2, 4, 3, 3]), True)
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(dims) - 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))
        self.channels = channels
        width = 2 * FACTORIZED_RANGE + 2  # symbols -R..R and the escape
        self.register_buffer("counts", torch.zeros(channels, width, dtype=torch.int32))
        self.register_buffer("lengths", torch.zeros(channels, dtype=torch.int32))
        self.register_buffer("offsets", torch.zeros(channels, dtype=torch.int32))

    def _logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """``x [C, 1, N]`` -> logits of each channel's cumulative function at ``x``."""
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """Likelihoods of quantized (or noisy) ``values [B, C, H, W]``."""
        b, c, h, w = values.shape
        x = values.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower, upper = self._logits_cdf(x - 0.5), self._logits_cdf(x + 0.5)
        # evaluate on the side of the median where the sigmoids are not both near 1 (precision)
        sign = -torch.sign(lower + upper).detach()
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return lik.clamp_min(LIKELIHOOD_MIN).reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def update_tables(self) -> None:
        """Fix integer tables: each channel's pmf over [-R, R] (R from its tails, at most FACTORIZED_RANGE) + escape."""
        grid = torch.arange(-FACTORIZED_RANGE, FACTORIZED_RANGE + 1, dtype=torch.float32, device=self.counts.device)
        values = grid.view(1, 1, -1, 1).expand(1, self.channels, -1, 1)
        pmf = self(values)[0, :, :, 0].double().cpu().numpy()  # [C, 2R+1]
        pmfs, offsets = [], []
        for row in pmf:
            inside = np.nonzero(row > TAIL_MASS)[0]
            lo, hi = (inside[0], inside[-1]) if len(inside) else (FACTORIZED_RANGE, FACTORIZED_RANGE)
            part = row[lo : hi + 1]
            pmfs.append(np.append(part, max(1.0 - part.sum(), TAIL_MASS)))
            offsets.append(int(lo) - FACTORIZED_RANGE)
        _store_tables(self, pmfs, offsets)

    def table_index(self, shape: torch.Size) -> np.ndarray:
        """Per-symbol table (= channel) index for latents of ``shape [B, C, H, W]``."""
        return np.broadcast_to(np.arange(shape[1], dtype=np.int32)[None, :, None, None], tuple(shape))


class GaussianConditional(nn.Module):
    """Latents coded with a Gaussian of predicted scale (and mean), convolved with a unit box.

    For coding, the predicted scale selects one of ``SCALE_LEVELS`` log-spaced tables
    (the smallest table scale not below it).

    Example:
        >>> gc = GaussianConditional()
        >>> y = torch.tensor([[[[0.0, 3.0]]]])
        >>> lik = gc(y, torch.tensor([[[[1.0, 1.0]]]]))
        >>> bool(lik[0, 0, 0, 0] > lik[0, 0, 0, 1])
        True
    """

    def __init__(self) -> None:
        super().__init__()
        table = torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS))
        self.register_buffer("scale_table", table)
        width = 2 * _tail_range(SCALE_MAX) + 2
        self.register_buffer("counts", torch.zeros(SCALE_LEVELS, width, dtype=torch.int32))
        self.register_buffer("lengths", torch.zeros(SCALE_LEVELS, dtype=torch.int32))
        self.register_buffer("offsets", torch.zeros(SCALE_LEVELS, dtype=torch.int32))

    def forward(self, values: torch.Tensor, scales: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
        """Likelihoods of quantized (or noisy) ``values`` under N(means, scales) * U(-0.5, 0.5)."""
        centred = torch.abs(values - means if means is not None else values)
        scales = scales.clamp_min(SCALE_MIN)
        upper = _std_normal_cdf((0.5 - centred) / scales)
        lower = _std_normal_cdf((-0.5 - centred) / scales)
        return (upper - lower).clamp_min(LIKELIHOOD_MIN)

    @torch.no_grad()
    def update_tables(self) -> None:
        """Fix one integer table per table scale: the discretised Gaussian over [-R, R] + escape."""
        pmfs, offsets = [], []
        for s in self.scale_table.double().cpu().tolist():
            r = _tail_range(s)
            grid = torch.arange(-r, r + 1, dtype=torch.float64)
            pmf = (_std_normal_cdf((grid + 0.5) / s) - _std_normal_cdf((grid - 0.5) / s)).numpy()
            pmfs.append(np.append(pmf, max(1.0 - pmf.sum(), TAIL_MASS)))
            offsets.append(-r)
        _store_tables(self, pmfs, offsets)

    def table_index(self, scales: torch.Tensor) -> np.ndarray:
        """The table for each predicted scale: the smallest table scale >= it (or the largest).

        ``scales`` must come from :func:`~pixelmind.tasks.compress.layers.exact_forward` (float64,
        exact) so that encoder and decoder choose the same tables.
        """
        table = self.scale_table.to("cpu", torch.float64)
        index = torch.searchsorted(table[:-1].contiguous(), scales.to("cpu", torch.float64).contiguous(), right=False)
        return index.to(torch.int32).numpy()


def _tail_range(scale: float) -> int:
    """Half-width of the table of a Gaussian of ``scale``: beyond it lies at most TAIL_MASS."""
    return max(1, math.ceil(scale * -_inverse_std_normal_cdf(TAIL_MASS / 2)))


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2**-0.5))


def _inverse_std_normal_cdf(p: float) -> float:
    return math.sqrt(2) * float(torch.erfinv(torch.tensor(2 * p - 1, dtype=torch.float64)))


def _store_tables(module: nn.Module, pmfs: list[np.ndarray], offsets: list[int]) -> None:
    counts, lengths, offs = entropy.build_tables(pmfs, offsets)
    if counts.shape[1] > module.counts.shape[1]:
        raise ValueError(f"tables of width {counts.shape[1]} do not fit the buffer of width {module.counts.shape[1]}")
    module.counts.zero_()
    module.counts[:, : counts.shape[1]] = torch.from_numpy(counts.astype(np.int32))
    module.lengths.copy_(torch.from_numpy(lengths.astype(np.int32)))
    module.offsets.copy_(torch.from_numpy(offs.astype(np.int32)))


def tables_of(module: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The module's integer tables as numpy (counts, lengths, offsets) for :mod:`entropy`."""
    if int(module.lengths.sum()) == 0:
        from pixelmind.errors import WeightsError

        raise WeightsError("these weights hold no entropy-coding tables (a training checkpoint? use best.safetensors)")
    return module.counts.cpu().numpy(), module.lengths.cpu().numpy(), module.offsets.cpu().numpy()
