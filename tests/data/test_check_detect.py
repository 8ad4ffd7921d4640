"""pixelmind check --task detect: counts, box sizes, repaired labels, duplicates and leakage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelmind.data.check_detect import check_detection

RACCOON = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "detection" / "raccoon"
PNG = b"\x89PNG\r\n\x1a\n"


def _blocks(seed: int, cell: int = 8) -> Image.Image:
    """9x8 cells, each column brighter or darker than the last in every row: a dhash that survives resizing."""
    rng = np.random.default_rng(seed)
    walk = np.concatenate([[0], np.cumsum(rng.choice([-1, 1], 8))])
    profile = (walk - walk.min()) / max(np.ptp(walk), 1)
    grey = (20 + 215 * profile[None, :] * rng.uniform(0.7, 1.0, (8, 1))).round().astype(np.uint8)
    return Image.fromarray(np.stack([grey, grey, 255 - grey], axis=-1)).resize(
        (9 * cell, 8 * cell), Image.NEAREST
    )


def _coco_set(root: Path) -> Path:
    """train: a, b, c (a negative); val: a byte copy of a, a resized b, a fresh d and a corrupt file."""
    for split, name, img in [("train", "a", _blocks(0)), ("train", "b", _blocks(1)), ("train", "c", _blocks(2)),
                             ("val", "d", _blocks(3)), ("val", "small_b", _blocks(1).resize((36, 32)))]:  # fmt: skip
        (root / split).mkdir(parents=True, exist_ok=True)
        img.save(root / split / f"{name}.png")
    shutil.copyfile(root / "train" / "a.png", root / "val" / "copy_of_a.png")
    (root / "val" / "broken.png").write_bytes(PNG + b"\x00\x00 definitely broken")
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "owl"}]

    def write(split: str, names: list[str], anns: list[tuple]) -> None:
        sizes = {"small_b": (36, 32)}
        images = [{"id": i, "file_name": f"{n}.png", "width": sizes.get(n, (72, 64))[0],
                   "height": sizes.get(n, (72, 64))[1]} for i, n in enumerate(names, 1)]  # fmt: skip
        anns = [{"id": k, "image_id": i, "category_id": c, "bbox": b, "iscrowd": crowd}
                for k, (i, c, b, crowd) in enumerate(anns, 1)]  # fmt: skip
        (root / "annotations").mkdir(exist_ok=True)
        doc = {"images": images, "annotations": anns, "categories": cats}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))

    write("train", ["a", "b", "c"], [(1, 1, [0, 0, 10, 10], 0), (1, 1, [60, 50, 20, 20], 0),  # 2nd: clipped to 12x14
                                     (1, 2, [5, 5, 0, 5], 0), (2, 2, [0, 0, 40, 40], 1)])  # 3rd: dropped  # fmt: skip
    write(
        "val", ["copy_of_a", "small_b", "d", "broken"], [(1, 1, [0, 0, 10, 10], 0), (3, 2, [8, 8, 40, 30], 0)]
    )
    return root


def test_counts_sizes_repaired_labels_duplicates_leakage_and_corrupt_images(tmp_path):
    out = tmp_path / "report"
    r = check_detection(str(_coco_set(tmp_path / "ds")), out=out)
    assert r["layout"] == "coco" and r["classes"] == ["cat", "dog", "owl"] and r["problems"] == []
    assert r["images"] == {"train": 3, "val": 4} and r["negatives"] == {"train": 1, "val": 2}
    assert r["boxes"] == {"train": 3, "val": 2} and r["ignored_boxes"] == 1
    assert r["per_class"] == {
        "cat": {"train": 2, "val": 1},
        "dog": {"train": 1, "val": 1},
        "owl": {"train": 0, "val": 0},
    }
    assert r["boxes_per_image"] == {"0": 3, "1": 3, "2": 1}
    # sqrt areas: 10, sqrt(12*14) = 12.96, 40 (crowd), 10, sqrt(40*30) = 34.64
    assert r["box_size"] == {"min": 10.0, "median": 12.96, "max": 40.0, "small": 3, "medium": 2, "large": 0}
    assert len(r["warnings"]) == 2 and all("instances_train.json: annotation" in w for w in r["warnings"])
    assert "clipped" in r["warnings"][0] and "dropped" in r["warnings"][1]
    assert list(r["corrupt"]) == [str(tmp_path / "ds" / "val" / "broken.png")]
    assert r["duplicates_exact"] == 1 and r["leakage_exact"] == 1 and r["leakage_perceptual"] == 2
    leaked = {frozenset(Path(p).name for p in g) for g in r["examples"]["leakage"]}
    assert leaked == {frozenset({"a.png", "copy_of_a.png"}), frozenset({"b.png", "small_b.png"})}
    text = r["text"]
    assert (
        "invalid labels (repaired): 2" in text
        and r["warnings"][0] in text
        and "classes with no box: owl" in text
    )
    assert (
        "train/val leakage: 1 identical, 2 perceptually identical groups" in text
        and "corrupt images: 1" in text
    )
    saved = json.loads((out / "check.json").read_text())
    assert saved["per_class"] == r["per_class"] and "text" not in saved and "_sizes" not in saved
    assert (out / "report.md").read_text().startswith("# Detection data check") and "box_size.png" in (
        out / "report.md"
    ).read_text()
    assert (out / "box_size.png").read_bytes()[:8] == PNG and (out / "boxes_per_image.png").read_bytes()[
        :8
    ] == PNG


def test_a_label_that_cannot_be_repaired_is_reported_not_raised(tmp_path):
    root = tmp_path / "yolo"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    _blocks(0).save(root / "images" / "train" / "a.png")
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("train: images/train\nnames: [cat]\n")
    r = check_detection(str(root), out=tmp_path / "out")
    assert r["problems"] == [
        f"{root / 'labels' / 'train' / 'a.txt'}:2: unknown class id 7 (data.yaml names 0..0)"
    ]
    assert "images" not in r and f"problem: {r['problems'][0]}" in r["text"]
    assert json.loads((tmp_path / "out" / "check.json").read_text())["problems"] == r["problems"]


def test_builtin_shapes_set(tmp_path):
    r = check_detection("shapes", out=tmp_path)
    assert r["layout"] == "shapes" and r["images"] == {"train": 1000, "val": 200}
    assert sum(v["train"] for v in r["per_class"].values()) == r["boxes"]["train"] > 1000
    assert (
        sum(r["boxes_per_image"].values()) == 1200
        and r["negatives"]["train"] == r["boxes_per_image"]["0"] - r["negatives"]["val"]
    )
    assert 0 < r["negatives"]["train"] < 100 and r["box_size"]["max"] <= 64 and r["box_size"]["large"] == 0
    assert (
        r["warnings"] == [] and r["corrupt"] == {} and r["leakage_exact"] == 0 and r["duplicates_exact"] == 0
    )
    assert (tmp_path / "box_size.png").is_file()


@pytest.mark.skipif(not RACCOON.is_dir(), reason="shared/datasets/detection/raccoon is not here")
def test_raccoon_set_has_duplicate_images(tmp_path):
    r = check_detection(str(RACCOON), out=tmp_path)
    assert r["layout"] == "voc" and r["images"] == {"train": 160, "val": 40}
    assert r["boxes"]["train"] + r["boxes"]["val"] == 217 and r["warnings"] == [] and r["corrupt"] == {}
    # four pairs of byte-identical files ship in the set; the seeded split puts one pair across train/val
    assert r["duplicates_exact"] == 4 and r["leakage_exact"] == 1
    assert ["raccoon-11.jpg", "raccoon-116.jpg"] in [
        [Path(p).name for p in g] for g in r["examples"]["duplicates"]
    ]
    assert "no ImageSets/Main/{train,val}.txt; 40 images held out (seed 0)" in r["notes"][0]
