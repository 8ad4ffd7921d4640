"""Instance segmentation readers: COCO json (polygons, RLE, crowd) and YOLO-seg label files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelmind.data.instances import (
    InstanceItem,
    find_instance_data,
    image_size,
    instance_masks,
    read_coco_instances,
    rle_from_mask,
    write_coco_instances,
)
from pixelmind.errors import DataError


def _image(path: Path, w: int = 20, h: int = 10, exif_orientation: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (w, h), (40, 80, 120))
    if exif_orientation is None:
        img.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(path, exif=exif)
    return path


def _coco(
    root: Path, name: str, images: list[dict], anns: list[dict], cats: list[dict] | None = None
) -> Path:
    path = root / "annotations" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    cats = cats if cats is not None else [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def _ann(i: int, image_id: int, cat: int, seg, crowd: int = 0) -> dict:
    return {"id": i, "image_id": image_id, "category_id": cat, "segmentation": seg, "iscrowd": crowd}


SQUARE = [[2, 2, 8, 2, 8, 6, 2, 6]]  # 6 x 4 pixels


# ---------------------------------------------------------------- COCO


def test_coco_train_val_files_categories_polygons_rle_and_crowd(tmp_path):
    _image(tmp_path / "train2017" / "a.png")
    _image(tmp_path / "train2017" / "b.png")
    _image(tmp_path / "val2017" / "c.png")
    crowd = np.zeros((10, 20), bool)
    crowd[0:3, 10:20] = True
    rle = rle_from_mask(crowd)
    imgs = [
        {"id": 1, "file_name": "a.png", "width": 20, "height": 10},
        {"id": 2, "file_name": "b.png", "width": 20, "height": 10},
    ]
    _coco(tmp_path, "instances_train2017.json", imgs, [_ann(1, 1, 7, SQUARE), _ann(2, 1, 3, rle, crowd=1)])
    _coco(
        tmp_path, "instances_val2017.json", [{"id": 5, "file_name": "c.png", "width": 20, "height": 10}], []
    )
    d = find_instance_data(tmp_path)
    assert d.layout == "coco" and d.class_names == ["cat", "dog"]  # category ids 3, 7 -> indices 0, 1
    assert [it.image.name for it in d.train] == ["a.png", "b.png"] and [it.image_id for it in d.val] == [5]
    a = d.train[0]
    assert a.labels.tolist() == [1, 0] and a.iscrowd.tolist() == [False, True]
    assert a.boxes.tolist() == [[2, 2, 8, 6], [10, 0, 20, 3]]
    masks = instance_masks(a)
    assert masks.shape == (2, 10, 20) and masks.dtype == np.uint8
    assert masks[0].sum() == 24 and np.array_equal(masks[1].astype(bool), crowd)
    assert len(d.train[1].labels) == 0 and instance_masks(d.train[1]).shape == (0, 10, 20)  # a negative
    assert d.warnings == []


def test_coco_uncompressed_rle_and_images_folder_layout(tmp_path):
    _image(tmp_path / "images" / "sub" / "a.png", 4, 3)
    # column-major runs: 3 zeros, 3 ones, 6 zeros -> column 1 fully set
    seg = {"size": [3, 4], "counts": [3, 3, 6]}
    _coco(
        tmp_path,
        "instances_all.json",
        [{"id": 1, "file_name": "sub/a.png", "width": 4, "height": 3}],
        [_ann(1, 1, 3, seg)],
    )
    d = find_instance_data(tmp_path, val_fraction=0)
    assert len(d.train) == 1 and d.val == []
    assert instance_masks(d.train[0])[0].tolist() == [[0, 1, 0, 0]] * 3
    assert d.train[0].boxes.tolist() == [[1, 0, 2, 3]]


def test_coco_single_file_is_split_by_seed(tmp_path):
    imgs = [{"id": i, "file_name": f"{i}.png", "width": 20, "height": 10} for i in range(10)]
    for i in range(10):
        _image(tmp_path / "images" / f"{i}.png")
    _coco(tmp_path, "instances_default.json", imgs, [_ann(1, 0, 3, SQUARE)])
    a, b = find_instance_data(tmp_path, seed=1), find_instance_data(tmp_path, seed=1)
    assert len(a.train) == 8 and len(a.val) == 2
    assert [it.image_id for it in a.val] == [it.image_id for it in b.val]
    assert any("held out" in w for w in a.warnings)
    assert {it.image_id for it in a.train} | {it.image_id for it in a.val} == set(range(10))


def test_coco_clips_out_of_image_polygons_and_drops_empty_ones_with_warnings(tmp_path):
    _image(tmp_path / "images" / "a.png")
    anns = [
        _ann(1, 1, 3, [[-5, -5, 8, -5, 8, 6, -5, 6]]),  # sticks out top-left: clipped
        _ann(2, 1, 3, [[-9, 1, -2, 1, -2, 5]]),  # fully left of the image: zero area after clipping
        _ann(3, 1, 7, [[1, 1, 2, 2]]),  # two points only: dropped
    ]
    path = _coco(
        tmp_path, "instances_train.json", [{"id": 1, "file_name": "a.png", "width": 20, "height": 10}], anns
    )
    items, names, warns = read_coco_instances(path)
    assert items[0].boxes.tolist() == [[0, 0, 8, 6]] and items[0].labels.tolist() == [0]
    assert len(warns) == 3 and all(w.startswith(f"{path}: annotation ") for w in warns)
    assert "annotation 1 (a.png): polygon outside the 20x10 image, clipped" in warns[0]
    assert "annotation 2 (a.png): zero area in the image, dropped" in warns[1]
    assert "annotation 3 (a.png): fewer than 3 points, dropped" in warns[2]


@pytest.mark.parametrize(
    ("ann", "cats", "message"),
    [
        (_ann(9, 1, 42, SQUARE), None, r"annotation 9: category_id 42 is not in 'categories'"),
        (_ann(9, 77, 3, SQUARE), None, r"annotation 9: image_id 77"),
        (_ann(9, 1, 3, [[1, 2, 3, 4, 5]]), None, r"annotation 9 \(a.png\): segmentation must be"),
        (
            _ann(9, 1, 3, [[1, "x", 3, 4, 5, 6]]),
            None,
            r"annotation 9 \(a.png\): a polygon holds something",
        ),
        (
            _ann(9, 1, 3, {"size": [5, 5], "counts": "abc"}),
            None,
            r"annotation 9 \(a.png\): RLE size \[5, 5\]",
        ),
        ({"id": 9, "image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 2]}, None, r"detection file"),
        (_ann(9, 1, 3, SQUARE), [{"name": "no id"}], r"lacks a valid 'id'"),
    ],
)
def test_coco_errors_name_the_file_and_annotation(tmp_path, ann, cats, message):
    _image(tmp_path / "images" / "a.png")
    path = _coco(
        tmp_path,
        "instances_train.json",
        [{"id": 1, "file_name": "a.png", "width": 20, "height": 10}],
        [ann],
        cats,
    )
    with pytest.raises(DataError, match=message) as err:
        find_instance_data(tmp_path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_coco_missing_image_and_broken_json(tmp_path):
    _coco(
        tmp_path, "instances_train.json", [{"id": 1, "file_name": "gone.png", "width": 20, "height": 10}], []
    )
    with pytest.raises(DataError, match="'gone.png' not found under"):
        find_instance_data(tmp_path)
    (tmp_path / "annotations" / "instances_train.json").write_text("{not json")
    with pytest.raises(DataError, match="instances_train.json: not a readable COCO json"):
        find_instance_data(tmp_path)


def test_write_coco_instances_round_trips_polygons_and_rle(tmp_path):
    img = _image(tmp_path / "images" / "a.png")
    mask = np.zeros((10, 20), bool)
    mask[4:9, 11:15] = True
    item = InstanceItem(
        img,
        20,
        10,
        np.array([[2, 2, 8, 6], [11, 4, 15, 9]], np.float32),
        np.array([0, 1]),
        [SQUARE, rle_from_mask(mask)],
        np.array([False, True]),
    )
    path = write_coco_instances(
        [item], ["a", "b"], tmp_path / "annotations" / "instances_train.json", image_root=tmp_path / "images"
    )
    doc = json.loads(path.read_text())
    assert doc["images"][0]["file_name"] == "a.png" and [c["id"] for c in doc["categories"]] == [1, 2]
    assert [a["area"] for a in doc["annotations"]] == [24.0, 20.0] and doc["annotations"][1]["iscrowd"] == 1
    (back,), names, _ = read_coco_instances(path)
    assert names == ["a", "b"] and back.labels.tolist() == [0, 1] and back.iscrowd.tolist() == [False, True]
    assert np.array_equal(instance_masks(back), instance_masks(item))
    assert np.array_equal(back.boxes, item.boxes)


# ---------------------------------------------------------------- YOLO-seg


def _yolo(root: Path, labels: dict[str, str], yaml_text: str | None = None, split: str = "train") -> Path:
    for name, text in labels.items():
        _image(root / "images" / split / f"{name}.jpg")
        if text is not None:
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / f"{name}.txt").write_text(text)
    (root / "data.yaml").write_text(
        yaml_text or "path: .\ntrain: images/train\nval: images/train\nnames: {0: cat, 1: dog}\n"
    )
    return root


def test_yolo_seg_polygons_become_pixels_and_negatives_are_kept(tmp_path):
    _yolo(
        tmp_path,
        {"a": "1 0.1 0.2 0.4 0.2 0.4 0.8\n\n0 0.5 0.1 0.9 0.1 0.9 0.9 0.5 0.9\n", "b": "", "c": None},
    )
    d = find_instance_data(tmp_path)
    assert d.layout == "yolo" and d.class_names == ["cat", "dog"] and d.warnings == []
    a, b, c = d.train
    assert (a.width, a.height) == (20, 10)
    assert a.labels.tolist() == [1, 0]
    assert np.allclose(a.boxes, [[2, 2, 8, 8], [10, 1, 18, 9]])
    assert np.allclose(a.polygons[0][0], [2, 2, 8, 2, 8, 8])
    assert instance_masks(a)[1].sum() == 8 * 8
    assert len(b.labels) == 0 and len(c.labels) == 0  # empty and missing label files: negatives


def test_yolo_clips_and_drops_with_warnings_naming_file_and_line(tmp_path):
    _yolo(tmp_path, {"a": "0 -0.2 0.0 0.5 0.0 0.5 1.3\n0 0.1 0.1 0.2 0.2 0.3 0.3\n"})
    d = find_instance_data(tmp_path)
    label = tmp_path / "labels" / "train" / "a.txt"
    assert len(d.train[0].labels) == 1 and np.allclose(d.train[0].boxes, [[0, 0, 10, 10]])
    assert any(w.startswith(f"{label}:1:") and "clipped" in w for w in d.warnings)
    assert any(w.startswith(f"{label}:2:") and "zero-area" in w for w in d.warnings)  # collinear points


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2 0.1 0.1 0.5 0.1 0.5 0.5", r"class must be 0\.\.1"),
        ("0 0.1 0.1 0.5 0.1 0.5", "got 5 numbers"),
        ("0 0.5 0.5 0.2 0.2", r"got 4 numbers \(a box 'cls cx cy w h'\?"),
        ("0 0.1 0.1 zero 0.1 0.5 0.5", "not a number"),
        ("0.5 0.1 0.1 0.5 0.1 0.5 0.5", "class must be"),
        ("0 0.1 nan 0.5 0.1 0.5 0.5", "coordinates finite"),
    ],
)
def test_yolo_bad_lines_raise_naming_file_and_line(tmp_path, line, message):
    _yolo(tmp_path, {"a": f"0 0.1 0.1 0.5 0.1 0.5 0.5\n{line}\n"})
    with pytest.raises(DataError, match=message) as err:
        find_instance_data(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'labels' / 'train' / 'a.txt'}:2:")


def test_yolo_without_val_is_split_and_yaml_file_can_be_given(tmp_path):
    _yolo(tmp_path, {str(i): "" for i in range(5)}, "train: images/train\nnames: [a]\n")
    d = find_instance_data(tmp_path / "data.yaml", val_fraction=0.4, seed=0)
    assert len(d.train) == 3 and len(d.val) == 2 and d.class_names == ["a"]
    assert any("no 'val' set" in w for w in d.warnings)


def test_yolo_yaml_errors(tmp_path):
    _yolo(tmp_path, {"a": ""}, "train: images/nowhere\nnames: [a]\n")
    with pytest.raises(DataError, match="image folder .*nowhere not found"):
        find_instance_data(tmp_path)
    (tmp_path / "data.yaml").write_text("names: [a]\n")
    with pytest.raises(DataError, match="data.yaml: expected keys 'train' and 'names'"):
        find_instance_data(tmp_path)
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: {0: a, 2: b}\n")
    with pytest.raises(DataError, match="'names' must be"):
        find_instance_data(tmp_path)


def test_image_size_reads_the_header_and_honours_exif_rotation(tmp_path):
    assert image_size(_image(tmp_path / "a.jpg", 20, 10)) == (20, 10)
    assert image_size(_image(tmp_path / "b.jpg", 20, 10, exif_orientation=6)) == (10, 20)  # a quarter turn
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.jpg: not a readable image"):
        image_size(tmp_path / "bad.jpg")


def test_yolo_normalised_coordinates_use_the_upright_size(tmp_path):
    _image(tmp_path / "images" / "train" / "a.jpg", 20, 10, exif_orientation=6)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("0 0 0 1 0 1 1\n")
    (tmp_path / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [a]\n")
    item = find_instance_data(tmp_path).train[0]
    assert (item.width, item.height) == (10, 20) and np.allclose(item.boxes, [[0, 0, 10, 20]])


def test_unknown_layout_names_the_folder(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path}: no instance data"):
        find_instance_data(tmp_path)
    with pytest.raises(DataError, match="not found"):
        find_instance_data(tmp_path / "missing")
