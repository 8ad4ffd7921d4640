"""Every registered classifier trains at 32 px on CPU; timm models build for small images."""

from __future__ import annotations

import pytest
import torch

from pixelmind.errors import ConfigError
from pixelmind.tasks.classify.models import MODELS, build_classifier


def test_registry_holds_the_built_in_models():
    assert {"pm_cnn_t", "pm_cnn_s", "pm_cnn_m", "pm_cnn_l"} <= set(MODELS)


@pytest.mark.parametrize("name", list(MODELS))
def test_builtin_forward_and_backward(name):
    torch.manual_seed(0)
    model = build_classifier(name, num_classes=5, imgsz=32).train()
    for m in model.modules():  # keep BatchNorm in training mode but make the loss deterministic
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    x = torch.randn(2, 3, 32, 32)
    y = torch.tensor([1, 4])
    logits = model(x)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params
    for n, p in params:
        assert p.grad is not None, f"{name}: {n} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {n} has a non-finite gradient"
    assert sum(p.grad.abs().sum().item() for _, p in params) > 0
    # one SGD step on the same batch lowers the loss: the gradient points somewhere useful
    with torch.no_grad():
        for _, p in params:
            p -= 0.01 * p.grad
    assert torch.nn.functional.cross_entropy(model(x), y).item() < loss.item()
    # other input sizes work too (global pooling), in eval mode with batch 1
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 24)).shape == (1, 5)


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224"])
def test_timm_models_at_32px(name):
    torch.manual_seed(0)
    model = build_classifier(name, num_classes=4, imgsz=32).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 4) and torch.isfinite(out).all()


def test_timm_vit_is_built_for_the_image_size():
    model = build_classifier("vit_tiny_patch16_224", num_classes=4, imgsz=32)
    assert model.patch_embed.num_patches == 4  # (32 / 16) ** 2, not the 196 of 224 px


def test_unknown_model_name():
    with pytest.raises(ConfigError) as info:
        build_classifier("no_such_net_xyz", num_classes=3, imgsz=32)
    msg = str(info.value)
    assert "no_such_net_xyz" in msg and "pm_cnn_t" in msg and "\n" not in msg


def test_pretrained_builtin_model_is_refused():
    with pytest.raises(ConfigError, match="pretrained") as info:
        build_classifier("pm_cnn_t", num_classes=3, imgsz=32, pretrained=True)
    assert "pm_cnn_t" in str(info.value)


def test_pretrained_timm_offline_fails_at_once_with_a_clear_message():
    from pixelmind.tasks.classify.models import _hub_unreachable

    if _hub_unreachable() is None:
        pytest.skip("the hub is reachable from here")
    with pytest.raises(ConfigError, match="pretrained: .*--weights PATH"):
        build_classifier("resnet18", num_classes=3, imgsz=32, pretrained=True)
