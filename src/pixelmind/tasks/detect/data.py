"""Detection data sets: letterboxed images and their boxes, with box-aware augmentation.

Samples come from :mod:`pixelmind.data.boxes` (COCO, YOLO, VOC) or the built-in ``shapes``
generator. Every image is letterboxed to a square ``imgsz`` canvas (long side scaled to ``imgsz``,
padded at the right and bottom), so a batch stacks and a box maps back by one division. Training
adds (boxes move with the pixels): a random scale of the letterbox and a random place on the canvas,
horizontal flip (:func:`flip_square`), optionally a 4-image :func:`mosaic` (``--set mosaic=P``) and colour jitter (torchvision.transforms.v2; ``shapes``: all
eight flips and transposes, no colour jitter); boxes that
leave the canvas are clipped and dropped below 2 px. Validation targets keep the boxes in the
original image's pixels, so COCO's small/medium/large areas mean what they mean in COCO.

Example:
    >>> from pixelmind.config import TrainConfig
    >>> bundle = load_detect_data(TrainConfig(task="detect", data="shapes", imgsz=64, limit=4))
    >>> image, target = bundle.train[0]
    >>> tuple(image.shape), sorted(target)
    ((3, 64, 64), ['boxes', 'iscrowd', 'labels'])
    >>> sorted(bundle.val[0][1])  # validation: original pixels, the letterbox factor and the image size
    ['boxes', 'iscrowd', 'labels', 'scale', 'size']
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.ops import box_area
from torchvision.transforms import v2

from pixelmind.data.datasets import BadSample
from pixelmind.data.decode import ImageDecodeError, load_image
from pixelmind.errors import DataError
from pixelmind.tasks.base import DataBundle
from pixelmind.tasks.segment.data import uint8_tensor

SHAPES = "shapes"
#: training images per epoch when a data set has fewer
MIN_EPOCH_SAMPLES = 400
#: a box cut by the canvas edge (a zoomed-in image or a mosaic) is kept while it has this much of its area left
KEEP_AREA = 0.2
#: range of the random letterbox scale of photos in training (above 1 zooms in and crops: (0.5, 1.5) scored
#: test mAP50-95 0.315 against 0.320 for this range on the raccoon defaults run, bench/RESULTS.md section 29)
PHOTO_SCALE = (0.5, 1.0)


def letterbox(image: torch.Tensor, size: int, scale: float = 1.0, offset: tuple[int, int] = (0, 0)) -> tuple[torch.Tensor, float]:
    """Resize a uint8 ``[3, H, W]`` image so its long side is ``size * scale`` and paste it on a ``size`` square.

    ``offset`` ``(y, x)`` places the image's top-left corner; a negative one (or a ``scale`` above 1)
    crops what falls off the canvas. Returns the canvas and the factor applied to the image (box
    coordinates multiply by it, then add the offset).

    Example:
        >>> canvas, f = letterbox(torch.zeros(3, 50, 100, dtype=torch.uint8), 64)
        >>> tuple(canvas.shape), f
        ((3, 64, 64), 0.64)
        >>> canvas, f = letterbox(torch.zeros(3, 50, 100, dtype=torch.uint8), 64, 1.5, (-10, -20))
        >>> tuple(canvas.shape), f, int((canvas == 114).sum())  # resized to 48 x 96, its 38 x 64 crop shown
        ((3, 64, 64), 0.96, 4992)
    """
    h, w = image.shape[-2:]
    f = size * scale / max(h, w)
    nh, nw = max(1, round(h * f)), max(1, round(w * f))
    resized = v2.functional.resize(image, [nh, nw], antialias=True) if (nh, nw) != (h, w) else image
    canvas = torch.full((3, size, size), 114, dtype=torch.uint8)  # YOLO's grey: neither black nor white
    (y0, x0), (cut_y, cut_x) = offset, (max(-offset[0], 0), max(-offset[1], 0))
    top, left = max(y0, 0), max(x0, 0)
    rows, cols = min(nh - cut_y, size - top), min(nw - cut_x, size - left)
    if rows > 0 and cols > 0:
        canvas[:, top : top + rows, left : left + cols] = resized[:, cut_y : cut_y + rows, cut_x : cut_x + cols]
    return canvas, f


class DetectionDataset(Dataset):
    """``(image float [3, S, S] normalised, {"boxes", "labels", "iscrowd", "scale"})`` per sample.

    ``train``: boxes in canvas pixels, crowd/difficult boxes left out, random scale/place/flip/colour.
    Otherwise: boxes in the original image's pixels and ``scale`` to map predictions back.
    """

    def __init__(self, count: int, read, imgsz: int, mean, std, train: bool, length: int | None = None,
                 names: list[str] | None = None, scale: tuple[float, float] = (0.5, 1.0), colour: bool = True,
                 d4: bool = False, mosaic: float = 0.0) -> None:  # fmt: skip
        self.count, self.read, self.imgsz, self.train = count, read, imgsz, train
        self.length = length or count
        self.names, self.scale, self.d4, self.mosaic = names, scale, d4, mosaic
        self.normalize = v2.Normalize(mean, std)
        self.colour = v2.ColorJitter(0.3, 0.3, 0.3, 0.02) if colour else None

    def __len__(self) -> int:
        return self.length

    def _read(self, i: int):
        try:
            image, boxes, labels, crowd = self.read(i)
        except (ImageDecodeError, DataError) as err:
            return BadSample(self.names[i] if self.names else f"sample {i}", str(err))
        return (uint8_tensor(image), torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                torch.as_tensor(labels, dtype=torch.int64).reshape(-1), torch.as_tensor(crowd, dtype=torch.bool).reshape(-1))  # fmt: skip

    def __getitem__(self, index: int):
        i = index % self.count
        item = self._read(i)
        if isinstance(item, BadSample):
            return item
        x, boxes, labels, crowd = item
        if not self.train:
            canvas, f = letterbox(x, self.imgsz)
            target = {"boxes": boxes, "labels": labels, "iscrowd": crowd, "scale": torch.tensor(f), "size": torch.tensor(x.shape[-2:])}
            return self.normalize(canvas.float() / 255), target
        canvas = None
        if self.mosaic and bool(torch.rand(()) < self.mosaic):
            others = [self._read(int(j)) for j in torch.randint(0, self.count, (3,))]
            if not any(isinstance(o, BadSample) for o in others):  # a bad neighbour: this sample alone
                parts = [(im, b[~c], lab[~c]) for im, b, lab, c in [item, *others]]
                canvas, moved, lab = mosaic(parts, self.imgsz, self.scale)
        if canvas is None:
            s = float(torch.empty(()).uniform_(*self.scale))
            h, w = x.shape[-2:]
            f = self.imgsz * s / max(h, w)
            # free room on the canvas, or (negative) how much of a zoomed-in image must be cut
            room = (self.imgsz - round(h * f), self.imgsz - round(w * f))
            offset = tuple(int(torch.randint(min(r, 0), max(r, 0) + 1, ())) for r in room)
            canvas, f = letterbox(x, self.imgsz, s, offset)
            moved = boxes[~crowd] * f + torch.tensor([offset[1], offset[0], offset[1], offset[0]], dtype=torch.float32)
            lab = labels[~crowd]
        canvas, moved = flip_square(canvas, moved, d4=self.d4)
        area = box_area(moved)
        moved = moved.clamp(0, self.imgsz)
        # boxes mostly outside the canvas are gone: under 2 px wide or high, or under KEEP_AREA of their area left
        ok = ((moved[:, 2:] - moved[:, :2]) >= 2).all(1) & (box_area(moved) >= KEEP_AREA * area)
        moved, lab = moved[ok], lab[ok]
        if self.colour is not None:
            canvas = self.colour(canvas)
        target = {"boxes": moved, "labels": lab, "iscrowd": torch.zeros(len(lab), dtype=torch.bool)}
        return self.normalize(canvas.float() / 255), target


def mosaic(parts, size: int, scale: tuple[float, float] = (0.5, 1.0)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four ``(uint8 image [3, H, W], xyxy boxes, labels)`` tiled around a random centre of a ``size`` canvas.

    Each image is scaled so its long side is ``size * u / 2 * 2`` for ``u`` in ``scale`` (as large as a
    quarter to the whole canvas) and placed in its quadrant touching the centre (YOLOv4/Ultralytics
    mosaic, without the extra affine warp). Parts cut by the canvas edge are lost; a box keeping
    less than 20% of its area is dropped (Ultralytics' rule is 10%).

    Returns the canvas, the boxes and their labels.

    Example:
        >>> img = torch.zeros(3, 40, 40, dtype=torch.uint8)
        >>> box, lab = torch.tensor([[10.0, 10, 30, 30]]), torch.tensor([1])
        >>> canvas, boxes, labels = mosaic([(img, box, lab)] * 4, 64)
        >>> tuple(canvas.shape), boxes.shape[1], bool((boxes >= 0).all() and (boxes <= 64).all())
        ((3, 64, 64), 4, True)
    """
    canvas = torch.full((3, size, size), 114, dtype=torch.uint8)
    cy, cx = (int(size * float(u)) for u in torch.empty(2).uniform_(0.25, 0.75))
    all_boxes, all_labels = [], []
    for k, (img, boxes, labels) in enumerate(parts):
        h, w = img.shape[-2:]
        f = size * float(torch.empty(()).uniform_(*scale)) / max(h, w)
        nh, nw = max(1, round(h * f)), max(1, round(w * f))
        img = v2.functional.resize(img, [nh, nw], antialias=True)
        y0 = cy - nh if k < 2 else cy  # 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
        x0 = cx - nw if k % 2 == 0 else cx
        ty0, tx0, ty1, tx1 = max(y0, 0), max(x0, 0), min(y0 + nh, size), min(x0 + nw, size)
        canvas[:, ty0:ty1, tx0:tx1] = img[:, ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0]
        moved = boxes * f + torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
        clipped = torch.stack([moved[:, 0].clamp(tx0, tx1), moved[:, 1].clamp(ty0, ty1),
                               moved[:, 2].clamp(tx0, tx1), moved[:, 3].clamp(ty0, ty1)], 1)  # fmt: skip
        keep = box_area(clipped) >= KEEP_AREA * box_area(moved).clamp(min=1e-6)
        all_boxes.append(clipped[keep])
        all_labels.append(labels[keep])
    return canvas, torch.cat(all_boxes), torch.cat(all_labels)


def flip_square(image: torch.Tensor, boxes: torch.Tensor, d4: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A random horizontal flip of a square ``[C, S, S]`` image and its xyxy boxes; with ``d4`` also a
    vertical flip and a transpose, each with probability 0.5: all 8 symmetries of the square.

    Written out rather than with transforms.v2: on 64 px images v2's per-call overhead (11 ms per
    sample with clamping and sanitising) cost a third of a CPU core's training time.

    Example:
        >>> img = torch.arange(4).reshape(1, 2, 2)
        >>> torch.manual_seed(0) is not None and flip_square(img, torch.tensor([[0.0, 0, 1, 2]]))[1].tolist()
        [[1.0, 0.0, 2.0, 2.0]]
    """
    s = image.shape[-1]
    if bool(torch.rand(()) < 0.5):
        image, boxes = image.flip(-1), torch.stack([s - boxes[:, 2], boxes[:, 1], s - boxes[:, 0], boxes[:, 3]], 1)
    if d4 and bool(torch.rand(()) < 0.5):
        image, boxes = image.flip(-2), torch.stack([boxes[:, 0], s - boxes[:, 3], boxes[:, 2], s - boxes[:, 1]], 1)
    if d4 and bool(torch.rand(()) < 0.5):
        image, boxes = image.transpose(-1, -2), boxes[:, [1, 0, 3, 2]]
    return image.contiguous(), boxes


def collate_detection(samples):
    """Stacked images (all ``imgsz`` squares) and a list of per-image target dicts."""
    return torch.stack([a for a, _ in samples]), [b for _, b in samples]


def load_detect_data(cfg: Any, class_names: list[str] | None = None, mean=(0.485, 0.456, 0.406),
                     std=(0.229, 0.224, 0.225)) -> DataBundle:  # fmt: skip
    """Train/val data sets for ``cfg.data`` (``shapes`` or a COCO / YOLO / VOC folder)."""
    size = cfg.imgsz or 320
    if str(cfg.data) == SHAPES:
        from pixelmind.data import shapes

        train_idx, val_idx = shapes.shapes_indices("train"), shapes.shapes_indices(cfg.split)
        if cfg.limit:
            train_idx = train_idx[: cfg.limit]
        # Generate them once here: training loader workers start afresh each epoch (exact resume) and
        # inherit this process's cache; generating in the workers cost 10 s of a 29 s epoch on one core.
        for i in [*train_idx, *val_idx]:
            _shape(i, size, cfg.seed)
        length = cfg.epoch_samples or max(len(train_idx), MIN_EPOCH_SAMPLES)
        # colours and sizes are random by construction: no colour jitter, no shrinking (as for segment)
        # and shapes look the same rotated or mirrored: all 8 symmetries of the square (measured: mAP50 0.923 vs
        # 0.875 with flips only after 1,500-2,000 steps; models.py's docstring)
        train = DetectionDataset(len(train_idx), partial(_shapes, train_idx, size, cfg.seed), size, mean, std, True,
                                 length, scale=(1.0, 1.0), colour=False, d4=True, mosaic=cfg.mosaic)  # fmt: skip
        val = DetectionDataset(len(val_idx), partial(_shapes, val_idx, size, cfg.seed), size, mean, std, False)
        names = list(shapes.CLASS_NAMES)
        summary = {"source": f"built-in shapes ({size} px)", "layout": "shapes", "train_images": len(train_idx), "val_images": len(val_idx)}
        extra: dict[str, Any] = {"train_data": SHAPES}
    else:
        from pixelmind.data.boxes import find_detection_data

        data = find_detection_data(cfg.data, cfg.val_fraction, cfg.seed, cfg.split)
        items = data.train[: cfg.limit] if cfg.limit else data.train
        if not items or not data.val:
            raise DataError(f"{cfg.data}: needs images in train and val (found {len(items)} and {len(data.val)})")
        length = cfg.epoch_samples or max(len(items), MIN_EPOCH_SAMPLES)
        light = (cfg.augment or "light") != "none"
        train = DetectionDataset(len(items), partial(_files, items, cfg.max_pixels), size, mean, std, True, length,
                                 [str(it.image) for it in items], scale=PHOTO_SCALE if light else (1.0, 1.0), colour=light,
                                 mosaic=cfg.mosaic)  # fmt: skip
        val = DetectionDataset(len(data.val), partial(_files, data.val, cfg.max_pixels), size, mean, std, False,
                               names=[str(it.image) for it in data.val])  # fmt: skip
        names = list(data.class_names)
        summary = {"source": str(cfg.data), "layout": data.layout, "train_images": len(items), "val_images": len(data.val),
                   "label_warnings": len(data.warnings)}  # fmt: skip
        if data.warnings:
            summary["warnings (first 20)"] = data.warnings[:20]
        extra = {"train_data": str(cfg.data)}
    if class_names is not None and list(class_names) != names:
        raise DataError(f"{cfg.data}: classes {names} differ from the model's {list(class_names)}")
    return DataBundle(train, val, names, {**summary, "classes": len(names)}, extra)


# module-level readers bound with functools.partial: data sets pickle into loader workers
def _shapes(indices, size: int, seed: int, i: int):
    return _shape(indices[i], size, seed)


@lru_cache(maxsize=4096)  # 1,200 x 12 KB at 64 px
def _shape(index: int, size: int, seed: int):
    from pixelmind.data.shapes import shapes_sample

    s = shapes_sample(index, size=size, seed=seed)
    return s.image, s.boxes, s.labels, np.zeros(len(s.labels), bool)


def _files(items, max_pixels: int, i: int):
    item = items[i]
    return load_image(item.image, max_pixels), item.boxes, item.labels, item.iscrowd
