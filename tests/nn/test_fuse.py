"""Folding BatchNorm into convolutions for predict: same outputs, fewer layers, refused where the tree misleads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelmind.nn.fuse import fuse_conv_bn, fused_copy
from pixelmind.tasks.detect.models import build_detector


def _random_statistics(net: nn.Module) -> nn.Module:
    # fresh BatchNorms are identities in eval mode; trained ones are not
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return net.eval()


@pytest.mark.parametrize("name", ["pmdet_n", "pmdet_s"])
def test_every_batchnorm_of_the_detectors_folds_and_the_outputs_stay(name):
    net = _random_statistics(build_detector(name, 2, width=16))
    x = torch.rand(1, 3, 64, 64)
    fast = fused_copy(net, x)
    assert fast is not net
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    with torch.inference_mode():
        (la, ba), (lb, bb) = net(x), fast(x)
    assert torch.allclose(la, lb, atol=1e-4) and torch.allclose(ba, bb, rtol=1e-4, atol=1e-3)
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the original is left alone
    assert fused_copy(net.train(), x).training is False and net.training  # and keeps its mode


class NormBeforeConv(nn.Module):
    """A pre-activation block: its names pair conv1 with bn1, but bn1 runs first."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        return self.conv1(self.bn1(x))


def test_a_pair_the_forward_does_not_run_in_that_order_keeps_the_network_unfused():
    net = _random_statistics(NormBeforeConv())
    assert fuse_conv_bn(NormBeforeConv().eval()) == 1  # the names alone would fold it ...
    assert fused_copy(net, torch.rand(1, 4, 8, 8)) is net  # ... the output check refuses


def test_nothing_to_fold_returns_the_model_itself():
    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()).eval()
    assert fused_copy(net, torch.rand(1, 3, 4, 4)) is net
