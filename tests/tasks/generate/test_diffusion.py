"""Diffusion models: schedule and DDIM equal to diffusers', training, deterministic guided sampling at 28 and 32 px."""

from __future__ import annotations

import pytest
import torch

from pixelmind.errors import ConfigError
from pixelmind.tasks.generate.diffusion import (
    DiffusionModel,
    alphas_cumprod,
    ddim_step,
    ddim_timesteps,
    ddpm,
    dit,
)
from pixelmind.tasks.generate.models import MODELS, TINY, load_models

BUILDERS = {"ddpm": ddpm, "dit": dit}

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only spins (conftest)


def tiny(name: str, size: int = 32, channels: int = 1, classes: int = 10, **kw) -> DiffusionModel:
    torch.manual_seed(0)
    return BUILDERS[name](size, channels, classes, **{**TINY[name], **kw})


def perturb_(model: torch.nn.Module, std: float = 0.05) -> torch.nn.Module:
    """Move every parameter off its init, so that the zero-initialised output layers pass gradients back."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * std)
    return model


def test_both_models_are_registered():
    load_models()
    assert {"ddpm", "dit"} <= set(MODELS)
    assert MODELS.get("ddpm") is ddpm and MODELS.get("dit") is dit


@pytest.mark.parametrize(("ours", "theirs"), [("cosine", "squaredcos_cap_v2"), ("linear", "linear")])
def test_schedule_equals_diffusers(ours, theirs):
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=theirs).alphas_cumprod
    torch.testing.assert_close(alphas_cumprod(ours, 1000).float(), ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("steps", [1, 10, 25, 50])
def test_trailing_timesteps_equal_diffusers(steps):
    from diffusers import DDIMScheduler

    s = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
    s.set_timesteps(steps)
    assert ddim_timesteps(steps) == s.timesteps.tolist()
    assert ddim_timesteps(steps)[0] == 999  # every run starts from pure noise


@pytest.mark.parametrize("prediction", ["v", "epsilon"])
def test_sampling_loop_equals_diffusers_ddim(prediction):
    """Our whole DDIM loop (timesteps, previous alphas, clipping) against diffusers' scheduler driving the same net."""
    from diffusers import DDIMScheduler

    model = perturb_(tiny("ddpm", classes=0, prediction=prediction)).eval()
    noise = torch.randn(model.noise_shape(3), generator=torch.Generator().manual_seed(1))
    ours = model.sample(3, noise=noise, steps=10)

    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=True,
                          set_alpha_to_one=True, prediction_type="v_prediction" if prediction == "v" else "epsilon",
                          timestep_spacing="trailing")  # fmt: skip
    sched.set_timesteps(10)
    x = noise.clone()
    with torch.no_grad():
        for t in sched.timesteps:
            out = model(x, torch.full((3,), int(t)))
            x = sched.step(out, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    torch.testing.assert_close(ours, x.clamp(-1, 1), rtol=1e-4, atol=1e-4)


def test_ddim_step_recovers_the_clean_image_from_a_perfect_prediction():
    x0 = torch.rand(2, 1, 8, 8) * 2 - 1
    eps = torch.randn(2, 1, 8, 8)
    ab = alphas_cumprod()
    t, prev = 700, 300
    x_t = ab[t].sqrt() * x0 + (1 - ab[t]).sqrt() * eps
    v = ab[t].sqrt() * eps - (1 - ab[t]).sqrt() * x0
    expect = ab[prev].sqrt() * x0 + (1 - ab[prev]).sqrt() * eps
    torch.testing.assert_close(ddim_step(x_t, v, ab[t], ab[prev], "v"), expect)
    torch.testing.assert_close(ddim_step(x_t, eps, ab[t], ab[prev], "epsilon"), expect)
    torch.testing.assert_close(ddim_step(x_t, v, ab[t], torch.tensor(1.0, dtype=torch.float64), "v"), x0)


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("classes", [0, 10])
@pytest.mark.parametrize("name", ["ddpm", "dit"])
def test_forward_backward_reaches_every_parameter(name, classes, size):
    model = perturb_(tiny(name, size, classes=classes)).train()
    x = torch.rand(4, 1, size, size) * 2 - 1
    labels = torch.tensor([0, 3, 9, 1]) if classes else None
    torch.manual_seed(0)
    loss = model.loss(x, labels)["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for n, p in model.named_parameters():
        if n.startswith("net.cond.label") and classes:
            continue  # only the rows of the labels drawn get a gradient
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: {n} got no gradient"


def test_an_untrained_model_predicts_zero():
    """Zero-initialised output layers: training starts from a net that predicts v = 0."""
    for name in BUILDERS:
        model = tiny(name)
        out = model(torch.randn(2, 1, 32, 32), torch.tensor([5, 900]), torch.tensor([1, 2]))
        assert out.abs().max() == 0


@pytest.mark.parametrize("name", ["ddpm", "dit"])
def test_training_overfits_a_tiny_batch(name):
    model = tiny(name, classes=2)
    images = torch.zeros(8, 1, 32, 32) - 1
    images[:4, :, 8:24, 8:24] = 1  # class 0: a white square; class 1: black
    labels = torch.tensor([0] * 4 + [1] * 4)

    def fixed_loss() -> float:  # the same timesteps and noise each time
        model.eval()
        torch.manual_seed(123)
        with torch.no_grad():
            return sum(model.loss(images, labels)["loss"].item() for _ in range(4)) / 4

    before = fixed_loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        opt.zero_grad()
        model.loss(images, labels)["loss"].backward()
        opt.step()
    after = fixed_loss()
    assert after < 0.7 * before, (before, after)


def test_class_dropout_uses_the_no_class_token():
    """With every label dropped, the conditional loss is the unconditional one (same t and noise)."""
    model = perturb_(tiny("ddpm", class_dropout=1.0)).eval()
    x, labels = torch.rand(4, 1, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3])
    torch.manual_seed(5)
    dropped = model.loss(x, labels)["loss"]
    torch.manual_seed(5)
    uncond = model.loss(x, None)["loss"]
    assert torch.equal(dropped, uncond)


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("classes", [0, 10])
def test_sampling_is_deterministic_given_the_seed(size, classes):
    model = perturb_(tiny("ddpm", size, classes=classes)).eval()
    labels = torch.tensor([0, 5, 9]) if classes else None

    def draw(seed: int) -> torch.Tensor:
        return model.sample(3, labels, generator=torch.Generator().manual_seed(seed), steps=5)

    a, b, c = draw(0), draw(0), draw(1)
    assert a.shape == (3, 1, size, size) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    noise = torch.randn(model.noise_shape(3), generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.sample(3, labels, noise=noise, steps=5), a)  # the images are a function of the noise


def test_guidance_changes_conditional_samples_only():
    cond = perturb_(tiny("ddpm", classes=10), std=0.2).eval()
    noise = torch.randn(cond.noise_shape(2), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, 2])
    g1, g3 = (cond.sample(2, labels, noise=noise, steps=4, guidance=g) for g in (1.0, 3.0))
    assert (g1 - g3).abs().max() > 1e-3
    # guidance 1 is the plain conditional model; other labels give other images
    assert not torch.equal(g1, cond.sample(2, torch.tensor([7, 8]), noise=noise, steps=4, guidance=1.0))

    uncond = perturb_(tiny("ddpm", classes=0), std=0.2).eval()
    assert torch.equal(uncond.sample(2, noise=noise, steps=4, guidance=1.0), uncond.sample(2, noise=noise, steps=4, guidance=5.0))


def test_one_net_call_per_step_with_or_without_guidance():
    model = tiny("ddpm").eval()
    calls = []
    model.net.register_forward_hook(lambda *_: calls.append(1))
    model.sample(2, torch.tensor([0, 1]), steps=7, guidance=2.0)
    assert len(calls) == 7  # conditional and unconditional share one batched call per step
    calls.clear()
    model.sample(2, torch.tensor([0, 1]), steps=3, guidance=1.0)
    assert len(calls) == 3


def test_dit_pads_sides_that_are_not_a_patch_multiple():
    model = perturb_(tiny("dit", 28, patch=8, dim=32)).eval()
    assert model.net.pos.shape[1] == 16  # 32 px padded: 4 x 4 patches of 8
    assert model.sample(2, torch.tensor([0, 1]), steps=2).shape == (2, 1, 28, 28)


def test_rgb_and_default_sizes():
    model = tiny("ddpm", 32, channels=3, classes=0)
    assert model.sample(1, steps=2).shape == (1, 3, 32, 32)
    assert sum(p.numel() for p in ddpm(28, 1, 10).parameters()) == 1_192_641
    assert sum(p.numel() for p in dit(28, 1, 10).parameters()) == 1_852_688


def test_bad_options_and_labels_are_one_line_errors():
    with pytest.raises(ConfigError, match="width"):
        ddpm(32, 1, 0, width=12)
    with pytest.raises(ConfigError, match="schedule"):
        ddpm(32, 1, 0, width=8, schedule="sigmoid")
    with pytest.raises(ConfigError, match="prediction"):
        ddpm(32, 1, 0, width=8, prediction="x0")
    with pytest.raises(ConfigError, match="imgsz"):
        dit(8, 1, 0, patch=16)
    model = tiny("ddpm")
    with pytest.raises(ConfigError, match=r"labels: need 2 class indices in \[0, 10\)"):
        model.sample(2, torch.tensor([0, 10]), steps=1)
    with pytest.raises(ConfigError, match="steps"):
        model.sample(1, steps=0)
    with pytest.raises(ConfigError, match="noise"):
        model.sample(2, noise=torch.zeros(2, 1, 28, 28), steps=1)
