"""The RT-DETR-style detector, tiny: shapes in eval and training, losses, matching, denoising, ONNX parity, learning, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from detect_helpers import no_objects, recall_at_iou50, shapes_batch
from torchvision.ops import box_iou

from pixelmind.errors import ConfigError
from pixelmind.tasks.detect.postprocess import postprocess
from pixelmind.tasks.detect.rtdetr import RTDETR, TINY_CFG, MSDeformAttn, register, rtdetr
from pixelmind.tasks.detect.rtdetr_loss import denoising_queries, hungarian_match, paired_iou

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only spins (conftest)



def tiny(num_classes: int = 3, **kwargs) -> RTDETR:
    torch.manual_seed(0)
    return rtdetr(num_classes, **{**TINY_CFG, **kwargs})


def test_eval_outputs_are_logits_and_pixel_boxes_like_the_cnn_detector():
    model = tiny().eval()
    assert model.wants_targets is True
    with torch.no_grad():
        logits, boxes = model(torch.randn(2, 3, 64, 96))
    assert logits.shape == (2, 20, 3) and boxes.shape == (2, 20, 4)
    assert (boxes[..., 2:] > boxes[..., :2]).all()  # xyxy
    assert boxes.min() > -96 and boxes.max() < 2 * 96  # input pixels, not fractions
    assert boxes.max() > 1
    # at init every box is its anchor: centred on a token's cell, anchor_size strides wide
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2
    assert torch.allclose(centres % 8, torch.full_like(centres, 4.0), atol=1e-3)
    # fewer tokens than num_queries: all of them (a 32 px image has 4x4 + 2x2 + 1 tokens)
    with torch.no_grad():
        assert tiny(num_queries=100).eval()(torch.randn(1, 3, 32, 32))[0].shape == (1, 21, 3)


def test_training_outputs_and_losses_with_a_negative_image():
    model = tiny().train()
    x, targets = shapes_batch([0])
    x = torch.cat([x, torch.randn(1, 3, 64, 64)])
    targets.append(no_objects())
    raw = model(x, targets)
    layers, n = TINY_CFG["dec_layers"], len(targets[0]["labels"])
    groups = TINY_CFG["num_denoising"] // n
    assert raw["logits"].shape == (layers, 2, 20, 3) and raw["boxes"].shape == (layers, 2, 20, 4)
    assert raw["enc_logits"].shape == (2, 20, 3) and raw["enc_boxes"].shape == (2, 20, 4)
    assert raw["dn_logits"].shape == (layers, 2, 2 * n * groups, 3) and raw["dn"]["groups"] == groups
    assert ((raw["boxes"] >= 0) & (raw["boxes"] <= 1)).all()  # normalised cxcywh
    losses = model.loss(raw, targets, (64, 64))
    assert set(losses) == {"loss", "loss_cls", "loss_box", "loss_giou"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_box"] > 0 and losses["loss_giou"] > 0
    losses["loss"].backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert not [n for n, g in grads.items() if g is None]
    assert all(torch.isfinite(g).all() for g in grads.values())
    assert model.label_embed.weight.grad.abs().sum() > 0  # the denoising queries were trained


def test_a_batch_without_any_object_has_no_denoising_and_trains_the_scores_only():
    model = tiny().train()
    targets = [no_objects(), no_objects()]
    raw = model(torch.randn(2, 3, 64, 64), targets)
    assert "dn" not in raw
    losses = model.loss(raw, targets, (64, 64))
    assert losses["loss_box"] == 0 and losses["loss_giou"] == 0 and losses["loss_cls"] > 0
    losses["loss"].backward()
    assert model.score_heads[-1].bias.grad.abs().sum() > 0 and model.enc_score.bias.grad.abs().sum() > 0


def test_loss_needs_training_outputs():
    model = tiny().eval()
    with pytest.raises(ValueError, match="train"):
        model.loss(model(torch.randn(1, 3, 64, 64)), [no_objects()], (64, 64))


def test_hungarian_match_on_a_hand_made_case():
    # three queries, two objects: query 2 sits on object 0 with the right class, query 0 on object 1
    boxes = torch.tensor([[[0.7, 0.7, 0.2, 0.2], [0.3, 0.7, 0.1, 0.1], [0.3, 0.3, 0.2, 0.2]]])
    logits = torch.tensor([[[-3.0, 3.0], [-3.0, -3.0], [3.0, -3.0]]])
    labels, gt = [torch.tensor([0, 1])], [torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2]])]
    (q, t), = hungarian_match(logits, boxes, labels, gt)
    assert dict(zip(t.tolist(), q.tolist())) == {0: 2, 1: 0}
    # the class cost decides between two identical boxes
    boxes = torch.tensor([[[0.3, 0.3, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2]]])
    logits = torch.tensor([[[-3.0, 3.0], [3.0, -3.0]]])
    (q, t), = hungarian_match(logits, boxes, [torch.tensor([0])], [torch.tensor([[0.3, 0.3, 0.2, 0.2]])])
    assert q.tolist() == [1] and t.tolist() == [0]
    # no objects: no match
    (q, t), = hungarian_match(logits, boxes, [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, 4)])
    assert len(q) == len(t) == 0


def test_paired_iou_equals_torchvision_diagonal():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(50, 2, generator=g) * 50
    a = torch.cat([a, a + torch.rand(50, 2, generator=g) * 30 + 1], 1)
    b = torch.rand(50, 2, generator=g) * 50
    b = torch.cat([b, b + torch.rand(50, 2, generator=g) * 30 + 1], 1)
    from torchvision.ops import generalized_box_iou

    iou, giou = paired_iou(a, b)
    assert torch.allclose(iou, box_iou(a, b).diagonal(), atol=1e-5)
    assert torch.allclose(giou, generalized_box_iou(a, b).diagonal(), atol=1e-5)


def test_denoising_groups_mask_and_noise():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(4, 8, padding_idx=3)
    labels = [torch.tensor([0, 1, 2]), torch.tensor([1])]
    boxes = [torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.2, 0.3, 0.1, 0.2], [0.8, 0.8, 0.3, 0.3]]), torch.tensor([[0.4, 0.6, 0.2, 0.4]])]
    content, ref, mask, meta = denoising_queries(labels, boxes, 3, 6, 0.0, 0.5, emb, num_queries=7)
    groups, d = 2, 2 * 3 * 2  # 6 // 3 objects; a positive and a negative slot per object per group
    assert meta["groups"] == groups and content.shape == (2, d, 8) and ref.shape == (2, d, 4) and mask.shape == (d + 7, d + 7)
    assert meta["positive"][0].tolist() == [0, 1, 2, 6, 7, 8] and meta["positive"][1].tolist() == [0, 6]
    assert mask[d:, :d].all() and not mask[:, d:].any()  # matching queries never see denoising ones
    assert not mask[:6, :6].any() and mask[:6, 6:d].all() and mask[6:d, :6].all()  # groups are blind to each other
    # no label noise: contents are the objects' embeddings; padding slots get the padding embedding (zeros)
    assert torch.equal(content[0, 0], emb.weight[0]) and torch.equal(content[1, 1], torch.zeros(8))
    # positives stay closer to their object than negatives (corners moved by < half vs 0.5-1 x box size at box_noise 0.5)
    pos = ref[0, :3].sigmoid()
    neg = ref[0, 3:6].sigmoid()
    assert (pos - boxes[0]).abs().amax() <= (neg - boxes[0]).abs().amax()


def test_deformable_attention_samples_its_reference_point():
    """With zero offsets and one point, the output is the value at the reference (bilinear), projected."""
    attn = MSDeformAttn(4, heads=1, levels=1, points=1)
    torch.nn.init.zeros_(attn.offsets.bias)
    for lin in (attn.value, attn.out):
        torch.nn.init.eye_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
    m = torch.arange(4 * 4 * 4, dtype=torch.float32).view(1, 4, 4, 4)
    ref = torch.tensor([[[0.375, 0.625, 0.1, 0.1]]])  # the centre of cell (x 1, y 2) of a 4x4 map
    out = attn(torch.randn(1, 1, 4), ref, [m])
    assert torch.allclose(out[0, 0], m[0, :, 2, 1])
    ref = torch.tensor([[[0.5, 0.625, 0.1, 0.1]]])  # half way between cells x 1 and x 2
    assert torch.allclose(attn(torch.randn(1, 1, 4), ref, [m])[0, 0], m[0, :, 2, 1:3].mean(-1))


def train_steps(model, x, targets, steps: int, lr: float = 2e-3) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    history = []
    for _ in range(steps):
        loss = model.loss(model(x, targets), targets, tuple(x.shape[-2:]))["loss"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        history.append(loss.item())
    return history


def test_onnx_export_with_dynamic_shapes_matches_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = tiny()
    x, targets = shapes_batch(range(4))
    train_steps(model, x, targets, steps=5)  # BatchNorm statistics and weights off their init
    model.eval()
    path = tmp_path / "rtdetr.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns about its own deprecation
        torch.onnx.export(
            model, (x[:1],), str(path), input_names=["images"], output_names=["cls_logits", "boxes"],
            dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                          "cls_logits": {0: "batch"}, "boxes": {0: "batch"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    real = torch.nn.functional.interpolate(shapes_batch(range(4, 6))[0], size=(96, 128), mode="bilinear")
    for images in (x[:1], real):  # the traced size and another multiple of the stride, batch 2
        with torch.no_grad():
            ref = model(images)
        got = session.run(None, {"images": images.numpy()})
        for r, o, scale in zip(ref, got, (1.0, 128.0)):  # logits: absolute; boxes: relative to the image size
            assert o.shape == r.shape
            assert np.abs(o - r.numpy()).max() < 1e-4 * scale
        mine, theirs = postprocess(ref, score_thresh=0.0), postprocess(got, score_thresh=0.0)
        assert sum(len(d["scores"]) for d in mine) > 0  # something to compare
        for a, b in zip(mine, theirs):
            assert torch.equal(a["labels"], b["labels"])
            assert torch.allclose(a["boxes"], b["boxes"], atol=1e-3) and torch.allclose(a["scores"], b["scores"], atol=1e-5)


@pytest.mark.slow  # about 30 s on one thread
def test_tiny_model_overfits_four_shapes_images():
    """Matching, denoising and the losses work: a tiny RT-DETR learns to find the shapes of four images."""
    model = tiny(hidden_dim=32, num_heads=4, dec_ffn_dim=64)
    x, targets = shapes_batch(range(4))
    assert sum(len(t["labels"]) for t in targets) >= 6
    history = train_steps(model, x, targets, steps=150)
    assert np.mean(history[-10:]) < 0.5 * np.mean(history[:10])
    model.eval()
    with torch.no_grad():
        dets = postprocess(model(x), score_thresh=0.25)
    assert recall_at_iou50(dets, targets) >= 0.75


def test_register_adds_the_model_to_a_registry():
    from dataclasses import dataclass

    from pixelmind.registry import Registry

    @dataclass(frozen=True)
    class Info:
        kind: str
        stride: int

    models, info = Registry("detection model"), {}
    register(models, info, Info)
    assert "rtdetr" in models and info["rtdetr"] == Info("cnn", 32)
    assert isinstance(models.get("rtdetr")(2, **TINY_CFG), RTDETR)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden_dmi": 8}, "hidden_dmi.*choose from.*hidden_dim"),
        ({"backbone": "no_such_backbone"}, "no_such_backbone"),
        ({"backbone": "vit_tiny_patch16_224"}, "strides"),
        ({"hidden_dim": 18, "num_heads": 2}, "hidden_dim"),
        ({"num_queries": 0}, "num_queries"),
        ({"dec_layers": 1.5}, "dec_layers"),
        ({"num_denoising": -1}, "num_denoising"),
        ({"label_noise": 2.0}, "label_noise"),
    ],
)
def test_bad_options_raise_one_line_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match) as info:
        rtdetr(3, **{**TINY_CFG, **kwargs})
    assert "\n" not in str(info.value)


def test_bad_num_classes():
    with pytest.raises(ConfigError, match="num_classes"):
        rtdetr(0)
