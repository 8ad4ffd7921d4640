"""Our COCO evaluator against pycocotools' COCOeval on the same data, boxes and masks."""

from __future__ import annotations

import contextlib
import copy
import io
import math

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pixelmind.metrics.coco_eval import (
    STAT_NAMES,
    CocoDetections,
    CocoEvaluator,
    CocoImage,
    coco_evaluate,
    coco_json_to_arrays,
)

# pycocotools' decode trips numpy 2's __array__(copy=) deprecation; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

CATEGORIES = [
    {"id": 1, "name": "person"},
    {"id": 3, "name": "car"},
    {"id": 7, "name": "dog"},
    {"id": 9, "name": "bird"},
]


def _rect(x, y, w, h):
    return [[x, y, x, y + h, x + w, y + h, x + w, y]]


def _triangle(x, y, w, h):
    return [[x, y, x, y + h, x + w, y + h]]


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's crowd format: run lengths over the column-major pixels, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))  # 2: force a final edge
    counts = np.diff(np.concatenate([[0], edges])).tolist()
    return {"size": list(mask.shape), "counts": counts}


def _box_mask(x, y, w, h, height, width):
    m = np.zeros((height, width), bool)
    m[int(y) : int(y + h), int(x) : int(x + w)] = True
    return m


def _compressed(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}  # json-like, as results files hold


def _area(segm, h, w) -> float:
    rle = mask_utils.frPyObjects(segm, h, w)
    return float(mask_utils.area(mask_utils.merge(rle) if isinstance(segm, list) else rle))


# (id, image, category, bbox xywh, crowd, shape) -- covering: crowd (image 2), an image with no gt
# but detections (3), gt but no detections (4), all area ranges, areas exactly 1024 and a triangle
# whose segm area is small while its box is medium, a category with gt but no detections (7) and
# one with detections but no gt (9).
SIZES = {1: (160, 200), 2: (160, 200), 3: (120, 120), 4: (200, 200), 5: (100, 150), 6: (80, 120)}
GT_ANNS = [
    (1, 1, 1, [10, 10, 120, 100], 0, "rect"),
    (2, 1, 1, [150, 20, 20, 20], 0, "rect"),
    (3, 1, 3, [20, 120, 50, 30], 0, "tri"),
    (4, 2, 1, [0, 0, 100, 80], 1, "crowd"),
    (5, 2, 1, [120, 40, 60, 60], 0, "rect"),
    (6, 2, 3, [130, 100, 40, 40], 0, "tri"),
    (7, 4, 3, [30, 30, 40, 40], 0, "rect"),
    (8, 4, 7, [100, 50, 90, 90], 0, "rect"),
    (9, 5, 7, [10, 10, 20, 20], 0, "rect"),
    (10, 5, 1, [50, 50, 31, 33], 0, "rect"),
    (11, 5, 1, [100, 20, 32, 32], 0, "rect"),
    (12, 6, 3, [10, 10, 40, 40], 0, "rect"),
    (13, 6, 3, [60, 10, 40, 40], 0, "rect"),
]
# (image, category, bbox, score): duplicates, ties, detections inside a crowd region
DETS = [
    (1, 1, [12, 12, 118, 98], 0.9), (1, 1, [10, 10, 120, 100], 0.8), (1, 1, [150, 22, 20, 18], 0.6),
    (1, 3, [22, 118, 50, 32], 0.7), (1, 1, [60, 60, 50, 50], 0.3),
    (2, 1, [10, 10, 30, 30], 0.95), (2, 1, [50, 30, 20, 20], 0.85), (2, 1, [122, 42, 58, 58], 0.75),
    (2, 3, [130, 100, 40, 40], 0.5), (2, 3, [0, 0, 20, 20], 0.4),
    (3, 1, [10, 10, 50, 50], 0.99), (3, 3, [20, 20, 30, 30], 0.65),
    (5, 9, [10, 10, 20, 20], 0.9), (5, 1, [50, 50, 31, 33], 0.55), (5, 1, [100, 20, 32, 32], 0.55),
    (5, 1, [101, 21, 32, 32], 0.55),
    (6, 3, [10, 10, 40, 40], 0.7), (6, 3, [60, 10, 40, 40], 0.7), (6, 3, [35, 10, 40, 40], 0.7),
    (6, 3, [10, 10, 40, 40], 0.2),
]  # fmt: skip


def hand_fixture() -> tuple[dict, list[dict], list[dict]]:
    """(gt json, bbox results, segm results)."""
    images = [{"id": i, "height": h, "width": w, "file_name": f"{i}.jpg"} for i, (h, w) in SIZES.items()]
    anns = []
    for ann_id, img, cat, box, crowd, shape in GT_ANNS:
        h, w = SIZES[img]
        if shape == "crowd":  # crowd regions come as uncompressed RLE in COCO
            segm = _uncompressed_rle(_box_mask(*box, h, w))
        else:
            segm = _rect(*box) if shape == "rect" else _triangle(*box)
        anns.append({"id": ann_id, "image_id": img, "category_id": cat, "bbox": box, "iscrowd": crowd,
                     "segmentation": segm, "area": _area(segm, h, w)})  # fmt: skip
    gt = {"images": images, "annotations": anns, "categories": copy.deepcopy(CATEGORIES)}
    bbox_res = [{"image_id": i, "category_id": c, "bbox": b, "score": s} for i, c, b, s in DETS]
    segm_res = [
        {"image_id": i, "category_id": c, "segmentation": _compressed(_box_mask(*b, *SIZES[i])), "score": s}
        for i, c, b, s in DETS
    ]
    return gt, bbox_res, segm_res


def random_fixture(seed: int = 0, n_images: int = 40) -> tuple[dict, list[dict], list[dict]]:
    """Ellipse blobs of categories 1/3/7, 10% crowd, noisy and spurious detections, tied scores
    (two decimals), and one image with 130 detections of a category (the maxDets=100 cap)."""
    rng = np.random.default_rng(seed)
    images, anns, bbox_res, segm_res = [], [], [], []
    yy, xx = np.mgrid[:256, :256]

    def blob(h, w):
        side = rng.choice([rng.uniform(4, 30), rng.uniform(32, 95), rng.uniform(96, 180)])
        bw, bh = min(side * rng.uniform(0.6, 1.4), w - 2), min(side * rng.uniform(0.6, 1.4), h - 2)
        cx, cy = rng.uniform(bw / 2, w - bw / 2), rng.uniform(bh / 2, h - bh / 2)
        return ((xx[:h, :w] - cx) / (bw / 2)) ** 2 + ((yy[:h, :w] - cy) / (bh / 2)) ** 2 <= 1

    def add_det(img, cat, mask, h, w):
        if not mask.any():
            return
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        score = round(float(rng.uniform(0.05, 1.0)), 2)
        bbox_res.append({"image_id": img, "category_id": cat, "bbox": [round(float(v), 2) for v in mask_utils.toBbox(rle)], "score": score})  # fmt: skip
        segm_res.append(
            {"image_id": img, "category_id": cat, "segmentation": _compressed(mask), "score": score}
        )

    for img in range(1, n_images + 1):
        h, w = int(rng.integers(100, 256)), int(rng.integers(100, 256))
        images.append({"id": img * 3, "height": h, "width": w})  # non-contiguous image ids
        for _ in range(int(rng.integers(0, 7))):
            cat, mask = int(rng.choice([1, 3, 7])), blob(h, w)
            if not mask.any():
                continue
            crowd = int(rng.random() < 0.1)
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": img * 3, "category_id": cat, "iscrowd": crowd,
                         "bbox": [float(v) for v in mask_utils.toBbox(rle)], "area": float(mask_utils.area(rle)),
                         "segmentation": _uncompressed_rle(mask) if crowd else _compressed(mask)})  # fmt: skip
            for _ in range(int(rng.integers(0, 3))):  # noisy copies: shifted and grown/shrunk
                dy, dx = rng.integers(-4, 5, 2)
                shifted = np.roll(mask, (int(dy), int(dx)), (0, 1))
                add_det(img * 3, cat if rng.random() < 0.9 else int(rng.choice([1, 3, 7])), shifted, h, w)
        for _ in range(int(rng.integers(0, 4))):
            add_det(img * 3, int(rng.choice([1, 3, 7])), blob(h, w), h, w)
    h, w = images[0]["height"], images[0]["width"]
    for _ in range(130):
        add_det(images[0]["id"], 3, blob(h, w), h, w)
    gt = {"images": images, "annotations": anns, "categories": [c for c in CATEGORIES if c["id"] != 9]}
    return gt, bbox_res, segm_res


def pycoco(gt: dict, results: list[dict], iou_type: str) -> COCOeval:
    """COCOeval on deep copies (loadRes and evaluate write into the dicts), prints silenced."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def ours(gt: dict, results: list[dict], iou_type: str):
    imgs, dets, names = coco_json_to_arrays(copy.deepcopy(gt), copy.deepcopy(results), iou_type)
    return coco_evaluate(imgs, dets, iou_type, names)


def assert_parity(gt, results, iou_type):
    ref, got = pycoco(gt, results, iou_type), ours(gt, results, iou_type)
    diff = np.abs(np.asarray(ref.stats) - got.stats)
    assert diff.max() < 1e-4, dict(zip(STAT_NAMES, zip(ref.stats, got.stats)))
    assert got.category_ids == ref.params.catIds
    np.testing.assert_allclose(got.precision, ref.eval["precision"], atol=1e-6)
    np.testing.assert_allclose(got.recall, ref.eval["recall"], atol=1e-6)
    return ref, got


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_hand_fixture_matches_pycocotools(iou_type):
    gt, bbox_res, segm_res = hand_fixture()
    ref, got = assert_parity(gt, bbox_res if iou_type == "bbox" else segm_res, iou_type)
    # the fixture is not degenerate: a real spread of scores, and -1 for the categories without gt
    assert 0.2 < got.stats[0] < 0.9 and got.stats[3] > -1 and got.stats[5] > -1
    assert (got.precision[:, :, got.category_ids.index(9)] == -1).all()
    m = got.metrics()
    assert math.isnan(m["ap/bird"]) and m["ap/dog"] == 0.0 and 0 < m["ap/person"] < 1


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_random_fixture_matches_pycocotools(iou_type):
    gt, bbox_res, segm_res = random_fixture()
    _, got = assert_parity(gt, bbox_res if iou_type == "bbox" else segm_res, iou_type)
    assert (got.stats[:6] > 0.05).all()


def test_segm_results_with_boxes_use_box_areas_like_loadres():
    """loadRes takes detection areas from the box when results carry one, even for segm."""
    gt, bbox_res, segm_res = hand_fixture()
    both = [{**s, "bbox": b["bbox"]} for s, b in zip(segm_res, bbox_res)]
    assert_parity(gt, both, "segm")


def test_box_only_results_evaluated_as_segm_use_box_polygons():
    gt, bbox_res, _ = hand_fixture()
    assert_parity(gt, bbox_res, "segm")


def _tensor_batch(gt: dict, results: list[dict], iou_type: str):
    """The fixture as the per-image dicts a torchvision model and data loader give (0-based labels)."""
    cat_index = {c["id"]: i for i, c in enumerate(gt["categories"])}
    imgs, dets, _ = coco_json_to_arrays(gt, results, "segm")
    by_id = {d.image_id: d for d in dets}
    preds, targets = [], []
    for im in imgs:
        g_masks = mask_utils.decode(im.masks) if im.masks else np.zeros((im.height, im.width, 0), np.uint8)
        targets.append({
            "image_id": torch.tensor(im.image_id), "boxes": torch.tensor(im.boxes), "area": torch.tensor(im.areas),
            "labels": torch.tensor([cat_index[c] for c in im.labels], dtype=torch.int64),
            "iscrowd": torch.tensor(im.iscrowd), "masks": torch.from_numpy(g_masks).permute(2, 0, 1),
        })  # fmt: skip
        d = by_id.get(im.image_id)
        n = 0 if d is None else len(d.scores)
        d_masks = mask_utils.decode(d.masks) if n else np.zeros((im.height, im.width, 0), np.uint8)
        preds.append({
            "boxes": torch.tensor(d.boxes if n else np.zeros((0, 4))), "scores": torch.tensor(d.scores if n else []),
            "labels": torch.tensor([cat_index[c] for c in d.labels] if n else [], dtype=torch.int64),
            # Mask R-CNN's [N, 1, H, W] probabilities, thresholded at 0.5 by the evaluator
            "masks": torch.from_numpy(d_masks).permute(2, 0, 1)[:, None].float() * 0.8 + 0.1,
        })  # fmt: skip
    return preds, targets


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_evaluator_on_tensors_matches_pycocotools(iou_type, tmp_path):
    gt, _, segm_res = hand_fixture()
    ref = pycoco(gt, segm_res, "segm") if iou_type == "segm" else None
    preds, targets = _tensor_batch(gt, segm_res, iou_type)
    names = [c["name"] for c in gt["categories"]]
    ev = CocoEvaluator(names, iou_type)
    ev.update(preds[:3], targets[:3])
    ev.update(preds[3:], targets[3:])
    out = ev.compute()
    prefix = "mask_" if iou_type == "segm" else ""
    assert ev.primary_metric == f"{prefix}map" and f"{prefix}ap/person" in out
    if ref is not None:  # segm results carry no bbox, so loadRes's mask areas are what we must match
        got = np.array([out[f"{prefix}{k}"] for k in STAT_NAMES])
        np.testing.assert_allclose(np.where(np.isnan(got), -1, got), ref.stats, atol=1e-4)
    else:  # boxes of the masks' extents, areas from the targets: equal to the array entry point
        imgs, dets, _ = coco_json_to_arrays(gt, segm_res, "segm")
        for d in dets:
            d.labels = np.array([[1, 3, 7, 9].index(c) for c in d.labels])
            d.areas = None
        for im in imgs:
            im.labels = np.array([[1, 3, 7, 9].index(c) for c in im.labels])
        np.testing.assert_allclose(ev.result.stats, coco_evaluate(imgs, dets, "bbox").stats)
    paths = ev.plots(tmp_path)
    expected = (["pr_curves.png", "f1_confidence.png", "confusion_matrix.png"] if iou_type == "bbox"
                else ["mask_pr_curves.png", "mask_f1_confidence.png"])  # fmt: skip
    assert [p.name for p in paths] == expected and all(p.stat().st_size > 0 for p in paths)


def test_simple_cases():
    box = np.array([[0.0, 0, 40, 40]])
    gt = CocoImage(1, 64, 64, box, np.array([2]), np.array([False]))
    perfect = coco_evaluate([gt], [CocoDetections(1, box, np.array([0.5]), np.array([2]))])
    assert np.allclose(perfect.stats, [1, 1, 1, -1, 1, -1, 1, 1, 1, -1, 1, -1])
    none = coco_evaluate([gt], [])
    assert np.allclose(none.stats[[0, 1, 8]], 0)
    m = none.metrics("mask_")
    assert m["mask_map"] == 0 and math.isnan(m["mask_map_small"]) and m["mask_ap/2"] == 0


def test_errors():
    gt = CocoImage(1, 64, 64, np.zeros((1, 4)), np.array([1]), np.array([False]))
    det = CocoDetections(2, np.zeros((1, 4)), np.array([0.5]), np.array([1]))
    with pytest.raises(ValueError, match="without ground truth"):
        coco_evaluate([gt], [det])
    with pytest.raises(ValueError, match="more than once"):
        coco_evaluate([gt, gt], [])
    with pytest.raises(ValueError, match="gt masks"):
        coco_evaluate([gt], [], "segm")
    with pytest.raises(ValueError, match="iou_type"):
        CocoEvaluator(["a"], "keypoints")


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_operating_curves_and_per_class_table_match_pycocotools_matches(iou_type):
    """Each class's tp/fp by score at IoU 0.5 is what COCOeval's evalImgs hold; best F1 is the F1 maximum."""
    gt, bbox_res, segm_res = random_fixture()
    ref, got = assert_parity(gt, bbox_res if iou_type == "bbox" else segm_res, iou_type)
    n_area, n_img = len(ref.params.areaRng), len(ref.params.imgIds)
    table = got.per_class_table()
    for k, cid in enumerate(ref.params.catIds):
        evals = [e for e in ref.evalImgs[k * n_area * n_img : k * n_area * n_img + n_img] if e is not None]
        if not evals or not sum(int((~np.asarray(e["gtIgnore"], bool)).sum()) for e in evals):
            continue
        scores = np.concatenate([e["dtScores"][:100] for e in evals])
        order = np.argsort(-scores, kind="mergesort")
        matched = np.concatenate([e["dtMatches"][0, :100] for e in evals])[order] > 0
        ignored = np.concatenate([e["dtIgnore"][0, :100] for e in evals])[order].astype(bool)
        curve = got.curves[cid]
        np.testing.assert_allclose(curve.scores, scores[order])
        np.testing.assert_array_equal(curve.tp, np.cumsum(matched & ~ignored))
        np.testing.assert_array_equal(curve.fp, np.cumsum(~matched & ~ignored))
        tp, fp = curve.tp, curve.fp
        f1 = 2 * tp / np.maximum(tp + fp + curve.n_gt, 1)  # 2PR / (P + R) = 2 TP / (TP + FP + n_gt)
        row = table[got.class_names[cid]]
        assert row["best F1"] == pytest.approx(f1.max(), abs=1e-4) and row["gt"] == curve.n_gt
        assert row["AP50"] == pytest.approx(ref.eval["precision"][0, :, k, 0, 2].mean(), abs=1e-4)
        assert row["AP50-95"] == pytest.approx(got.per_class_ap()[k], abs=1e-4)
    assert any(0 < r["best F1"] < 1 for r in table.values())  # a real spread, not a degenerate fixture

