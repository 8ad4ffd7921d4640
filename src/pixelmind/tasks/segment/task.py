"""The segmentation task: semantic masks (U-Net, DeepLabV3+, FPN, SegFormer) and instance masks (Mask R-CNN).

One task, two kinds of model (``model_info(name).kind``): semantic models map an image to
per-pixel class logits and train on index masks; the instance model finds objects and a mask
for each, and trains on boxes + masks. Semantic inference runs on the image at its own
resolution, padded to the model's stride; images larger than ``tile`` run as overlapping tiles
with blended logits (:mod:`pixelmind.nn.tiling`), arg-maxed band by band, so an 8000x8000 photo
needs its uint8 pixels, the uint8 mask and one band of logits, not a full float logit map.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pixelmind.errors import ConfigError, PixelmindError
from pixelmind.nn.device import model_device
from pixelmind.nn.memory_format import match_memory_format
from pixelmind.tasks.base import DataBundle, Meta, Task
from pixelmind.tasks.segment.data import uint8_tensor
from pixelmind.tasks.segment.models import MODELS, build_segmenter, model_info

#: validation images with a side above this run tiled (bounded memory on large validation images)
VAL_TILE = 1024
#: instances below this score are not reported by predict (the evaluator sees all of them)
DEFAULT_CONF = 0.5


def default_colors(n: int) -> list[list[int]]:
    """The Pascal VOC palette (bit-interleaved), so classes keep their colour across runs.

    Example:
        >>> default_colors(3)
        [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append([r, g, b])
    return out


@dataclass
class SegmentResult:
    """The class-index mask of one image (and its instances, for instance models).

    Example:
        >>> r = SegmentResult(np.array([[0, 1], [1, 1]], np.uint8), ["bg", "cell"], [[0, 0, 0], [255, 0, 0]])
        >>> r.to_dict()["classes"]
        {'bg': 0.25, 'cell': 0.75}
    """

    mask: np.ndarray  # uint8 [H, W] class indices, the original image's size
    class_names: list[str]
    colors: list[list[int]]
    instances: list[dict[str, Any]] | None = None
    seconds: float = 0.0
    image: Any = None  # the input (PIL), kept to draw the overlay in save()
    confidence: np.ndarray | None = None  # uint8 [H, W]: the winning class's probability x 255 (semantic models)
    file_suffix: str = ".png"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        h, w = self.mask.shape
        counts = np.bincount(self.mask.ravel(), minlength=len(self.class_names))
        shares = {self.class_names[i]: round(float(c) / (h * w), 6) for i, c in enumerate(counts[: len(self.class_names)]) if c}
        out: dict[str, Any] = {"width": w, "height": h, "classes": shares, "ms": round(self.seconds * 1000, 1)}
        if self.instances is not None:
            out["instances"] = self.instances
        return {**out, **self.extra}

    def class_scores(self) -> dict[int, float]:
        """Each predicted class's mean winning probability over its pixels (instances: their best score)."""
        if self.instances:
            best: dict[int, float] = {}
            for i in self.instances:
                best[i["class_index"]] = max(best.get(i["class_index"], 0.0), float(i["score"]))
            return best
        if self.confidence is None:
            return {}
        counts = np.bincount(self.mask.ravel(), minlength=len(self.class_names))
        sums = np.bincount(self.mask.ravel(), weights=self.confidence.ravel().astype(np.float64), minlength=len(self.class_names))
        return {int(c): float(sums[c] / counts[c] / 255) for c in np.flatnonzero(counts)}

    def render(self, image=None):
        """The colour overlay of the mask (instances: masks, boxes and labels) over the image."""
        from pixelmind.viz.draw import draw_boxes, overlay_mask

        out = overlay_mask(image if image is not None else self.image, self.mask, self.colors, alpha=0.5, skip=0)
        if self.instances:
            out = draw_boxes(out, [_xywh_to_xyxy(i["bbox"]) for i in self.instances],
                             [f"{i['label']} {i['score']:.2f}" for i in self.instances],
                             [self.colors[i["class_index"] % len(self.colors)] for i in self.instances])  # fmt: skip
        return out

    def save(self, path: str | Path) -> None:
        """Write the overlay to ``path`` and the index mask (a palette PNG) next to it as ``<stem>_mask.png``."""
        from PIL import Image

        path = Path(path)
        self.render().save(path)
        mask = Image.fromarray(self.mask, mode="P")
        palette = [v for c in self.colors for v in c][: 768]
        mask.putpalette(palette + [0] * (768 - len(palette)))
        mask.save(path.with_name(f"{path.stem}_mask.png"))


def _xywh_to_xyxy(b: Sequence[float]) -> list[float]:
    return [b[0], b[1], b[0] + b[2], b[1] + b[3]]


def padded_logits(model, x: torch.Tensor, stride: int) -> torch.Tensor:
    """``model(x)`` for any H and W: pads (reflect, or replicate for tiny inputs) to a multiple of ``stride``, crops back.

    Example:
        >>> net = torch.nn.Conv2d(3, 2, 1)
        >>> padded_logits(net, torch.rand(1, 3, 30, 45), 32).shape
        torch.Size([1, 2, 30, 45])
    """
    h, w = x.shape[-2:]
    ph, pw = -h % stride, -w % stride
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    out = model(match_memory_format(model, x))
    return out[..., :h, :w]


class SegmentTask(Task):
    name = "segment"
    models = MODELS
    metric_mode = "max"
    dynamic_image_size = True
    test_split = True
    explain_methods = ("gradcam", "gradcam++", "eigencam", "scorecam", "ig", "gradient")
    defaults = {
        "model": "unet_s",
        "epochs": 30,
        "imgsz": 256,
        "batch": 8,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "loss": "ce+dice",
        "augment": "light",
        "channels_last": False,
    }

    def __init__(self) -> None:
        self._kind = "semantic"

    @property
    def primary_metric(self) -> str:  # type: ignore[override]
        """mIoU for semantic models, COCO mask mAP for instance models (the kind of the model last built)."""
        return "mask_map" if self._kind == "instance" else "miou"

    def recipe(self, cfg: Any) -> dict[str, Any]:
        """``shapes``: 64-px images, whole; other data: 256-px random crops (bench/RESULTS.md §10)."""
        out = dict(self.defaults)
        if str(cfg.data) == "shapes":
            # measured: 35 epochs at lr 3e-3 reach mIoU 0.913 in 585 s on 2 cores; 12 epochs at 2e-3 gave 0.59
            out.update(imgsz=64, batch=16, epochs=35, lr=3e-3)
        if self._is_instance(cfg.model or ""):
            out.update(batch=4, loss=None)
        return out

    # -- data and model ----------------------------------------------------------------------
    def _is_instance(self, model_name: str) -> bool:
        return model_name in MODELS and model_info(model_name).kind == "instance"

    def load_data(self, cfg: Any, meta: Meta | None = None) -> DataBundle:
        from pixelmind.tasks.segment.data import load_segment_data

        model = meta.model if meta is not None else cfg.model
        instance = self._is_instance(model or "")
        if meta is None:
            return load_segment_data(cfg, instance=instance)
        return load_segment_data(cfg, meta.class_names, meta.mean, meta.std, instance=instance)

    def build_model(self, cfg: Any, meta: Meta) -> torch.nn.Module:
        info = model_info(meta.model)
        self._kind = info.kind
        kwargs = dict(meta.model_kwargs)
        if self._kind == "instance":
            kwargs.setdefault("min_size", meta.imgsz)
            kwargs.setdefault("max_size", 2 * meta.imgsz)
        model = build_segmenter(meta.model, meta.num_classes, **kwargs)
        # what predict and export need to know about the network, without looking it up by name again
        model.pixelmind_stride, model.pixelmind_kind = info.stride, info.kind
        return model

    def prune_ignored_layers(self, model) -> list[torch.nn.Module]:
        """The segmentation head (one output per class) of the CNN semantic models; Mask R-CNN and SegFormer are refused."""
        why = None
        if self._is_instance_module(model) or not hasattr(model, "segmentation_head"):
            why = "Mask R-CNN's region proposals and RoI heads are not one traceable graph of batched tensors"
        elif type(model).__name__ == "Segformer":
            why = "SegFormer's Mix Transformer reshapes its features by attention head and spatial reduction"
        if why:
            raise ConfigError(self.pruning_unsupported(f"{why}; prune a CNN model (unet_s, unet, deeplabv3plus, fpn)"))
        return [model.segmentation_head]

    def collate(self, samples):
        from pixelmind.tasks.segment.data import collate_instances, collate_semantic

        if samples and isinstance(samples[0][1], dict):
            return collate_instances(samples)
        return collate_semantic(samples)

    def setup_training(self, cfg: Any, meta: Meta) -> None:
        from pixelmind.tasks.segment.losses import segmentation_loss

        if self._kind == "instance":
            return
        loss = cfg.loss or "ce+dice"
        if loss not in ("ce", "dice", "focal", "ce+dice", "focal+dice"):
            raise ConfigError(f"loss: segment takes ce, dice, focal, ce+dice or focal+dice (got {loss!r})")
        weights = cfg.class_weights
        if weights == "auto":
            weights = meta.extra.get("auto_class_weights")
        if weights is not None and len(weights) != meta.num_classes:
            raise ConfigError(f"class_weights: needs {meta.num_classes} values, one per class (got {len(weights)})")
        w = torch.tensor(weights, dtype=torch.float32) if weights is not None else None
        self._loss = segmentation_loss(loss, meta.num_classes, meta.extra.get("ignore_index", 255), w)

    def training_step(self, model, batch, step: int, optimizer_idx: int = 0) -> dict[str, torch.Tensor]:
        images, targets = batch
        if self._kind == "instance":
            losses = model(list(images), [_shift_labels(t, 1) for t in targets])
            return {"loss": sum(losses.values()), **{k.removeprefix("loss_"): v.detach() for k, v in losses.items()}}
        return {"loss": self._semantic_loss(model, images, targets)[0]}

    def _semantic_loss(self, model, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(the configured loss, the logits)`` of a semantic model on a batch."""
        logits = model(match_memory_format(model, images))
        if getattr(self, "_loss", None) is None:
            raise PixelmindError("segment: training_step before setup_training")
        return self._loss(logits, targets), logits

    def check_teacher(self, meta: Meta, teacher_meta: Meta) -> None:
        """Only semantic models distil (per-pixel logits); an instance model's set of masks has no pixel logits to match."""
        for who, m in (("student", meta), ("teacher", teacher_meta)):
            if self._is_instance(m.model):
                raise ConfigError(f"teacher: segmentation distillation matches the per-pixel logits of semantic models; "
                                  f"the {who} {m.model!r} is an instance model (Mask R-CNN)")  # fmt: skip

    def distillation_step(self, model, teacher, batch, step: int, cfg: Any) -> dict[str, torch.Tensor]:
        """The configured loss plus the pixel-wise KL of the softened logits to the teacher's, labelled pixels only."""
        from pixelmind.nn.distill import blend
        from pixelmind.tasks.segment.losses import pixel_distillation_loss

        images, targets = batch
        loss, logits = self._semantic_loss(model, images, targets)
        with torch.no_grad():
            teacher_logits = teacher(match_memory_format(teacher, images))
        kd = pixel_distillation_loss(logits, teacher_logits, targets, cfg.distill_temperature, self._loss.ignore_index)
        return blend(loss, kd, cfg.distill_alpha)

    def _semantic_logits(self, model, x: torch.Tensor, stride: int) -> torch.Tensor:
        """Logits ``[C, H, W]`` of one normalised image; large images run tiled."""
        from pixelmind.nn.tiling import tiled_apply

        if max(x.shape[-2:]) <= VAL_TILE:
            return padded_logits(model, x[None], stride)[0]
        return tiled_apply(lambda t: padded_logits(model, t, stride), x, tile=VAL_TILE // 2, overlap=64)

    def validation_step(self, model, batch):
        images, targets = batch
        if self._kind == "instance":
            outputs = model(list(images))
            return [_to_eval_pred(o) for o in outputs], list(targets)
        stride = _stride(model)
        if torch.is_tensor(images) and max(images.shape[-2:]) <= VAL_TILE:
            return padded_logits(model, images, stride).argmax(1), targets
        return [self._semantic_logits(model, x, stride).argmax(0) for x in images], list(targets)

    def labelling(self):
        from pixelmind.tasks.segment.labelling import SegmentLabelling

        return SegmentLabelling()

    def evaluator(self, meta: Meta):
        if self._is_instance(meta.model):
            from pixelmind.metrics.coco_eval import CocoEvaluator

            return CocoEvaluator(meta.class_names, iou_type="segm")
        from pixelmind.metrics.segmentation import SemanticEvaluator

        return SemanticEvaluator(meta.class_names, meta.extra.get("ignore_index", 255))

    def preprocess(self, meta: Meta):
        from pixelmind.tasks.segment.data import eval_transform

        normalize = eval_transform(meta.mean, meta.std)

        def tf(image):
            from torchvision import tv_tensors

            return normalize(tv_tensors.Image(uint8_tensor(image))).as_subclass(torch.Tensor)

        return tf

    # -- inference ---------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, model, images: Sequence[Any], meta: Meta, tile: int = 512, overlap: int = 64, conf: float = DEFAULT_CONF,
                progress: Callable[[int, int], None] | None = None, **_: Any) -> list[SegmentResult]:  # fmt: skip
        """Masks for PIL images at their own size; semantic images larger than ``tile`` run as blended tiles."""
        colors = meta.extra.get("colors") or default_colors(max(meta.num_classes, 1))
        if self._is_instance(meta.model):
            return self._predict_instances(model, images, meta, colors, conf)
        device, stride = model_device(model), _stride(model)
        mean = torch.tensor(meta.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(meta.std, device=device).view(1, 3, 1, 1)

        def logits(t: torch.Tensor) -> torch.Tensor:  # t: [B, 3, h, w] in 0..1
            return padded_logits(model, (t.to(device) - mean) / std, stride).float()

        results = []
        for image in images:
            t0 = time.perf_counter()
            # uint8 stays uint8 until a tile is cut (a quarter of the memory of a float copy)
            x = uint8_tensor(image)
            mask, confidence = _argmax_tiled(logits, x, tile, overlap, progress)
            results.append(SegmentResult(mask, list(meta.class_names), colors, seconds=time.perf_counter() - t0,
                                         image=image, confidence=confidence))  # fmt: skip
        return results

    def _predict_instances(self, model, images, meta: Meta, colors, conf: float) -> list[SegmentResult]:
        from pycocotools import mask as mask_utils

        device = model_device(model)
        t0 = time.perf_counter()
        xs = [uint8_tensor(im).float().div(255).to(device) for im in images]
        outputs = model(xs)
        seconds = (time.perf_counter() - t0) / max(len(images), 1)
        results = []
        for image, out in zip(images, outputs):
            keep = out["scores"] >= conf
            masks = (out["masks"][keep, 0] > 0.5).cpu().numpy()
            boxes, scores, labels = out["boxes"][keep].cpu(), out["scores"][keep].cpu(), out["labels"][keep].cpu() - 1
            index = np.zeros((image.height, image.width), np.uint8)
            instances = []
            order = np.argsort(scores.numpy(), kind="stable")  # higher scores painted last, on top
            for k in order:
                index[masks[k]] = int(labels[k]) + 1
            for k in range(len(scores)):
                rle = mask_utils.encode(np.asfortranarray(masks[k].astype(np.uint8)))
                rle["counts"] = rle["counts"].decode("ascii")
                x0, y0, x1, y1 = (round(float(v), 2) for v in boxes[k])
                c = int(labels[k])
                instances.append({"label": meta.class_names[c], "class_index": c, "score": round(float(scores[k]), 4),
                                  "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)], "area": int(masks[k].sum()),
                                  "segmentation": rle})  # fmt: skip
            palette = [[0, 0, 0]] + [colors[i % len(colors)] for i in range(meta.num_classes)]
            names = ["background", *meta.class_names]
            results.append(SegmentResult(index, names, palette, instances, seconds, image))
        return results

    # -- export ------------------------------------------------------------------------------
    def export_parts(self, model, inputs):
        if self._is_instance_module(model):
            raise PixelmindError("export: instance models (Mask R-CNN) cannot be exported yet; semantic models can")
        stride = _stride(model)
        batches = inputs if isinstance(inputs, list) else [inputs]
        padded = [F.pad(b, (0, -b.shape[-1] % stride, 0, -b.shape[-2] % stride)) for b in batches]
        return [("", model, padded if isinstance(inputs, list) else padded[0])]

    def explain_targets(self, model, x, meta: Meta, classes=None, **_: Any):
        from pixelmind.tasks.segment.explain import PaddedSegmenter, region_targets

        if self._is_instance_module(model):
            raise ConfigError(f"explain: {meta.model} is an instance segmenter; explain supports semantic models "
                              "(explain its boxes with a detector)")  # fmt: skip
        network = PaddedSegmenter(model, _stride(model))
        return network, region_targets(network, x, meta.class_names, classes)

    @staticmethod
    def _is_instance_module(model) -> bool:
        return getattr(model, "pixelmind_kind", "semantic") == "instance"


def _argmax_tiled(logits, x: torch.Tensor, tile: int, overlap: int, progress) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 class map of ``logits`` over a uint8 image ``[3, H, W]`` (tiled when larger than ``tile``)
    and the winning class's softmax probability per pixel, as uint8 (0..255)."""
    from pixelmind.nn.tiling import iter_tiled_bands

    def split(scores: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        prob, index = scores.softmax(0).max(0)
        return index.to(torch.uint8).cpu().numpy(), (prob * 255 + 0.5).to(torch.uint8).cpu().numpy()

    h, w = x.shape[-2:]
    if max(h, w) <= tile:
        return split(logits(x[None].float() / 255)[0])
    out, conf = np.empty((h, w), np.uint8), np.empty((h, w), np.uint8)
    for row, band in iter_tiled_bands(logits, x, 1, tile, overlap, batch=2, progress=progress):
        out[row : row + band.shape[1]], conf[row : row + band.shape[1]] = split(band)
    return out, conf


def _stride(model) -> int:
    return int(getattr(model, "pixelmind_stride", 32))


def _shift_labels(target: dict[str, torch.Tensor], by: int) -> dict[str, torch.Tensor]:
    """Targets for torchvision detection models: labels 1.., background 0."""
    return {**target, "labels": target["labels"] + by}


def _to_eval_pred(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"boxes": out["boxes"], "scores": out["scores"], "labels": out["labels"] - 1, "masks": out["masks"][:, 0] > 0.5}


TASK = SegmentTask()
