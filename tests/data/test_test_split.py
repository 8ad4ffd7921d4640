"""`val --split test`: every reader puts the data set's own test split in `val`, and refuses when there is none
(never a held-out part of train in its place)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ocr_helpers import write_lines
from PIL import Image
from test_cli import last_json, ok, pixelmind, write_imagefolder

from pixelmind.config import TrainConfig
from pixelmind.data.boxes import find_detection_data
from pixelmind.data.instances import find_instance_data
from pixelmind.data.masks import find_semantic_data
from pixelmind.data.shapes import save_shapes
from pixelmind.errors import DataError
from pixelmind.tasks.classify.data import load_classification_data
from pixelmind.tasks.ocr.data import find_line_data


def _names(items) -> list[str]:
    return sorted(Path(it.image).name for it in items)


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (90, 80, 120)).save(path)


def _voc(root: Path, stems: str) -> Path:
    for stem in stems:
        _image(root / "JPEGImages" / f"{stem}.png")
        (root / "Annotations").mkdir(exist_ok=True)
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.png</filename><object><name>cat</name><bndbox><xmin>2</xmin>"
            "<ymin>2</ymin><xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>")  # fmt: skip
    return root


def _yolo(root: Path, keys: list[str]) -> Path:
    """``root/images/<key>.png`` with one box each and a data.yaml naming train and val."""
    for key in keys:
        _image(root / "images" / f"{key}.png")
        (root / "labels" / key).parent.mkdir(parents=True, exist_ok=True)
        (root / "labels" / f"{key}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    cfg = {"path": str(root), "train": "images/train", "val": "images/val", "names": {0: "cat"}}
    (root / "data.yaml").write_text(yaml.safe_dump(cfg))
    return root


@pytest.fixture(scope="module")
def shapes_three_splits(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    for split, n in (("train", 6), ("val", 3), ("test", 4)):
        save_shapes(root, split, count=n, size=32)
    return root


def test_coco_test_json_for_boxes_instances_and_masks(shapes_three_splits, tmp_path):
    root = shapes_three_splits
    assert len(find_detection_data(root, split="test").val) == 4 and len(find_detection_data(root).val) == 3
    assert len(find_instance_data(root, split="test").val) == 4
    test = find_semantic_data(root, split="test")
    assert test.layout == "folders" and {Path(it.image).parent.parent.name for it in test.val} == {"test"}
    save_shapes(tmp_path, "train", count=4, size=32)
    with pytest.raises(DataError, match=r"no instances_test\*\.json, so there is no test split"):
        find_detection_data(tmp_path, split="test")
    with pytest.raises(DataError, match="no test split"):
        find_semantic_data(tmp_path, split="test")  # train/ alone: a seeded split would be made, not a test split


def test_voc_imagesets_test_txt(tmp_path):
    _voc(tmp_path, "abc")
    sets = tmp_path / "ImageSets" / "Main"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("a\n")
    (sets / "val.txt").write_text("b\n")
    with pytest.raises(DataError, match=r"no ImageSets/Main/test.txt"):
        find_detection_data(tmp_path, split="test")
    (sets / "test.txt").write_text("c\n")
    data = find_detection_data(tmp_path, split="test")
    assert _names(data.train) == ["a.png"] and _names(data.val) == ["c.png"]
    assert _names(find_detection_data(tmp_path).val) == ["b.png"]


def test_yolo_test_entry(tmp_path):
    root = _yolo(tmp_path, ["train/a", "val/b", "test/c", "test/d"])
    with pytest.raises(DataError, match="data.yaml: no 'test' entry"):
        find_detection_data(root, split="test")
    cfg = yaml.safe_load((root / "data.yaml").read_text())
    (root / "data.yaml").write_text(yaml.safe_dump({**cfg, "test": "images/test"}))
    assert _names(find_detection_data(root, split="test").val) == ["c.png", "d.png"]


def test_imagefolder_and_csv_test_split(tmp_path):
    root = write_imagefolder(tmp_path / "folder", n_train=3, n_val=2)
    with pytest.raises(DataError, match="no test/ folder"):
        load_classification_data(TrainConfig(data=str(root), imgsz=16, split="test"))
    write_imagefolder(tmp_path / "t", n_train=1, n_val=0)
    (tmp_path / "t" / "train").rename(root / "test")  # one image per class
    bundle = load_classification_data(TrainConfig(data=str(root), imgsz=16, split="test"))
    assert len(bundle.val) == 2 and len(load_classification_data(TrainConfig(data=str(root), imgsz=16)).val) == 4
    rows = [f"{p},{p.parent.name},{p.parent.parent.name}" for p in sorted(root.rglob("*.png"))]
    (tmp_path / "m.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    assert len(load_classification_data(TrainConfig(data=str(tmp_path / "m.csv"), imgsz=16, split="test")).val) == 2
    assert len(load_classification_data(TrainConfig(data=str(tmp_path / "m.csv"), imgsz=16)).val) == 4  # val rows only
    with pytest.raises(DataError, match="no test split apart from val"):
        load_classification_data(TrainConfig(data="digits", imgsz=8, split="test"))


def test_ocr_test_folder(tmp_path):
    write_lines(tmp_path, 4, "train")
    write_lines(tmp_path, 2, "val", seed=1)
    with pytest.raises(DataError, match="no train/ and test/"):
        find_line_data(str(tmp_path), 0.2, 0, "test")
    write_lines(tmp_path, 3, "test", seed=2)
    train, test, layout = find_line_data(str(tmp_path), 0.2, 0, "test")
    assert (len(train), len(test), layout) == (4, 3, "train/ + test/")


def test_val_split_test_on_the_command_line(tmp_path):
    root = write_imagefolder(tmp_path / "data", n_train=6, n_val=3, size=16)
    proc = ok(pixelmind("train", "--task", "classify", "--data", str(root), "--epochs", "1", "--imgsz", "16",
                        "--workers", "0", "--project", str(tmp_path / "runs"), "--json", cwd=tmp_path))  # fmt: skip
    weights = Path(last_json(proc)["run_dir"]) / "weights" / "best.safetensors"
    refused = pixelmind("val", "--weights", str(weights), "--split", "test", cwd=tmp_path)
    assert refused.returncode != 0 and "no test/ folder" in refused.stderr and "Traceback" not in refused.stderr
    write_imagefolder(tmp_path / "t", n_train=2, n_val=0, size=16)
    (tmp_path / "t" / "train").rename(root / "test")
    metrics = last_json(ok(pixelmind("val", "--weights", str(weights), "--split", "test", "--json", cwd=tmp_path)))
    assert metrics["samples"] == 4  # the test folder's 2 x 2 images, not val's 6
