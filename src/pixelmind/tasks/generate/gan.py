"""A DCGAN-style GAN: a CNN generator, a spectral-norm discriminator (projection for classes), DiffAugment.

The generator maps a latent vector (plus a class embedding when conditional) to a
``base x base`` feature map and doubles it until the image size: 28 px = 7 x 2 x 2,
32 px = 4 x 2 x 2 x 2. The discriminator mirrors it, with spectral norm on every layer
(Miyato et al. 2018) and, when conditional, the projection term ``<embed(y), h>``
(Miyato & Koyama 2018). Losses: hinge (default) or non-saturating. DiffAugment (Zhao et
al. 2020: colour, translation, cutout) is applied to real and fake images alike before the
discriminator, which keeps it from memorising small data sets.

Example:
    >>> import torch
    >>> gan = build_gan(32, 1, 10, width=8, latent_dim=16)
    >>> tuple(gan.sample(4, torch.tensor([0, 1, 2, 3])).shape)
    (4, 1, 32, 32)
    >>> sorted(gan.d_loss(torch.zeros(4, 1, 32, 32), torch.tensor([0, 1, 2, 3])))
    ['d_fake', 'd_real', 'loss']
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from pixelmind.errors import ConfigError
from pixelmind.tasks.generate.models import MODELS

AUGMENT_POLICIES = ("color", "translation", "cutout")


# -- DiffAugment ---------------------------------------------------------------------------
def diff_augment(x: torch.Tensor, policy: tuple[str, ...] = AUGMENT_POLICIES) -> torch.Tensor:
    """Differentiable colour / translation / cutout augmentation (DiffAugment), one draw per image.

    Example:
        >>> x = torch.zeros(2, 3, 8, 8)
        >>> tuple(diff_augment(x).shape)
        (2, 3, 8, 8)
    """
    if "color" in policy:
        x = _color(x)
    if "translation" in policy:
        x = _translation(x)
    if "cutout" in policy:
        x = _cutout(x)
    return x


def _color(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)  # brightness (on [-1, 1]: +-0.5)
    if x.shape[1] > 1:  # saturation only means something for colour images
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = (gy[None] + dy + 1).clamp(0, h + 1)
    gx = (gx[None] + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))  # shifted-in pixels are zeros (mid-grey on [-1, 1])
    idx = (gy * (w + 2) + gx).view(n, 1, h * w).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, idx).view_as(x)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    inside = ((gy[None] - cy + ch // 2).abs() < (ch + 1) // 2) & ((gx[None] - cx + cw // 2).abs() < (cw + 1) // 2)
    return x * (~inside).unsqueeze(1).to(x.dtype)


# -- networks ------------------------------------------------------------------------------
def _stages(image_size: int) -> tuple[int, int]:
    """(base size, number of 2x stages): the image size halved while even and the base stays >= 4."""
    if image_size % 4 or image_size < 8:
        raise ConfigError(f"imgsz: the GAN needs a multiple of 4 of at least 8 pixels (got {image_size})")
    base, stages = image_size, 0
    while base % 2 == 0 and base // 2 >= 4:
        base, stages = base // 2, stages + 1
    return base, stages


class Generator(nn.Module):
    """latent (+ class embedding) -> Linear -> [upsample, conv, BN, ReLU] x stages -> conv -> tanh."""

    def __init__(self, image_size: int, channels: int, num_classes: int, latent_dim: int, width: int) -> None:
        super().__init__()
        self.base, stages = _stages(image_size)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        chans = [min(width * 2**i, width * 8) for i in range(stages, -1, -1)]
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        in_dim = latent_dim * (2 if num_classes else 1)
        self.fc = nn.Linear(in_dim, chans[0] * self.base * self.base)
        self.fc_norm = nn.BatchNorm2d(chans[0])
        blocks = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]  # fmt: skip
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Conv2d(chans[-1], channels, 3, padding=1)

    def condition(self, noise: torch.Tensor, class_vectors: torch.Tensor | None) -> torch.Tensor:
        """The generator's input: noise, with the class embedding appended when conditional."""
        return noise if class_vectors is None else torch.cat([noise, class_vectors], dim=1)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        vec = self.embed(labels) if self.embed is not None and labels is not None else None
        if self.embed is not None and vec is None:
            raise ValueError("a class-conditional generator needs labels")
        return self.from_input(self.condition(noise, vec))

    def from_input(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).unflatten(1, (-1, self.base, self.base))  # no batch size baked into an export
        h = F.relu(self.fc_norm(h))
        return torch.tanh(self.to_image(self.blocks(h)))


class Discriminator(nn.Module):
    """[conv, LeakyReLU, strided conv, LeakyReLU] x stages, global sum pool, linear (+ projection)."""

    def __init__(self, image_size: int, channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        _, stages = _stages(image_size)
        chans = [min(width * 2**i, width * 8) for i in range(stages + 1)]
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(channels, chans[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [spectral_norm(nn.Conv2d(c_in, c_in, 3, padding=1)), nn.LeakyReLU(0.2),
                       spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]  # fmt: skip
        self.features = nn.Sequential(*layers)
        self.linear = spectral_norm(nn.Linear(chans[-1], 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, chans[-1])) if num_classes else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(images).sum(dim=(2, 3))  # sum pooling, as in SNGAN's ResNet discriminators
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(dim=1)  # the projection term
        return out


# -- the model -----------------------------------------------------------------------------
class GAN(nn.Module):
    """A generator and its discriminator behind the generation-model contract (see ``models.py``).

    Args:
        loss: ``hinge`` or ``ns`` (non-saturating).
        augment: DiffAugment policies applied before the discriminator (empty: none).
    """

    kind = "gan"

    def __init__(self, image_size: int, channels: int, num_classes: int = 0, latent_dim: int = 64, width: int = 32,
                 loss: str = "hinge", augment: tuple[str, ...] | list[str] | str = AUGMENT_POLICIES) -> None:  # fmt: skip
        super().__init__()
        if loss not in ("hinge", "ns"):
            raise ConfigError(f"model_kwargs.loss: the GAN takes hinge or ns (got {loss!r})")
        policy = tuple(augment.split(",")) if isinstance(augment, str) else tuple(augment)
        policy = tuple(p.strip() for p in policy if p.strip() and p.strip() != "none")
        if bad := [p for p in policy if p not in AUGMENT_POLICIES]:
            raise ConfigError(f"model_kwargs.augment: unknown {bad}; choose from {', '.join(AUGMENT_POLICIES)} or none")
        self.image_size, self.channels, self.num_classes = image_size, channels, num_classes
        self.latent_dim, self.loss_kind, self.augment = latent_dim, loss, policy
        self.generator = Generator(image_size, channels, num_classes, latent_dim, width)
        self.discriminator = Discriminator(image_size, channels, num_classes, width)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``[n, C, H, W]`` in [-1, 1] from noise ``[n, latent_dim]`` (and labels when conditional)."""
        return self.generator(noise, labels)

    def noise_shape(self, n: int) -> tuple[int, ...]:
        return (n, self.latent_dim)

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        return self.generator.parameters()

    def discriminator_parameters(self) -> Iterator[nn.Parameter]:
        return self.discriminator.parameters()

    def _labels(self, n: int, labels: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        if labels is None:  # cycle through the classes: a grid shows every class in turn
            return torch.arange(n, device=device) % self.num_classes
        return labels.to(device).long()

    def sample(self, n: int, labels: torch.Tensor | None = None, *, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None, steps: int | None = None, guidance: float | None = None) -> torch.Tensor:  # fmt: skip
        """``n`` images in [-1, 1]; ``noise`` (else drawn with ``generator``) fixes them. steps/guidance: unused."""
        device = next(self.parameters()).device
        if noise is None:
            noise = torch.randn(self.noise_shape(n), generator=generator, device=generator.device if generator else None)
        return self.generator(noise.to(device), self._labels(n, labels, device))

    def _disc(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.augment:
            images = diff_augment(images, self.augment)
        return self.discriminator(images, labels)

    def d_loss(self, real: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The discriminator's loss on a real batch and as many fakes (the generator gets no gradient)."""
        labels = self._labels(len(real), labels, real.device)
        with torch.no_grad():
            fake = self.sample(len(real), labels)
        d_real, d_fake = self._disc(real, labels), self._disc(fake, labels)
        if self.loss_kind == "hinge":
            loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        else:
            loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        return {"loss": loss, "d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}

    def g_loss(self, batch_size: int, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The generator's loss on ``batch_size`` fakes (of the batch's classes when conditional)."""
        device = next(self.parameters()).device
        labels = self._labels(batch_size, labels, device)
        d_fake = self._disc(self.sample(batch_size, labels), labels)
        loss = -d_fake.mean() if self.loss_kind == "hinge" else F.softplus(-d_fake).mean()
        return {"loss": loss}


class GeneratorExport(nn.Module):
    """The generator as one input for ONNX: ``[n, latent_dim (+ num_classes one-hot)] -> images``.

    The one-hot class columns select the class embedding by a matrix product, so a single
    float input carries noise and class (exports have one input named ``images``).
    """

    def __init__(self, gan: GAN) -> None:
        super().__init__()
        self.generator, self.latent_dim, self.num_classes = gan.generator, gan.latent_dim, gan.num_classes

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        noise = z[:, : self.latent_dim]
        vec = z[:, self.latent_dim :] @ self.generator.embed.weight if self.num_classes else None
        return self.generator.from_input(self.generator.condition(noise, vec))

    @staticmethod
    def inputs(gan: GAN, noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The export's input for ``noise`` and ``labels``."""
        if not gan.num_classes:
            return noise
        labels = gan._labels(len(noise), labels, noise.device)
        return torch.cat([noise, F.one_hot(labels, gan.num_classes).to(noise.dtype)], dim=1)


@MODELS.register("gan")
def build_gan(image_size: int, channels: int, num_classes: int, **kwargs) -> GAN:
    """The default GAN: width 32, 64-d latent, hinge loss, DiffAugment on (about 1 M parameters at 28 px)."""
    return GAN(image_size, channels, num_classes, **kwargs)


@MODELS.register("gan_l")
def build_gan_l(image_size: int, channels: int, num_classes: int, **kwargs) -> GAN:
    """A wider GAN (width 64, 128-d latent) for larger or colour data."""
    return GAN(image_size, channels, num_classes, **{"width": 64, "latent_dim": 128, **kwargs})
