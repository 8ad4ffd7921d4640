"""Every registered enhancement model, tiny, at every scale: shapes on odd sizes, gradients, init, ONNX."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixelmind.errors import ConfigError
from pixelmind.tasks.enhance.layers import pad_to_multiple, upsample
from pixelmind.tasks.enhance.models import MODELS, build_enhancer
from pixelmind.tasks.enhance.transformers import shifted_window_mask, window_partition

# Overrides that shrink each registered model to a few thousand parameters; a new model needs an entry.
TINY = {
    "espcn": {"feats": (8, 8)},
    "edsr_baseline": {"n_feats": 8, "n_blocks": 1},
    "edsr_s": {"n_feats": 8, "n_blocks": 2},
    "dncnn": {"n_feats": 8, "depth": 4},
    # window 8: 31x37 pads to 4x5 windows; no stochastic depth, which can zero a layer's gradients at random
    "swinir_light": {"embed_dim": 12, "depths": (2,), "heads": 2, "drop_path": 0.0},
    "swinir_t": {"embed_dim": 8, "depths": (2, 2), "heads": 2, "window": 4},
    "restormer_t": {"dim": 8, "blocks": (1, 1, 1), "heads": (1, 2), "refine": 1},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only spins (conftest)


def tiny(name: str, scale: int, channels: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_enhancer(name, scale, channels, **TINY[name])


def perturb_(model: torch.nn.Module, std: float = 0.05) -> torch.nn.Module:
    """Move every parameter off its init, so that the zero-initialised output layers pass gradients back."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * std)
    return model


def test_registry_holds_the_models_and_each_has_a_tiny_variant():
    assert {"espcn", "edsr_baseline", "edsr_s", "dncnn", "swinir_light", "swinir_t"} <= set(MODELS)
    assert set(MODELS) <= set(TINY)


def test_default_sizes_match_the_docstrings():
    counts = {n: sum(p.numel() for p in build_enhancer(n, 2, 3).parameters()) for n in MODELS}
    assert counts == {
        "espcn": 26_796, "edsr_baseline": 1_369_859, "edsr_s": 195_971, "dncnn": 558_403,
        "swinir_light": 910_152, "swinir_t": 104_188, "restormer_t": 255_023,
    }  # fmt: skip


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("name", list(MODELS))
def test_forward_backward_on_odd_sizes(name, scale):
    model = tiny(name, scale).train()
    x = torch.rand(2, 3, 31, 37)
    # Untrained, every model is the bicubic upsampling (the input itself at scale 1).
    out = model(x)
    assert out.shape == (2, 3, 31 * scale, 37 * scale)
    torch.testing.assert_close(out, upsample(x, scale), atol=1e-6, rtol=0)

    perturb_(model)
    out = model(x)
    assert torch.isfinite(out).all()
    F.l1_loss(out, torch.rand_like(out)).backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {n} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {n} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}: {n} has a zero gradient"


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("name", list(MODELS))
def test_greyscale(name, scale):
    model = perturb_(tiny(name, scale, channels=1)).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 17, 30))
    assert out.shape == (1, 1, 17 * scale, 30 * scale) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_a_few_steps_fit_a_residual(name):
    """From the bicubic init, Adam steps lower the L1 loss to a sharper target."""
    model = tiny(name, 2).train()
    lr_img = torch.rand(2, 3, 16, 16)
    target = upsample(lr_img, 2) + 0.1 * torch.randn(2, 3, 32, 32)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        loss = F.l1_loss(model(lr_img), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", list(MODELS))
def test_eval_output_does_not_depend_on_the_batch(name):
    """Padding and window masks are per image: an image's output is the same alone or in a batch."""
    model = perturb_(tiny(name, 2)).eval()
    x = torch.rand(3, 3, 13, 21)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[1:2], model(x[1:2]), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("name", "scale"), [("edsr_s", 4), ("swinir_t", 3), ("restormer_t", 2)])
def test_onnx_export_keeps_batch_height_and_width_dynamic(name, scale, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = perturb_(tiny(name, scale)).eval()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns about its own deprecation
        torch.onnx.export(
            model, (torch.rand(1, 3, 27, 35),), str(path), input_names=["images"], output_names=["output"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                          "output": {0: "batch", 2: "out_height", 3: "out_width"}},
            opset_version=18, dynamo=False,
        )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 27, 35), (2, 3, 40, 19)]:  # the traced size and another one, multiple of nothing
        x = torch.rand(shape)
        with torch.no_grad():
            ref = model(x).numpy()
        got = session.run(None, {"images": x.numpy()})[0]
        assert got.shape == ref.shape == (shape[0], 3, shape[2] * scale, shape[3] * scale)
        assert np.abs(got - ref).max() <= 1e-4


def test_mirror_padding_works_when_the_pad_exceeds_the_image():
    x = torch.arange(3.0).view(1, 1, 1, 3)
    padded = pad_to_multiple(x, 8)
    assert padded.shape == (1, 1, 8, 8)
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 2, 1, 0, 0, 1]
    assert (padded == padded[:, :, :1]).all()  # one row, mirrored down
    y = torch.rand(2, 3, 16, 24)
    assert torch.equal(pad_to_multiple(y, 8), y)


def test_shifted_window_mask_matches_swin_slice_construction():
    window, shift, h, w = 4, 2, 8, 12
    img = torch.zeros(1, h, w, 1)
    slices = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    cnt = 0
    for hs in slices:
        for ws in slices:
            img[:, hs, ws, :] = cnt
            cnt += 1
    ids = window_partition(img, window).squeeze(-1)
    expected = (ids[:, None, :] - ids[:, :, None]).ne(0).float() * -100.0
    torch.testing.assert_close(shifted_window_mask(h, w, window, shift), expected)


def test_unknown_name_and_bad_scale():
    with pytest.raises(ConfigError) as info:
        build_enhancer("no_such_net_xyz", scale=2, channels=3)
    msg = str(info.value)
    assert "no_such_net_xyz" in msg and "edsr_s" in msg and "swinir_t" in msg
    with pytest.raises(ConfigError, match="scale"):
        build_enhancer("espcn", scale=8, channels=3)
