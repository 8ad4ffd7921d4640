"""The generation model registry: GANs and diffusion models behind one builder contract.

Every registered builder has the signature
``fn(image_size: int, channels: int, num_classes: int, **kwargs) -> nn.Module``
(``num_classes == 0`` means unconditional). Every model it returns has:

- ``kind``: ``"gan"`` or ``"diffusion"``;
- ``sample(n, labels=None, *, generator=None, noise=None, steps=None, guidance=None)``
  returning ``[n, C, H, W]`` in ``[-1, 1]`` (a GAN ignores ``steps`` and ``guidance``);
- ``noise_shape(n) -> tuple`` (the shape of ``noise`` that ``sample`` accepts);
- a GAN: ``generator_parameters()``, ``discriminator_parameters()``,
  ``d_loss(real, labels) -> {"loss": ...}`` and ``g_loss(batch_size, labels) -> {"loss": ...}``;
- a diffusion model: ``loss(images, labels) -> {"loss": ...}``.

Example:
    >>> from pixelmind.tasks.generate.models import build_generator, TINY
    >>> model = build_generator("gan", 32, 1, 0, **TINY["gan"])
    >>> model.kind, tuple(model.sample(2).shape)
    ('gan', (2, 1, 32, 32))
"""

from __future__ import annotations

import importlib

from torch import nn

from pixelmind.registry import Registry

MODELS: Registry = Registry("generation model")

#: kwargs that make each registered model tiny enough for CPU tests at 32 px.
TINY: dict[str, dict] = {
    "gan": {"width": 8, "latent_dim": 16},
    "gan_l": {"width": 8, "latent_dim": 16},
    "ddpm": {"width": 8, "mults": (1, 2, 2), "attention": (2,), "dropout": 0.0},  # attention at 8 px: 5x cheaper than at 16
    "dit": {"dim": 32, "depth": 2, "heads": 2, "patch": 4},
}

# modules whose decorators register models; imported lazily so that importing the
# registry never pulls diffusers in.
_MODEL_MODULES = ("pixelmind.tasks.generate.gan", "pixelmind.tasks.generate.diffusion")


def load_models() -> Registry:
    """Import every model module so that its builders are registered; returns MODELS."""
    for module in _MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            # a model file that is not there yet must not hide the others
            if err.name != module:
                raise
    return MODELS


def build_generator(name: str, image_size: int, channels: int, num_classes: int, **kwargs) -> nn.Module:
    """Build the registered generation model ``name``.

    Args:
        name: a registered model name (``gan``, ``ddpm``, ...).
        image_size: side of the square images, in pixels.
        channels: 1 (grey) or 3 (RGB).
        num_classes: number of classes for a class-conditional model; 0 = unconditional.
        **kwargs: model-specific options (``width``, ``loss``, ...).
    """
    return load_models().get(name)(image_size, channels, num_classes, **kwargs)
