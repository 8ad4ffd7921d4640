"""Diffusion models: DDPM training, deterministic DDIM sampling, classifier-free guidance.

The schedule and the DDIM update are plain functions (tested equal to diffusers'
``DDIMScheduler``); :class:`DiffusionModel` wraps a denoiser from
:mod:`pixelmind.tasks.generate.denoisers` (the ``ddpm`` U-Net or the ``dit`` Transformer)
with them. Choices, for small images on CPU:

* v-prediction (Salimans & Ho 2022) with the cosine schedule (Nichol & Dhariwal 2021) by
  default: at the last timesteps of the cosine schedule the signal is almost gone, where an
  epsilon-predicting model's estimate of the image divides by ~0; v stays well scaled.
  ``prediction="epsilon"`` and ``schedule="linear"`` give the original DDPM.
* DDIM with eta 0 and "trailing" timesteps (Lin et al. 2024): the first step starts at
  t = T - 1, so 25-50 steps see the whole schedule; the sample is a deterministic function of
  the initial noise. The predicted image is clipped to [-1, 1] and the noise re-derived from it.
* Classifier-free guidance (Ho & Salimans 2022): labels are dropped to a "no class" token for
  ``class_dropout`` of the training samples; sampling mixes the conditional and unconditional
  predictions, ``uncond + guidance * (cond - uncond)``, in one batched forward pass.
* Sides that the denoiser cannot take (28 px for a U-Net of 3 levels is fine; 28 px for a DiT
  with patch 8 is not) are zero-padded up to its multiple and cropped back.

Example:
    >>> import torch
    >>> model = ddpm(32, 1, 10, width=8, mults=(1, 2))
    >>> model.loss(torch.rand(2, 1, 32, 32) * 2 - 1, torch.tensor([1, 2]))["loss"].shape
    torch.Size([])
    >>> g = torch.Generator().manual_seed(0)
    >>> model.sample(2, torch.tensor([0, 9]), generator=g, steps=4).shape
    torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from pixelmind.errors import ConfigError
from pixelmind.tasks.generate.denoisers import DiT, UNet
from pixelmind.tasks.generate.models import MODELS

Schedule = Literal["cosine", "linear"]
Prediction = Literal["v", "epsilon"]


def alphas_cumprod(schedule: Schedule = "cosine", timesteps: int = 1000) -> torch.Tensor:
    """The cumulative signal fraction ``alpha_bar_t`` for t = 0..T-1 (float64).

    ``linear``: betas from 1e-4 to 0.02 (Ho et al. 2020); ``cosine``: ``alpha_bar(t) = cos²((t/T + s)/(1 + s) · π/2)``
    with s = 0.008 and betas capped at 0.999 (Nichol & Dhariwal 2021) — diffusers' ``linear`` and
    ``squaredcos_cap_v2``.

    Example:
        >>> a = alphas_cumprod("cosine", 1000)
        >>> round(a[0].item(), 5), a[-1].item() < 1e-6
        (0.99996, True)
    """
    if schedule == "linear":
        betas = torch.linspace(1e-4, 0.02, timesteps, dtype=torch.float64)
    elif schedule == "cosine":

        def alpha_bar(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = torch.tensor([min(1 - alpha_bar((i + 1) / timesteps) / alpha_bar(i / timesteps), 0.999) for i in range(timesteps)],
                             dtype=torch.float64)  # fmt: skip
    else:
        raise ConfigError(f"schedule: unknown noise schedule {schedule!r}; choose from: cosine, linear")
    return torch.cumprod(1 - betas, 0)


def ddim_timesteps(steps: int, timesteps: int = 1000) -> list[int]:
    """``steps`` timesteps from T-1 down, evenly spaced ("trailing" spacing, as diffusers).

    Example:
        >>> ddim_timesteps(4, 1000)
        [999, 749, 499, 249]
    """
    if not 1 <= steps <= timesteps:
        raise ConfigError(f"steps: DDIM needs 1 to {timesteps} steps, got {steps}")
    return [round(timesteps - i * timesteps / steps) - 1 for i in range(steps)]


def split_prediction(out: torch.Tensor, x: torch.Tensor, alpha_bar: torch.Tensor, prediction: Prediction):
    """The model output at ``x_t`` -> (predicted clean image x0, predicted noise eps)."""
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    if prediction == "v":
        return a * x - s * out, a * out + s * x
    return (x - s * out) / a, out


def ddim_step(x: torch.Tensor, out: torch.Tensor, alpha_bar: torch.Tensor, alpha_bar_prev: torch.Tensor,
              prediction: Prediction = "v", clip: bool = True) -> torch.Tensor:  # fmt: skip
    """One deterministic DDIM update (eta 0) from ``x_t`` to ``x_prev`` given the model output at ``x_t``.

    With ``clip``, x0 is clipped to [-1, 1] and the noise re-derived from it (diffusers'
    ``clip_sample=True, use_clipped_model_output=True``).
    """
    x0, eps = split_prediction(out, x, alpha_bar, prediction)
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (x - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()
    return alpha_bar_prev.sqrt() * x0 + (1 - alpha_bar_prev).sqrt() * eps


class DiffusionModel(nn.Module):
    """A denoiser plus its noise schedule: ``loss`` for training, ``sample`` (DDIM + guidance) for images.

    Args:
        net: maps ``(x_t, t, labels)`` to the prediction; has ``size_multiple``.
        image_size, channels, num_classes: what it generates (``num_classes`` 0: unconditional).
        prediction: what the net predicts, ``v`` or ``epsilon``.
        schedule, timesteps: the training noise schedule.
        class_dropout: fraction of training labels replaced by the "no class" token.
        guidance, steps: sampling defaults (``sample`` arguments override them).
    """

    kind = "diffusion"

    def __init__(self, net: nn.Module, image_size: int, channels: int, num_classes: int, prediction: Prediction = "v",
                 schedule: Schedule = "cosine", timesteps: int = 1000, class_dropout: float = 0.1,
                 guidance: float = 2.0, steps: int = 50) -> None:  # fmt: skip
        super().__init__()
        if prediction not in ("v", "epsilon"):
            raise ConfigError(f"prediction: unknown target {prediction!r}; choose from: v, epsilon")
        self.net, self.image_size, self.channels, self.num_classes = net, image_size, channels, num_classes
        self.prediction, self.timesteps, self.class_dropout = prediction, timesteps, class_dropout
        self.guidance, self.steps = guidance, steps
        # derived from the config alone, so not stored in weights files (nor averaged by the EMA)
        self.register_buffer("alphas_cumprod", alphas_cumprod(schedule, timesteps).float(), persistent=False)

    def noise_shape(self, n: int) -> tuple[int, int, int, int]:
        return (n, self.channels, self.image_size, self.image_size)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The net's prediction at ``x_t``; pads to the net's size multiple and crops back."""
        m = self.net.size_multiple
        h, w = x.shape[-2:]
        ph, pw = -h % m, -w % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        out = self.net(x, t, labels if self.num_classes else None)
        return out[..., :h, :w]

    def _check_labels(self, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        if labels is None:
            return None
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if labels.numel() != n or labels.min() < 0 or labels.max() >= self.num_classes:
            raise ConfigError(f"labels: need {n} class indices in [0, {self.num_classes}), got {labels.tolist()[:8]}")
        return labels

    def loss(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The DDPM training loss: MSE between the net's output and the v (or noise) target at a random t."""
        b = images.shape[0]
        t = torch.randint(0, self.timesteps, (b,), device=images.device)
        noise = torch.randn_like(images)
        ab = self.alphas_cumprod[t].view(b, 1, 1, 1)
        x_t = ab.sqrt() * images + (1 - ab).sqrt() * noise
        target = ab.sqrt() * noise - (1 - ab).sqrt() * images if self.prediction == "v" else noise
        if self.num_classes and labels is not None:
            labels = labels.to(images.device).long()
            drop = torch.rand(b, device=images.device) < self.class_dropout
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        else:
            labels = None
        return {"loss": F.mse_loss(self(x_t, t, labels), target)}

    def _guided(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None, guidance: float) -> torch.Tensor:
        if labels is None or guidance == 1.0:
            return self(x, t, labels)
        null = torch.full_like(labels, self.num_classes)
        cond, uncond = self(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null])).chunk(2)
        return uncond + guidance * (cond - uncond)

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, *, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None, steps: int | None = None, guidance: float | None = None) -> torch.Tensor:  # fmt: skip
        """``n`` images ``[n, C, H, W]`` in [-1, 1] by DDIM (eta 0) in ``steps`` steps.

        Args:
            labels: class per image for a conditional model; ``None`` samples the "no class"
                (unconditional) model that classifier-free guidance trained alongside.
            generator: draws the initial noise (on its own device), so a seed fixes the images.
            noise: the initial noise itself (``noise_shape(n)``); the images are a deterministic function of it.
            steps: DDIM steps (default ``self.steps``); guidance: scale, 1.0 = no guidance (default ``self.guidance``).
        """
        device = self.alphas_cumprod.device
        labels = self._check_labels(labels, n)
        labels = labels.to(device) if labels is not None else None
        steps = int(self.steps if steps is None else steps)
        guidance = float(self.guidance if guidance is None else guidance)
        if noise is None:
            gen_device = generator.device if generator is not None else device
            noise = torch.randn(self.noise_shape(n), generator=generator, device=gen_device)
        elif tuple(noise.shape) != self.noise_shape(n):
            raise ConfigError(f"noise: expected shape {self.noise_shape(n)}, got {tuple(noise.shape)}")
        x = noise.to(device=device, dtype=torch.float32)
        ts = ddim_timesteps(steps, self.timesteps)
        one = torch.ones((), device=device)
        for i, t in enumerate(ts):
            out = self._guided(x, torch.full((n,), t, device=device), labels, guidance)
            prev = self.alphas_cumprod[ts[i + 1]] if i + 1 < len(ts) else one
            x = ddim_step(x, out, self.alphas_cumprod[t], prev, self.prediction)
        return x.clamp(-1, 1)


def _check_size(name: str, image_size: int, multiple: int) -> None:
    if image_size < multiple:
        raise ConfigError(f"imgsz: {name} needs images of at least {multiple} px, got {image_size}")


@MODELS.register("ddpm")
def ddpm(image_size: int, channels: int, num_classes: int, width: int = 32, mults=(1, 2, 2), blocks: int = 1,
         attention=(2,), dropout: float = 0.1, **diffusion) -> DiffusionModel:  # fmt: skip
    """DDPM with the compact U-Net (default 1.19M parameters at 1 channel and 10 classes).

    ``diffusion`` takes :class:`DiffusionModel`'s options (prediction, schedule, timesteps, class_dropout, guidance, steps).
    """
    if width % 8:
        raise ConfigError(f"width: the U-Net's GroupNorm needs a multiple of 8, got {width}")
    net = UNet(channels, num_classes, width, tuple(mults), blocks, tuple(attention), dropout)
    _check_size("ddpm", image_size, net.size_multiple)
    return DiffusionModel(net, image_size, channels, num_classes, **diffusion)


@MODELS.register("dit")
def dit(image_size: int, channels: int, num_classes: int, patch: int = 4, dim: int = 128, depth: int = 6,
        heads: int = 4, **diffusion) -> DiffusionModel:  # fmt: skip
    """DDPM with a small DiT denoiser (default 1.85M parameters: patch 4, width 128, 6 blocks of 4 heads)."""
    if dim % heads or dim % 4:
        raise ConfigError(f"dim: the DiT width must be a multiple of 4 and of heads ({heads}), got {dim}")
    _check_size("dit", image_size, patch)
    padded = image_size + (-image_size % patch)
    net = DiT(padded, channels, num_classes, patch, dim, depth, heads)
    return DiffusionModel(net, image_size, channels, num_classes, **diffusion)
