"""Classification models: small built-in CNNs for tiny images, and any timm model by name.

Example:
    >>> import torch
    >>> m = build_classifier("pm_cnn_t", num_classes=10, imgsz=32)
    >>> m(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn

from pixelmind.errors import ConfigError
from pixelmind.registry import Registry

MODELS: Registry = Registry("classification model")


def conv_bn_act(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """A VGG-style CNN for small images (8-64 px): stages of 3x3 conv-BN-ReLU, max-pool between them.

    Args:
        widths: channels per stage; each stage after the first halves the resolution.
        depth: convolutions per stage.
    """

    def __init__(self, num_classes: int, widths: tuple[int, ...], depth: int = 2, drop: float = 0.2, in_chans: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for i, w in enumerate(widths):
            if i > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(depth):
                layers.append(conv_bn_act(cin, w))
                cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@MODELS.register("pm_cnn_t")
def pm_cnn_t(num_classes: int, **_) -> nn.Module:
    """Tiny CNN (~6k parameters) for tests and smoke runs."""
    return SmallCNN(num_classes, (8, 16, 32), depth=1, drop=0.0)


@MODELS.register("pm_cnn_s")
def pm_cnn_s(num_classes: int, **_) -> nn.Module:
    """Small CNN (~75k parameters): the default for images up to 64 px."""
    return SmallCNN(num_classes, (16, 32, 64), depth=2, drop=0.1)


@MODELS.register("pm_cnn_m")
def pm_cnn_m(num_classes: int, **_) -> nn.Module:
    """Medium CNN (~0.29M parameters)."""
    return SmallCNN(num_classes, (32, 64, 128), depth=2)


@MODELS.register("pm_cnn_l")
def pm_cnn_l(num_classes: int, **_) -> nn.Module:
    """Large CNN (~1.15M parameters) for harder small-image data."""
    return SmallCNN(num_classes, (64, 128, 256), depth=2, drop=0.3)


def _hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached (None if it can, or if the user works from its cache).

    Checked up front because the hub client retries for about a minute before giving up offline.
    """
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        return None
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError as err:
        return f"{host} is not reachable ({err.strerror or err})"
    return None


def build_timm(name: str, num_classes: int, imgsz: int, pretrained: bool = False) -> nn.Module:
    """Any timm model; Vision Transformers are built for ``imgsz`` (e.g. ViT at 32 px)."""
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:8]
        hint = f"; similar timm models: {', '.join(close)}" if close else ""
        raise ConfigError(f"model: unknown model {name!r} (built-in: {', '.join(MODELS)}; or any timm model{hint})")
    if pretrained and (why := _hub_unreachable()):
        raise ConfigError(f"pretrained: timm weights for {name!r} come from the hub, but {why}; "
                          "pass --weights PATH with a local file instead")  # fmt: skip
    try:
        try:
            return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, img_size=imgsz)
        except TypeError:  # CNNs take no img_size
            return timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
    except Exception as err:
        if not pretrained:
            raise
        raise ConfigError(
            f"pretrained: could not get timm weights for {name!r} ({str(err).splitlines()[0][:160]}); "
            "you may be offline: pass --weights PATH with a local file instead"
        ) from None


def build_classifier(name: str, num_classes: int, imgsz: int, pretrained: bool = False) -> nn.Module:
    """A registered built-in model or, failing that, a timm model of that name."""
    if name in MODELS:
        if pretrained:
            raise ConfigError(f"pretrained: built-in model {name!r} has no pretrained weights; use --weights PATH")
        return MODELS.get(name)(num_classes=num_classes, imgsz=imgsz)
    return build_timm(name, num_classes, imgsz, pretrained)
