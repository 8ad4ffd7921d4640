"""FID/KID: torchmetrics' figures checked against the closed forms; extractors from real weights files and bad ones."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch

from pixelmind.engine.checkpoint import save_weights, sha256_file
from pixelmind.errors import ConfigError, WeightsError
from pixelmind.metrics.generation import (
    NOT_COMPARABLE,
    Extractor,
    GenerationEvaluator,
    PixelStats,
    fid_kid,
    inception_extractor,
    load_extractor,
)
from pixelmind.tasks.base import Meta

pytestmark = pytest.mark.usefixtures("one_thread")


def closed_form_fid(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||² + Tr(Sa + Sb - 2 (Sa Sb)^½) with scipy's matrix square root (Heusel et al. 2017)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(sa @ sb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa + sb - 2 * covmean))


def closed_form_kid(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel k(x, y) = (x·y / d + 1)³ (Bińkowski et al. 2018)."""
    d, m = a.shape[1], len(a)
    k = lambda x, y: (x @ y.T / d + 1) ** 3  # noqa: E731
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    return float((kaa.sum() - np.trace(kaa) + kbb.sum() - np.trace(kbb)) / (m * (m - 1)) - 2 * kab.mean())


def gaussian(n: int, d: int, shift: float = 0.0, seed: int = 0) -> torch.Tensor:
    mix = torch.randn(d, d, generator=torch.Generator().manual_seed(99)) / d**0.5  # one distribution for every seed
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mix.double() + shift


def test_fid_equals_the_closed_form():
    a, b = gaussian(400, 6, seed=1), gaussian(300, 6, shift=0.5, seed=2)
    ours = fid_kid(b, a, kid_subsets=2)["fid"]
    assert ours == pytest.approx(closed_form_fid(b.numpy(), a.numpy()), rel=1e-6, abs=1e-9)
    assert ours > 1.0  # 6 dimensions shifted by 0.5: at least 1.5 from the means alone


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_the_shift():
    a = gaussian(500, 8)
    assert abs(fid_kid(a, a, kid_subsets=2)["fid"]) < 1e-6
    fids = [fid_kid(a + s, a, kid_subsets=2)["fid"] for s in (0.1, 0.3, 1.0)]
    assert fids == pytest.approx([8 * s**2 for s in (0.1, 0.3, 1.0)], rel=1e-6)  # a pure shift: ||Δmu||²


def test_kid_with_one_full_subset_equals_the_closed_form():
    a, b = gaussian(120, 5, seed=3), gaussian(120, 5, shift=0.2, seed=4)
    out = fid_kid(b, a, kid_subsets=1, kid_subset_size=120)
    assert out["kid"] == pytest.approx(closed_form_kid(a.numpy(), b.numpy()), rel=1e-6)
    assert out["kid_std"] == 0.0


def test_kid_is_near_zero_for_one_distribution_and_reproducible():
    a, b, c = gaussian(400, 8, seed=5), gaussian(400, 8, seed=6), gaussian(400, 8, shift=1.0, seed=7)
    same, shifted = fid_kid(b, a, kid_subsets=20, kid_subset_size=100), fid_kid(c, a, kid_subsets=20, kid_subset_size=100)
    assert abs(same["kid"]) < 3 * same["kid_std"] + 0.01
    assert shifted["kid"] > 10 * abs(same["kid"]) and shifted["kid"] > 0.1
    assert fid_kid(b, a, kid_subsets=20, kid_subset_size=100) == same  # subsets drawn from a fixed seed


def test_evaluator_accumulates_batches_and_reports(tmp_path):
    ext = Extractor(PixelStats(), name="pixel-stats", sha256="abc", dim=2)
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (90, 1, 8, 8), dtype=torch.uint8, generator=g)
    fake = (torch.randint(0, 128, (70, 1, 8, 8), dtype=torch.uint8, generator=g) + 64).to(torch.uint8)
    ev = GenerationEvaluator(ext, "toy/val", keep=16)
    assert ev.compute() == {}
    for i in range(0, 90, 32):
        ev.update(fake[i : i + 32] if i < 70 else None, real[i : i + 32])
    whole = fid_kid(PixelStats()(fake).double(), PixelStats()(real).double(), kid_subset_size=35)  # half the smaller set
    assert ev.compute() == pytest.approx(whole)
    assert ev.compute()["fid"] > 0.001 and ev.compute()["kid_std"] > 0  # subsets of half the set differ
    summary = ev.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary == {"extractor": "pixel-stats", "extractor_sha256": "abc", "feature_dim": 2, "fake_samples": 70,
                       "real_samples": 90, "reference": "toy/val", "note": NOT_COMPARABLE}  # fmt: skip
    (path,) = ev.plots(tmp_path)
    assert path.name == "samples_vs_real.png" and path.stat().st_size > 1000
    assert sum(len(x) for x in ev.examples["fake"]) == 16


def test_extractor_refuses_float_images():
    with pytest.raises(ValueError, match="uint8"):
        Extractor(PixelStats(), "p", "-", 2)(torch.rand(2, 1, 8, 8))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A real tiny classifier trained by pixelmind for one epoch on the built-in digits (8 px, resized to 16)."""
    from pixelmind.api import Model

    project = tmp_path_factory.mktemp("runs")
    model = Model("pm_cnn_t", task="classify")
    model.train(data="digits", epochs=1, imgsz=16, batch=64, workers=0, project=str(project), name="fx")
    return model.weights_path


def test_classifier_extractor_gives_its_penultimate_features(classifier):
    from pixelmind.api import Model
    from pixelmind.data.builtin import digits

    ext = load_extractor(str(classifier), None, channels=1)
    assert ext.dim == 32 and ext.sha256 == sha256_file(classifier) and "pm_cnn_t" in ext.name
    images = digits()[0][:10]  # uint8 [10, 1, 8, 8]
    feats = ext(images)
    assert feats.shape == (10, 32) and feats.dtype == torch.float32

    # by hand: grey -> 3 channels, resize as the classify task does, normalise, all but the last layer
    model = Model.load(classifier)
    x = torch.nn.functional.interpolate(images.float().expand(-1, 3, -1, -1), size=(16, 16), mode="bilinear",
                                        antialias=True, align_corners=False).round().clamp(0, 255) / 255  # fmt: skip
    x = (x - torch.tensor(model.meta.mean).view(1, 3, 1, 1)) / torch.tensor(model.meta.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expect = model.net.head[:-1](model.net.features(x))
        torch.testing.assert_close(feats, expect)
        torch.testing.assert_close(model.net.head[-1](feats), model.net(x))  # they are what the classifier decides on
    torch.testing.assert_close(ext(images.expand(-1, 3, -1, -1).contiguous()), feats)  # grey or RGB: the same


def test_classifier_fid_separates_real_digits_from_noise(classifier):
    from pixelmind.data.builtin import digits

    images = digits()[0]
    ext = load_extractor(str(classifier), None, channels=1)
    real_vs_real = GenerationEvaluator(ext, "digits")
    real_vs_real.update(images[:400], images[400:800])
    noise = GenerationEvaluator(ext, "digits")
    noise.update(torch.randint(0, 256, (400, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)), images[400:800])
    base, bad = real_vs_real.compute(), noise.compute()
    assert bad["fid"] > 5 * base["fid"] and bad["kid"] > 5 * max(base["kid"], 1e-4)
    assert real_vs_real.summary()["extractor_sha256"] == sha256_file(classifier)


def one_line(err: pytest.ExceptionInfo, path) -> str:
    text = str(err.value)
    assert "\n" not in text and str(path) in text
    return text


def test_bad_feature_weights_are_one_line_errors(tmp_path, classifier):
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(WeightsError) as err:
        load_extractor(str(missing), None, 1)
    assert "not found" in one_line(err, missing)

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(classifier.read_bytes()[:300])
    with pytest.raises(WeightsError) as err:
        load_extractor(str(corrupt), None, 1)
    one_line(err, corrupt)

    pth = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(1)}, pth)
    with pytest.raises(WeightsError, match="safetensors") as err:
        load_extractor(str(pth), None, 1)
    one_line(err, pth)

    other = tmp_path / "denoiser.safetensors"
    save_weights(other, {"w": torch.zeros(1)}, Meta(task="enhance", model="dncnn"))
    with pytest.raises(WeightsError) as err:
        load_extractor(str(other), None, 1)
    assert "not a classifier" in one_line(err, other)


def test_bad_fid_weights_are_one_line_errors(tmp_path):
    missing = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(WeightsError) as err:
        load_extractor(None, str(missing), 3)
    assert "not found" in one_line(err, missing)

    wrong = tmp_path / "inception.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, wrong)
    with pytest.raises(WeightsError) as err:
        inception_extractor(wrong)
    assert "not the FID Inception-v3 weights" in one_line(err, wrong)


def test_hub_inception_offline_is_a_clear_message(tmp_path, monkeypatch):
    try:
        socket.create_connection(("github.com", 443), timeout=2).close()
        pytest.skip("github.com is reachable: the offline message cannot be shown here")
    except OSError:
        pass
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))  # an empty hub cache
    with pytest.raises(ConfigError, match="github.com is not reachable") as err:
        load_extractor(None, "hub", 3)
    assert "\n" not in str(err.value) and "--fid-weights PATH" in str(err.value)


def test_option_checks(classifier):
    assert load_extractor(None, None, 1) is None
    with pytest.raises(ConfigError, match="not both"):
        load_extractor(str(classifier), "hub", 1)
    with pytest.raises(ConfigError, match="channels"):
        load_extractor(str(classifier), None, 2)


def test_timm_classifier_features_are_what_its_head_decides_on():
    """timm classifiers (``--model resnet18`` etc.): forward_features + pooled pre-logits, the head's input."""
    import timm

    from pixelmind.metrics.generation import ClassifierFeatures

    torch.manual_seed(0)
    net = timm.create_model("resnet10t", num_classes=3).eval()
    feats = ClassifierFeatures(net, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    images = torch.randint(0, 256, (2, 1, 20, 20), dtype=torch.uint8)
    with torch.no_grad():
        f = feats(images)
        x = torch.nn.functional.interpolate(images.float().expand(-1, 3, -1, -1), size=(32, 32), mode="bilinear",
                                            antialias=True, align_corners=False).round().clamp(0, 255)  # fmt: skip
        logits = net((x / 255 - 0.5) / 0.25)
    assert f.shape == (2, net.num_features)
    torch.testing.assert_close(net.get_classifier()(f), logits)
