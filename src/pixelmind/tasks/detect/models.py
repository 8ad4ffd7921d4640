"""Detection models: a one-stage anchor-free CNN (timm backbone, PAN neck, decoupled head, TAL + GIoU).

Every model maps normalised images ``[B, 3, H, W]`` (H, W multiples of 32) to the raw outputs
``(cls_logits [B, A, C], boxes [B, A, 4])``, one row per cell of the stride 8, 16 and 32 levels; boxes
are decoded in ``forward`` (so an ONNX export covers decoding) and the class score is IoU-aware (no
separate quality branch). :func:`~pixelmind.tasks.detect.postprocess.postprocess` makes detections,
``model.loss`` the losses (:mod:`~pixelmind.tasks.detect.loss`, :mod:`~pixelmind.tasks.detect.assign`).

Sizes (parameters for 3 classes; GFLOPs = 2 x MACs for one 640 x 640 image, as Ultralytics counts)::

    name     backbone (timm, random init)   width   params   GFLOPs   YOLO11n: 2.6M, 6.5 GFLOPs
    pmdet_n  mobilenetv4_conv_small           64    2.00M      6.5
    pmdet_s  resnet10t                        64    5.65M     21.5    the default for 64 px shapes
    pmdet_m  resnet18                        128   13.95M     43.4

Forward + loss + backward per batch, 2 threads, wall clock, best of 7 (64 px) or 3 (320 px) on the
2-core development machine at a quiet moment (repeat runs differ by up to 20%); torchvision's FCOS
on the same timm backbone with an FPN of the same width (its P3-P7 levels, 4-conv GroupNorm heads,
centre sampling, focal + GIoU + centerness losses), ``min_size = max_size`` = the image size::

                                    ours: 64 px x16   320 px x8    torchvision FCOS: 64 px x16   320 px x8
    mobilenetv4_conv_small, 64        158 ms       635 ms                        206 ms       917 ms
    resnet10t, 64                     202 ms      1582 ms                        224 ms      1738 ms
    resnet18, 128                     332 ms      3023 ms                        427 ms      3521 ms

Why not wrap torchvision's FCOS: besides being 10-45% slower per step, it learned ``shapes`` slower
per step with the same backbone and recipe (below: mAP50 0.833 against 0.875 after 1,500 steps),
it resizes and normalises inside the model, and its postprocess (per-level Python loops with
data-dependent shapes) does not export to ONNX with dynamic H and W.

Backbones and recipe, measured on the built-in ``shapes`` (1,000 train images at 64 px, val mAP50 on
the 200 val images from :mod:`pixelmind.metrics.coco_eval`, score threshold 0.001): batch 16, AdamW
(weight decay 0.05, gradient norm clipped at 10), 100 warm-up steps, cosine to 5%, one thread, the
machine shared with other jobs.
"flip": horizontal flips; "d4": flips and transposes (shapes are rotation-invariant)::

    backbone, width        aug  lr     steps   mAP50 at 25 / 50 / 75 / 100% of the steps
    resnet10t, 64          flip 2e-3   1500    0.42 / 0.74 / 0.85 / 0.875
    (torchvision FCOS)     flip 2e-3   1500    0.31 / 0.66 / 0.79 / 0.833
    cs3darknet_s, 64       flip 2e-3   1500    0.33 / 0.46 / 0.65 / 0.695
    regnetx_002, 64        flip 2e-3   1500    0.25 / 0.36 / 0.39 / 0.41
    resnet10t, 64          d4   2e-3   2000    0.55 / 0.86 / 0.90 / 0.923
    resnet10t, 64 [s]      d4   5e-3   2000    0.60 / 0.89 / 0.92 / 0.933
    mobilenetv4_conv_small d4   5e-3   2000    0.39 / 0.63 / 0.78 / 0.857
    resnet18, 128 [m]      d4   5e-3   1000    0.38 / 0.57 / 0.78 / 0.842

``pmdet_s`` with d4 flips and lr 5e-3, cosine over a 600 s budget of training time (data in memory,
evaluation not counted) on **one** thread: mAP50 0.54 / 0.83 / 0.901 / 0.919 / 0.928 after 120 / 240 /
360 / 480 / 600 s (1,586 steps; 0.924 in a run before the soft cap of :func:`decode_boxes`, which the
table above also predates). ResNet-10-T learns 64 px images in the fewest steps of the backbones
tried; MobileNetV4 steps 1.3x faster at 64 px and 2.5x at 320 px, so it is the nano size for larger
images. The PAN neck and the head depths were not compared against alternatives.

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
from pixelmind.nn.memory_format import match_memory_format
from pixelmind.registry import Registry
from pixelmind.tasks.detect.loss import ClsLoss, detection_loss
from pixelmind.tasks.detect.rtdetr import TINY_CFG as _RTDETR_TINY
from pixelmind.tasks.detect.rtdetr import register as _register_rtdetr

MODELS: Registry = Registry("detection model")

__all__ = ["MODELS", "TINY", "Detector", "ModelInfo", "build_detector", "model_info"]

STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class ModelInfo:
    """What the task needs to know about a registered model before building it.

    Attributes:
        kind: ``"cnn"`` (dense anchor points, :class:`Detector`) or ``"detr"`` (a set of queries,
            :mod:`~pixelmind.tasks.detect.rtdetr`; training passes the targets to ``forward``). Both take
            batched tensors and return ``(cls_logits, boxes)`` in eval mode.
        stride: the task pads inputs so that H and W are multiples of it.
    """

    kind: Literal["cnn", "detr"]
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


class SPPF(nn.Module):
    """Fast spatial pyramid pooling (YOLOv5): halve the channels, max-pool 5x5 three times in a row (windows
    of 5, 9 and 13 cells), concatenate the four maps and mix them back to ``width``: a receptive field over
    most of a 416-px image at stride 32 for a few thousand parameters."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.reduce = ConvBNAct(width, width // 2, 1)
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.mix = ConvBNAct(width // 2 * 4, width, 1)

    def forward(self, x: Tensor) -> Tensor:
        maps = [self.reduce(x)]
        for _ in range(3):
            maps.append(self.pool(maps[-1]))
        return self.mix(torch.cat(maps, 1))


class PAN(nn.Module):
    """Path aggregation neck (Liu et al. 2018): an FPN top-down pass, then a bottom-up one.

    Lateral 1x1 convolutions bring every level to ``width`` channels; each fusion adds the
    neighbour level (nearest 2x upsampling going down, a stride-2 3x3 convolution going up) and
    refines the sum with ``depth`` 3x3 convolutions. Sums, not YOLO's concatenations, keep every
    level at ``width`` channels. ``spp`` adds :class:`SPPF` to the coarsest level before the top-down pass.
    """

    def __init__(self, in_channels: list[int], width: int, depth: int = 1, spp: bool = False) -> None:
        super().__init__()
        n = len(in_channels)
        self.lateral = nn.ModuleList(ConvBNAct(c, width, 1) for c in in_channels)
        self.spp = SPPF(width) if spp else None
        self.top_down = nn.ModuleList(_convs(width, depth) for _ in range(n - 1))
        self.down = nn.ModuleList(ConvBNAct(width, width, 3, 2) for _ in range(n - 1))
        self.bottom_up = nn.ModuleList(_convs(width, depth) for _ in range(n - 1))

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        x = [lat(f) for lat, f in zip(self.lateral, feats)]
        if self.spp is not None:
            x[-1] = self.spp(x[-1])
        for i in range(len(x) - 2, -1, -1):
            x[i] = self.top_down[i](x[i] + F.interpolate(x[i + 1], scale_factor=2.0, mode="nearest"))
        for i in range(1, len(x)):
            x[i] = self.bottom_up[i - 1](x[i] + self.down[i - 1](x[i - 1]))
        return x


class DecoupledHead(nn.Module):
    """One pyramid level's head: separate class and box branches of ``depth`` 3x3 convolutions each.

    Returns class logits ``[B, C, h, w]`` and box side distances (left, top, right, bottom) in units
    of the level's stride, as log values ``[B, 4, h, w]`` or, with ``box_bins``, as logits of a
    distribution over ``0 .. box_bins - 1`` strides per side, ``[B, 4 * box_bins, h, w]``.
    """

    def __init__(self, width: int, num_classes: int, depth: int = 2, prior: float = 0.01, box_bins: int = 0) -> None:
        super().__init__()
        self.cls = nn.Sequential(_convs(width, depth), nn.Conv2d(width, num_classes, 1))
        self.reg = nn.Sequential(_convs(width, depth), nn.Conv2d(width, 4 * max(box_bins, 1), 1))
        # RetinaNet's prior: every point starts at p = 0.01, so the first steps are not spent
        # unlearning a flood of false positives; log-distances 0 start every box 2 strides wide, and so
        # do distributions halving from bin to bin (mean 1 stride). YOLOv8's uniform start (boxes 15
        # strides wide) cost a tiny detector half its recall on four shapes images after 120 steps.
        nn.init.constant_(self.cls[-1].bias, -math.log((1 - prior) / prior))
        nn.init.zeros_(self.reg[-1].bias)
        if box_bins:
            with torch.no_grad():
                self.reg[-1].bias.copy_((torch.arange(box_bins) * -math.log(2.0)).repeat(4))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.reg[:-1](x)
        # The box output in float32 even under bf16 autocast: bf16 keeps 8 bits, so a log-distance is off by up
        # to 0.4% and, once decoded, a coordinate above 256 px moves in 2-px steps, too coarse for mAP at IoU 0.95.
        with torch.autocast(x.device.type, enabled=False):
            reg = self.reg[-1](features.float())
        return self.cls(x), reg


def decode_boxes(log_ltrb: Tensor, stride: int, max_dist: float = 64.0) -> Tensor:
    """xyxy boxes ``[B, 4, h, w]`` in input pixels from log side distances (in strides) at each cell centre.

    Distances are ``exp`` of the prediction (positive, scale-free), smoothly capped at ``max_dist``
    strides: ``log d = c - softplus(c - x)``, ``c = log(max_dist)``, is ``x`` well below the cap and
    keeps a gradient above it, where a hard clamp would freeze a point. Without a cap, points the loss
    never constrains (negatives, or inputs larger than the training size) reach millions of pixels,
    where float32 rounding alone moves a corner by pixels between PyTorch and onnxruntime.
    The cell grid comes from a cumulative sum over ones shaped like the input, not from ``arange``,
    so that an ONNX export keeps H and W dynamic.

    Example:
        >>> decode_boxes(torch.zeros(1, 4, 1, 2), 8)[0, :, 0, 1].round().tolist()  # the cell centred at (12, 4)
        [4.0, -4.0, 20.0, 12.0]
        >>> decode_boxes(torch.full((1, 4, 1, 1), 50.0), 8)[0, 2, 0, 0].item()  # capped: 4 + 64 * 8
        516.0
    """
    cap = math.log(max_dist)
    return _boxes_around_cells((cap - F.softplus(cap - log_ltrb)).exp() * stride, stride)


def decode_distributions(logits: Tensor, stride: int) -> Tensor:
    """xyxy boxes ``[B, 4, h, w]`` in input pixels from per-side distance distributions ``[B, 4 * n, h, w]``.

    Each side's distance is the expectation of the softmax over ``0 .. n - 1`` strides (Li et al. 2020,
    "Generalized Focal Loss", as YOLOv8 and YOLO11 decode): the distribution can be sharp where the edge
    is plain and spread where it is not, which a single regressed value cannot say.

    Example:
        >>> logits = torch.full((1, 4 * 16, 1, 1), -50.0)
        >>> logits[0, 3::16] = 50.0  # every side: all the mass on 3 strides
        >>> decode_distributions(logits, 8)[0, :, 0, 0].tolist()  # the cell centred at (4, 4)
        [-20.0, -20.0, 28.0, 28.0]
    """
    b, _, h, w = logits.shape  # sizes read from the tensor so that a traced ONNX export keeps them dynamic
    prob = logits.reshape(b, 4, -1, h, w).softmax(2)  # [B, 4, n, h, w]
    bins = torch.arange(prob.shape[2], dtype=prob.dtype, device=prob.device)
    return _boxes_around_cells((prob * bins[:, None, None]).sum(2) * stride, stride)


def _boxes_around_cells(dist: Tensor, stride: int) -> Tensor:
    """xyxy boxes from side distances ``[B, 4, h, w]`` (pixels) around each cell's centre."""
    ones = torch.ones_like(dist[0, 0])  # [h, w]
    xs, ys = (ones.cumsum(1) - 0.5) * stride, (ones.cumsum(0) - 0.5) * stride
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
        spp: fast spatial pyramid pooling (:class:`SPPF`) on the stride-32 level of the neck.
        box_bins: 0: each box side a log-distance (:func:`decode_boxes`); n >= 2: a distribution over
            0 .. n - 1 strides (:func:`decode_distributions`), trained with the distribution focal loss too.
        head_depth: 3x3 convolutions in each head branch.
        in_channels: image channels.
        topk, alpha, beta: task-aligned assignment (positives per object; score and IoU exponents).
        cls_loss: ``"qfl"``, ``"vfl"`` or ``"bce"``, see :mod:`pixelmind.tasks.detect.loss`.
        cls_weight, box_weight, dfl_weight: weights of the class, the GIoU and the distribution focal terms.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet10t",
        width: int = 64,
        neck_depth: int = 1,
        head_depth: int = 2,
        spp: bool = False,
        box_bins: int = 0,
        in_channels: int = 3,
        topk: int = 10,
        alpha: float = 1.0,
        beta: float = 6.0,
        cls_loss: ClsLoss = "qfl",
        cls_weight: float = 1.0,
        box_weight: float = 2.0,
        dfl_weight: float = 0.25,
    ) -> None:
        super().__init__()
        import timm

        self.strides = STRIDES
        self.num_classes = num_classes
        self.box_bins = box_bins
        self.loss_cfg = dict(topk=topk, alpha=alpha, beta=beta, cls_loss=cls_loss, cls_weight=cls_weight,
                             box_weight=box_weight, dfl_weight=dfl_weight)  # fmt: skip
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
        self.neck = PAN(self.backbone.feature_info.channels(), width, neck_depth, spp)
        self.heads = nn.ModuleList(DecoupledHead(width, num_classes, head_depth, box_bins=box_bins) for _ in STRIDES)

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        # inputs follow the weights' memory format: a channels-last detector fed NCHW converts at every layer
        feats = self.neck(self.backbone(match_memory_format(self, images)))
        logits, boxes, regs = [], [], []
        for x, head, stride in zip(feats, self.heads, self.strides):
            cls, reg = head(x)
            logits.append(cls.flatten(2))
            boxes.append((decode_distributions(reg, stride) if self.box_bins else decode_boxes(reg, stride)).flatten(2))
            regs.append(reg.flatten(2))
        out = torch.cat(logits, 2).transpose(1, 2), torch.cat(boxes, 2).transpose(1, 2)
        if self.box_bins and self.training:  # the distributions too, for the distribution focal loss
            return *out, torch.cat(regs, 2).transpose(1, 2).unflatten(-1, (4, self.box_bins))
        return out

    def loss(
        self, raw_outputs: tuple[Tensor, ...], targets: list[dict[str, Tensor]], image_size: tuple[int, int]
    ) -> dict[str, Tensor]:
        """``{"loss", "loss_cls", "loss_box"}`` (and ``"loss_dfl"`` with ``box_bins``) of ``forward``'s outputs for an ``(H, W)`` batch.

        ``targets`` holds per image ``{"boxes": [N, 4] xyxy pixels, "labels": [N] 0-based}``; N may
        be 0. See :func:`~pixelmind.tasks.detect.loss.detection_loss`.
        """
        box_logits = raw_outputs[2] if len(raw_outputs) > 2 else None
        return detection_loss(*raw_outputs[:2], targets, tuple(image_size), self.strides, box_logits=box_logits,
                              **self.loss_cfg)  # fmt: skip


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
    if not isinstance(cfg.get("spp", False), bool):
        raise ConfigError(f"spp: must be true or false, got {cfg['spp']!r}")
    if "box_bins" in cfg and (not isinstance(cfg["box_bins"], int) or cfg["box_bins"] < 0 or cfg["box_bins"] == 1):
        raise ConfigError(f"box_bins: 0 (log-distances) or at least 2, got {cfg['box_bins']!r}")
    if "neck_depth" in cfg and (not isinstance(cfg["neck_depth"], int) or cfg["neck_depth"] < 0):
        raise ConfigError(f"neck_depth: must be a non-negative integer, got {cfg['neck_depth']!r}")
    return Detector(num_classes, **cfg)


@_register("pmdet_n")
def pmdet_n(num_classes: int, **kwargs) -> Detector:
    """Nano: MobileNetV4-Conv-Small backbone, 64-channel neck and heads: 2.00M parameters, 6.5 GFLOPs at
    640 px (YOLO11n's budget: 2.6M, 6.5). The fastest at 320 px and above; slower to learn 64 px shapes."""
    cfg = dict(backbone="mobilenetv4_conv_small", width=64, neck_depth=1, head_depth=2)
    return _detector("pmdet_n", num_classes, kwargs, **cfg)


@_register("pmdet_s")
def pmdet_s(num_classes: int, **kwargs) -> Detector:
    """Small: ResNet-10-T backbone, 64-channel neck and heads: 5.65M parameters, 21.5 GFLOPs at 640 px.
    The best mAP per second of training on 64 px ``shapes`` of the backbones measured (module docstring)."""
    cfg = dict(backbone="resnet10t", width=64, neck_depth=1, head_depth=2)
    return _detector("pmdet_s", num_classes, kwargs, **cfg)


@_register("pmdet_m")
def pmdet_m(num_classes: int, **kwargs) -> Detector:
    """Medium: ResNet-18 backbone, 128-channel neck and heads: 13.95M parameters, 43.4 GFLOPs at 640 px."""
    cfg = dict(backbone="resnet18", width=128, neck_depth=1, head_depth=2)
    return _detector("pmdet_m", num_classes, kwargs, **cfg)


# ------------------------------------------------------------------------------------------ public

# Keyword arguments that shrink each registered model for tests (tens of thousands of parameters).
# A new model needs an entry.
_TINY_CFG: dict[str, Any] = dict(backbone="test_efficientnet", width=16, neck_depth=1, head_depth=1)
TINY: dict[str, dict[str, Any]] = {name: dict(_TINY_CFG) for name in ("pmdet_n", "pmdet_s", "pmdet_m")}

# The Transformer detector lives in its own module (it does not import this one: no cycle).
_register_rtdetr(MODELS, _INFO, lambda kind, stride: ModelInfo("detr", stride))
TINY["rtdetr"] = dict(_RTDETR_TINY)


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
        name: a registered name (``pmdet_n``, ``pmdet_s``, ``pmdet_m``, ``rtdetr``).
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
