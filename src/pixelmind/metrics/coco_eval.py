"""COCO mAP for boxes and instance masks on plain arrays, equal to pycocotools' ``COCOeval``.

Why our own: ``COCOeval`` needs ``COCO`` objects built from json-shaped dicts and prints as it
goes, while the detect and segment tasks hold arrays. Tested equal to ``COCOeval`` (12 stats and
the precision array) in ``tests/metrics/test_coco_eval.py``. Copied from ``cocoeval.py``/``coco.py``:
IoU thresholds .50:.05:.95, 101 recall points, maxDets 1/10/100 per image *and category*, area
ranges all/small/medium/large (bounds inclusive); IoUs from ``pycocotools.mask.iou`` itself (boxes
as xywh, masks as RLE; a crowd gt scores intersection / detection area); gts ignored when crowd or
out of range and sorted last; detections sorted by score (stable mergesort) and matched greedily,
ties to the later gt, a crowd gt taking any number; unmatched out-of-range detections ignored; gt
areas from COCO's ``area`` field, detection areas box w*h (bbox) or mask area (segm) as
``COCO.loadRes`` sets them; precision made monotone and read with ``searchsorted(side="left")``;
-1 where a category has no gt. Not copied: ``COCOeval`` takes a gt annotation id 0 for "unmatched".

Example:
    >>> import numpy as np
    >>> gt = CocoImage(1, 100, 100, np.array([[10.0, 10, 50, 50]]), np.array([1]), np.array([False]))
    >>> det = CocoDetections(1, np.array([[10.0, 10, 50, 48]]), np.array([0.9]), np.array([1]))
    >>> r = coco_evaluate([gt], [det])
    >>> round(float(r.stats[0]), 3), round(float(r.stats[1]), 3)
    (1.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pycocotools import mask as mask_utils

from pixelmind.metrics.operating_curve import OperatingCurve

# np.linspace as COCOeval.Params builds them: np.arange gives 0.8500000000000001 and so on.
IOU_THRS = np.linspace(0.5, 0.95, 10)
REC_THRS = np.linspace(0.0, 1.0, 101)
MAX_DETS = (1, 10, 100)
AREA_RNGS = ((0.0, 1e10), (0.0, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e10))
AREA_NAMES = ("all", "small", "medium", "large")
STAT_NAMES = (
    "map", "map50", "map75", "map_small", "map_medium", "map_large",
    "mar1", "mar10", "mar100", "mar_small", "mar_medium", "mar_large",
)  # fmt: skip


@dataclass
class CocoImage:
    """Ground truth of one image: xyxy boxes, category ids, crowd flags, COCO ``area`` (default box
    or mask area), masks for segm ([N, H, W] array, or RLE dicts / polygons as ``annToRLE`` reads)."""

    image_id: int
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray
    areas: np.ndarray | None = None
    masks: np.ndarray | list | None = None


@dataclass
class CocoDetections:
    """Detections of one image: xyxy boxes, scores, category ids, masks for segm; ``areas`` (for the
    area ranges) default to box w*h (bbox) or mask area (segm), as ``COCO.loadRes`` sets them."""

    image_id: int
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | list | None = None
    areas: np.ndarray | None = None


@dataclass
class CocoResult:
    """The evaluation as ``COCOeval`` holds it: ``stats`` (the 12 ``summarize()`` numbers, named by
    ``STAT_NAMES``), ``precision`` [T=10, R=101, K, A=4, M=3] and ``recall`` [T, K, A, M] (-1 where a
    category has no gt), the K ``category_ids`` ascending, and their ``class_names``."""

    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    category_ids: list[int]
    class_names: dict[int, str] = field(default_factory=dict)
    curves: dict[int, OperatingCurve] = field(default_factory=dict)  # category id -> curve at IoU 0.5

    def per_class_ap(self) -> np.ndarray:
        """AP@[.5:.95] per category (area all, 100 dets); NaN for a category without gt."""
        p = self.precision[:, :, :, 0, -1]
        valid = p > -1
        with np.errstate(invalid="ignore"):
            return np.where(valid, p, 0).sum((0, 1)) / valid.sum((0, 1))

    def per_class_table(self) -> dict[str, dict[str, float | int]]:
        """Per category: gt boxes, AP50, AP50-95, and the best F1 with its confidence, precision and recall.

        Example:
            >>> gt = CocoImage(1, 64, 64, np.array([[0.0, 0, 20, 20]]), np.array([1]), np.zeros(1, bool))
            >>> det = CocoDetections(1, np.array([[0.0, 0, 20, 20]]), np.array([0.8]), np.array([1]))
            >>> coco_evaluate([gt], [det], class_names={1: "a"}).per_class_table()["a"]["best F1"]
            1.0
        """
        p50 = self.precision[0, :, :, 0, -1]  # IoU 0.5, area all, 100 dets: [R, K]
        out = {}
        for k, (cid, ap) in enumerate(zip(self.category_ids, self.per_class_ap())):
            curve = self.curves.get(cid)
            f1, conf, prec, rec = curve.best_f1() if curve else (0.0, 0.0, 0.0, 0.0)
            ap50 = float(p50[:, k].mean()) if (p50[:, k] > -1).all() else math.nan
            out[self.class_names.get(cid, str(cid))] = {
                "gt": curve.n_gt if curve else 0, "AP50": round(ap50, 4), "AP50-95": round(float(ap), 4),
                "best F1": round(f1, 4), "at conf": round(conf, 3), "precision": round(prec, 4), "recall": round(rec, 4),
            }  # fmt: skip
        return out

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """``map``, ``map50``, ..., ``mar_large`` and ``ap/<class>``, each key led by ``prefix``; COCO's
        -1 ("no gt to score against") becomes NaN, so that it cannot pass for a score."""
        out = {f"{prefix}{n}": float(s) if s > -1 else math.nan for n, s in zip(STAT_NAMES, self.stats)}
        for cid, ap in zip(self.category_ids, self.per_class_ap()):
            out[f"{prefix}ap/{self.class_names.get(cid, str(cid))}"] = float(ap)
        return out


def _to_rles(masks: Any, height: int, width: int) -> list[dict]:
    """Compressed RLEs from a mask array [N, H, W] or a list of masks / RLEs / polygons."""
    if masks is None or len(masks) == 0:
        return []
    if isinstance(masks, np.ndarray) and masks.ndim == 3:
        # pycocotools wants uint8 in Fortran (column-major) order, stacked on the last axis.
        return mask_utils.encode(np.asfortranarray(masks.astype(np.uint8).transpose(1, 2, 0)))
    return [_to_rle(m, height, width) for m in masks]


def _to_rle(m: Any, height: int, width: int) -> dict:
    if isinstance(m, np.ndarray):
        return mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    if isinstance(m, list):  # polygons: one object may have several parts, merged as annToRLE does
        return mask_utils.merge(mask_utils.frPyObjects(m, height, width))
    if isinstance(m["counts"], list):  # uncompressed RLE (COCO's crowd regions)
        return mask_utils.frPyObjects(m, *m["size"])
    return m


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


def _match(ious: np.ndarray, gt_ig: np.ndarray, crowd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.evaluateImg's greedy matching, line for line: (matched [T, D], ignored [T, D]).

    ``ious`` [D, G] has detections in score order and gts with the ignored ones last. Python
    lists, not numpy, because the loop has data-dependent breaks and G is small per image.
    """
    n_det, n_gt = ious.shape
    dtm, dt_ig = np.zeros((len(IOU_THRS), n_det), bool), np.zeros((len(IOU_THRS), n_det), bool)
    if n_det == 0 or n_gt == 0:
        return dtm, dt_ig
    rows, ig, cr, row_max = ious.tolist(), gt_ig.tolist(), crowd.tolist(), ious.max(1).tolist()
    for ti, t in enumerate(IOU_THRS.tolist()):
        taken = [False] * n_gt
        thr = min(t, 1 - 1e-10)
        for d in range(n_det):
            if row_max[d] < thr:  # no gt can reach the threshold: COCOeval leaves m = -1 too
                continue
            best, m, row = thr, -1, rows[d]
            for g in range(n_gt):
                if taken[g] and not cr[g]:
                    continue
                if m > -1 and not ig[m] and ig[g]:  # matched a regular gt; only ignored ones remain
                    break
                if row[g] < best:
                    continue
                best, m = row[g], g
            if m > -1:
                dtm[ti, d], dt_ig[ti, d], taken[m] = True, ig[m], True
    return dtm, dt_ig


def _arrays(item: CocoImage | CocoDetections, segm: bool, height: int, width: int) -> tuple:
    """(labels, xywh boxes, areas, RLEs, crowd flags or scores) of one gt or detections entry."""
    labels = np.asarray(item.labels, dtype=np.int64).reshape(-1)
    gt = isinstance(item, CocoImage)
    if segm and item.masks is None and len(labels):
        raise ValueError(f"segm evaluation needs {'gt' if gt else 'detection'} masks (image {item.image_id})")
    rles = list(_to_rles(item.masks, height, width)) if segm else []
    box = _xywh(item.boxes)
    if item.areas is not None:
        area = np.asarray(item.areas, dtype=np.float64).reshape(-1)
    elif segm:  # what COCO would hold: the mask area (segm) or box w*h (bbox)
        area = mask_utils.area(rles).astype(np.float64) if rles else np.zeros(0)
    else:
        area = box[:, 2] * box[:, 3]
    extra = np.asarray(item.iscrowd, dtype=bool) if gt else np.asarray(item.scores, dtype=np.float64)
    return labels, box, area, rles, extra.reshape(-1)


def _accumulate(evals: list[list[list[tuple]]]) -> tuple[np.ndarray, np.ndarray, dict[int, OperatingCurve]]:
    """COCOeval.accumulate, vectorised over IoU thresholds: precision [T,R,K,A,M], recall [T,K,A,M], and
    each category's operating curve at IoU 0.5 (area all, 100 detections), by category index."""
    n_t, n_r, n_k, n_a, n_m = len(IOU_THRS), len(REC_THRS), len(evals), len(AREA_RNGS), len(MAX_DETS)
    precision, recall = -np.ones((n_t, n_r, n_k, n_a, n_m)), -np.ones((n_t, n_k, n_a, n_m))
    curves: dict[int, OperatingCurve] = {}
    for k in range(n_k):
        for a in range(n_a):
            per_img = evals[k][a]
            if (npig := sum(e[3] for e in per_img)) == 0:
                continue
            for m, max_det in enumerate(MAX_DETS):
                # maxDets caps each image's detections (of this category) before they are pooled
                scores = np.concatenate([e[0][:max_det] for e in per_img])
                inds = np.argsort(-scores, kind="mergesort")
                dtm = np.concatenate([e[1][:, :max_det] for e in per_img], 1)[:, inds]
                dt_ig = np.concatenate([e[2][:, :max_det] for e in per_img], 1)[:, inds]
                tp = np.cumsum(dtm & ~dt_ig, 1).astype(float)
                fp = np.cumsum(~dtm & ~dt_ig, 1).astype(float)
                if a == 0 and m == n_m - 1:
                    curves[k] = OperatingCurve(scores[inds], tp[0], fp[0], npig)
                nd, rc, pr = tp.shape[1], tp / npig, tp / (fp + tp + np.spacing(1))
                recall[:, k, a, m] = rc[:, -1] if nd else 0
                pr = np.maximum.accumulate(pr[:, ::-1], 1)[:, ::-1]  # the right-to-left max
                for t in range(n_t):
                    idx = np.searchsorted(rc[t], REC_THRS, side="left")
                    ok = idx < nd  # COCOeval stops at the first recall point past the curve: zeros
                    precision[t, ok, k, a, m] = pr[t, idx[ok]]
                    precision[t, ~ok, k, a, m] = 0
    return precision, recall, curves


def coco_evaluate(
    gts: Sequence[CocoImage],
    dets: Sequence[CocoDetections],
    iou_type: Literal["bbox", "segm"] = "bbox",
    class_names: dict[int, str] | None = None,
) -> CocoResult:
    """COCO evaluation of detections against ground truth, as ``COCOeval`` evaluate/accumulate/summarize.

    Args:
        gts: one entry per image; every image evaluated must be here, even without objects.
        dets: detections, any number of entries per image (concatenated in order).
        iou_type: ``"bbox"`` (box IoU) or ``"segm"`` (mask IoU; ``masks`` needed on both sides).
        class_names: category id -> name. Its keys are the categories evaluated (detections of
            other ids are dropped, as COCOeval does); default: every id seen in gts or dets.

    Raises:
        ValueError: detections of an image not in ``gts``, a duplicated image id, missing masks.

    Example:
        >>> import numpy as np
        >>> gt = CocoImage(7, 64, 64, np.array([[0.0, 0, 20, 20], [30, 30, 60, 60]]), np.array([1, 1]), np.zeros(2, bool))
        >>> det = CocoDetections(7, np.array([[0.0, 0, 20, 20]]), np.array([0.8]), np.array([1]))
        >>> r = coco_evaluate([gt], [det], class_names={1: "dot"})
        >>> round(r.metrics()["mar100"], 2), round(r.metrics()["ap/dot"], 3)
        (0.5, 0.505)
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    segm = iou_type == "segm"
    gt_by_img = {int(g.image_id): g for g in gts}
    if len(gt_by_img) != len(gts):
        raise ValueError("an image id is given more than once in the ground truth")
    det_by_img: dict[int, list[CocoDetections]] = {}
    for d in dets:
        det_by_img.setdefault(int(d.image_id), []).append(d)
    if unknown := sorted(set(det_by_img) - set(gt_by_img)):
        raise ValueError(f"detections for image ids without ground truth: {unknown[:5]}")
    if class_names is None:
        class_names = {int(c): str(c) for x in [*gts, *dets] for c in np.asarray(x.labels).reshape(-1)}
    cat_ids = sorted(int(c) for c in class_names)
    kidx = {c: k for k, c in enumerate(cat_ids)}
    # per (category, area range): per-image (scores [D], matched [T, D], ignored [T, D], n regular gt)
    evals: list[list[list[tuple]]] = [[[] for _ in AREA_RNGS] for _ in cat_ids]

    for img_id in sorted(gt_by_img):  # COCOeval walks images in ascending id order
        g = gt_by_img[img_id]
        g_lab, g_box, g_area, g_rle, g_crowd = _arrays(g, segm, g.height, g.width)
        # an image's detection entries are concatenated in order (the order breaks score ties)
        parts = [_arrays(d, segm, g.height, g.width) for d in det_by_img.get(img_id, [])]
        empty = (np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
        d_lab, d_box, d_area = (np.concatenate([e] + [p[i] for p in parts]) for i, e in enumerate(empty))
        d_rle = [r for p in parts for r in p[3]]
        d_score = np.concatenate([np.zeros(0)] + [p[4] for p in parts])
        for cat in np.unique(np.concatenate([g_lab, d_lab])).tolist():
            if cat not in kidx:
                continue
            gi, di = np.flatnonzero(g_lab == cat), np.flatnonzero(d_lab == cat)
            di = di[np.argsort(-d_score[di], kind="mergesort")][: MAX_DETS[-1]]
            crowd = g_crowd[gi]
            ious = np.zeros((len(di), len(gi)))
            if len(gi) and len(di):
                dt, gt = ([d_rle[i] for i in di], [g_rle[i] for i in gi]) if segm else (d_box[di], g_box[gi])
                ious = np.asarray(mask_utils.iou(dt, gt, crowd.astype(np.uint8)), dtype=np.float64)
                ious = ious.reshape(len(di), len(gi))
            ga, da, sc = g_area[gi], d_area[di], d_score[di]
            for a, (lo, hi) in enumerate(AREA_RNGS):
                ig = crowd | (ga < lo) | (ga > hi)
                order = np.argsort(ig, kind="mergesort")  # regular gts first, stable
                dtm, dt_ig = _match(ious[:, order], ig[order], crowd[order])
                dt_ig |= ~dtm & ((da < lo) | (da > hi))[None]
                evals[kidx[cat]][a].append((sc, dtm, dt_ig, int((~ig).sum())))
    precision, recall, curves = _accumulate(evals)
    names = {c: str(class_names[c]) for c in cat_ids}
    by_id = {cat_ids[k]: curve for k, curve in curves.items()}
    return CocoResult(_summarize(precision, recall), precision, recall, cat_ids, names, by_id)


def _summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """COCOeval.summarize's 12 numbers: means over entries > -1, or -1 when there is none."""

    def mean(s: np.ndarray) -> float:
        s = s[s > -1]
        return float(s.mean()) if s.size else -1.0

    t50, t75 = int(np.argmin(np.abs(IOU_THRS - 0.5))), int(np.argmin(np.abs(IOU_THRS - 0.75)))
    ap = [mean(precision[..., 0, 2]), mean(precision[t50, ..., 0, 2]), mean(precision[t75, ..., 0, 2])]
    ap += [mean(precision[..., a, 2]) for a in (1, 2, 3)]
    ar = [mean(recall[..., 0, m]) for m in range(3)] + [mean(recall[..., a, 2]) for a in (1, 2, 3)]
    return np.array(ap + ar)


def coco_json_to_arrays(
    gt: dict, results: list[dict] | None = None, iou_type: Literal["bbox", "segm"] = "bbox"
) -> tuple[list[CocoImage], list[CocoDetections], dict[int, str]]:
    """Ground truth from a COCO json dict and detections from a COCO results list, as arrays.

    Does to results what ``COCO.loadRes`` does (areas, box polygons) and to gt masks what
    ``annToRLE`` does. Returns ``(images, detections, class_names)``, names by category id.

    Example:
        >>> gt = {"images": [{"id": 1, "width": 50, "height": 40}], "categories": [{"id": 3, "name": "cat"}],
        ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [5, 5, 20, 10],
        ...                        "area": 200, "iscrowd": 0}]}
        >>> imgs, dets, names = coco_json_to_arrays(gt, [{"image_id": 1, "category_id": 3, "bbox": [5, 5, 20, 10], "score": 0.9}])
        >>> imgs[0].boxes.tolist(), names, round(float(coco_evaluate(imgs, dets, class_names=names).stats[0]), 6)
        ([[5.0, 5.0, 25.0, 15.0]], {3: 'cat'}, 1.0)
    """
    segm = iou_type == "segm"
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    anns_by_img: dict[int, list] = {i: [] for i in sizes}
    for a in gt.get("annotations", []):
        anns_by_img[a["image_id"]].append(a)
    images = [
        CocoImage(i, sizes[i][1], sizes[i][0], _xyxy([a["bbox"] for a in anns]),
                  np.array([a["category_id"] for a in anns], dtype=np.int64),
                  np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool),
                  np.array([a["area"] for a in anns], dtype=np.float64),
                  _to_rles([a["segmentation"] for a in anns], *sizes[i]) if segm else None)
        for i, anns in anns_by_img.items()
    ]  # fmt: skip
    res_by_img: dict[int, list] = {}
    for r in results or []:
        res_by_img.setdefault(r["image_id"], []).append(r)
    # loadRes looks at the first result only: with a "bbox" every area is w*h (and a box-only
    # result evaluated as segm becomes its box polygon); without, areas are the mask areas.
    has_box = bool(results) and "bbox" in results[0] and len(results[0]["bbox"]) > 0
    dets = []
    for i, rs in res_by_img.items():
        h, w = sizes.get(i, (0, 0))
        if has_box:
            b = np.array([r["bbox"] for r in rs], dtype=np.float64).reshape(-1, 4)
            polys = [r.get("segmentation") or [[x, y, x, y + bh, x + bw, y + bh, x + bw, y]]
                     for r, (x, y, bw, bh) in zip(rs, b.tolist())]  # fmt: skip
            rles, areas = (_to_rles(polys, h, w) if segm else None), b[:, 2] * b[:, 3]
        else:
            rles = _to_rles([r["segmentation"] for r in rs], h, w)
            areas = mask_utils.area(rles).astype(np.float64)
            b = np.array([r["bbox"] if "bbox" in r else mask_utils.toBbox(m) for r, m in zip(rs, rles)])
        scores = np.array([r["score"] for r in rs], dtype=np.float64)
        labels = np.array([r["category_id"] for r in rs], dtype=np.int64)
        dets.append(CocoDetections(i, _xyxy(b), scores, labels, rles, areas))
    return images, dets, {c["id"]: c.get("name", str(c["id"])) for c in gt.get("categories", [])}


def _xyxy(xywh: Any) -> np.ndarray:
    b = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1)


def _np(x: Any, dtype=None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


class CocoEvaluator:
    """COCO mAP over a validation pass, for torchvision-style detection outputs.

    Args:
        class_names: the model's classes; label i (0-based, as torchvision models give) is
            category id i.
        iou_type: ``"bbox"`` (metrics ``map``, ``map50``, ...) or ``"segm"`` (``mask_map``, ...).

    Example:
        >>> import torch
        >>> ev = CocoEvaluator(["a", "b"])
        >>> ev.update([{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}],
        ...           [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])}])
        >>> round(ev.compute()["map"], 6)
        1.0
    """

    def __init__(self, class_names: list[str], iou_type: Literal["bbox", "segm"] = "bbox") -> None:
        if iou_type not in ("bbox", "segm"):
            raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
        self.class_names = list(class_names)
        self.iou_type = iou_type
        self.prefix = "mask_" if iou_type == "segm" else ""
        self.primary_metric = f"{self.prefix}map"
        self.reset()

    def reset(self) -> None:
        self.gts: list[CocoImage] = []
        self.dets: list[CocoDetections] = []
        self.result: CocoResult | None = None
        self.confusion: np.ndarray | None = None

    def update(self, preds: Sequence[dict], targets: Sequence[dict]) -> None:
        """Add a batch: per-image dicts of ``boxes`` (xyxy), ``scores``, ``labels`` [, ``masks``]
        and of ``boxes``, ``labels`` [, ``masks``, ``iscrowd``, ``area``, ``image_id``]."""
        if len(preds) != len(targets):
            raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
        for p, t in zip(preds, targets):
            img_id = int(_np(t["image_id"]).reshape(-1)[0]) if "image_id" in t else len(self.gts)
            g_masks, d_masks = self._rles(t.get("masks")), self._rles(p.get("masks"))
            h, w = (int(x) for x in g_masks[0]["size"]) if g_masks else (0, 0)
            labels = _np(t["labels"], np.int64).reshape(-1)
            crowd = _np(t["iscrowd"], bool).reshape(-1) if "iscrowd" in t else np.zeros(len(labels), bool)
            areas = _np(t["area"], np.float64).reshape(-1) if "area" in t else None
            boxes = _np(t["boxes"], np.float64).reshape(-1, 4)
            self.gts.append(CocoImage(img_id, w, h, boxes, labels, crowd, areas, g_masks))
            boxes, scores = _np(p["boxes"], np.float64).reshape(-1, 4), _np(p["scores"], np.float64)
            labels = _np(p["labels"], np.int64).reshape(-1)
            self.dets.append(CocoDetections(img_id, boxes, scores.reshape(-1), labels, d_masks))

    def _rles(self, m: Any) -> list | None:
        if m is None or self.iou_type == "bbox":
            return None
        m = _np(m)
        if m.ndim == 4:  # [N, 1, H, W] as Mask R-CNN returns
            m = m[:, 0]
        # Encode now: keeping full-size masks for a whole validation set would not fit in memory.
        return _to_rles(m > 0.5 if m.dtype.kind == "f" else m != 0, *m.shape[-2:])

    def compute(self) -> dict[str, float]:
        if not self.gts:
            return {}
        names = dict(enumerate(self.class_names))
        self.result = coco_evaluate(self.gts, self.dets, self.iou_type, names)
        if self.iou_type == "bbox":
            from pixelmind.metrics.detection_confusion import detection_confusion_matrix

            self.confusion = detection_confusion_matrix(
                [(g.boxes, g.labels, g.iscrowd) for g in self.gts],
                [(d.boxes, d.scores, d.labels) for d in self.dets], len(self.class_names))  # fmt: skip
        return self.result.metrics(self.prefix)

    def summary(self) -> dict:
        """The protocol and the 12 COCO stats, JSON-safe, for metrics.json and the report."""
        if self.result is None and self.compute() == {}:
            return {}
        out = {"protocol": f"COCO {self.iou_type} evaluation (IoU .50:.05:.95, 101 recall points, maxDets 100), "
                           "equal to pycocotools' COCOeval", "coco_stats": [round(float(v), 6) for v in self.result.stats],
               "per_class": self.result.per_class_table()}  # fmt: skip
        if self.confusion is not None:
            out["confusion_matrix"] = {"rows": "true class", "columns": "predicted class", "score_threshold": 0.25, "iou": 0.45,
                                       "names": [*self.class_names, "background"], "counts": self.confusion.tolist()}  # fmt: skip
        return out

    def plots(self, out_dir: Path) -> list[Path]:
        if self.result is None and self.compute() == {}:
            return []
        from pixelmind.metrics.coco_plots import plot_f1_confidence, plot_pr_curves

        paths = [plot_pr_curves(self.result, None, Path(out_dir) / f"{self.prefix}pr_curves.png"),
                 plot_f1_confidence(self.result, Path(out_dir) / f"{self.prefix}f1_confidence.png")]  # fmt: skip
        if self.confusion is not None:
            from pixelmind.viz.plots import plot_confusion_matrix

            paths.append(plot_confusion_matrix(self.confusion, [*self.class_names, "background"], Path(out_dir) / "confusion_matrix.png",
                                               title="detection confusion matrix (score >= 0.25, IoU >= 0.45; row-normalised)"))  # fmt: skip
        return paths
