"""The segment task end to end: train, val, predict (tiled), export, check, on real files and tiny models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pixelmind.api import Model
from pixelmind.data.shapes import save_shapes, shapes_indices, shapes_sample
from pixelmind.errors import ConfigError
from pixelmind.tasks.base import Meta
from pixelmind.tasks.segment.models import TINY
from pixelmind.tasks.segment.task import TASK, SegmentResult, _argmax_tiled, padded_logits

QUICK = {"epochs": 1, "imgsz": 64, "batch": 8, "limit": 16, "epoch_samples": 16, "workers": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Model:
    """A tiny U-Net trained one short epoch on shapes (what it predicts does not matter, only the plumbing)."""
    model = Model("unet_s", task="segment")
    model.train(data="shapes", project=str(tmp_path_factory.mktemp("runs")), name="tiny", model_kwargs=TINY["unet_s"], **QUICK)
    return model


def _shape_images(folder, n=3):
    paths = []
    for i in shapes_indices("val")[:n]:
        paths.append(folder / f"s{i}.png")
        Image.fromarray(shapes_sample(i).image).save(paths[-1])
    return paths


def test_train_leaves_a_complete_run(trained):
    run = trained.run_dir
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"miou", "pixel_acc", "dice", "iou/circle"} <= set(metrics["metrics"])
    assert 0.0 <= metrics["metrics"]["miou"] <= 1.0
    assert len(metrics["confusion_matrix"]) == 4  # background + 3 shapes
    assert {"confusion_matrix.png", "per_class_iou.png", "curves.png"} <= {p.name for p in (run / "plots").iterdir()}
    assert trained.meta.class_names == ["background", "circle", "square", "triangle"]


def test_val_reproduces_the_final_metrics(trained):
    final = json.loads((trained.run_dir / "metrics.json").read_text())["metrics"]
    again = Model.load(trained.weights_path).val()
    assert again["miou"] == pytest.approx(final["miou"], abs=1e-6)
    assert again["samples"] == 200


def test_predict_writes_overlay_and_index_mask(trained, tmp_path):
    paths = _shape_images(tmp_path, 2)
    rows = trained.predict(paths, save_dir=tmp_path / "out")
    assert [r["width"] for r in rows] == [64, 64]
    assert sum(rows[0]["classes"].values()) == pytest.approx(1.0, abs=1e-5)
    overlay = Image.open(rows[0]["saved"])
    mask = Image.open(rows[0]["saved"].replace(".png", "_mask.png"))
    assert overlay.size == mask.size == (64, 64) and mask.mode == "P"
    assert set(np.unique(np.asarray(mask))) <= {0, 1, 2, 3}


def test_predict_large_image_runs_tiled_at_its_own_size(trained):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (150, 230, 3), dtype=np.uint8))
    (result,) = TASK.predict(trained.net, [image], trained.meta, tile=64, overlap=16)
    assert result.mask.shape == (150, 230) and result.mask.dtype == np.uint8


def test_tiled_argmax_equals_whole_image_for_a_pointwise_model():
    """With a 1x1 conv (no context), blending overlapping tiles must give exactly the untiled class map."""
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 5, 1)
    image = torch.randint(0, 256, (3, 97, 131), dtype=torch.uint8)

    def logits(t):
        return padded_logits(net, t, 32)

    whole = _argmax_tiled(logits, image, tile=256, overlap=16, progress=None)[0]
    tiled = _argmax_tiled(logits, image, tile=48, overlap=16, progress=None)[0]
    assert (whole == tiled).all()


def test_onnx_export_masks_agree_with_pytorch(trained, tmp_path):
    path, diff = trained.export("onnx", tmp_path / "seg.onnx")
    onnx = Model.load(path)
    images = [Image.fromarray(shapes_sample(i).image) for i in shapes_indices("val")[:20]]
    ref = [r.mask for r in TASK.predict(trained.net, images, trained.meta)]
    got = [r.mask for r in TASK.predict(onnx.net, images, onnx.meta)]
    agreement = np.mean([np.mean(a == b) for a, b in zip(ref, got)])
    assert agreement >= 0.999, f"ONNX masks agree on {agreement:.4%} of pixels"


def test_folder_layout_trains_with_its_class_map(tmp_path):
    root = save_shapes(tmp_path / "data", "train", count=12, size=64)
    save_shapes(tmp_path / "data", "val", count=4, size=64)
    model = Model("unet_s", task="segment")
    metrics = model.train(data=str(root), project=str(tmp_path / "runs"), model_kwargs=TINY["unet_s"], **QUICK)
    assert "miou" in metrics
    assert model.meta.class_names[0] == "background" and len(model.meta.extra["colors"]) == 4


def test_class_weights_must_match_the_classes(tmp_path):
    model = Model("unet_s", task="segment")
    with pytest.raises(ConfigError, match="class_weights: needs 4 values"):
        model.train(data="shapes", project=str(tmp_path), model_kwargs=TINY["unet_s"], class_weights=[1.0, 2.0], **QUICK)


def test_cli_names_a_mask_of_the_wrong_size(tmp_path):
    root = save_shapes(tmp_path / "data", "train", count=4, size=64)
    save_shapes(tmp_path / "data", "val", count=2, size=64)
    bad = sorted((root / "train" / "masks").iterdir())[0]
    Image.open(bad).resize((32, 32)).save(bad)
    proc = subprocess.run([sys.executable, "-m", "pixelmind", "train", "--task", "segment", "--data", str(root), "--epochs", "1",
                           "--project", str(tmp_path / "runs")], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0
    assert bad.name in proc.stderr and "Traceback" not in proc.stderr
    check = subprocess.run([sys.executable, "-m", "pixelmind", "check", "--task", "segment", "--data", str(root),
                            "--out", str(tmp_path / "check")], capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0 and "problem:" in check.stdout and bad.name in check.stdout


def test_check_reports_pixel_share(tmp_path):
    root = save_shapes(tmp_path / "data", "train", count=6, size=32)
    proc = subprocess.run([sys.executable, "-m", "pixelmind", "check", "--task", "segment", "--data", str(root),
                           "--out", str(tmp_path / "check"), "--json"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert abs(sum(report["pixel_share"].values()) - 1) < 1e-4 and report["problems"] == []
    assert (tmp_path / "check" / "pixel_share.png").stat().st_size > 1000


def test_result_render_colours_only_foreground():
    mask = np.array([[0, 1], [2, 0]], np.uint8)
    r = SegmentResult(mask, ["bg", "a", "b"], [[0, 0, 0], [255, 0, 0], [0, 0, 255]], image=Image.new("RGB", (2, 2), (10, 10, 10)))
    out = np.asarray(r.render())
    assert tuple(out[0, 0]) == (10, 10, 10) and out[0, 1, 0] > 100 and out[1, 0, 2] > 100


@pytest.mark.slow
def test_instance_model_trains_predicts_and_refuses_export(tmp_path):
    model = Model("maskrcnn", task="segment")
    metrics = model.train(data="shapes", project=str(tmp_path), model_kwargs=TINY["maskrcnn"],
                          **{**QUICK, "batch": 4, "limit": 8, "epoch_samples": 8})  # fmt: skip
    assert {"mask_map", "mask_map50", "mask_map75"} <= set(metrics)
    image = Image.fromarray(shapes_sample(shapes_indices("val")[0]).image)
    (row,) = model.predict(image, conf=0.0)
    assert row["width"] == 64 and isinstance(row["instances"], list)
    for inst in row["instances"]:
        assert {"label", "score", "bbox", "segmentation"} <= set(inst) and "counts" in inst["segmentation"]
    # the CLI's COCO results file: one entry per instance, RLEs that decode to the stated areas
    from pycocotools import mask as mask_utils

    from pixelmind.cli import _write_coco_results

    jsonl = tmp_path / "results.jsonl"
    jsonl.write_text(json.dumps({"index": 0, **row}) + "\n" + json.dumps({"index": 1, **row, "instances": []}) + "\n")
    coco = json.loads(_write_coco_results(jsonl, tmp_path / "coco.json").read_text())
    assert len(coco) == len(row["instances"])
    for item, inst in zip(coco, row["instances"]):
        assert item["image_id"] == 0 and item["category_id"] == inst["class_index"] + 1
        assert int(mask_utils.area(item["segmentation"])) == inst["area"]
    from pixelmind.errors import PixelmindError

    with pytest.raises(PixelmindError, match="instance models"):
        model.export("onnx", tmp_path / "m.onnx")


def test_predict_without_trained_weights_uses_meta_colors():
    meta = Meta(task="segment", model="unet_s", class_names=["bg", "x"], imgsz=64, model_kwargs=TINY["unet_s"])
    net = TASK.build_model(None, meta).eval()
    (r,) = TASK.predict(net, [Image.new("RGB", (40, 30))], meta)
    assert r.mask.shape == (30, 40) and len(r.colors) == 2


def test_augmentation_moves_the_mask_with_the_image_and_none_leaves_both_alone():
    from torchvision import tv_tensors

    from pixelmind.tasks.segment.data import eval_transform, train_transform

    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    mask = torch.zeros(40, 40, dtype=torch.int64)
    mask[:, :10] = 1  # a stripe on the left edge
    image[:, :, :10] = 255  # drawn white in the image
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    for _ in range(10):  # random flips and crops: wherever the stripe goes, image and mask agree
        x, m = train_transform(32, 255, mean, std, scale=(0.8, 1.2), colour=False)(tv_tensors.Image(image), tv_tensors.Mask(mask))
        white = (x > 0.9).all(0)  # resizing blends the image at the stripe's edge; the mask stays nearest
        valid = m != 255
        assert (white[valid] == (m == 1)[valid]).float().mean() > 0.95
    x, m = train_transform(40, 255, mean, std, scale=(1.0, 1.0), colour=False, flip=False)(tv_tensors.Image(image), tv_tensors.Mask(mask))
    ref, _ = eval_transform(mean, std)(tv_tensors.Image(image), tv_tensors.Mask(mask))
    assert torch.equal(x, ref) and torch.equal(m, mask)


def test_instance_data_from_coco_files(tmp_path):
    """COCO instance files (as written by save_shapes) load as image + boxes/labels/masks targets."""
    from pixelmind.config import TrainConfig
    from pixelmind.tasks.segment.data import load_segment_data

    root = save_shapes(tmp_path / "data", "train", count=6, size=64)
    save_shapes(tmp_path / "data", "val", count=3, size=64)
    bundle = load_segment_data(TrainConfig(task="segment", data=str(root), imgsz=64, epoch_samples=6), instance=True)
    assert bundle.class_names == ["circle", "square", "triangle"] and len(bundle.val) == 3
    for i in range(len(bundle.val)):
        image, target = bundle.val[i]
        truth = shapes_sample(shapes_indices("val")[i])
        assert image.shape == (3, 64, 64) and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        assert torch.equal(target["labels"], torch.from_numpy(truth.labels))
        assert torch.equal(target["masks"].bool(), torch.from_numpy(truth.masks))
        assert torch.allclose(target["boxes"], torch.from_numpy(truth.boxes))
