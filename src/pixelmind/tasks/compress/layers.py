"""Building blocks of learned codecs: GDN, strided convolutions, and an exact integer runner.

The integer runner (:func:`exact_forward`) evaluates a small conv/deconv/ReLU stack in fixed
point so that its output is *the same number on every machine*: the decoder uses it to choose
entropy-coding tables, and one flipped table index would desynchronise the whole bitstream.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: fixed-point fraction bits of the integer runner: weights and activations
WEIGHT_BITS, ACT_BITS = 12, 8
#: activations are clamped to this magnitude (in real units) so every partial sum stays below 2^53
ACT_LIMIT = 2.0**12


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A 'same' convolution that downsamples by ``stride``."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that upsamples by exactly ``stride``."""
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al. 2016): ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``.

    ``inverse=True`` gives IGDN (multiply instead of divide), used in synthesis transforms.
    beta and gamma are kept non-negative by squaring their parameters.

    Example:
        >>> GDN(8)(torch.randn(1, 8, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1) -> None:
        super().__init__()
        self.inverse, self.beta_min = inverse, beta_min
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta**2 + self.beta_min
        gamma = (self.gamma**2)[:, :, None, None]
        norm = torch.sqrt(F.conv2d(x * x, gamma, beta))
        return x * norm if self.inverse else x / norm


def _fixed(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``x`` in fixed point with ``bits`` fraction bits, as integer-valued float64 (exact: scaling by 2^k is exact)."""
    return torch.round(x.detach().to("cpu", torch.float64) * 2.0**bits)


def exact_forward(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a stack of Conv2d / ConvTranspose2d / ReLU in fixed-point arithmetic, identical on every machine.

    Weights are rounded to ``WEIGHT_BITS`` and activations to ``ACT_BITS`` fraction bits; the
    arithmetic is float64 on integer values below 2^53, where every sum is exact whatever the
    order, the thread count or the BLAS, and rescaling uses floor division by powers of two.
    It runs on the CPU (GPU convolution algorithms may not sum exactly). ``x`` must hold
    integers or multiples of 2^-ACT_BITS (e.g. a quantized latent).

    Returns:
        float64 CPU tensor of the stack's output in real units (multiples of 2^-ACT_BITS).

    Example:
        >>> stack = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU())
        >>> z = torch.randint(-3, 4, (1, 2, 5, 5)).float()
        >>> out = exact_forward(stack, z)
        >>> bool(torch.equal(out, exact_forward(stack, z.clone())))
        True
        >>> float((out - stack(z).double()).abs().max()) < 0.05
        True
    """
    act = _fixed(x, ACT_BITS)
    limit = ACT_LIMIT * 2.0**ACT_BITS
    for layer in layers:
        if isinstance(layer, nn.ReLU):
            act = act.clamp_min(0)
            continue
        if not isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            raise TypeError(f"exact_forward supports Conv2d, ConvTranspose2d and ReLU, not {type(layer).__name__}")
        weight = _fixed(layer.weight, WEIGHT_BITS)
        bias = _fixed(layer.bias, WEIGHT_BITS + ACT_BITS) if layer.bias is not None else None
        fan_in = layer.weight[0].numel() if isinstance(layer, nn.Conv2d) else layer.weight[:, 0].numel()
        if float(weight.abs().max()) * fan_in * limit >= 2.0**52:
            raise OverflowError(f"{type(layer).__name__}: weights too large for exact fixed-point evaluation")
        if isinstance(layer, nn.Conv2d):
            acc = F.conv2d(act, weight, bias, layer.stride, layer.padding)
        else:
            acc = F.conv_transpose2d(act, weight, bias, layer.stride, layer.padding, layer.output_padding)
        act = torch.div(acc, 2.0**WEIGHT_BITS, rounding_mode="floor").clamp(-limit, limit)
    return act / 2.0**ACT_BITS
