"""The built-in synthetic shapes data set: determinism, geometry of the targets, splits and files."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from pixelmind.data.instances import find_instance_data, instance_masks
from pixelmind.data.masks import find_semantic_data, read_mask
from pixelmind.data.shapes import (
    CLASS_NAMES,
    save_shapes,
    semantic_mask,
    shapes_indices,
    shapes_sample,
    shapes_split,
)
from pixelmind.errors import ConfigError


@pytest.fixture(scope="module")
def samples():
    return [shapes_sample(i) for i in range(300)]


def test_same_seed_and_index_give_the_same_sample_and_others_differ():
    a, b = shapes_sample(7, seed=3), shapes_sample(7, seed=3)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.masks, b.masks)
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, shapes_sample(8, seed=3).image)
    assert not np.array_equal(a.image, shapes_sample(7, seed=4).image)


def test_types_and_shapes(samples):
    for s in samples[:50]:
        n = len(s.labels)
        assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
        assert s.boxes.shape == (n, 4) and s.boxes.dtype == np.float32
        assert s.labels.dtype == np.int64 and set(s.labels.tolist()) <= {0, 1, 2}
        assert s.masks.shape == (n, 64, 64) and s.masks.dtype == bool
    other = shapes_sample(0, size=40)
    assert other.image.shape == (40, 40, 3) and other.masks.shape[1:] == (40, 40)


def test_boxes_are_the_visible_mask_extents_with_exclusive_max(samples):
    for s in samples:
        for box, mask in zip(s.boxes, s.masks):
            ys, xs = np.nonzero(mask)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_masks_hold_only_visible_pixels_and_small_remains_are_dropped(samples):
    touching = 0
    for s in samples:
        if len(s.masks):
            assert s.masks.sum(0).max() <= 1  # later shapes occlude earlier ones: no pixel in two masks
            assert s.masks.sum((1, 2)).min() >= 6
            assert (s.boxes[:, :2] >= 0).all() and (s.boxes[:, 2:] <= 64).all()
        # two instances whose masks touch: one is (partly) in front of the other
        grown = [m | np.roll(m, 1, 0) | np.roll(m, 1, 1) for m in s.masks]
        touching += any(
            (grown[i] & s.masks[j]).any() for i in range(len(grown)) for j in range(len(grown)) if i != j
        )
    assert touching > 10  # occlusion really happens in the data


def test_object_counts_classes_and_negatives(samples):
    counts = np.array([len(s.labels) for s in samples])
    assert counts.max() <= 4
    assert 1 <= (counts == 0).sum() <= 25  # about 3% negatives, never none in 300
    labels = np.concatenate([s.labels for s in samples])
    assert np.bincount(labels, minlength=3).min() > 0.25 * len(labels)  # classes roughly balanced
    assert max(len(shapes_sample(i, max_objects=1).labels) for i in range(30)) == 1


def test_sizes_span_small_to_large_objects(samples):
    sides = np.concatenate(
        [np.maximum(s.boxes[:, 2] - s.boxes[:, 0], s.boxes[:, 3] - s.boxes[:, 1]) for s in samples]
    )
    assert sides.max() <= 0.7 * 64  # 45% of the side, a rotated square's diagonal at most
    assert np.percentile(sides, 10) < 0.2 * 64 and np.percentile(sides, 90) > 0.3 * 64


def test_background_is_textured_and_shapes_stand_out_from_it(samples):
    for s in samples[:40]:
        semantic = semantic_mask(s)
        assert s.image[semantic == 0].astype(float).std(0).mean() > 5  # gradient + blobs + noise, not flat
        for box, mask in zip(s.boxes.astype(int), s.masks):
            y0, x0, y1, x1 = max(box[1] - 3, 0), max(box[0] - 3, 0), box[3] + 3, box[2] + 3
            around = s.image[y0:y1, x0:x1][semantic[y0:y1, x0:x1] == 0].astype(float)
            if len(around) >= 10 and mask.sum() >= 10:
                assert np.linalg.norm(s.image[mask].mean(0) - around.mean(0)) > 40


def test_no_global_threshold_separates_shapes_from_background(samples):
    images = np.stack([s.image for s in samples[:100]]).astype(int)
    fg = np.stack([semantic_mask(s) > 0 for s in samples[:100]])
    features = [images[..., c] for c in range(3)] + [images.max(-1) - images.min(-1)]  # R, G, B, saturation
    for f in features:
        below_bg = np.cumsum(np.bincount(f[~fg], minlength=256))  # background pixels under each threshold
        below_fg = np.cumsum(np.bincount(f[fg], minlength=256))
        right = np.maximum(
            below_bg + fg.sum() - below_fg, below_fg + (~fg).sum() - below_bg
        )  # either polarity
        assert right.max() / fg.size < 0.95


def test_semantic_mask_paints_label_plus_one(samples):
    for s in samples[:50]:
        m = semantic_mask(s)
        assert m.dtype == np.uint8 and m.shape == (64, 64)
        expected = np.zeros((64, 64), np.uint8)
        for mask, label in zip(s.masks, s.labels):
            expected[mask] = label + 1
        assert np.array_equal(m, expected)
        assert (m == 0).sum() == 64 * 64 - s.masks.sum()


def test_splits_are_lazy_disjoint_and_sized():
    train, val = shapes_split("train"), shapes_split("val", size=32)
    assert len(train) == 1000 and len(val) == 200
    test = shapes_indices("test")
    assert len(test) == 200 and not set(shapes_indices("train")) & set(shapes_indices("val"))
    assert not (set(shapes_indices("train")) | set(shapes_indices("val"))) & set(test)
    assert np.array_equal(val[0].image, shapes_sample(shapes_indices("val")[0], size=32).image)
    assert len(train[:3]) == 3 and np.array_equal(train[-1].image, shapes_sample(999).image)
    with pytest.raises(ConfigError, match="unknown split 'holdout'"):
        shapes_split("holdout")


def test_generation_speed():
    start = time.perf_counter()
    for i in range(300):
        shapes_sample(i)
    # the module promises 1000 samples in under 3 s; 300 in 3 s leaves room for a busy machine
    assert time.perf_counter() - start < 3.0


def test_saved_files_read_back_through_the_semantic_and_instance_readers(tmp_path):
    root = save_shapes(tmp_path, "train", count=6, size=32, seed=1)
    save_shapes(tmp_path, "val", count=3, size=32, seed=1)
    assert Image.open(root / "train" / "masks" / "000000.png").mode == "P"
    sem = find_semantic_data(root)
    assert sem.layout == "folders" and len(sem.train) == 6 and len(sem.val) == 3
    assert sem.class_map.names == ["background", *CLASS_NAMES]
    inst = find_instance_data(root)
    assert inst.layout == "coco" and inst.class_names == list(CLASS_NAMES)
    for i in range(3):
        s = shapes_sample(shapes_indices("val")[i], 32, 1)
        assert np.array_equal(read_mask(sem.val[i], sem.class_map), semantic_mask(s))
        item = inst.val[i]
        assert np.array_equal(instance_masks(item).astype(bool), s.masks)
        assert np.array_equal(item.labels, s.labels) and np.allclose(item.boxes, s.boxes)
        assert np.array_equal(np.asarray(Image.open(item.image)), s.image)
