"""The detect task end to end on tiny models: train, val, predict (COCO JSON, YOLO txt, pictures), ONNX."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pixelmind.api import Model
from pixelmind.config import TrainConfig
from pixelmind.data.shapes import save_shapes, shapes_indices, shapes_sample
from pixelmind.tasks.detect.data import load_detect_data
from pixelmind.tasks.detect.models import TINY

QUICK = {"epochs": 1, "imgsz": 64, "batch": 8, "limit": 16, "epoch_samples": 16, "workers": 0}


@pytest.fixture(scope="module", params=["pmdet_n", "rtdetr"])
def trained(tmp_path_factory, request) -> Model:
    model = Model(request.param, task="detect")
    model.train(data="shapes", project=str(tmp_path_factory.mktemp("runs")), name="tiny", model_kwargs=TINY[request.param], **QUICK)
    return model


def test_train_and_val_give_coco_metrics(trained):
    final = json.loads((trained.run_dir / "metrics.json").read_text())
    assert {"map", "map50", "map75", "ap/circle"} <= set(final["metrics"])
    assert len(final["coco_stats"]) == 12
    assert (trained.run_dir / "plots" / "pr_curves.png").exists() and (trained.run_dir / "plots" / "confusion_matrix.png").exists()
    assert final["confusion_matrix"]["names"] == ["circle", "square", "triangle", "background"]
    again = Model.load(trained.weights_path).val()
    assert again["map"] == pytest.approx(final["metrics"]["map"], abs=1e-6)


def test_predict_boxes_lie_in_the_original_image(trained, tmp_path):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 200, 3), dtype=np.uint8))
    (row,) = trained.predict(image, conf=0.0, max_det=20)
    assert row["width"] == 200 and 0 < len(row["detections"]) <= 20
    for d in row["detections"]:
        x, y, w, h = d["bbox"]
        assert -1e-3 <= x and -1e-3 <= y and x + w <= 200 + 1e-3 and y + h <= 90 + 1e-3
    scores = [d["score"] for d in row["detections"]]
    assert scores == sorted(scores, reverse=True)


def test_predict_runs_the_cnn_with_batchnorm_folded_and_gives_the_same_detections(trained):
    fast = trained._inference_network()
    assert fast is trained._inference_network()  # made once
    if trained.meta.model == "rtdetr":
        assert fast is trained.net
        return
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trained.net.modules())  # training weights untouched
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 80, 3), dtype=np.uint8))
    (got,) = trained.task.predict(fast, [image], trained.meta, conf=0.05)
    (want,) = trained.task.predict(trained.net, [image], trained.meta, conf=0.05)
    assert got.labels == want.labels
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-2)


def test_validation_targets_stay_in_original_pixels(tmp_path):
    root = save_shapes(tmp_path / "data", "train", count=4, size=48)
    save_shapes(tmp_path / "data", "val", count=2, size=48)
    bundle = load_detect_data(TrainConfig(task="detect", data=str(root), imgsz=64))
    image, target = bundle.val[0]
    truth = shapes_sample(shapes_indices("val")[0], size=48)
    assert tuple(image.shape) == (3, 64, 64) and float(target["scale"]) == pytest.approx(64 / 48)
    assert torch.allclose(target["boxes"], torch.from_numpy(truth.boxes))
    # training boxes are on the canvas and stay inside it after the random scale, place and flip
    for i in range(8):
        _, t = bundle.train[i]
        assert (t["boxes"] >= 0).all() and (t["boxes"] <= 64).all() and len(t["boxes"]) == len(t["labels"])


def test_onnx_predictions_match_pytorch(trained, tmp_path):
    path, diff = trained.export("onnx", tmp_path / "det.onnx")
    assert diff < 1e-3
    onnx = Model.load(path)
    images = [Image.fromarray(shapes_sample(i).image) for i in shapes_indices("val")[:8]]
    images[1:3] = [images[1].resize((64, 40)), images[2].resize((30, 64))]  # photos are rarely square: any H, W
    dims = onnx.net.session.get_inputs()[0].shape[2:]
    assert all(isinstance(d, str) for d in dims) == (trained.meta.model != "rtdetr")  # CNNs: free H, W (a 64 x 32 batch)
    for a, b in zip(trained.predict(images, conf=0.05), onnx.predict(images, conf=0.05)):
        assert [d["label"] for d in a["detections"]] == [d["label"] for d in b["detections"]]
        for da, db in zip(a["detections"], b["detections"]):
            assert np.allclose(da["bbox"], db["bbox"], atol=0.05) and abs(da["score"] - db["score"]) < 1e-3


def test_an_onnx_file_with_a_fixed_input_size_predicts_on_its_square(trained, tmp_path):
    from pixelmind.export.onnx import export_onnx
    from pixelmind.tasks.detect.task import PackedOutputs

    path = export_onnx(PackedOutputs(trained.net).eval(), trained.meta, tmp_path / "fixed.onnx", dynamic_hw=False)
    photo = Image.fromarray(shapes_sample(3).image).resize((30, 64))
    (a,), (b,) = trained.predict(photo, conf=0.05), Model.load(path).predict(photo, conf=0.05)
    assert [d["label"] for d in a["detections"]] == [d["label"] for d in b["detections"]]


def test_cli_predict_writes_coco_json_yolo_txt_and_pictures(trained, tmp_path):
    src = tmp_path / "img.png"
    Image.fromarray(shapes_sample(7).image).save(src)
    out = tmp_path / "pred"
    proc = subprocess.run([sys.executable, "-m", "pixelmind", "predict", "--weights", str(trained.weights_path), "--source", str(src),
                           "--save", "--out", str(out), "--conf", "0.0", "--no-progress"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    coco = json.loads((out / "coco_results.json").read_text())
    assert len(coco) == len(row["detections"]) > 0 and "segmentation" not in coco[0]
    assert {c["category_id"] for c in coco} <= {1, 2, 3}
    lines = (out / "000001_img.txt").read_text().splitlines()
    assert len(lines) == len(row["detections"]) and len(lines[0].split()) == 6
    assert Image.open(out / "000001_img.jpg").size == (64, 64)


def test_predict_pads_to_the_batch_rectangle_not_a_square():
    from pixelmind.tasks.base import Meta
    from pixelmind.tasks.detect.task import _rect_batch

    meta = Meta(task="detect", model="pmdet_n", class_names=["a"], imgsz=320)
    wide, tall = Image.new("RGB", (400, 300)), Image.new("RGB", (100, 400))
    assert tuple(_rect_batch([wide], meta).shape) == (1, 3, 256, 320)  # 320 x 240 padded to 256
    assert tuple(_rect_batch([tall], meta).shape) == (1, 3, 320, 96)
    assert tuple(_rect_batch([wide, tall], meta).shape) == (2, 3, 320, 320)


def test_start_of_training_says_how_many_images_an_epoch_draws_and_how_long_it_will_take(tmp_path):
    # 12 images, the small-set default of MIN_EPOCH_SAMPLES random samples per epoch: the log says both
    from pixelmind.tasks.detect.data import MIN_EPOCH_SAMPLES

    model = Model("pmdet_n", task="detect")
    model.train(data="shapes", project=str(tmp_path), name="eta", model_kwargs=TINY["pmdet_n"], epochs=1, imgsz=32, batch=16,
                limit=12, workers=0)  # fmt: skip
    log = (model.run_dir / "train.log").read_text()
    assert f"{MIN_EPOCH_SAMPLES} train samples per epoch ({MIN_EPOCH_SAMPLES / 12:.1f} passes over 12 train images)" in log
    assert "expected: about" in log and "of training for 1 epochs of 25 steps" in log
    assert json.loads((model.run_dir / "metrics.json").read_text())["train_samples_per_epoch"] == MIN_EPOCH_SAMPLES


def test_the_recipe_trains_photos_with_pmdet_n_and_ema_and_keeps_pmdet_s_for_shapes(tmp_path):
    from pixelmind.tasks import get_task

    task = get_task("detect")
    photos = TrainConfig(task="detect", data=str(tmp_path))
    assert photos.filled(task.recipe(photos)).model_dump(include={"model", "ema", "imgsz"}) == {"model": "pmdet_n", "ema": True, "imgsz": 320}
    shapes = TrainConfig(task="detect", data="shapes")
    assert shapes.filled(task.recipe(shapes)).model_dump(include={"model", "ema", "imgsz"}) == {"model": "pmdet_s", "ema": False, "imgsz": 64}
    chosen = TrainConfig(task="detect", data=str(tmp_path), model="pmdet_m", ema=False)  # the user's word wins
    assert chosen.filled(task.recipe(chosen)).model_dump(include={"model", "ema"}) == {"model": "pmdet_m", "ema": False}
