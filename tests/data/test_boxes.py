"""Detection readers and writers: COCO json, YOLO txt + data.yaml, Pascal VOC XML (classic and flat)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pixelmind.data.boxes import (
    BoxItem,
    DetectionData,
    find_detection_data,
    flat_names,
    read_coco_boxes,
    write_detection_data,
)
from pixelmind.data.shapes import save_shapes, shapes_indices, shapes_sample
from pixelmind.errors import DataError

RACCOON = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "detection" / "raccoon"


def _image(path: Path, w: int = 40, h: int = 30, value: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (value, 80, 120)).save(path)
    return path


def _coco(
    root: Path, name: str, images: list[dict], anns: list[dict], cats: list[dict] | None = None
) -> Path:
    path = root / "annotations" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    cats = cats if cats is not None else [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def _ann(i: int, image_id: int, cat: int, bbox, crowd: int = 0) -> dict:
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox, "iscrowd": crowd}


def _im(i: int, name: str, w: int = 40, h: int = 30) -> dict:
    return {"id": i, "file_name": name, "width": w, "height": h}


def _yolo(root: Path, labels: dict[str, str], names=("cat", "dog"), val: bool = True, size=(40, 20)) -> Path:
    """``labels``: 'train/a' -> label file text (None: no label file)."""
    for key, text in labels.items():
        _image(root / "images" / f"{key}.png", *size)
        if text is not None:
            (root / "labels" / key).parent.mkdir(parents=True, exist_ok=True)
            (root / "labels" / f"{key}.txt").write_text(text)
    cfg = {"path": str(root), "train": "images/train", "names": dict(enumerate(names))}
    if val:
        cfg["val"] = "images/val"
    (root / "data.yaml").write_text(yaml.safe_dump(cfg))
    return root


def _obj(name: str, box, difficult: int | None = None) -> str:
    diff = "" if difficult is None else f"<difficult>{difficult}</difficult>"
    coords = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return f"\n  <object>\n    <name>{name}</name>{diff}\n    <bndbox>{coords}</bndbox>\n  </object>"


def _xml(path: Path, filename: str | None, objects: list[str], size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fn = f"\n  <filename>{filename}</filename>" if filename else ""
    sz = (
        f"\n  <size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    )
    path.write_text(f"<annotation>{fn}{sz}{''.join(objects)}\n</annotation>\n")
    return path


def _by_name(items: list[BoxItem]) -> dict[str, BoxItem]:
    return {it.image.name: it for it in items}


# ---------------------------------------------------------------- COCO


def test_coco_bbox_only_files_with_crowd_negatives_and_category_order(tmp_path):
    _image(tmp_path / "train2017" / "a.png")
    _image(tmp_path / "train2017" / "b.png")
    _image(tmp_path / "val2017" / "c.png")
    anns = [_ann(1, 1, 7, [2, 3, 10, 5]), _ann(2, 1, 3, [0.5, 1.25, 4, 4], crowd=1)]
    _coco(tmp_path, "instances_train2017.json", [_im(1, "a.png"), _im(2, "b.png")], anns)  # no segmentation
    _coco(tmp_path, "instances_val2017.json", [_im(5, "c.png")], [_ann(9, 5, 3, [1, 1, 2, 2])])
    d = find_detection_data(tmp_path)
    assert d.layout == "coco" and d.class_names == ["cat", "dog"]  # category ids 3, 7 -> 0, 1
    assert [it.image.name for it in d.train] == ["a.png", "b.png"] and len(d.val) == 1
    a, b = d.train
    assert a.boxes.dtype == np.float32 and a.labels.dtype == np.int64 and a.iscrowd.dtype == bool
    assert a.boxes.tolist() == [[2, 3, 12, 8], [0.5, 1.25, 4.5, 5.25]]  # xywh -> xyxy
    assert a.labels.tolist() == [1, 0] and a.iscrowd.tolist() == [False, True]
    assert (a.width, a.height) == (40, 30)
    assert b.boxes.shape == (0, 4) and b.labels.shape == (0,)  # a negative
    assert d.warnings == [] and d.notes == []


def test_coco_boxes_of_the_shapes_set_are_its_generated_boxes(tmp_path):
    items, names, warns = read_coco_boxes(
        save_shapes(tmp_path, "val", 4, size=32) / "annotations/instances_val.json"
    )
    assert names == ["circle", "square", "triangle"] and warns == []
    for it, index in zip(items, shapes_indices("val")):
        s = shapes_sample(index, 32)
        assert np.array_equal(it.boxes, s.boxes) and np.array_equal(it.labels, s.labels)


def test_coco_single_file_is_split_by_seed_with_a_note(tmp_path):
    for i in range(10):
        _image(tmp_path / "images" / f"{i}.png")
    path = _coco(tmp_path, "labels.json", [_im(i + 1, f"{i}.png") for i in range(10)], [])
    d = find_detection_data(path)
    assert (len(d.train), len(d.val)) == (8, 2) and d.warnings == []
    assert d.notes == [f"{path}: no val file; 2 images held out (seed 0)"]
    assert [it.image for it in find_detection_data(tmp_path).val] == [
        it.image for it in d.val
    ]  # reproducible


def test_coco_clips_and_drops_with_one_line_warnings_naming_file_and_annotation(tmp_path):
    _image(tmp_path / "images" / "a.png")
    anns = [
        _ann(1, 1, 3, [30, 20, 20, 20]),  # reaches out right and below: clipped to 10 x 10
        _ann(2, 1, 3, [5, 5, 0, 8]),  # zero width
        _ann(3, 1, 7, [50, 50, 5, 5]),  # entirely outside: nothing left
        _ann(4, 1, 7, [-0.25, 0, 10, 10]),  # quarter-pixel overshoot: clipped silently
    ]
    path = _coco(tmp_path, "instances_train.json", [_im(1, "a.png")], anns)
    _coco(tmp_path, "instances_val.json", [], [])
    d = find_detection_data(tmp_path)
    assert d.train[0].boxes.tolist() == [[30, 20, 40, 30], [0, 0, 9.75, 10]]
    assert d.warnings == [
        f"{path}: annotation 1 (a.png): box [30, 20, 50, 40] outside the 40x30 image, clipped",
        f"{path}: annotation 2 (a.png): zero-area box [5, 5, 5, 13] in the 40x30 image, dropped",
        f"{path}: annotation 3 (a.png): zero-area box [50, 50, 55, 55] in the 40x30 image, dropped",
    ]
    assert all("\n" not in w for w in d.warnings)


@pytest.mark.parametrize(
    "ann, message",
    [
        (_ann(4, 1, 99, [0, 0, 1, 1]), "annotation 4: category_id 99 is not in 'categories'"),
        (_ann(5, 8, 3, [0, 0, 1, 1]), "annotation 5: image_id 8 is not in 'images'"),
        (_ann(6, 1, 3, [0, 0, 1]), "annotation 6 (a.png): 'bbox' must be 4 finite numbers"),
        (_ann(7, 1, 3, [0, "x", 1, 1]), "annotation 7 (a.png): 'bbox' must be 4 finite numbers"),
        (_ann(8, 1, 3, [0, float("nan"), 1, 1]), "annotation 8 (a.png): 'bbox' must be 4 finite numbers"),
        ({"id": 9, "image_id": 1, "category_id": 3}, "annotation 9 (a.png): 'bbox' must be"),
    ],
)
def test_coco_errors_name_the_file_and_annotation(tmp_path, ann, message):
    _image(tmp_path / "images" / "a.png")
    path = _coco(tmp_path, "instances_train.json", [_im(1, "a.png")], [ann])
    with pytest.raises(DataError) as err:
        find_detection_data(tmp_path)
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)


# ---------------------------------------------------------------- YOLO


def test_yolo_boxes_become_pixels_and_negatives_are_kept(tmp_path):
    root = _yolo(
        tmp_path, {"train/a": "1 0.5 0.5 0.25 0.5\n\n0 0.1 0.2 0.2 0.4\n", "train/b": "", "val/c": None}
    )
    d = find_detection_data(root)
    assert d.layout == "yolo" and d.class_names == ["cat", "dog"]
    a, b = d.train
    assert np.allclose(a.boxes, [[15, 5, 25, 15], [0, 0, 8, 8]]) and a.labels.tolist() == [1, 0]
    assert (a.width, a.height) == (40, 20) and not a.iscrowd.any()
    assert len(b.boxes) == 0 and len(d.val) == 1 and len(d.val[0].boxes) == 0  # empty and missing label files
    assert d.warnings == [] and d.notes == []


def test_yolo_clips_and_drops_with_warnings_naming_file_and_line(tmp_path):
    root = _yolo(
        tmp_path, {"train/a": "0 0.9 0.5 0.4 0.2\n0 0.5 0.5 0 0.3\n1 1.5 1.5 0.2 0.2\n", "val/b": ""}
    )
    d = find_detection_data(root)
    label = root / "labels" / "train" / "a.txt"
    assert np.allclose(d.train[0].boxes, [[28, 8, 40, 12]]) and d.train[0].labels.tolist() == [0]
    assert d.warnings == [
        f"{label}:1: box [28, 8, 44, 12] outside the 40x20 image, clipped",
        f"{label}:2: zero-area box [20, 7, 20, 13] in the 40x20 image, dropped",
        f"{label}:3: zero-area box [56, 28, 64, 32] in the 40x20 image, dropped",
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ("2 0.5 0.5 0.1 0.1", "unknown class id 2 (data.yaml names 0..1)"),
        ("-1 0.5 0.5 0.1 0.1", "unknown class id -1"),
        ("0.5 0.5 0.5 0.1 0.1", "unknown class id 0.5"),
        ("0 0.5 0.5 0.1", "expected 'cls cx cy w h' (5 columns), got 4"),
        (
            "0 0.1 0.1 0.9 0.1 0.5 0.9",
            "expected 'cls cx cy w h' (5 columns), got 7 (a YOLO-seg polygon line?)",
        ),
        ("0 0.5 zero 0.1 0.1", "not a finite number in '0 0.5 zero 0.1 0.1'"),
        ("0 0.5 nan 0.1 0.1", "not a finite number"),
    ],
)
def test_yolo_bad_lines_raise_naming_file_and_line(tmp_path, line, message):
    root = _yolo(tmp_path, {"train/a": f"0 0.5 0.5 0.1 0.1\n{line}\n"}, val=False)
    with pytest.raises(DataError) as err:
        find_detection_data(root / "data.yaml")
    assert str(err.value).startswith(f"{root / 'labels' / 'train' / 'a.txt'}:2: {message}")
    assert "\n" not in str(err.value)


def test_yolo_without_val_is_split_by_seed_and_bad_yaml_is_named(tmp_path):
    root = _yolo(tmp_path / "ds", {f"train/{i}": "0 0.5 0.5 0.5 0.5\n" for i in range(5)}, val=False)
    d = find_detection_data(root)
    assert (len(d.train), len(d.val)) == (4, 1) and "no 'val' set; 1 images held out (seed 0)" in d.notes[0]
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(DataError, match=r"bad\.yaml: not a readable YAML file"):
        find_detection_data(tmp_path / "bad.yaml")


# ---------------------------------------------------------------- Pascal VOC


def _classic_voc(root: Path) -> Path:
    _image(root / "JPEGImages" / "001.jpg")
    _image(root / "JPEGImages" / "002.jpg", 50, 30)
    _image(root / "JPEGImages" / "003.jpg")
    _image(root / "JPEGImages" / "004.jpg")  # listed in no split file: a test image, not read
    _xml(
        root / "Annotations" / "001.xml",
        "001.jpg",
        [_obj("dog", (1, 2, 11, 12)), _obj("cat", (3, 4, 20, 9), 1)],
    )
    _xml(root / "Annotations" / "002.xml", "old_name.jpg", [_obj("cat", (5, 5, 45, 25), 0)], size=(40, 30))
    _xml(root / "Annotations" / "003.xml", "003.jpg", [])
    _xml(root / "Annotations" / "004.xml", "004.jpg", [_obj("bird", (1, 1, 5, 5))])
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("001\n002\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("003\n")
    (root / "ImageSets" / "Main" / "cat_train.txt").write_text("001  1\n002 -1\n")  # per class files: ignored
    return root


def test_voc_classic_layout_split_files_difficult_and_size_check(tmp_path):
    root = _classic_voc(tmp_path)
    d = find_detection_data(root)
    assert d.layout == "voc" and d.class_names == ["cat", "dog"]  # sorted <name>s of the listed files
    assert [it.image.name for it in d.train] == ["001.jpg", "002.jpg"] and [
        it.image.name for it in d.val
    ] == ["003.jpg"]
    one, two = d.train
    assert one.boxes.tolist() == [[1, 2, 11, 12], [3, 4, 20, 9]] and one.labels.tolist() == [1, 0]
    assert one.iscrowd.tolist() == [False, True]  # difficult=1: ignored in evaluation
    # <filename> was stale (found by the stem); <size> said 40x30 but the image is 50x30: the image wins, no clip
    assert (two.width, two.height) == (50, 30) and two.boxes.tolist() == [[5, 5, 45, 25]]
    assert d.warnings == [
        f"{root / 'Annotations' / '002.xml'}: <size> 40x30 differs from the image's 50x30; the image's used"
    ]
    assert len(d.val[0].boxes) == 0 and d.notes == []


def test_voc_flat_layout_is_split_by_seed_and_warnings_name_the_object_line(tmp_path):
    for i in range(10):
        _image(tmp_path / "images" / f"img-{i}.jpg")
        objs = [_obj("raccoon", (2, 2, 20, 20))] + (
            [_obj("badger", (30, 10, 60, 20)), _obj("badger", (5, 5, 5, 9))] if i == 3 else []
        )
        _xml(tmp_path / "annotations" / f"img-{i}.xml", f"img-{i}.jpg", objs)
    d = find_detection_data(tmp_path)
    assert d.layout == "voc" and d.class_names == ["badger", "raccoon"]
    assert (len(d.train), len(d.val)) == (
        8,
        2,
    ) and "no ImageSets/Main/{train,val}.txt; 2 images held out" in d.notes[0]
    again = find_detection_data(tmp_path)
    assert [it.image for it in again.val] == [it.image for it in d.val]
    other = find_detection_data(tmp_path, seed=1)
    assert {it.image for it in other.val} != {it.image for it in d.val}
    xml = tmp_path / "annotations" / "img-3.xml"
    assert d.warnings == [
        f"{xml}:8: object 1 (badger): box [30, 10, 60, 20] outside the 40x30 image, clipped",
        f"{xml}:12: object 2 (badger): zero-area box [5, 5, 5, 9] in the 40x30 image, dropped",
    ]
    assert xml.read_text().splitlines()[7].strip() == "<object>"  # line 8 is that object's tag


@pytest.mark.parametrize(
    "body, message",
    [
        (_obj("cat", (1, 2, 3, 4)) + "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><ymax>5</ymax></bndbox></object>",
         ":6: object 1 (cat): <bndbox> lacks <xmax>"),
        (_obj("cat", (1, 2, "3px", 4)), ":3: object 0 (cat): <xmax> is not a number: '3px'"),
        ("\n<object><bndbox/></object>", ":3: object 0: no <name>"),
        ("\n<object><name>cat</name></object>", ":3: object 0 (cat): no <bndbox>"),
        (_obj("cat", (1, 2, 3, 4), difficult="maybe"), ":3: object 0 (cat): <difficult> must be 0 or 1"),  # type: ignore[arg-type]
        ("\n<object><name>cat</name>\n</annotation>", ":4: not well-formed XML (mismatched tag"),
    ],
)  # fmt: skip
def test_voc_malformed_xml_raises_naming_file_and_line(tmp_path, body, message):
    _image(tmp_path / "images" / "a.jpg")
    xml = tmp_path / "annotations" / "a.xml"
    xml.parent.mkdir(parents=True)
    xml.write_text(f"<annotation>\n<size><width>40</width><height>30</height></size>{body}\n</annotation>\n")
    with pytest.raises(DataError) as err:
        find_detection_data(tmp_path)
    assert str(err.value).startswith(f"{xml}{message}") and "\n" not in str(err.value)


def test_voc_other_errors_name_their_file(tmp_path):
    root = _classic_voc(tmp_path / "classic")
    (root / "labels.txt").write_text("dog\ncat\n")  # fixes the class order ...
    assert find_detection_data(root).class_names == ["dog", "cat"]
    (root / "labels.txt").write_text("dog\n")  # ... and a <name> outside it is an error
    with pytest.raises(
        DataError, match=r"001\.xml:8: object 1 \(cat\): unknown class 'cat' \(not in .*labels\.txt\)"
    ):
        find_detection_data(root)
    (root / "labels.txt").unlink()
    (root / "ImageSets" / "Main" / "val.txt").write_text("003\n\n999\n")
    with pytest.raises(DataError, match=r"val\.txt:3: no annotation 999\.xml in"):
        find_detection_data(root)
    flat = tmp_path / "flat"
    _xml(flat / "annotations" / "gone.xml", "gone.jpg", [])
    (flat / "images").mkdir()
    with pytest.raises(DataError, match=r"gone\.xml: image 'gone\.jpg' not found in .*images"):
        find_detection_data(flat)
    (flat / "annotations" / "gone.xml").write_text(
        '<!DOCTYPE a [<!ENTITY x "y">]><annotation>&x;</annotation>'
    )
    with pytest.raises(DataError, match="entity declarations are not allowed"):
        find_detection_data(flat)
    (flat / "annotations" / "gone.xml").write_text("<labels/>")
    with pytest.raises(DataError, match=r"gone\.xml: the root element is <labels>, not <annotation>"):
        find_detection_data(flat)


def test_unknown_layout_names_the_folder(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataError, match=r"stuff: no detection data \(expected data\.yaml"):
        find_detection_data(tmp_path / "stuff")
    with pytest.raises(DataError, match="data set folder not found"):
        find_detection_data(tmp_path / "missing")


# ---------------------------------------------------------------- writing


def _mixed_coco(root: Path) -> DetectionData:
    """Non-integer boxes, class order that is not sorted, a negative, train and val."""
    _image(root / "train" / "a.png", 64, 48, 10)
    _image(root / "train" / "b.png", 33, 17, 20)
    _image(root / "val" / "c.png", 50, 40, 30)
    cats = [{"id": 1, "name": "zebra"}, {"id": 2, "name": "ant"}]
    anns = [
        _ann(1, 1, 1, [1.25, 2.5, 30.125, 20.75]),
        _ann(2, 1, 2, [40, 0, 24, 48]),
        _ann(3, 1, 1, [0.1, 0.2, 0.3, 0.4]),
    ]
    _coco(root, "instances_train.json", [_im(1, "a.png", 64, 48), _im(2, "b.png", 33, 17)], anns, cats)
    _coco(
        root, "instances_val.json", [_im(3, "c.png", 50, 40)], [_ann(4, 3, 2, [10.333, 5.667, 7.5, 30])], cats
    )
    return find_detection_data(root)


def _same(a: DetectionData, b: DetectionData, tol: float) -> None:
    assert a.class_names == b.class_names
    for split in ("train", "val"):
        x, y = _by_name(getattr(a, split)), _by_name(getattr(b, split))
        assert sorted(x) == sorted(y)
        for name in x:
            assert (x[name].width, x[name].height) == (y[name].width, y[name].height)
            assert np.abs(x[name].boxes - y[name].boxes).max(initial=0) <= tol, name
            assert x[name].labels.tolist() == y[name].labels.tolist()
            assert x[name].iscrowd.tolist() == y[name].iscrowd.tolist()


def test_round_trip_coco_yolo_voc_coco_keeps_boxes(tmp_path):
    src = _mixed_coco(tmp_path / "src")
    yolo = find_detection_data(write_detection_data(src, tmp_path / "yolo", "yolo"))
    voc = find_detection_data(write_detection_data(yolo, tmp_path / "voc", "voc"))
    coco = find_detection_data(write_detection_data(voc, tmp_path / "coco", "coco"))
    assert [d.layout for d in (yolo, voc, coco)] == ["yolo", "voc", "coco"]
    _same(src, yolo, 1e-3)
    _same(yolo, voc, 0)  # VOC and COCO keep float32 boxes exactly
    _same(voc, coco, 0)
    _same(src, coco, 1e-3)
    assert all(d.warnings == [] for d in (yolo, voc, coco))
    assert (tmp_path / "voc" / "labels.txt").read_text() == "zebra\nant\n"
    assert (tmp_path / "yolo" / "labels" / "train" / "b.txt").read_text() == ""  # the negative, explicit
    assert "<difficult>0</difficult>" in (tmp_path / "voc" / "Annotations" / "a.xml").read_text()
    assert yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())["names"] == {0: "zebra", 1: "ant"}


def test_crowd_boxes_stay_in_coco_and_voc_and_leave_yolo(tmp_path):
    _image(tmp_path / "src" / "images" / "a.png")
    _coco(
        tmp_path / "src",
        "instances_train.json",
        [_im(1, "a.png")],
        [_ann(1, 1, 3, [1, 1, 5, 5], crowd=1), _ann(2, 1, 7, [2, 2, 9, 9])],
    )
    _coco(tmp_path / "src", "instances_val.json", [], [])
    src = find_detection_data(tmp_path / "src")
    for fmt in ("coco", "voc"):
        back = find_detection_data(write_detection_data(src, tmp_path / fmt, fmt))
        assert back.train[0].iscrowd.tolist() == [True, False] and back.train[0].labels.tolist() == [0, 1]
    yolo = find_detection_data(write_detection_data(src, tmp_path / "yolo", "yolo"))
    assert yolo.train[0].labels.tolist() == [1] and np.allclose(yolo.train[0].boxes, [[2, 2, 11, 11]])


def test_write_links_images_renames_clashing_stems_and_refuses_a_full_folder(tmp_path):
    src = find_detection_data(
        _yolo(tmp_path / "src", {"train/a": "0 0.5 0.5 0.5 0.5\n", "val/a": "1 0.5 0.5 0.2 0.2\n"})
    )
    out = write_detection_data(src, tmp_path / "voc", "voc", copy_images=False)
    assert sorted(p.name for p in (out / "JPEGImages").iterdir()) == ["a.png", "val_a.png"]
    assert all(p.is_symlink() for p in (out / "JPEGImages").iterdir())
    back = find_detection_data(out)
    assert [it.image.name for it in back.train] == ["a.png"] and [it.image.name for it in back.val] == [
        "val_a.png"
    ]
    assert back.val[0].labels.tolist() == [1] and np.allclose(back.val[0].boxes, [[16, 8, 24, 12]])
    with pytest.raises(DataError, match="exists and is not empty"):
        write_detection_data(src, out, "coco")
    with pytest.raises(DataError, match="unknown format 'tfrecord'"):
        write_detection_data(src, tmp_path / "new", "tfrecord")  # type: ignore[arg-type]
    assert flat_names([Path("x/a.png"), Path("x/a.png")]) == ["a.png", "a_1.png"]  # the same file twice


# ---------------------------------------------------------------- the shared raccoon set


@pytest.mark.skipif(not RACCOON.is_dir(), reason="shared/datasets/detection/raccoon is not here")
def test_raccoon_set_reads_natively_and_converts(tmp_path):
    d = find_detection_data(RACCOON)
    assert d.layout == "voc" and d.class_names == ["raccoon"]
    assert (len(d.train), len(d.val)) == (160, 40) and d.warnings == []
    assert sum(len(it.boxes) for it in d.train + d.val) == 217
    assert [it.image for it in find_detection_data(RACCOON, 0.2, 0).val] == [it.image for it in d.val]
    one = _by_name(d.train + d.val)["raccoon-1.jpg"]
    assert (one.width, one.height) == (650, 417) and one.boxes.tolist() == [[81, 88, 522, 408]]
    back = find_detection_data(write_detection_data(d, tmp_path / "yolo", "yolo", copy_images=False))
    _same(d, back, 1e-3)
