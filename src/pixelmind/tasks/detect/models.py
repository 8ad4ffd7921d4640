"""Detection models: a one-stage anchor-free CNN (timm backbone, PAN neck, decoupled head, TAL + GIoU).

Sizes (3 classes): ``pmdet_n`` 5.65M parameters (ResNet-10-T), ``pmdet_s`` 4.35M (CS3-DarkNet-S),
``pmdet_m`` 13.95M (ResNet-18). Backbone choice and recipe are still being measured (issue #3): a
probe on ``shapes`` (1,500 steps of batch 16, one thread) reached mAP50 0.875 with ResNet-10-T and
0.41 with RegNetX-200MF.

Example:
    >>> import torch
    >>> m = build_detector("pmdet_n", num_classes=3, **TINY["pmdet_n"]).eval()
    >>> cls_logits, boxes = m(torch.rand(2, 3, 64, 96))
    >>> cls_logits.shape, boxes.shape  # 8x12 + 4x6 + 2x3 anchor points
    (torch.Size([2, 126, 3]), torch.Size([2, 126, 4]))
    >>> model_info("pmdet_n")
    ModelInfo(kind='cnn', stride=32)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelmind.errors import ConfigError
from pixelmind.registry import Registry
from pixelmind.tasks.detect.loss import ClsLoss, detection_loss

MODELS: Registry = Registry("detection model")

__all__ = ["MODELS", "TINY", "Detector", "ModelInfo", "build_detector", "model_info"]

STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class ModelInfo:
    """What the task needs to know about a registered model before building it.

    Attributes:
        kind: ``"cnn"``: batched tensors in, ``(cls_logits, boxes)`` out (see :class:`Detector`).
        stride: the task pads inputs so that H and W are multiples of it.
    """

    kind: Literal["cnn"]
    stride: int


_INFO: dict[str, ModelInfo] = {}


def _register(name: str) -> Callable:
    def decorator(fn: Callable) -> Callable:
        _INFO[name] = ModelInfo("cnn", max(STRIDES))
        return MODELS.register(name)(fn)

    return decorator


# ------------------------------------------------------------------------------------------ blocks


class ConvBNAct(nn.Sequential):
    """k x k convolution (same padding), BatchNorm, SiLU."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.SiLU(inplace=True)
        )


def _convs(width: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*(ConvBNAct(width, width) for _ in range(depth)))


class PAN(nn.Module):
    """Path aggregation neck (Liu et al. 2018): an FPN top-down pass, then a bottom-up one.

    Lateral 1x1 convolutions bring every level to ``width`` channels; each fusion adds the
    neighbour level (nearest 2x upsampling going down, a stride-2 3x3 convolution going up) and
    refines the sum with ``depth`` 3x3 convolutions. Sums, not concatenations: same accuracy here
    and cheaper on a CPU (see the module docstring).
    """

    def __init__(self, in_channels: list[int], width: int, depth: int = 1) -> None:
        super().__init__()
        n = len(in_channels)
        self.lateral = nn.ModuleList(ConvBNAct(c, width, 1) for c in in_channels)
        self.top_down = nn.ModuleList(_convs(width, depth) for _ in range(n - 1))
        self.down = nn.ModuleList(ConvBNAct(width, width, 3, 2) for _ in range(n - 1))
        self.bottom_up = nn.ModuleList(_convs(width, depth) for _ in range(n - 1))

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        x = [lat(f) for lat, f in zip(self.lateral, feats)]
        for i in range(len(x) - 2, -1, -1):
            x[i] = self.top_down[i](x[i] + F.interpolate(x[i + 1], scale_factor=2.0, mode="nearest"))
        for i in range(1, len(x)):
            x[i] = self.bottom_up[i - 1](x[i] + self.down[i - 1](x[i - 1]))
        return x


class DecoupledHead(nn.Module):
    """One pyramid level's head: separate class and box branches of ``depth`` 3x3 convolutions each.

    Returns class logits ``[B, C, h, w]`` and box side distances (left, top, right, bottom) in units
    of the level's stride, as log values ``[B, 4, h, w]``.
    """

    def __init__(self, width: int, num_classes: int, depth: int = 2, prior: float = 0.01) -> None:
        super().__init__()
        self.cls = nn.Sequential(_convs(width, depth), nn.Conv2d(width, num_classes, 1))
        self.reg = nn.Sequential(_convs(width, depth), nn.Conv2d(width, 4, 1))
        # RetinaNet's prior: every point starts at p = 0.01, so the first steps are not spent
        # unlearning a flood of false positives; log-distances 0 start every box 2 strides wide.
        nn.init.constant_(self.cls[-1].bias, -math.log((1 - prior) / prior))
        nn.init.zeros_(self.reg[-1].bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls(x), self.reg(x)


def decode_boxes(log_ltrb: Tensor, stride: int) -> Tensor:
    """xyxy boxes ``[B, 4, h, w]`` in input pixels from log side distances (in strides) at each cell centre.

    The cell grid comes from a cumulative sum over ones shaped like the input, not from ``arange``,
    so that an ONNX export keeps H and W dynamic.

    Example:
        >>> decode_boxes(torch.zeros(1, 4, 1, 2), 8)[0, :, 0, 1].tolist()  # the cell centred at (12, 4)
        [4.0, -4.0, 20.0, 12.0]
    """
    ones = torch.ones_like(log_ltrb[0, 0])  # [h, w]
    xs, ys = (ones.cumsum(1) - 0.5) * stride, (ones.cumsum(0) - 0.5) * stride
    # exp keeps distances positive; the clamp keeps a diverging early step from overflowing to inf
    dist = log_ltrb.clamp(max=12.0).exp() * stride
    return torch.stack([xs - dist[:, 0], ys - dist[:, 1], xs + dist[:, 2], ys + dist[:, 3]], 1)


# ------------------------------------------------------------------------------------------ model


class Detector(nn.Module):
    """One-stage anchor-free detector: timm backbone (strides 8, 16, 32), PAN neck, decoupled heads.

    ``forward(images)`` takes ``[B, in_channels, H, W]`` normalised images, H and W multiples of 32,
    and returns the raw outputs ``(cls_logits [B, A, C], boxes [B, A, 4])``: one row per anchor point
    (every cell of every level, strides ascending, row-major), class logits whose sigmoid is an
    IoU-aware confidence, and xyxy boxes in input pixels, already decoded, so that an ONNX export
    covers decoding. :func:`~pixelmind.tasks.detect.postprocess.postprocess` turns them into
    detections; :meth:`loss` into training losses.

    Args:
        num_classes: object classes (no background class).
        backbone: a timm model name with a feature pyramid reaching stride 32; random weights.
        width: channels of the neck and the heads.
        neck_depth: 3x3 convolutions after each PAN fusion.
        head_depth: 3x3 convolutions in each head branch.
        in_channels: image channels.
        topk, alpha, beta: task-aligned assignment (positives per object; score and IoU exponents).
        cls_loss: ``"qfl"``, ``"vfl"`` or ``"bce"``, see :mod:`pixelmind.tasks.detect.loss`.
        cls_weight, box_weight: weights of the class and the GIoU terms.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet10t",
        width: int = 64,
        neck_depth: int = 1,
        head_depth: int = 2,
        in_channels: int = 3,
        topk: int = 10,
        alpha: float = 1.0,
        beta: float = 6.0,
        cls_loss: ClsLoss = "qfl",
        cls_weight: float = 1.0,
        box_weight: float = 2.0,
    ) -> None:
        super().__init__()
        import timm

        self.strides = STRIDES
        self.num_classes = num_classes
        self.loss_cfg = dict(
            topk=topk, alpha=alpha, beta=beta, cls_loss=cls_loss, cls_weight=cls_weight, box_weight=box_weight
        )
        try:
            self.backbone = timm.create_model(
                backbone, pretrained=False, features_only=True, out_indices=(-3, -2, -1), in_chans=in_channels
            )
        except (RuntimeError, ValueError, TypeError, AssertionError, KeyError) as err:
            raise ConfigError(f"backbone {backbone!r}: timm cannot build it as a feature pyramid: {err}") from None
        reductions = self.backbone.feature_info.reduction()
        if list(reductions) != list(STRIDES):
            raise ConfigError(
                f"backbone {backbone!r}: its last three feature levels have strides {reductions}; the "
                f"detector needs {list(STRIDES)} (a CNN such as resnet18 or cs3darknet_s, not a plain ViT)"
            )
        self.neck = PAN(self.backbone.feature_info.channels(), width, neck_depth)
        self.heads = nn.ModuleList(DecoupledHead(width, num_classes, head_depth) for _ in STRIDES)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.neck(self.backbone(images))
        logits, boxes = [], []
        for x, head, stride in zip(feats, self.heads, self.strides):
            cls, reg = head(x)
            logits.append(cls.flatten(2))
            boxes.append(decode_boxes(reg, stride).flatten(2))
        return torch.cat(logits, 2).transpose(1, 2), torch.cat(boxes, 2).transpose(1, 2)

    def loss(
        self, raw_outputs: tuple[Tensor, ...], targets: list[dict[str, Tensor]], image_size: tuple[int, int]
    ) -> dict[str, Tensor]:
        """``{"loss", "loss_cls", "loss_box"}`` of ``forward``'s outputs for an ``(H, W)`` batch.

        ``targets`` holds per image ``{"boxes": [N, 4] xyxy pixels, "labels": [N] 0-based}``; N may
        be 0. See :func:`~pixelmind.tasks.detect.loss.detection_loss`.
        """
        return detection_loss(*raw_outputs[:2], targets, tuple(image_size), self.strides, **self.loss_cfg)


# ------------------------------------------------------------------------------------------ builders

_OPTIONS = set(inspect.signature(Detector.__init__).parameters) - {"self", "num_classes"}


def _detector(name: str, num_classes: int, kwargs: dict[str, Any], **defaults: Any) -> Detector:
    import timm

    bad = sorted(set(kwargs) - _OPTIONS)
    if bad:
        raise ConfigError(
            f"model {name!r}: unknown option(s) {', '.join(bad)}; choose from: {', '.join(sorted(_OPTIONS))}"
        )
    cfg = {**defaults, **kwargs}
    backbone = cfg.get("backbone")
    if not isinstance(backbone, str) or not timm.is_model(backbone):
        raise ConfigError(f"backbone: {backbone!r} is not a timm model name (see timm.list_models())")
    if cfg.get("cls_loss", "qfl") not in get_args(ClsLoss):
        raise ConfigError(f"cls_loss: {cfg['cls_loss']!r}; choose from: {', '.join(get_args(ClsLoss))}")
    for key in ("width", "head_depth", "topk", "in_channels"):
        if key in cfg and (not isinstance(cfg[key], int) or cfg[key] < 1):
            raise ConfigError(f"{key}: must be a positive integer, got {cfg[key]!r}")
    if "neck_depth" in cfg and (not isinstance(cfg["neck_depth"], int) or cfg["neck_depth"] < 0):
        raise ConfigError(f"neck_depth: must be a non-negative integer, got {cfg['neck_depth']!r}")
    return Detector(num_classes, **cfg)


@_register("pmdet_n")
def pmdet_n(num_classes: int, **kwargs) -> Detector:
    """Nano: ResNet-10-T backbone, 64-channel neck and heads."""
    return _detector("pmdet_n", num_classes, kwargs, backbone="resnet10t", width=64, neck_depth=1, head_depth=2)


@_register("pmdet_s")
def pmdet_s(num_classes: int, **kwargs) -> Detector:
    """Small: CS3-DarkNet-S backbone (YOLOv5-S-like CSP stages), 96-channel neck and heads."""
    return _detector("pmdet_s", num_classes, kwargs, backbone="cs3darknet_s", width=96, neck_depth=1, head_depth=2)


@_register("pmdet_m")
def pmdet_m(num_classes: int, **kwargs) -> Detector:
    """Medium: ResNet-18 backbone, 128-channel neck and heads."""
    return _detector("pmdet_m", num_classes, kwargs, backbone="resnet18", width=128, neck_depth=1, head_depth=2)


# ------------------------------------------------------------------------------------------ public

# Keyword arguments that shrink each registered model for tests (tens of thousands of parameters).
# A new model needs an entry.
_TINY_CFG: dict[str, Any] = dict(backbone="test_efficientnet", width=16, neck_depth=1, head_depth=1)
TINY: dict[str, dict[str, Any]] = {name: dict(_TINY_CFG) for name in ("pmdet_n", "pmdet_s", "pmdet_m")}


def model_info(name: str) -> ModelInfo:
    """Kind and stride of the registered model ``name``.

    Raises:
        ConfigError: unknown name (the message lists the choices).

    Example:
        >>> model_info("pmdet_s")
        ModelInfo(kind='cnn', stride=32)
    """
    MODELS.get(name)  # raises the ConfigError that lists the choices
    return _INFO[name]


def build_detector(name: str, num_classes: int, **kwargs: Any) -> Detector:
    """A registered detector with random weights; ``kwargs`` override the builder's defaults.

    Args:
        name: a registered name (``pmdet_n``, ``pmdet_s``, ``pmdet_m``).
        num_classes: object classes (no background class).
        **kwargs: :class:`Detector` options: ``backbone`` (a timm model name), ``width``,
            ``neck_depth``, ``head_depth``, ``in_channels``, and the loss settings.

    Raises:
        ConfigError: unknown name or option (the message lists the choices), a backbone that is not
            a timm CNN with strides 8, 16, 32, a bad value.

    Example:
        >>> m = build_detector("pmdet_n", 2, backbone="resnet10t", width=32)
        >>> m.heads[0].cls[-1].out_channels
        2
    """
    builder = MODELS.get(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes: must be a positive integer, got {num_classes!r}")
    return builder(num_classes, **kwargs)
