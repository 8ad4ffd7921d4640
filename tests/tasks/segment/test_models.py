"""Every registered segmentation model, tiny: shapes, gradients, grey input, ONNX parity, Mask R-CNN I/O, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixelmind.errors import ConfigError
from pixelmind.tasks.segment.models import MODELS, TINY, ModelInfo, build_segmenter, model_info

SEMANTIC = [n for n in MODELS if model_info(n).kind == "semantic"]

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only spins (conftest)


def tiny(name: str, num_classes: int = 3, in_channels: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_segmenter(name, num_classes, in_channels, **TINY[name])


def test_registry_names_kinds_and_tiny_variants():
    assert set(MODELS) >= {"unet", "unet_s", "deeplabv3plus", "fpn", "segformer", "maskrcnn"}
    assert set(MODELS) == set(TINY)
    assert model_info("maskrcnn") == ModelInfo("instance", 1)
    assert all(model_info(n) == ModelInfo("semantic", 32) for n in SEMANTIC)


@pytest.mark.slow  # random init of 76M parameters in all
def test_default_sizes_match_the_docstrings():
    counts = {n: sum(p.numel() for p in build_segmenter(n, 4).parameters()) for n in MODELS}
    assert {n: round(c / 1e6, 1) for n, c in counts.items()} == {
        "unet": 14.3, "unet_s": 1.4, "deeplabv3plus": 12.3, "fpn": 13.0, "segformer": 3.7, "maskrcnn": 30.9,
    }  # fmt: skip


@pytest.mark.parametrize("name", SEMANTIC)
def test_forward_backward(name):
    model = tiny(name).train()
    x = torch.rand(2, 3, 64, 96)
    out = model(x)
    assert out.shape == (2, 3, 64, 96)
    F.cross_entropy(out, torch.randint(0, 3, (2, 64, 96))).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads), f"{name}: a parameter got no gradient"
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("name", SEMANTIC)
def test_grey_input_and_a_single_class(name):
    model = tiny(name, num_classes=1, in_channels=1).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 32, 64))
    assert out.shape == (1, 1, 32, 64) and torch.isfinite(out).all()


def test_encoder_is_any_timm_model_with_or_without_prefix():
    a = build_segmenter("unet_s", 2, encoder="resnet10t", encoder_depth=3, decoder_channels=(16, 8, 8))
    b = build_segmenter("unet_s", 2, encoder="tu-resnet10t", encoder_depth=3, decoder_channels=(16, 8, 8))
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
    assert a(torch.rand(1, 3, 32, 32)).shape == (1, 2, 32, 32)


@pytest.mark.parametrize("name", SEMANTIC)
def test_onnx_export_with_dynamic_height_and_width_matches_pytorch(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = tiny(name).train()
    with torch.no_grad():  # a few train-mode passes move BatchNorm statistics off their identity init
        for _ in range(3):
            model(torch.rand(2, 3, 64, 64))
    model.eval()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns about its own deprecation
        torch.onnx.export(
            model, (torch.rand(1, 3, 64, 64),), str(path), input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                          "logits": {0: "batch", 2: "height", 3: "width"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 64, 64), (2, 3, 96, 128)]:  # the traced size and another multiple of the stride
        x = torch.rand(shape)
        with torch.no_grad():
            ref = model(x).numpy()
        got = session.run(None, {"images": x.numpy()})[0]
        assert got.shape == ref.shape == (shape[0], 3, shape[2], shape[3])
        assert ref.std() > 1e-3  # not a constant output, which would match trivially
        assert np.abs(got - ref).max() < 1e-3


def instance_batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Two 64x64 images: one with two objects, one without any (a valid negative)."""
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 5:20, 10:30] = 1
    masks[1, 30:60, 30:50] = 1
    targets = [
        {"boxes": torch.tensor([[10.0, 5.0, 30.0, 20.0], [30.0, 30.0, 50.0, 60.0]]),
         "labels": torch.tensor([1, 2]), "masks": masks},
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64),
         "masks": torch.zeros((0, 64, 64), dtype=torch.uint8)},
    ]  # fmt: skip
    return [torch.rand(3, 64, 64, generator=g), torch.rand(3, 64, 64, generator=g)], targets


@pytest.mark.slow
def test_maskrcnn_train_mode_returns_finite_losses_with_a_negative_image():
    model = tiny("maskrcnn", num_classes=2).train()
    images, targets = instance_batch()
    losses = model(images, targets)
    assert set(losses) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 0.9 * len(list(model.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.slow
def test_maskrcnn_eval_mode_output_format():
    model = tiny("maskrcnn", num_classes=2).eval()
    images, _ = instance_batch()
    images[1] = images[1][:, :48]  # sizes may differ within a batch
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for o, img in zip(out, images):
        assert set(o) == {"boxes", "labels", "scores", "masks"}
        k = len(o["scores"])
        assert o["boxes"].shape == (k, 4) and o["labels"].dtype == torch.int64
        assert o["masks"].shape == (k, 1, *img.shape[1:]) and o["masks"].dtype == torch.float32
        assert ((o["labels"] >= 1) & (o["labels"] <= 2)).all()  # 0 is background, never returned
        assert ((o["masks"] >= 0) & (o["masks"] <= 1)).all()


def test_maskrcnn_grey_input_builds_a_one_channel_stem():
    model = build_segmenter("maskrcnn", 1, in_channels=1, **TINY["maskrcnn"])
    assert model.backbone.body.conv1.in_channels == 1
    assert list(model.transform.image_mean) == [0.5]
    assert model.roi_heads.box_predictor.cls_score.out_features == 2  # background + 1


def test_unknown_name_lists_the_choices():
    with pytest.raises(ConfigError) as info:
        build_segmenter("no_such_net_xyz", 3)
    assert (
        "no_such_net_xyz" in str(info.value) and "unet_s" in str(info.value) and "maskrcnn" in str(info.value)
    )
    with pytest.raises(ConfigError, match="unet_s"):
        model_info("no_such_net_xyz")


@pytest.mark.parametrize("name", list(MODELS))
def test_unknown_option_is_named(name):
    with pytest.raises(ConfigError, match="decoder_widht"):
        build_segmenter(name, 3, decoder_widht=8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"encoder": "no_such_encoder"}, "no_such_encoder"),
        ({"encoder": None}, "encoder"),
        (
            {"encoder": "vit_tiny_patch16_224"},
            "vit_tiny.*feature pyramid",
        ),  # one resolution only: no feature pyramid
        ({"encoder_weights": "imagenet"}, "encoder_weights"),  # never downloads
        ({"activation": "sigmoid"}, "activation"),  # forward returns logits
        ({"encoder_depth": 3, "decoder_channels": (16, 8)}, "decoder_channels|depth"),
    ],
)
def test_bad_options_raise_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_segmenter("unet_s", 3, **kwargs)


def test_bad_sizes_raise_config_errors():
    with pytest.raises(ConfigError, match="num_classes"):
        build_segmenter("unet_s", 0)
    with pytest.raises(ConfigError, match="anchor_sizes"):
        build_segmenter("maskrcnn", 3, anchor_sizes=(16, 32))
