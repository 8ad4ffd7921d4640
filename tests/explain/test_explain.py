"""``Model.explain`` / ``pixelmind explain``: every method on tiny CNN and ViT classifiers, and the other tasks' maps.

Maps must have the image's size, be finite and in [0, 1]; faithfulness must tell a map that points
at what the model uses from random ones; what cannot be explained gives a one-line error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelmind.api import Model
from pixelmind.config import TrainConfig
from pixelmind.engine.checkpoint import save_weights
from pixelmind.errors import ConfigError
from pixelmind.explain.faithfulness import deletion_insertion, random_baseline
from pixelmind.explain.methods import attribution_map
from pixelmind.explain.targets import ExplainTarget
from pixelmind.tasks import get_task
from pixelmind.tasks.base import Meta

sys.path.insert(0, str(Path(__file__).parents[1]))
from test_cli import last_json, ok, pixelmind  # noqa: E402 - the CLI tests' subprocess helpers

pytestmark = pytest.mark.usefixtures("one_thread")
CLASSIFY_METHODS = ("gradcam", "gradcam++", "eigencam", "scorecam", "ig", "gradient")


def saved(tmp_path: Path, task: str, model: str, jitter: float = 0.0, **meta_fields) -> Model:
    """An untrained model of ``task`` saved and loaded like a user's weights (``jitter``: random weight noise)."""
    meta = Meta(task=task, model=model, imgsz=32, **meta_fields)
    torch.manual_seed(0)
    net = get_task(task).build_model(TrainConfig(task=task, data="x"), meta)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(jitter * torch.randn_like(p))
    path = tmp_path / f"{task}_{model}.safetensors"
    save_weights(path, net.state_dict(), meta, {"task": task, "data": "x"})
    return Model.load(path)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory) -> dict[str, Model]:
    tmp = tmp_path_factory.mktemp("clf")
    names = ["a", "b", "c"]
    return {"cnn": saved(tmp, "classify", "pm_cnn_t", class_names=names),
            "vit": saved(tmp, "classify", "vit_tiny_patch16_224", class_names=names)}  # fmt: skip


def check_map(saliency: np.ndarray, image: Image.Image) -> None:
    assert saliency.shape == (image.height, image.width) and saliency.dtype == np.float32
    assert np.isfinite(saliency).all() and saliency.min() >= 0 and saliency.max() <= 1


@pytest.mark.parametrize("kind", ["cnn", "vit"])
@pytest.mark.parametrize("method", [*CLASSIFY_METHODS, "rollout"])
def test_every_classify_method_gives_an_image_sized_map(classifiers, image, kind, method):
    model = classifiers[kind]
    if method == "rollout" and kind == "cnn":
        with pytest.raises(ConfigError, match="rollout reads the attention of a Vision Transformer"):
            model.explain(image, method=method)
        return
    (record,) = model.explain(image, method=method)
    (row,) = record["explanations"]
    check_map(row["map"], image)
    assert row["target"] == f"class {row['label']}" and 0 <= row["prob"] <= 1
    for key in ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc"):
        assert 0 <= row[key] <= 1, (key, row[key])


def test_asked_for_classes_are_explained_each(classifiers, image):
    (record,) = classifiers["cnn"].explain(image, classes=["c", "0"], faithfulness=False)
    assert [r["target"] for r in record["explanations"]] == ["class c", "class a"]
    assert "deletion_auc" not in record["explanations"][0]
    with pytest.raises(ConfigError, match=r"class: 'zebra' is not one of the model's classes \(a, b, c\)"):
        classifiers["cnn"].explain(image, classes=["zebra"])


CHECKER = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 2.0 - 1  # +-1, zero mean


class LeftHalf(torch.nn.Module):
    """Class 1's logit matches the left half against a checkerboard: the only pixels that matter.
    (Deleting them to zero or blurring them both take the logit to 0.)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = (x[..., :8] * CHECKER[:, :8]).mean((1, 2, 3))
        return torch.stack([-left, left], 1)


def test_faithfulness_tells_a_true_map_from_random_ones():
    x = (1.5 + 0.5 * CHECKER).expand(1, 3, 16, 16).clone()
    target = ExplainTarget("class 1", lambda out: out[1])
    saliency = attribution_map("gradient", LeftHalf(), x, target)
    assert saliency[:, :8].min() == 1 and saliency[:, 8:].max() == 0  # the gradient sees the left half only
    true, noise = deletion_insertion(LeftHalf(), x, saliency, target), random_baseline(LeftHalf(), x, target)
    assert true["deletion_auc"] < noise["random_deletion_auc"] - 0.1
    assert true["insertion_auc"] > noise["random_insertion_auc"] + 0.1
    wrong = deletion_insertion(LeftHalf(), x, 1 - saliency, target)  # pointing at the right half: worse than random
    assert wrong["deletion_auc"] > noise["random_deletion_auc"]


@pytest.mark.parametrize("model", ["pmdet_n", "rtdetr"])
def test_detect_gives_one_map_per_box(tmp_path, image, model):
    from pixelmind.tasks.detect.models import TINY

    m = saved(tmp_path, "detect", model, class_names=["a", "b"], model_kwargs=TINY[model])
    (record,) = m.explain(image, method="gradcam", conf=0.005, faithfulness=False)
    rows = record["explanations"]
    assert 0 < len(rows) <= 20  # an untrained detector: many weak boxes, the 20 best explained
    for i, row in enumerate(rows):
        check_map(row["map"], image)
        x0, y0, x1, y1 = row["box"]  # in the image's pixels, not the letterboxed canvas's
        assert row["target"] == f"box {i} {row['label']}" and 0 <= x0 <= x1 <= 50 and 0 <= y0 <= y1 <= 40
    (record,) = m.explain(image, method="gradient", conf=0.005, classes=[rows[0]["label"]])
    assert {r["label"] for r in record["explanations"]} == {rows[0]["label"]}
    assert all(np.isfinite(r["deletion_auc"]) for r in record["explanations"])


def test_segment_gives_one_map_per_predicted_region(tmp_path, image):
    from pixelmind.tasks.segment.models import TINY

    m = saved(tmp_path, "segment", "unet_s", jitter=0.05, class_names=["bg", "fg"], model_kwargs=TINY["unet_s"])
    for method in ("gradcam", "ig"):
        (record,) = m.explain(image, method=method)
        rows = record["explanations"]
        assert rows and {r["target"] for r in rows} <= {"region bg", "region fg"}
        assert sum(r["area"] for r in rows) == pytest.approx(1.0, abs=1e-3)
        for row in rows:
            check_map(row["map"], image)


def test_enhance_difference_is_where_the_model_changed_the_image(tmp_path, image):
    m = saved(tmp_path, "enhance", "espcn", jitter=0.05, extra={"scale": 2})
    (record,) = m.explain(image, method="difference")
    (row,) = record["explanations"]
    check_map(row["map"], image)
    assert row["map"].max() == 1 and row["target"] == "change"
    (grad,) = m.explain(image, method="gradient", faithfulness=False)[0]["explanations"]
    check_map(grad["map"], image)


def test_compress_bits_map_sums_to_the_estimated_rate(tmp_path, image):
    from pixelmind.tasks.compress.explain import BitsMap

    m = saved(tmp_path, "compress", "mean_scale_s")
    (row,) = m.explain(image, faithfulness=False)[0]["explanations"]
    check_map(row["map"], image)
    x = m.task.preprocess(m.meta)(image)[None]
    padded = torch.nn.functional.pad(x, (0, -50 % m.net.stride, 0, -40 % m.net.stride), mode="replicate")
    with torch.no_grad():
        bits = sum(-torch.log2(lik).sum() for lik in m.net(padded)["likelihoods"].values())
        full = BitsMap(m.net)(padded)
    assert float(full.sum()) == pytest.approx(float(bits), rel=1e-4)  # the map spreads every bit, none invented
    assert row["bpp"] == pytest.approx(float(BitsMap(m.net)(x).mean()), rel=1e-3)


def test_what_cannot_be_explained_is_refused_in_one_line(classifiers, image, tmp_path):
    clf = classifiers["cnn"]
    with pytest.raises(ConfigError, match=r"method: 'difference' does not apply to classify models \(choose from: gradcam, "):
        clf.explain(image, method="difference")
    onnx_path = tmp_path / "clf.onnx"
    clf.export("onnx", onnx_path)
    with pytest.raises(ConfigError, match=r"clf\.onnx: explain needs PyTorch weights \(\.safetensors\)"):
        Model.load(onnx_path).explain(image)
    gen = saved(tmp_path, "generate", "gan", class_names=["x"])
    with pytest.raises(ConfigError, match="explain: the generate task has no explanation methods"):
        gen.explain(image)


def test_cli_writes_overlays_maps_and_a_report(classifiers, image, tmp_path):
    src = tmp_path / "images"
    src.mkdir()
    image.save(src / "one.png")
    image.convert("L").save(src / "two.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    proc = ok(pixelmind("explain", "--weights", classifiers["cnn"].weights_path, "--source", src, "-o", out,
                        "--method", "gradcam++", "--json", cwd=tmp_path))  # fmt: skip
    summary = last_json(proc)
    assert summary["images"] == 2 and summary["targets"] == 2 and summary["errors"] == 1
    assert "broken.png" in proc.stderr and "skipped" in proc.stderr
    report = json.loads((out / "report.json").read_text())
    rows = [r for rec in report["images"] for r in rec.get("explanations", [])]
    for row in rows:
        overlay = Image.open(row["overlay"])
        assert overlay.size == image.size
        check_map(np.load(row["map_file"]), image)
    assert "deletion AUC (random)" in proc.stderr or "deletion AUC (random)" in proc.stdout
    bad = pixelmind("explain", "--weights", classifiers["cnn"].weights_path, "--source", src, "-o", out, "--method", "rollout", cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: method: rollout reads the attention")
