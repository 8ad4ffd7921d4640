"""Every registered detector, tiny: forward/loss/backward, assignment, postprocess, ONNX parity, learning, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from detect_helpers import no_objects, recall_at_iou50, shapes_batch
from torchvision.ops import box_iou

from pixelmind.errors import ConfigError
from pixelmind.tasks.detect.assign import anchor_points, task_aligned_assign
from pixelmind.tasks.detect.loss import pad_targets
from pixelmind.tasks.detect.models import MODELS, TINY, ModelInfo, build_detector, model_info
from pixelmind.tasks.detect.postprocess import postprocess

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only spins (conftest)



def tiny(name: str, num_classes: int = 3, **options):
    torch.manual_seed(0)
    return build_detector(name, num_classes, **{**TINY[name], **options})


def test_registry_names_kinds_and_tiny_variants():
    assert set(MODELS) == {"pmdet_n", "pmdet_s", "pmdet_m", "rtdetr"} == set(TINY)
    assert all(model_info(n) == ModelInfo("cnn", 32) for n in MODELS if n.startswith("pmdet"))
    assert model_info("rtdetr") == ModelInfo("detr", 32)


@pytest.mark.slow  # random init of 21M parameters in all
def test_default_sizes_match_the_docstring():
    counts = {n: sum(p.numel() for p in build_detector(n, 3).parameters()) for n in MODELS}
    assert {n: round(c / 1e6, 2) for n, c in counts.items()} == {"pmdet_n": 2.0, "pmdet_s": 5.65, "pmdet_m": 13.95, "rtdetr": 7.41}


VARIANTS = {"spp": {"spp": True}, "dfl": {"box_bins": 16}}  # options on top of a tiny model


@pytest.mark.parametrize("name", [*(n for n in MODELS if n.startswith("pmdet")), "pmdet_n+spp", "pmdet_n+dfl"])  # rtdetr: test_rtdetr.py
def test_forward_loss_backward_with_a_negative_image(name):
    name, _, variant = name.partition("+")
    model = tiny(name, **VARIANTS.get(variant, {})).train()
    x, targets = shapes_batch([0])
    x = torch.cat([x, torch.randn(1, 3, 64, 64)])
    targets.append(no_objects())
    cls_logits, boxes, *dists = model(x)
    assert cls_logits.shape == (2, 64 + 16 + 4, 3) and boxes.shape == (2, 84, 4)
    assert [d.shape for d in dists] == ([(2, 84, 4, 16)] if variant == "dfl" else [])  # in training only
    losses = model.loss((cls_logits, boxes, *dists), targets, (64, 64))
    assert set(losses) == {"loss", "loss_cls", "loss_box", *(["loss_dfl"] if variant == "dfl" else [])}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_box"] > 0
    losses["loss"].backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads), f"{name}: a parameter got no gradient"
    assert all(torch.isfinite(g).all() for g in grads)


def test_a_batch_without_any_object_trains_the_class_branch_only():
    model = tiny("pmdet_n").train()
    out = model(torch.randn(2, 3, 64, 96))
    losses = model.loss(out, [no_objects(), no_objects()], (64, 96))
    assert losses["loss_box"] == 0 and losses["loss_cls"] > 0
    losses["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.heads[0].cls[-1].bias.grad.abs().sum() > 0


def test_loss_rejects_an_image_size_that_does_not_fit_the_outputs():
    model = tiny("pmdet_n")
    with pytest.raises(ValueError, match="image_size"):
        model.loss(model(torch.randn(1, 3, 64, 64)), [no_objects()], (96, 64))


def test_assignment_puts_positives_inside_their_objects():
    torch.manual_seed(0)
    points, _ = anchor_points((64, 64), (8, 16, 32))
    n = points.shape[0]
    # random predicted boxes around each point; a small object (5 px) no cell centre falls into
    pred = torch.cat([points - torch.rand(n, 2) * 20, points + torch.rand(n, 2) * 20], -1)[None]
    targets = [{"boxes": torch.tensor([[2.0, 3, 40, 30], [30, 20, 62, 60], [49, 1, 54, 6]]),
                "labels": torch.tensor([0, 2, 1])}]  # fmt: skip
    boxes, labels, valid = pad_targets(targets, torch.device("cpu"))
    a = task_aligned_assign(torch.rand(1, n, 3), pred, points, boxes, labels, valid, topk=5)
    fg = a.foreground[0]
    assert 3 <= int(fg.sum()) <= 15  # every object gets at least one positive, at most topk
    assert set(a.gt_index[0, fg].tolist()) == {0, 1, 2}
    for gt in range(2):  # the two large objects: their positives' points lie inside their boxes
        pts = points[fg & (a.gt_index[0] == gt)]
        b = boxes[0, gt]
        assert ((pts > b[:2]) & (pts < b[2:])).all()
    small = points[fg & (a.gt_index[0] == 2)]
    assert len(small) == 1 and torch.allclose(small[0], torch.tensor([52.0, 4.0]))  # the nearest cell centre
    # targets: the assigned object's box and class; scores in (0, 1] on that class only
    assert torch.equal(a.target_boxes[0, fg], boxes[0, a.gt_index[0, fg]])
    scores = a.target_scores[0, fg]
    assert (scores.argmax(1) == labels[0, a.gt_index[0, fg]]).all() and (scores.amax(1) > 0).all()
    assert (scores <= 1).all() and (a.target_scores[0, ~fg] == 0).all()


def test_postprocess_keeps_max_det_sorted_with_class_aware_nms():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(2, 300, 2, generator=g) * 200
    boxes = torch.cat([xy, xy + 10 + torch.rand(2, 300, 2, generator=g) * 30], -1)
    logits = torch.randn(2, 300, 4, generator=g) * 3
    dets = postprocess((logits, boxes), score_thresh=0.05, iou_thresh=0.5, max_det=20)
    assert len(dets) == 2
    for d in dets:
        assert len(d["scores"]) == 20 and d["boxes"].shape == (20, 4) and d["labels"].dtype == torch.int64
        assert (d["scores"][:-1] >= d["scores"][1:]).all()
        same = d["labels"][:, None] == d["labels"][None]
        overlap = box_iou(d["boxes"], d["boxes"]) > 0.5
        assert not (same & overlap).fill_diagonal_(False).any()
    # two classes on one box: both kept; a second box of the same class on top: suppressed
    logits = torch.tensor([[[4.0, 3.0], [2.0, -9.0]]])
    boxes = torch.tensor([[[0.0, 0, 10, 10], [0.0, 0, 10, 9]]])
    d = postprocess((logits.numpy(), boxes.numpy()), score_thresh=0.5)[0]  # numpy, as onnxruntime gives
    assert d["labels"].tolist() == [0, 1] and len(d["boxes"]) == 2
    assert postprocess((logits, boxes), score_thresh=0.99)[0]["boxes"].shape == (0, 4)


def train_steps(model, x, targets, steps: int, lr: float = 1e-2) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        loss = model.loss(model(x), targets, tuple(x.shape[-2:]))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("variant", ["", "dfl"])  # pmdet_n only: the three sizes share the code
def test_onnx_export_with_dynamic_shapes_matches_pytorch(variant, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    name = "pmdet_n"
    model = tiny(name, **VARIANTS.get(variant, {}))
    x, targets = shapes_batch(range(4))
    train_steps(model, x, targets, steps=5)  # BatchNorm statistics and weights off their init
    model.eval()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns about its own deprecation
        torch.onnx.export(
            model, (x[:1],), str(path), input_names=["images"], output_names=["cls_logits", "boxes"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                          "cls_logits": {0: "batch", 1: "anchors"}, "boxes": {0: "batch", 1: "anchors"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    real = torch.nn.functional.interpolate(shapes_batch(range(4, 6))[0], size=(96, 128), mode="bilinear")
    for images in (x[:1], real):  # the traced size and another multiple of the stride, batch 2
        with torch.no_grad():
            ref = model(images)
        got = session.run(None, {"images": images.numpy()})
        for r, o, scale in zip(ref, got, (1.0, 64.0)):  # logits: absolute; boxes: relative to the image size
            assert o.shape == r.shape
            assert np.abs(o - r.numpy()).max() < 1e-4 * scale
        mine = postprocess(ref, score_thresh=0.05)
        theirs = postprocess(got, score_thresh=0.05)
        assert sum(len(d["scores"]) for d in mine) > 0  # something to compare
        for a, b in zip(mine, theirs):
            assert torch.equal(a["labels"], b["labels"])
            assert torch.allclose(a["boxes"], b["boxes"], atol=1e-3) and torch.allclose(a["scores"], b["scores"], atol=1e-5)


@pytest.mark.parametrize("variant", ["", "dfl"])
def test_tiny_model_overfits_four_shapes_images(variant):  # about 5 s; seeds 0-3 reach recall 0.875-1.0 by step 60
    """The loss and the assignment work: a tiny detector learns to find the shapes of four images."""
    model = tiny("pmdet_n", **VARIANTS.get(variant, {}))
    x, targets = shapes_batch(range(4))
    assert sum(len(t["labels"]) for t in targets) >= 6
    train_steps(model, x, targets, steps=120)
    model.eval()
    with torch.no_grad():
        dets = postprocess(model(x), score_thresh=0.25)
    assert recall_at_iou50(dets, targets) >= 0.75


def test_unknown_name_and_options_raise_config_errors():
    with pytest.raises(ConfigError, match="pmdet_n") as info:
        build_detector("no_such_net_xyz", 3)
    assert "no_such_net_xyz" in str(info.value)
    with pytest.raises(ConfigError, match="pmdet_s"):
        model_info("no_such_net_xyz")
    with pytest.raises(ConfigError, match="widht"):
        build_detector("pmdet_n", 3, widht=8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backbone": "no_such_backbone"}, "no_such_backbone"),
        ({"backbone": None}, "backbone"),
        ({"backbone": "vit_tiny_patch16_224"}, "strides"),  # one resolution: no pyramid
        ({"cls_loss": "focal"}, "cls_loss.*qfl"),
        ({"width": 0}, "width"),
        ({"neck_depth": -1}, "neck_depth"),
        ({"spp": "yes"}, "spp"),
        ({"box_bins": 1}, "box_bins"),
    ],
)
def test_bad_options_raise_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_detector("pmdet_n", 3, **{**TINY["pmdet_n"], **kwargs})


def test_bad_num_classes():
    with pytest.raises(ConfigError, match="num_classes"):
        build_detector("pmdet_n", 0)


def test_a_channels_last_detector_is_fed_channels_last_and_computes_the_same():
    """The default recipe trains channels-last: NCHW inputs are converted once at the entry (a mixed-format
    network converts at every layer), and the outputs equal the contiguous network's."""
    net = tiny("pmdet_n").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = net(x)
    seen = []
    first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    first_conv.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    net = net.to(memory_format=torch.channels_last)
    with torch.no_grad():
        got = net(x)
    assert seen == [True]
    for w, g in zip(want, got):
        torch.testing.assert_close(g, w, atol=1e-4, rtol=1e-4)


def test_boxes_stay_float32_under_bf16_autocast():
    """bf16 would round a decoded coordinate above 256 px to 2-px steps: the box output and decoding run in float32."""
    net = tiny("pmdet_n").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits, boxes = net(x)
    assert logits.dtype == torch.bfloat16 and boxes.dtype == torch.float32
    with torch.no_grad():
        _, full = net(x)
    assert not torch.equal(boxes, full)  # the features before the box output did run in bf16
    torch.testing.assert_close(boxes, full, atol=2.0, rtol=0.05)


def test_detect_recipe_trains_channels_last_in_native_bf16_and_rtdetr_stays_fp32():
    from pixelmind.config import TrainConfig
    from pixelmind.engine.trainer import resolve_precision
    from pixelmind.tasks import get_task

    task = get_task("detect")
    cnn = TrainConfig(data="d", task="detect", device="cpu").filled(task.recipe(TrainConfig(data="d")))
    assert cnn.channels_last is True and cnn.precision == "auto"
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision(cnn) == ("bf16" if native else "fp32")
    detr = TrainConfig(data="d", model="rtdetr").filled(task.recipe(TrainConfig(data="d", model="rtdetr")))
    assert (detr.channels_last, resolve_precision(detr)) == (False, "fp32")
    assert resolve_precision(TrainConfig(data="d", precision="fp32")) == "fp32"  # asked for: kept


def test_auto_precision_on_cuda_is_bf16_where_the_gpu_has_it_else_fp16(monkeypatch):
    # no GPU here: the two answers torch would give on one are set, the choice itself is pixelmind's
    from pixelmind.config import TrainConfig
    from pixelmind.engine.trainer import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for bf16, want in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda bf16=bf16: bf16)
        assert resolve_precision(TrainConfig(data="d", task="detect", precision="auto")) == want
    assert resolve_precision(TrainConfig(data="d", task="detect", precision="auto", device="cpu")) in ("bf16", "fp32")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_detector_trains_in_mixed_precision_on_cuda_and_predicts(tmp_path):
    from pixelmind.api import Model
    from pixelmind.tasks.detect.models import TINY

    model = Model("pmdet_n", task="detect")
    model.train(data="shapes", project=str(tmp_path), name="gpu", model_kwargs=TINY["pmdet_n"], epochs=1, imgsz=64,
                batch=64, limit=64, epoch_samples=256, workers=2, device="cuda")  # fmt: skip
    log = (model.run_dir / "train.log").read_text()
    assert " on cuda" in log and ("bf16" in log or "fp16" in log)
    best = Model.load(model.run_dir / "weights" / "best.safetensors", device="cuda")
    (row,) = best.predict(np.zeros((64, 64, 3), np.uint8), conf=0.0, max_det=5)
    assert 0 < len(row["detections"]) <= 5
