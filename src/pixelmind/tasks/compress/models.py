"""Learned codecs: factorized prior (Ballé 2017/2018), scale hyperprior (Ballé 2018), mean-scale hyperprior (Minnen 2018).

Every model maps an image ``[B, 3, H, W]`` in [0, 1] (sides multiples of :attr:`stride`) to a
reconstruction and the likelihoods of its quantized latents (``forward``), and to and from
real bitstreams (``compress`` / ``decompress``) once :meth:`update_tables` has fixed its
integer tables. Registered builders take ``N`` (hidden channels) and ``M`` (latent channels).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pixelmind.registry import Registry
from pixelmind.tasks.compress import entropy
from pixelmind.tasks.compress.entropy_models import (
    FactorizedDensity,
    GaussianConditional,
    quantize,
    tables_of,
)
from pixelmind.tasks.compress.layers import GDN, conv, deconv, exact_forward

MODELS: Registry = Registry("compress model")
#: g_a downsamples by 16 (four stride-2 convolutions)
LATENT_STRIDE = 16


def analysis(channels: int, N: int, M: int) -> nn.Sequential:
    """g_a: four stride-2 5x5 convolutions with GDN between them (16x downsampling)."""
    return nn.Sequential(conv(channels, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))


def synthesis(channels: int, N: int, M: int) -> nn.Sequential:
    """g_s: the mirror of :func:`analysis` with inverse GDN."""
    return nn.Sequential(deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
                         deconv(N, N), GDN(N, inverse=True), deconv(N, channels))  # fmt: skip


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """Channels-last input: the transforms' convolutions run 1.3-1.7x faster on the CPU (bench/RESULTS.md section 8)."""
    return x.contiguous(memory_format=torch.channels_last)


def _pack_int(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int32)


class FactorizedPrior(nn.Module):
    """Ballé et al. 2018 "factorized prior": latents coded with a learned per-channel density.

    Example:
        >>> model = FactorizedPrior(N=8, M=12).eval()
        >>> out = model(torch.rand(1, 3, 32, 32))
        >>> out["x_hat"].shape, sorted(out["likelihoods"])
        (torch.Size([1, 3, 32, 32]), ['y'])
    """

    stride = 16

    def __init__(self, N: int = 128, M: int = 192, channels: int = 3, quantizer: str = "ste") -> None:
        super().__init__()
        self.g_a, self.g_s = analysis(channels, N, M), synthesis(channels, N, M)
        self.density = FactorizedDensity(M)
        self.quantizer = quantizer

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        y = self.g_a(x)
        noisy = quantize(y, "noise" if self.training else "round")
        y_hat = quantize(y, self.quantizer if self.training else "round")
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": self.density(noisy)}}

    def update_tables(self) -> None:
        self.density.update_tables()

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> tuple[list[bytes], tuple[int, int]]:
        """One padded image ``[1, 3, H, W]`` -> (streams, latent size)."""
        y = torch.round(self.g_a(_channels_last(x)))
        stream = entropy.encode(_pack_int(y.cpu().numpy()), self.density.table_index(y.shape), *tables_of(self.density))
        return [stream], tuple(y.shape[-2:])

    @torch.no_grad()
    def decode_latents(self, streams: list[bytes], latent_hw: tuple[int, int]) -> torch.Tensor:
        """The quantized latents ``y_hat`` (float64, CPU) from the streams: identical on every machine."""
        if len(streams) != 1:
            from pixelmind.errors import BitstreamError

            raise BitstreamError(f"expected 1 stream, found {len(streams)}")
        shape = (1, self.density.channels, *latent_hw)
        return torch.from_numpy(entropy.decode(streams[0], self.density.table_index(shape), *tables_of(self.density))).double()

    @torch.no_grad()
    def decompress(self, streams: list[bytes], latent_hw: tuple[int, int]) -> torch.Tensor:
        """The reconstruction ``[1, 3, H, W]`` (padded size) on the model's device."""
        device = next(self.parameters()).device
        return self.g_s(_channels_last(self.decode_latents(streams, latent_hw).float().to(device)))


class Hyperprior(nn.Module):
    """Scale hyperprior (Ballé et al. 2018) or, with ``mean=True``, mean-scale hyperprior (Minnen et al. 2018).

    Side information ``z = h_a(y)`` is coded with a factorized density; ``h_s(z_hat)`` predicts
    the scale (and mean) of each latent. At coding time ``h_s`` runs in exact fixed point
    (:func:`exact_forward`), so the decoder picks the encoder's tables on any machine.

    Example:
        >>> model = Hyperprior(N=8, M=12, mean=True).eval()
        >>> out = model(torch.rand(1, 3, 64, 64))
        >>> out["x_hat"].shape, sorted(out["likelihoods"])
        (torch.Size([1, 3, 64, 64]), ['y', 'z'])
    """

    stride = 64

    def __init__(self, N: int = 128, M: int = 192, channels: int = 3, mean: bool = False, quantizer: str = "ste") -> None:
        super().__init__()
        self.mean, self.M, self.quantizer = mean, M, quantizer
        self.g_a, self.g_s = analysis(channels, N, M), synthesis(channels, N, M)
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(), conv(N, N), nn.ReLU(), conv(N, N))
        hidden, out = (M * 3 // 2, 2 * M) if mean else (N, M)
        # ReLUs only (no LeakyReLU): the exact fixed-point runner supports conv, deconv and ReLU
        self.h_s = nn.Sequential(deconv(N, N), nn.ReLU(), deconv(N, hidden), nn.ReLU(), conv(hidden, out, 3, 1))
        self.z_density = FactorizedDensity(N)
        self.gaussian = GaussianConditional()

    def _scales_means(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.mean:
            scales, means = params.chunk(2, dim=1)
            return scales, means
        return params, None

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        y = self.g_a(x)
        z = self.h_a(y)
        z_noisy = quantize(z, "noise" if self.training else "round")
        z_hat = quantize(z, self.quantizer if self.training else "round")
        scales, means = self._scales_means(self.h_s(z_hat))
        y_noisy = quantize(y, "noise" if self.training else "round", means)
        y_hat = quantize(y, self.quantizer if self.training else "round", means)
        return {"x_hat": self.g_s(y_hat),
                "likelihoods": {"y": self.gaussian(y_noisy, scales, means), "z": self.z_density(z_noisy)}}  # fmt: skip

    def update_tables(self) -> None:
        self.z_density.update_tables()
        self.gaussian.update_tables()

    def _side_params(self, z_hat: torch.Tensor) -> tuple[np.ndarray, torch.Tensor | None]:
        """Table indices and means from the integer latent ``z_hat``, computed exactly (CPU, fixed point)."""
        scales, means = self._scales_means(exact_forward(self.h_s, z_hat))
        return self.gaussian.table_index(scales), means

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> tuple[list[bytes], tuple[int, int]]:
        """One padded image ``[1, 3, H, W]`` -> (streams [z, y], latent size of y)."""
        y = self.g_a(_channels_last(x))
        z_hat = torch.round(self.h_a(y)).cpu()
        z_stream = entropy.encode(_pack_int(z_hat.numpy()), self.z_density.table_index(z_hat.shape), *tables_of(self.z_density))
        index, means = self._side_params(z_hat)
        centred = y.to("cpu", torch.float64) - (means if means is not None else 0.0)
        y_stream = entropy.encode(_pack_int(torch.round(centred).numpy()), index, *tables_of(self.gaussian))
        return [z_stream, y_stream], tuple(y.shape[-2:])

    @torch.no_grad()
    def decode_latents(self, streams: list[bytes], latent_hw: tuple[int, int]) -> torch.Tensor:
        """The quantized latents ``y_hat`` (float64, CPU) from the streams: identical on every machine."""
        if len(streams) != 2:
            from pixelmind.errors import BitstreamError

            raise BitstreamError(f"expected 2 streams (side information and latents), found {len(streams)}")
        z_shape = (1, self.z_density.channels, -(-latent_hw[0] // 4), -(-latent_hw[1] // 4))
        z_hat = entropy.decode(streams[0], self.z_density.table_index(z_shape), *tables_of(self.z_density))
        index, means = self._side_params(torch.from_numpy(z_hat).double())
        index = index[..., : latent_hw[0], : latent_hw[1]]
        symbols = torch.from_numpy(entropy.decode(streams[1], index, *tables_of(self.gaussian))).double()
        return symbols + (means[..., : latent_hw[0], : latent_hw[1]] if means is not None else 0.0)

    @torch.no_grad()
    def decompress(self, streams: list[bytes], latent_hw: tuple[int, int]) -> torch.Tensor:
        """The reconstruction ``[1, 3, H, W]`` (padded size) on the model's device."""
        device = next(self.parameters()).device
        return self.g_s(_channels_last(self.decode_latents(streams, latent_hw).float().to(device)))


@MODELS.register("factorized")
def factorized(channels: int = 3, **overrides) -> nn.Module:
    """Factorized prior, N=128, M=192 (the papers' low-rate size; 3.0M parameters)."""
    return FactorizedPrior(**{"N": 128, "M": 192, "channels": channels, **overrides})


@MODELS.register("hyperprior")
def hyperprior(channels: int = 3, **overrides) -> nn.Module:
    """Scale hyperprior, N=128, M=192 (5.1M parameters)."""
    return Hyperprior(**{"N": 128, "M": 192, "channels": channels, **overrides})


@MODELS.register("mean_scale")
def mean_scale(channels: int = 3, **overrides) -> nn.Module:
    """Mean-scale hyperprior, N=128, M=192 (6.4M parameters)."""
    return Hyperprior(**{"N": 128, "M": 192, "channels": channels, "mean": True, **overrides})


@MODELS.register("mean_scale_s")
def mean_scale_s(channels: int = 3, **overrides) -> nn.Module:
    """Small mean-scale hyperprior for CPU budgets, N=64, M=96 (1.6M parameters)."""
    return Hyperprior(**{"N": 64, "M": 96, "channels": channels, "mean": True, **overrides})


def build_codec(name: str, channels: int = 3, **overrides) -> nn.Module:
    """A registered codec; ``overrides`` resize it (``N``, ``M``) or pick its quantizer.

    Example:
        >>> build_codec("mean_scale_s", N=8, M=12).stride
        64
    """
    try:
        return MODELS.get(name)(channels, **overrides)
    except TypeError as err:  # an unknown or misspelt model_kwargs key
        from pixelmind.errors import ConfigError

        raise ConfigError(f"model_kwargs: {name} does not take {sorted(overrides)} ({err})") from None
