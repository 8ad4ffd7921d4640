"""Segmentation losses: ignored pixels, perfect predictions, class weights, focal vs CE, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pixelmind.errors import ConfigError
from pixelmind.tasks.segment.losses import LOSSES, cross_entropy, dice_loss, focal_loss, segmentation_loss

IGNORE = 255


def batch(seed: int = 0, num_classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits and a target with a band of ignored pixels."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, num_classes, 8, 10, generator=g)
    target = torch.randint(0, num_classes, (2, 8, 10), generator=g)
    target[:, 2:4] = IGNORE
    return logits, target


def one_hot_logits(target: torch.Tensor, num_classes: int, scale: float = 30.0) -> torch.Tensor:
    return scale * F.one_hot(target.clamp(max=num_classes - 1), num_classes).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_get_no_gradient_and_do_not_change_the_loss(name):
    logits, target = batch()
    loss_fn = segmentation_loss(name, 4, class_weights=torch.tensor([0.5, 1.0, 2.0, 1.0]))
    logits.requires_grad_(True)
    loss = loss_fn(logits, target)
    loss.backward()
    ignored = (target == IGNORE).unsqueeze(1).expand_as(logits)
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[ignored].abs().max() == 0
    assert logits.grad[~ignored].abs().max() > 0

    changed = logits.detach().clone()
    changed[ignored] = 100.0 * torch.randn(int(ignored.sum()))
    torch.testing.assert_close(loss_fn(changed, target), loss.detach())


@pytest.mark.parametrize("name", LOSSES)
def test_all_ignored_batch_gives_zero_and_backward_works(name):
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = segmentation_loss(name, 3)(logits, torch.full((1, 4, 4), IGNORE))
    loss.backward()
    assert loss.item() == 0.0 and (logits.grad == 0).all()


@pytest.mark.parametrize("name", LOSSES)
def test_perfect_prediction_gives_about_zero(name):
    _, target = batch(1)
    logits = one_hot_logits(target, 4)
    assert segmentation_loss(name, 4)(logits, target).item() < 1e-6


def test_dice_is_not_fooled_by_ignored_pixels_and_averages_present_classes():
    target = torch.tensor([[[0, 0, 1, IGNORE]]])
    logits = one_hot_logits(target, 3)
    logits[0, :, 0, 3] = torch.tensor([0.0, 0.0, 50.0])  # a wrong but ignored pixel
    assert dice_loss(logits, target).item() < 1e-6

    # p = 1/3 everywhere; classes 0 and 1 are present (2 and 1 labelled pixels out of 3), class 2 is not
    soft = torch.zeros(1, 3, 1, 4)
    dice0 = 2 * (2 / 3) / (3 / 3 + 2)
    dice1 = 2 * (1 / 3) / (3 / 3 + 1)
    torch.testing.assert_close(dice_loss(soft, target), torch.tensor(1 - (dice0 + dice1) / 2))


def test_class_weights_change_ce_as_torch_weighted_ce_does():
    logits, target = batch(2)
    w = torch.tensor([0.1, 1.0, 3.0, 0.5])
    ours = segmentation_loss("ce", 4, class_weights=w)(logits, target)
    torch.testing.assert_close(ours, F.cross_entropy(logits, target, weight=w, ignore_index=IGNORE))
    unweighted = segmentation_loss("ce", 4)(logits, target)
    torch.testing.assert_close(unweighted, F.cross_entropy(logits, target, ignore_index=IGNORE))
    assert not torch.isclose(ours, unweighted)


@pytest.mark.parametrize("weights", [None, torch.tensor([0.1, 1.0, 3.0, 0.5])])
def test_focal_with_gamma_zero_is_ce_and_focal_is_never_above_ce(weights):
    logits, target = batch(3)
    ce = cross_entropy(logits, target, IGNORE, weights)
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0, alpha=weights), ce)
    focal = segmentation_loss("focal", 4, class_weights=weights)(logits, target)
    assert 0 < focal < ce  # (1 - p_t)^2 < 1 down-weights every pixel


def test_sums_are_sums():
    logits, target = batch(4)
    parts = {n: segmentation_loss(n, 4)(logits, target) for n in ("ce", "dice", "focal")}
    torch.testing.assert_close(segmentation_loss("ce+dice", 4)(logits, target), parts["ce"] + parts["dice"])
    torch.testing.assert_close(
        segmentation_loss("focal+dice", 4)(logits, target), parts["focal"] + parts["dice"]
    )


def test_gradients_match_finite_differences():
    logits, target = batch(5, num_classes=3)
    logits = logits[:1, :, :3, :3].double().requires_grad_(True)
    target = target[:1, :3, :3].clamp(max=2)
    target[0, 0, 0] = IGNORE
    w = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: dice_loss(x, target), (logits,))
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, target, 2.0, IGNORE, w), (logits,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits_give_a_float32_loss(dtype):
    logits, target = batch(6)
    loss = segmentation_loss("focal+dice", 4)(logits.to(dtype), target)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, segmentation_loss("focal+dice", 4)(logits, target), atol=2e-2, rtol=0)


def test_weights_follow_the_logits_device_and_the_module():
    loss_fn = segmentation_loss("ce", 4, class_weights=[1.0, 2.0, 3.0, 4.0])
    assert "class_weights" in dict(loss_fn.named_buffers())
    assert loss_fn.to(torch.float64).class_weights.dtype == torch.float64


def test_errors_name_the_problem():
    with pytest.raises(ConfigError) as info:
        segmentation_loss("lovasz", 3)
    assert "lovasz" in str(info.value) and "ce+dice" in str(info.value) and "focal" in str(info.value)
    with pytest.raises(ConfigError, match="class_weights.*3"):
        segmentation_loss("ce", 3, class_weights=torch.ones(4))
    with pytest.raises(ConfigError, match="class_weights"):
        segmentation_loss("focal", 2, class_weights=torch.tensor([1.0, -1.0]))
