"""The detection task: boxes, labels and scores from a one-stage anchor-free CNN (``pmdet_*``).

Images are letterboxed to ``imgsz`` squares (:mod:`pixelmind.tasks.detect.data`); the network
returns per-location class logits and decoded boxes, and :func:`postprocess` (score threshold,
class-aware NMS from torchvision.ops, max detections) turns them into detections. Exports pack
both outputs into one tensor ``[B, A, C + 4]``, so the PyTorch and onnxruntime paths share the
same postprocess. Metrics are COCO's, from :mod:`pixelmind.metrics.coco_eval` (equal to
pycocotools), on boxes mapped back to the original images.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelmind.errors import ConfigError
from pixelmind.nn.device import model_device
from pixelmind.tasks.base import DataBundle, Meta, Task
from pixelmind.tasks.detect.models import MODELS, build_detector, model_info
from pixelmind.tasks.detect.postprocess import postprocess

#: detections below this score are not reported by predict (evaluation keeps everything above EVAL_CONF)
DEFAULT_CONF = 0.25
EVAL_CONF = 0.001


@dataclass
class DetectResult:
    """Boxes (original image pixels, xyxy), scores and labels of one image.

    Example:
        >>> r = DetectResult([[1.0, 2.0, 11.0, 22.0]], [0.9], [0], ["cat"], (40, 30))
        >>> r.to_dict()["detections"][0]["bbox"]
        [1.0, 2.0, 10.0, 20.0]
    """

    boxes: list[list[float]]
    scores: list[float]
    labels: list[int]
    class_names: list[str]
    size: tuple[int, int]  # (width, height)
    seconds: float = 0.0
    image: Any = None
    file_suffix: str = ".jpg"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        dets = [{"label": self.class_names[c], "class_index": c, "score": round(s, 4),
                 "bbox": [round(b[0], 2), round(b[1], 2), round(b[2] - b[0], 2), round(b[3] - b[1], 2)]}  # COCO xywh
                for b, s, c in zip(self.boxes, self.scores, self.labels)]  # fmt: skip
        return {"width": self.size[0], "height": self.size[1], "detections": dets, "ms": round(self.seconds * 1000, 1), **self.extra}

    def render(self, image=None):
        """The image with its boxes, labels and scores drawn."""
        from pixelmind.tasks.segment.task import default_colors
        from pixelmind.viz.draw import draw_boxes

        colors = default_colors(len(self.class_names) + 1)[1:]
        return draw_boxes(image if image is not None else self.image, self.boxes,
                          [f"{self.class_names[c]} {s:.2f}" for s, c in zip(self.scores, self.labels)],
                          [colors[c] for c in self.labels])  # fmt: skip

    def yolo_lines(self) -> list[str]:
        """YOLO txt lines: ``class cx cy w h score``, normalised to the image size."""
        w, h = self.size
        return [f"{c} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} {(b[3] - b[1]) / h:.6f} {s:.4f}"
                for b, s, c in zip(self.boxes, self.scores, self.labels)]  # fmt: skip

    def save(self, path: str | Path) -> None:
        """The annotated image at ``path`` and the YOLO txt labels next to it (``<stem>.txt``)."""
        path = Path(path)
        self.render().save(path, quality=92)
        path.with_suffix(".txt").write_text("".join(f"{line}\n" for line in self.yolo_lines()))


class PackedOutputs(nn.Module):
    """The detector with one output ``[B, A, C + 4]`` (class logits, then xyxy boxes): what exports hold."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.model(x), dim=-1)


def raw_outputs(model, x: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cls_logits, boxes)`` from a PyTorch detector or an exported (packed) one."""
    out = model(x)
    if torch.is_tensor(out):
        return out[..., :num_classes], out[..., num_classes:]
    return out[0], out[1]


class DetectTask(Task):
    name = "detect"
    models = MODELS
    primary_metric = "map"
    test_split = True
    metric_mode = "max"
    defaults = {
        # photos: pmdet_n with EMA weights beat YOLO11n's test mAP50-95 in 0.73x its wall time (raccoon, 416 px,
        # bench/RESULTS.md section 29); pmdet_s stays the recipe of the 64-px shapes
        "model": "pmdet_n",
        "ema": True,
        "epochs": 30,
        "imgsz": 320,
        "batch": 16,
        "lr": 2e-3,
        "weight_decay": 5e-4,
        "augment": "light",
        # channels-last + bf16 where the hardware has it: pmdet_s trains 2.6x faster on an AVX512-BF16 CPU
        # (raccoon, 416 px) and reaches the same mAP50 on shapes (bench/RESULTS.md section 28)
        "channels_last": True,
        "precision": "auto",
    }
    explain_methods = ("gradcam", "gradcam++", "eigencam", "scorecam", "ig", "gradient")

    def recipe(self, cfg: Any) -> dict[str, Any]:
        """``shapes``: ``pmdet_s`` on 64-px images, lr 5e-3 with gradient clipping (bench/RESULTS.md section 13);
        other data: ``pmdet_n`` with EMA weights on 320-px letterboxes (section 29)."""
        out = dict(self.defaults)
        if str(cfg.data) == "shapes":
            out.update(model="pmdet_s", ema=False, imgsz=64, epochs=18, lr=5e-3, clip_grad=10.0, weight_decay=0.05)
        if cfg.model == "rtdetr":  # attention needs a gentler step (the helper's probe, models.py docstring)
            out.update(lr=1e-3, clip_grad=1.0, weight_decay=1e-4, ema=False)
            out.update(channels_last=False, precision="fp32")  # not measured for its deformable attention: as before
        return out

    def load_data(self, cfg: Any, meta: Meta | None = None) -> DataBundle:
        from pixelmind.tasks.detect.data import load_detect_data

        if meta is None:
            return load_detect_data(cfg)
        return load_detect_data(cfg, meta.class_names, meta.mean, meta.std)

    def build_model(self, cfg: Any, meta: Meta) -> nn.Module:
        model = build_detector(meta.model, meta.num_classes, **meta.model_kwargs)
        model.pixelmind_stride = model_info(meta.model).stride
        return model

    def prune_ignored_layers(self, model) -> list[nn.Module]:
        """The last convolution of every class and box branch (one output per class, four per box side)."""
        from pixelmind.tasks.detect.models import Detector

        if not isinstance(model, Detector):
            raise ConfigError(self.pruning_unsupported(
                "the DETR detector (rtdetr) splits its attention and query features into heads of a fixed width; "
                "prune a CNN detector (pmdet_n, pmdet_s, pmdet_m)"))  # fmt: skip
        return [branch[-1] for head in model.heads for branch in (head.cls, head.reg)]

    def collate(self, samples):
        from pixelmind.tasks.detect.data import collate_detection

        return collate_detection(samples)

    def _task_losses(self, model, batch) -> tuple[dict[str, torch.Tensor], Any, nn.Module]:
        """``(the model's losses, its raw outputs, the detector without its DDP wrapper)``."""
        images, targets = batch
        core = model.module if hasattr(model, "module") else model  # DDP wraps the detector
        # DETR-style models build denoising queries from the targets inside forward
        raw = model(images, targets) if getattr(core, "wants_targets", False) else model(images)
        return core.loss(raw, targets, tuple(images.shape[-2:])), raw, core

    def training_step(self, model, batch, step: int, optimizer_idx: int = 0) -> dict[str, torch.Tensor]:
        losses, _, _ = self._task_losses(model, batch)
        return {"loss": losses["loss"], **{k.removeprefix("loss_"): v.detach() for k, v in losses.items() if k != "loss"}}

    def check_teacher(self, meta: Meta, teacher_meta: Meta) -> None:
        """Only the dense CNN detectors distil: a DETR's set of queries has no anchor point to pair with the other's."""
        for who, m in (("student", meta), ("teacher", teacher_meta)):
            if model_info(m.model).kind != "cnn":
                raise ConfigError(f"teacher: detection distillation pairs the anchor points of CNN detectors (pmdet_*); the {who} "
                                  f"is {m.model!r}, whose set predictions have no anchor correspondence")  # fmt: skip

    def distillation_step(self, model, teacher, batch, step: int, cfg: Any) -> dict[str, torch.Tensor]:
        """The detector's loss plus the class-score KL and the score-weighted GIoU to the teacher at each anchor point."""
        from pixelmind.nn.distill import blend
        from pixelmind.tasks.detect.loss import distillation_loss

        losses, raw, core = self._task_losses(model, batch)
        logits, boxes = raw[:2]
        with torch.no_grad():
            teacher_logits, teacher_boxes = teacher(batch[0])
        if teacher_logits.shape != logits.shape:
            raise ConfigError(f"teacher: {cfg.teacher} predicts at {teacher_logits.shape[1]} anchor points per image, the student at "
                              f"{logits.shape[1]}; distillation needs detectors with the same strides")  # fmt: skip
        kd_cls, kd_box = distillation_loss(logits, boxes, teacher_logits, teacher_boxes)
        kd = core.loss_cfg["cls_weight"] * kd_cls + core.loss_cfg["box_weight"] * kd_box
        return blend(losses["loss"], kd, cfg.distill_alpha, cls=losses["loss_cls"], box=losses["loss_box"],
                     distill_cls=kd_cls, distill_box=kd_box)  # fmt: skip

    def validation_step(self, model, batch):
        images, targets = batch
        dets = postprocess(raw_outputs(model, images, _num_classes(model)), score_thresh=EVAL_CONF,
                           image_size=tuple(images.shape[-2:]))  # fmt: skip
        preds = [{**d, "boxes": unletterbox(d["boxes"], float(t["scale"]), t["size"].tolist())} for d, t in zip(dets, targets)]
        return preds, [{k: v for k, v in t.items() if k not in ("scale", "size")} for t in targets]

    def labelling(self):
        from pixelmind.tasks.detect.labelling import DetectLabelling

        return DetectLabelling()

    def evaluator(self, meta: Meta):
        from pixelmind.metrics.coco_eval import CocoEvaluator

        return CocoEvaluator(meta.class_names, iou_type="bbox")

    def preprocess(self, meta: Meta):
        from torchvision.transforms import v2

        from pixelmind.tasks.detect.data import letterbox
        from pixelmind.tasks.segment.data import uint8_tensor

        normalize = v2.Normalize(meta.mean, meta.std)
        return lambda image: normalize(letterbox(uint8_tensor(image), meta.imgsz)[0].float() / 255)

    def export_any_size(self, meta: Meta) -> bool:
        """CNN detectors export with free H and W: predict pads a photo only to a stride-32 rectangle."""
        return model_info(meta.model).kind == "cnn"

    def inference_network(self, model, meta: Meta):
        """A CNN detector with BatchNorm folded into its convolutions, channels-last: predict 1.1-1.4x faster at
        416 px, batch 1, 1.6x at batch 16 (bench/RESULTS.md section 29); exports and DETRs as they are."""
        from pixelmind.nn.fuse import fused_copy
        from pixelmind.tasks.detect.models import Detector

        if not isinstance(model, Detector):
            return model
        example = torch.rand(1, meta.extra.get("channels", 3), 64, 64, device=model_device(model))
        return fused_copy(model, example).to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict(self, model, images: Sequence[Any], meta: Meta, conf: float = DEFAULT_CONF, iou: float = 0.6,
                max_det: int = 100, **_: Any) -> list[DetectResult]:  # fmt: skip
        """Detections for PIL images, boxes in each image's own pixels."""
        t0 = time.perf_counter()
        if model_info(meta.model).kind == "cnn" and not _fixed_input_size(model):
            x = _rect_batch(images, meta).to(model_device(model))
        else:  # a DETR export keeps the query count of its export size (and older CNN exports their H, W): the square
            x = torch.stack([self.preprocess(meta)(im) for im in images]).to(model_device(model))
        dets = postprocess(raw_outputs(model, x, meta.num_classes), score_thresh=conf, iou_thresh=iou, max_det=max_det,
                           image_size=tuple(x.shape[-2:]))  # fmt: skip
        seconds = (time.perf_counter() - t0) / max(len(images), 1)
        out = []
        for image, d in zip(images, dets):
            boxes = unletterbox(d["boxes"].cpu(), meta.imgsz / max(image.size), [image.height, image.width]).tolist()
            out.append(DetectResult(boxes, d["scores"].cpu().tolist(), d["labels"].cpu().tolist(), list(meta.class_names),
                                    image.size, seconds, image))  # fmt: skip
        return out

    def export_parts(self, model, inputs):
        return [("", PackedOutputs(model).eval(), inputs)]

    def attack_loss(self, model, batch) -> torch.Tensor:
        """The training loss; validation targets (in the image's pixels) are moved onto the canvas first."""
        images, targets = batch
        canvas = []
        for t in targets:
            if "scale" in t:
                keep = t["iscrowd"] == 0 if "iscrowd" in t else slice(None)
                t = {"boxes": t["boxes"][keep] * t["scale"], "labels": t["labels"][keep]}
            canvas.append(t)
        return self._task_losses(model, (images, canvas))[0]["loss"]

    def explain_input(self, image, meta: Meta):
        """The square letterbox predict uses; maps are cropped to the image's part of the canvas."""
        from pixelmind.explain.render import resize_map

        side = meta.imgsz / max(image.size)
        h, w = max(1, round(image.height * side)), max(1, round(image.width * side))
        return self.preprocess(meta)(image), lambda saliency, im: resize_map(saliency[:h, :w], im.size)

    def explain_targets(self, model, x, meta: Meta, classes=None, image=None, conf: float = DEFAULT_CONF, **_: Any):
        from pixelmind.tasks.detect.explain import box_targets

        network = PackedOutputs(model)
        targets = box_targets(network, x, meta.class_names, conf, classes)
        if image is not None:  # report boxes in the image's pixels
            for t in targets:
                box = unletterbox(torch.tensor([t.info["box"]]), meta.imgsz / max(image.size), [image.height, image.width])
                t.info["box"] = [round(v, 2) for v in box[0].tolist()]
        return network, targets

    def explain_layers(self, model, network, x):
        """The class branch's features at every level (a CNN), or the hybrid encoder's last map (a DETR)."""
        from pixelmind.explain.targets import cam_layers
        from pixelmind.tasks.detect.models import Detector

        if isinstance(model, Detector):
            return [head.cls[0] for head in model.heads], None
        return cam_layers(network, x, within=model.encoder)


def _fixed_input_size(model) -> bool:
    """An export that takes only its export size: an INT8 ``.pt2`` program (captured with a fixed H and W),
    an ONNX file with a fixed input (exported before CNN detectors left H and W free)."""
    from pixelmind.optimize.pt2e import Pt2Module

    session = getattr(model, "session", None)
    return isinstance(model, Pt2Module) or (session is not None and all(isinstance(d, int) for d in session.get_inputs()[0].shape[2:]))


def _rect_batch(images: Sequence[Any], meta: Meta, stride: int = 32) -> torch.Tensor:
    """Images letterboxed to ``imgsz`` on their long side and padded only up to the batch's largest
    stride multiple (not to a square): a 4:3 photo at 320 px runs 320 x 256, 20% fewer pixels.
    The top-left placement is the square letterbox's, so :func:`unletterbox` applies unchanged."""
    from torchvision.transforms import v2

    from pixelmind.tasks.detect.data import letterbox
    from pixelmind.tasks.segment.data import uint8_tensor

    canvases = [letterbox(uint8_tensor(im), meta.imgsz)[0] for im in images]
    sizes = [(round(im.height * meta.imgsz / max(im.size)), round(im.width * meta.imgsz / max(im.size))) for im in images]
    h = min(meta.imgsz, -(-max(s[0] for s in sizes) // stride) * stride)
    w = min(meta.imgsz, -(-max(s[1] for s in sizes) // stride) * stride)
    normalize = v2.Normalize(meta.mean, meta.std)
    return torch.stack([normalize(c[:, :h, :w].float() / 255) for c in canvases])


def unletterbox(boxes: torch.Tensor, scale: float, size: list[int]) -> torch.Tensor:
    """Canvas boxes -> the original image's pixels, clipped to it (boxes may reach into the padding).

    Example:
        >>> unletterbox(torch.tensor([[10.0, 50.0, 40.0, 70.0]]), 0.5, [100, 200])
        tensor([[ 20., 100.,  80., 100.]])
    """
    h, w = size
    out = boxes / scale
    return torch.stack([out[:, 0].clamp(0, w), out[:, 1].clamp(0, h), out[:, 2].clamp(0, w), out[:, 3].clamp(0, h)], 1)


def _num_classes(model) -> int:
    """Classes of a PyTorch detector (DDP-wrapped or not) or of an exported one (from its meta)."""
    for owner in (model, getattr(model, "module", None), getattr(model, "meta", None)):
        if owner is not None and getattr(owner, "num_classes", None) is not None:
            return int(owner.num_classes)
    raise AttributeError(f"{type(model).__name__}: cannot tell how many classes the detector has")


TASK = DetectTask()
