"""Segmentation models: semantic (U-Net, DeepLabV3+, FPN, SegFormer) and instance (Mask R-CNN).

Semantic models are segmentation-models-pytorch (smp) architectures over timm encoders. They map
``[B, in_channels, H, W]``, with H and W multiples of :func:`model_info`'s ``stride`` (the task pads), to
logits ``[B, num_classes, H, W]``. Every builder takes ``encoder=`` (any timm model with a feature
pyramid, e.g. ``"resnet34"`` or ``"tu-convnext_tiny"``; the smp names ``mit_b0``..``mit_b5`` for SegFormer)
and the smp keyword arguments of its architecture (``decoder_channels``, ``encoder_depth``...). Weights
always start random: trained weights come from a checkpoint file, never from a hub.

``maskrcnn`` is torchvision's Mask R-CNN on a ResNet-18 FPN; see :func:`maskrcnn` for its inputs and
outputs, which are lists of images and dicts rather than batched tensors.

:data:`TINY` holds, for each registered name, keyword arguments that shrink it to a test-sized model:
``build_segmenter(name, 3, **TINY[name])``.

Why ``unet_s`` is what it is: U-Net keeps full-resolution detail (thin ISBI membranes need it) and on a
CPU its cost is mostly the full- and half-resolution decoder stages, so the decoder is narrow and the
encoder a light timm ResNet. Measured forward + backward (cross-entropy), batch 16, 2 threads, on a
2-core machine shared with other jobs (median of 6; runs under heavier load were up to 2x slower)::

    U-Net: encoder, depth, decoder channels         params   64x64    256x256
    resnet18, 5, (256, 128, 64, 32, 16)   [unet]     14.33M   558 ms   7.96 s
    resnet18, 4, (32, 16, 16, 8)                      2.93M   215 ms   3.39 s
    resnet10t, 5, (64, 32, 16, 16, 16)                5.50M   236 ms   3.98 s
    resnet10t, 4, (32, 16, 16, 8)         [unet_s]    1.40M   138 ms   2.86 s
    mobilenetv3_small_100, 5, (32, 16, 16, 8, 8)      1.14M   129 ms   1.04 s
    efficientnet_lite0, 5, (64, 32, 16, 16, 16)       3.31M   288 ms   3.72 s

Trained on synthetic 64 px shapes (3 shapes + background, 2000 images; AdamW 2e-3, CE, batch 16, one
thread), validation mIoU after 500 / 1000 / 1500 steps: resnet10t depth 4: 0.46 / 0.94 / 0.96;
mobilenetv3_small_100: 0.54 / 0.80 / 0.88; resnet10t depth 5, (64, 32, 16, 16, 8): 0.37 / 0.42 / 0.95.
The depth-4 ResNet-10-T converges in the fewest steps, so it wins at 64 px although MobileNetV3 steps
as fast; at 256 px and above MobileNetV3 steps 2.8x faster (``encoder="mobilenetv3_small_100",
encoder_depth=5, decoder_channels=(32, 16, 16, 8, 8)``) if time matters more than steps.

Example:
    >>> import torch
    >>> m = build_segmenter("unet_s", num_classes=4)
    >>> m(torch.rand(2, 3, 64, 64)).shape
    torch.Size([2, 4, 64, 64])
    >>> model_info("unet_s")
    ModelInfo(kind='semantic', stride=32)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from pixelmind.errors import ConfigError
from pixelmind.registry import Registry

MODELS: Registry = Registry("segmentation model")

__all__ = ["MODELS", "TINY", "ModelInfo", "build_segmenter", "model_info"]


@dataclass(frozen=True)
class ModelInfo:
    """What the task needs to know about a registered model before building it.

    Attributes:
        kind: ``"semantic"`` (batched tensors in, logits out) or ``"instance"`` (torchvision detection I/O).
        stride: the task pads inputs so that H and W are multiples of it. 32 for every semantic model,
            whatever its ``encoder_depth``: the bound that holds for any timm encoder; 1 for Mask R-CNN,
            which resizes and pads its images itself.
    """

    kind: Literal["semantic", "instance"]
    stride: int


_INFO: dict[str, ModelInfo] = {}

# Kwargs of smp models that build_segmenter keeps for itself: the task sets the sizes, weights are never
# downloaded, and an activation or an auxiliary head would change what forward returns (logits).
_RESERVED = {"self", "kwargs", "encoder_name", "encoder_weights", "in_channels", "classes"}
_RESERVED |= {"activation", "aux_params"}


def _register(name: str, kind: Literal["semantic", "instance"] = "semantic", stride: int = 32) -> Callable:
    def decorator(fn: Callable) -> Callable:
        _INFO[name] = ModelInfo(kind, stride)
        return MODELS.register(name)(fn)

    return decorator


def _reject_unknown(model: str, kwargs: dict[str, Any], allowed: set[str]) -> None:
    bad = sorted(set(kwargs) - allowed)
    if bad:
        raise ConfigError(
            f"model {model!r}: unknown option(s) {', '.join(bad)}; choose from: {', '.join(sorted(allowed))}"
        )


def _encoder_name(encoder: str) -> str:
    """The smp encoder name for a timm model name (``tu-`` prefix optional) or an smp ``mit_b*`` name."""
    import timm

    if not isinstance(encoder, str):
        raise ConfigError(f"encoder: expected a timm model name, got {encoder!r}")
    if encoder.startswith("mit_b"):  # SegFormer's Mix Transformer lives in smp, not in timm
        return encoder
    timm_name = encoder.removeprefix("tu-")
    if not timm.is_model(timm_name):
        raise ConfigError(
            f"encoder: {encoder!r} is not a timm model (see timm.list_models()) nor mit_b0..mit_b5"
        )
    return f"tu-{timm_name}"


def _smp(
    arch: type[nn.Module], model: str, num_classes: int, in_channels: int, kwargs: dict, **defaults
) -> nn.Module:
    """An smp ``arch`` with random weights; ``kwargs`` (the user's) override ``defaults`` (the builder's)."""
    if in_channels < 1:
        raise ConfigError(f"in_channels: must be at least 1, got {in_channels!r}")
    if "encoder_weights" in kwargs:
        raise ConfigError(
            f"model {model!r}: encoder_weights is not an option; weights start random or come from --weights PATH"
        )
    _reject_unknown(model, kwargs, set(inspect.signature(arch.__init__).parameters) - _RESERVED | {"encoder"})
    cfg = {**defaults, **kwargs}
    encoder = _encoder_name(cfg.pop("encoder"))
    try:
        return arch(
            encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=num_classes, **cfg
        )
    except (ValueError, TypeError, AssertionError, KeyError) as err:
        hint = ""
        if "downsampling pattern" in str(err):  # smp's words for an encoder without a feature pyramid
            hint = " (a plain ViT has no feature pyramid; use a CNN, Swin or ConvNeXt encoder)"
        raise ConfigError(
            f"model {model!r} with encoder {encoder!r} and {kwargs or 'defaults'}: {err}{hint}"
        ) from None


# ------------------------------------------------------------------------------------------ semantic


@_register("unet")
def unet(num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    """U-Net on a timm ResNet-18, smp's default decoder (256, 128, 64, 32, 16): 14.3M parameters."""
    import segmentation_models_pytorch as smp

    return _smp(smp.Unet, "unet", num_classes, in_channels, kwargs, encoder="resnet18")


@_register("unet_s")
def unet_s(num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    """Small U-Net for CPUs: timm ResNet-10-T, 4 stages, decoder (32, 16, 16, 8): 1.40M parameters.

    Fast where the pixels are (the full- and half-resolution stages are 8 and 16 channels wide) and deep
    where they are few; see the timing table in the module docstring.
    """
    import segmentation_models_pytorch as smp

    cfg = dict(encoder="resnet10t", encoder_depth=4, decoder_channels=(32, 16, 16, 8))
    return _smp(smp.Unet, "unet_s", num_classes, in_channels, kwargs, **cfg)


@_register("deeplabv3plus")
def deeplabv3plus(num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    """DeepLabV3+ on a timm ResNet-18, output stride 16, 256-channel ASPP decoder: 12.3M parameters."""
    import segmentation_models_pytorch as smp

    return _smp(smp.DeepLabV3Plus, "deeplabv3plus", num_classes, in_channels, kwargs, encoder="resnet18")


@_register("fpn")
def fpn(num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    """FPN (Kirillov et al. panoptic FPN head) on a timm ResNet-18, 256/128 channels: 13.0M parameters."""
    import segmentation_models_pytorch as smp

    return _smp(smp.FPN, "fpn", num_classes, in_channels, kwargs, encoder="resnet18")


@_register("segformer")
def segformer(num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    """SegFormer (Xie et al. 2021), the Transformer: Mix Transformer B0 encoder, 256-channel MLP head: 3.7M.

    Its logits are computed at 1/4 resolution and upsampled bilinearly, so boundaries are softer than
    a U-Net's.
    """
    import segmentation_models_pytorch as smp

    return _smp(smp.Segformer, "segformer", num_classes, in_channels, kwargs, encoder="mit_b0")


# ------------------------------------------------------------------------------------------ instance


@_register("maskrcnn", kind="instance", stride=1)
def maskrcnn(
    num_classes: int,
    in_channels: int = 3,
    min_size: int = 320,
    max_size: int = 512,
    anchor_sizes: Sequence[int] = (16, 32, 64, 128, 256),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    **kwargs,
) -> nn.Module:
    """Mask R-CNN (He et al. 2017), torchvision's, on a ResNet-18 FPN trained from scratch: 30.9M parameters.

    ``num_classes`` counts the object classes; the model predicts one more, background, as index 0.

    Inputs and outputs (torchvision's detection convention, not batched tensors):

    * train mode: ``model(images, targets) -> dict[str, Tensor]`` of five losses to sum
      (``loss_classifier``, ``loss_box_reg``, ``loss_mask``, ``loss_objectness``, ``loss_rpn_box_reg``);
      ``images`` is a list of ``float [in_channels, H, W]`` in **0..1** (sizes may differ), ``targets`` a
      list of ``{"boxes": float [N, 4] xyxy pixels, "labels": int64 [N] in 1..num_classes,
      "masks": uint8 [N, H, W]}``; an image without objects has ``N = 0`` and is a valid negative.
    * eval mode: ``model(images) -> list[dict]``, one per image, ``{"boxes": [K, 4], "labels": [K]
      (1-based), "scores": [K], "masks": float [K, 1, H, W]}`` (soft masks in 0..1, threshold at 0.5),
      in the input image's own coordinates.

    The model normalises its inputs itself (``image_mean``/``image_std``, ImageNet statistics for RGB)
    and resizes each image so that its short side is ``min_size`` (long side at most ``max_size``): the
    task must feed raw 0..1 images, neither normalised nor padded.

    Args:
        num_classes: object classes, background excluded.
        in_channels: image channels; other than 3, the stem conv is rebuilt and mean/std are 0.5/0.25.
        min_size: short side the images are resized to (small images are upsampled: 64 px shapes at 320).
        max_size: cap on the long side after resizing.
        anchor_sizes: one anchor size per FPN level (strides 4 to 64), half torchvision's defaults
            since objects in small resized images are small.
        aspect_ratios: anchor height/width ratios at every level.
        **kwargs: other keyword arguments of ``torchvision.models.detection.MaskRCNN``.

    Example:
        >>> import torch
        >>> m = maskrcnn(num_classes=3, min_size=64, max_size=64).eval()
        >>> with torch.no_grad():
        ...     out = m([torch.rand(3, 64, 48)])
        >>> sorted(out[0]), out[0]["masks"].shape[1:]
        (['boxes', 'labels', 'masks', 'scores'], torch.Size([1, 64, 48]))
    """
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    fixed = {"self", "kwargs", "backbone", "num_classes", "rpn_anchor_generator"}  # set here
    _reject_unknown("maskrcnn", kwargs, set(inspect.signature(MaskRCNN.__init__).parameters) - fixed)
    if in_channels < 1:
        raise ConfigError(f"in_channels: must be at least 1, got {in_channels!r}")
    if len(anchor_sizes) != 5:
        raise ConfigError(f"anchor_sizes: one size per FPN level, 5 in all; got {list(anchor_sizes)}")
    # Trainable BatchNorm, not torchvision's default frozen BN: frozen BN only makes sense over pretrained
    # statistics, and from scratch it is the identity (torchvision's own builders switch the same way).
    backbone = resnet_fpn_backbone(
        backbone_name="resnet18", weights=None, trainable_layers=5, norm_layer=nn.BatchNorm2d
    )
    if in_channels != 3:
        backbone.body.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    mean, std = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) if in_channels == 3 else ([0.5], [0.25])
    cfg: dict[str, Any] = dict(
        image_mean=mean * (in_channels // len(mean)),
        image_std=std * (in_channels // len(std)),
        # A few objects per small image: fewer proposals and RoI samples than torchvision's defaults
        # (2000/1000 proposals, 512 RoIs) keep a CPU step fast without starving the heads.
        rpn_pre_nms_top_n_train=1000,
        rpn_post_nms_top_n_train=500,
        rpn_pre_nms_top_n_test=500,
        rpn_post_nms_top_n_test=300,
        box_batch_size_per_image=128,
    )
    anchors = AnchorGenerator(
        tuple((int(s),) for s in anchor_sizes), (tuple(aspect_ratios),) * len(anchor_sizes)
    )
    return MaskRCNN(
        backbone,
        num_classes=num_classes + 1,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=anchors,
        **{**cfg, **kwargs},
    )


# ------------------------------------------------------------------------------------------ public


# Keyword arguments that shrink each registered model for tests (thousands of parameters, except the
# SegFormer whose encoder, smp's mit_b0, has no smaller variant). A new model needs an entry.
TINY: dict[str, dict[str, Any]] = {
    "unet": dict(encoder="test_efficientnet", decoder_channels=(16, 8, 8, 8, 8)),
    "unet_s": dict(encoder="test_efficientnet", encoder_depth=5, decoder_channels=(16, 8, 8, 8, 8)),
    "deeplabv3plus": dict(encoder="test_efficientnet", decoder_channels=16, decoder_aspp_separable=True),
    "fpn": dict(encoder="test_efficientnet", decoder_pyramid_channels=16, decoder_segmentation_channels=32),
    "segformer": dict(decoder_segmentation_channels=16),
    "maskrcnn": dict(
        min_size=64,
        max_size=64,
        rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=50,
        box_detections_per_img=10,
    ),
}


def model_info(name: str) -> ModelInfo:
    """Kind and stride of the registered model ``name``.

    Raises:
        ConfigError: unknown name (the message lists the choices).

    Example:
        >>> model_info("maskrcnn")
        ModelInfo(kind='instance', stride=1)
    """
    MODELS.get(name)  # raises the ConfigError that lists the choices
    return _INFO[name]


def build_segmenter(name: str, num_classes: int, in_channels: int = 3, **kwargs) -> nn.Module:
    """A registered segmentation model with random weights; ``kwargs`` override the builder's defaults.

    Args:
        name: a registered name (``unet``, ``unet_s``, ``deeplabv3plus``, ``fpn``, ``segformer``, ``maskrcnn``).
        num_classes: semantic models: output channels, background included; ``maskrcnn``: object
            classes, background excluded.
        in_channels: image channels (1 for grey images such as ISBI membranes).
        **kwargs: ``encoder=`` (a timm model name) and the smp options of the architecture, or
            Mask R-CNN's options; see each builder.

    Raises:
        ConfigError: unknown name or option (the message lists the choices), an encoder that is not a
            timm model or has no feature pyramid, options that do not fit together.

    Example:
        >>> import torch
        >>> m = build_segmenter("unet", 2, in_channels=1, encoder="resnet10t", decoder_channels=(32, 16, 8, 8, 8))
        >>> m(torch.rand(1, 1, 32, 64)).shape
        torch.Size([1, 2, 32, 64])
    """
    builder = MODELS.get(name)
    if num_classes < 1:
        raise ConfigError(f"num_classes: must be at least 1, got {num_classes!r}")
    return builder(num_classes, in_channels, **kwargs)
