"""Knowledge distillation (``train --teacher W``): each task's loss, end-to-end runs, and every refusal.

Real weights files and real data (digits, shapes, a folder of smooth photos); tiny models, one epoch.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelmind import Model
from pixelmind.config import TrainConfig
from pixelmind.engine.checkpoint import load_weights, save_weights
from pixelmind.engine.distill import load_teacher
from pixelmind.engine.rundir import read_results_csv
from pixelmind.errors import ConfigError, PixelmindError, WeightsError
from pixelmind.nn.distill import blend, sigmoid_kl, softmax_kl
from pixelmind.tasks import get_task
from pixelmind.tasks.base import Meta
from pixelmind.tasks.detect.models import TINY as DET_TINY
from pixelmind.tasks.segment.losses import pixel_distillation_loss
from pixelmind.tasks.segment.models import TINY as SEG_TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only spins (conftest)

CLS = {"data": "digits", "epochs": 1, "imgsz": 16, "limit": 128, "batch": 64, "workers": 0, "device": "cpu"}
SHAPES = {
    "data": "shapes",
    "epochs": 1,
    "imgsz": 64,
    "batch": 8,
    "limit": 16,
    "epoch_samples": 16,
    "workers": 0,
    "device": "cpu",
}


def _smooth_photo(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:64] / 64
    img = np.stack([np.sin(6 * xx + rng.uniform(0, 6)) * 0.5 + 0.5, yy, np.cos(5 * yy * xx) * 0.5 + 0.5], -1)
    Image.fromarray((img * 255).round().astype(np.uint8)).save(path)


def _distill_row(m: Model) -> dict[str, float]:
    rows = read_results_csv(m.run_dir / "results.csv")
    assert len(rows) == 1
    row = rows[0]
    assert math.isfinite(row["train/loss_distill"]) and row["train/loss_distill"] > 0
    assert math.isfinite(row["train/loss_task"]) and row["train/loss_task"] > 0
    assert "distilling from teacher" in (m.run_dir / "train.log").read_text()
    return row


def _one_line(err: pytest.ExceptionInfo, *parts: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("teacher: "), msg
    for p in parts:
        assert p in msg, msg
    return msg


@pytest.fixture(scope="module")
def cls_teacher(tmp_path_factory) -> Path:
    m = Model("pm_cnn_t")
    m.train(project=str(tmp_path_factory.mktemp("runs")), name="teacher", **CLS)
    return m.weights_path


# ----------------------------------------------------------------------------------- the losses


def test_generic_losses_are_zero_for_equal_outputs_and_positive_otherwise():
    t = torch.randn(4, 5)
    assert softmax_kl(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert softmax_kl(t + torch.randn(4, 5), t).item() > 0
    assert sigmoid_kl(t, t).abs().max().item() < 1e-6 and sigmoid_kl(-t, t).sum().item() > 0
    out = blend(torch.tensor(3.0), torch.tensor(1.0), 0.5)
    assert out["loss"].item() == 2.0 and set(out) == {"loss", "loss_task", "loss_distill"}


def test_segment_pixel_loss_skips_ignored_pixels_and_resizes_the_teacher():
    t = torch.randn(1, 3, 8, 8)
    s = t.clone()
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    s[..., :2, :] += 5 * torch.randn(1, 3, 2, 8)  # the student differs only on the first two rows
    assert pixel_distillation_loss(s, t, target).item() > 0
    target[:, :2] = 255
    assert pixel_distillation_loss(s, t, target).item() == pytest.approx(0.0, abs=1e-6)
    coarse = torch.randn(1, 3, 4, 4)  # a teacher with a coarser output: resized to the student's 8 x 8
    assert math.isfinite(pixel_distillation_loss(s, coarse, target).item())


def _classify_case():
    task = get_task("classify")
    meta = Meta("classify", "pm_cnn_t", [str(i) for i in range(10)], imgsz=16)
    cfg = TrainConfig(task="classify", data="digits", mixup=0.2)
    task.setup_training(cfg, meta)
    batch = (torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8), torch.arange(8) % 10)
    return task, task.build_model(cfg, meta), batch, cfg


def _detect_case():
    from detect_helpers import shapes_batch

    task = get_task("detect")
    meta = Meta(
        "detect", "pmdet_n", ["circle", "square", "triangle"], imgsz=64, model_kwargs=DET_TINY["pmdet_n"]
    )
    cfg = TrainConfig(task="detect", data="shapes")
    return task, task.build_model(cfg, meta), shapes_batch(range(2)), cfg


def _segment_case():
    task = get_task("segment")
    meta = Meta("segment", "unet_s", ["background", "a", "b"], imgsz=32, model_kwargs=SEG_TINY["unet_s"])
    cfg = TrainConfig(task="segment", data="shapes")
    model = task.build_model(cfg, meta)
    task.setup_training(cfg, meta)
    target = torch.randint(0, 3, (2, 32, 32))
    target[:, :4] = 255
    return task, model, (torch.randn(2, 3, 32, 32), target), cfg


def _enhance_case():
    task = get_task("enhance")
    meta = Meta(
        "enhance", "espcn", [], imgsz=32, model_kwargs={"feats": (8, 4)}, extra={"scale": 2, "channels": 3}
    )
    cfg = TrainConfig(task="enhance", data="photos")
    task.setup_training(cfg, meta)
    return task, task.build_model(cfg, meta), (torch.rand(2, 3, 16, 16), torch.rand(2, 3, 32, 32)), cfg


@pytest.mark.parametrize(
    "case", [_classify_case, _detect_case, _segment_case, _enhance_case], ids=lambda c: c.__name__[1:-5]
)
def test_distillation_step_is_zero_against_itself_and_positive_against_another_net(case):
    task, model, batch, cfg = case()
    model.eval()  # BatchNorm in eval mode: the same network gives the same outputs twice
    torch.manual_seed(0)  # mixup draws the same mix in both calls
    same = task.distillation_step(model, model, batch, 0, cfg)
    assert same["loss_distill"].item() == pytest.approx(0.0, abs=1e-5)
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.2 * torch.randn_like(p))
    torch.manual_seed(0)
    out = task.distillation_step(model, other, batch, 0, cfg)
    assert out["loss_distill"].item() > 0
    a = cfg.distill_alpha
    assert out["loss"].item() == pytest.approx(
        (1 - a) * out["loss_task"].item() + a * out["loss_distill"].item(), rel=1e-5
    )
    out["loss"].backward()
    assert any(p.grad is not None for p in model.parameters()) and all(
        p.grad is None for p in other.parameters()
    )


# ----------------------------------------------------------------------------------- end to end


def test_classify_student_learns_from_its_teacher_with_mixup(cls_teacher, tmp_path):
    student = Model("pm_cnn_t")
    student.train(
        project=str(tmp_path), teacher=str(cls_teacher), seed=1, mixup=0.2, distill_alpha=0.7, **CLS
    )
    _distill_row(student)
    # the teacher stays out of the student's checkpoints
    state, _, _ = load_weights(student.run_dir / "weights" / "last.safetensors")
    teacher_state, _, _ = load_weights(cls_teacher)
    assert state.keys() == teacher_state.keys()


def _untrained_teacher(task_name: str, model: str, kwargs: dict, path: Path) -> Path:
    """A teacher weights file for ``shapes`` as training would write it, less the (slow) training."""
    task = get_task(task_name)
    cfg = TrainConfig(task=task_name, model=model, **{k: v for k, v in SHAPES.items() if k != "device"})
    meta = Meta(task_name, model, task.load_data(cfg).class_names, imgsz=64, model_kwargs=kwargs)
    save_weights(path, task.build_model(cfg, meta).state_dict(), meta)
    return path


def test_detect_student_learns_from_a_pmdet_teacher(tmp_path):
    teacher = _untrained_teacher("detect", "pmdet_n", DET_TINY["pmdet_n"], tmp_path / "pmdet_n.safetensors")
    student = Model("pmdet_s", task="detect")
    student.train(project=str(tmp_path), teacher=str(teacher), model_kwargs=DET_TINY["pmdet_s"], **SHAPES)
    row = _distill_row(student)
    assert row["train/distill_cls"] > 0 and row["train/distill_box"] >= 0


def test_segment_student_learns_from_a_semantic_teacher(tmp_path):
    teacher = _untrained_teacher("segment", "unet_s", SEG_TINY["unet_s"], tmp_path / "unet_s.safetensors")
    student = Model("fpn", task="segment")
    student.train(project=str(tmp_path), teacher=str(teacher), model_kwargs=SEG_TINY["fpn"], **SHAPES)
    _distill_row(student)


def test_enhance_student_learns_from_a_larger_teacher(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        _smooth_photo(photos / f"p{i}.png", i)
    args = {"data": str(photos), "degradation": "sr", "scale": 2, "imgsz": 32, "epochs": 1, "epoch_samples": 16,
            "batch": 8, "workers": 0, "device": "cpu", "project": str(tmp_path / "runs")}  # fmt: skip
    teacher = Model("espcn", task="enhance")
    teacher.train(name="teacher", **args)
    student = Model("espcn", task="enhance")
    student.train(teacher=str(teacher.weights_path), model_kwargs={"feats": (8, 4)}, **args)
    _distill_row(student)
    with pytest.raises(ConfigError) as err:  # a x2 teacher for a x3 student: outputs of another size
        Model("espcn", task="enhance").train(
            teacher=str(teacher.weights_path), **{**args, "scale": 3, "imgsz": 48}
        )
    _one_line(err, str(teacher.weights_path), "scale 2", "scale 3")


# ----------------------------------------------------------------------------------- refusals


def _refusal(task: str, path, meta: Meta, exc=ConfigError) -> pytest.ExceptionInfo:
    cfg = TrainConfig(task=task, data="x", teacher=str(path))
    with pytest.raises(exc) as err:
        load_teacher(get_task(task), cfg, meta)
    return err


def _weights_like(src: Path, dst: Path, **meta_changes) -> Path:
    state, meta, _ = load_weights(src)
    for k, v in meta_changes.items():
        setattr(meta, k, v)
    save_weights(dst, state, meta)
    return dst


def test_teacher_of_another_task_or_classes_or_size_is_refused(cls_teacher, tmp_path):
    _, meta, _ = load_weights(cls_teacher)
    _one_line(_refusal("detect", cls_teacher, Meta("detect", "pmdet_n", meta.class_names, imgsz=16)),
              str(cls_teacher), "classify model", "detect teacher")  # fmt: skip
    other = _weights_like(cls_teacher, tmp_path / "letters.safetensors", class_names=list("abcdefghij"))
    _one_line(
        _refusal("classify", other, meta), str(other), "[a, b, c, d, e, f, ... (10 in all)]", "same classes"
    )
    bigger = _weights_like(cls_teacher, tmp_path / "big.safetensors", imgsz=32)
    _one_line(_refusal("classify", bigger, meta), str(bigger), "imgsz 32", "--imgsz 32")
    net, _ = load_teacher(
        get_task("classify"), TrainConfig(task="classify", data="x", teacher=str(cls_teacher)), meta
    )
    assert not net.training and not any(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("task, model", [("generate", "gan"), ("compress", "factorized")])
def test_tasks_without_a_distillation_loss_refuse(task, model, tmp_path):
    path = tmp_path / f"{task}.safetensors"
    meta = Meta(task, model, [], imgsz=32)
    save_weights(path, {"w": torch.zeros(1)}, meta)
    msg = _one_line(_refusal(task, path, meta), str(path))
    assert msg.endswith(
        f"the {task} task has no distillation loss (supported: classify, detect, segment, enhance)"
    )


def test_set_predictors_and_instance_models_are_refused(tmp_path):
    for task, student, teacher, why in (("detect", "pmdet_n", "rtdetr", "no anchor correspondence"),
                                        ("segment", "maskrcnn", "unet_s", "instance model")):  # fmt: skip
        path = tmp_path / f"{teacher}.safetensors"
        save_weights(path, {"w": torch.zeros(1)}, Meta(task, teacher, ["a"], imgsz=32))
        _one_line(_refusal(task, path, Meta(task, student, ["a"], imgsz=32)), str(path), why)


def test_missing_exported_and_foreign_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    meta = Meta("classify", "pm_cnn_t", ["a"], imgsz=16)
    _one_line(
        _refusal("classify", tmp_path / "nope.safetensors", meta, WeightsError),
        "nope.safetensors",
        "not found",
    )
    _one_line(_refusal("classify", tmp_path / "m.onnx", meta), "m.onnx", "exported model", ".safetensors")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(1)}, str(foreign))
    _one_line(_refusal("classify", foreign, meta, WeightsError), str(foreign), "not pixelmind weights")


def test_a_refused_teacher_stops_the_run_before_its_directory_exists(tmp_path):
    with pytest.raises(PixelmindError) as err:
        Model("pm_cnn_t").train(project=str(tmp_path), teacher=str(tmp_path / "nope.safetensors"), **CLS)
    _one_line(err, "nope.safetensors")
    assert not (tmp_path / "classify").exists()


def test_cli_train_takes_teacher(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pixelmind", "train", "--data", "digits", "--model", "pm_cnn_t",
                        "--teacher", str(tmp_path / "t.onnx"), "--project", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "t.onnx is an exported model" in r.stderr
