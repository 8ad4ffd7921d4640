"""The data engine end to end on tiny data: label -> train, check --label-errors, select."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_cli import last_json, ok, pixelmind, write_imagefolder

from pixelmind.data.shapes import save_shapes
from pixelmind.label.errors import out_of_fold_splits
from pixelmind.label.select import k_center_greedy

_CWD = Path(__import__("tempfile").mkdtemp(prefix="pm-label-"))  # default output folders land here, not in the repo


def pm(*args: str):
    return pixelmind(*args, cwd=_CWD)


FLIPPED = ("train/blue/0.png", "train/blue/13.png", "train/red/18.png")


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """Two colour classes, a CSV of the train images with three labels flipped, and a classifier."""
    root = tmp_path_factory.mktemp("colours")
    write_imagefolder(root / "cols", n_train=30, n_val=8)
    rows = [[str(p), p.parent.name] for p in sorted((root / "cols" / "train").rglob("*.png"))]
    for r in rows:
        if r[0].endswith(FLIPPED):
            r[1] = "blue" if r[1] == "red" else "red"
    with (root / "noisy.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["path", "label"], *rows])
    proc = pm("train", "--task", "classify", "--data", str(root / "cols"), "--epochs", "2", "--imgsz", "16",
                     "--project", str(root / "runs"), "--json")  # fmt: skip
    ok(proc)
    return root, Path(last_json(proc)["run_dir"]) / "weights" / "best.safetensors"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    save_shapes(root / "shp", "train", count=16, size=48)
    save_shapes(root / "shp", "val", count=6, size=48)
    save_shapes(root / "pool", "train", count=5, size=48, seed=5)
    (root / "pool" / "train" / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return root


def _train(root: Path, task: str, model: str, data: Path, name: str) -> Path:
    proc = pm("train", "--task", task, "--model", model, "--data", str(data), "--epochs", "1", "--imgsz", "64" if task == "detect" else "48",
                     "--batch", "8", "--workers", "0", "--project", str(root / "runs"), "--name", name, "--json")  # fmt: skip
    ok(proc)
    return Path(last_json(proc)["run_dir"]) / "weights" / "best.safetensors"


def test_label_errors_from_weights_find_the_flipped_labels_first(colours, tmp_path):
    root, weights = colours
    proc = pm("check", "--label-errors", "--weights", str(weights), "--data", str(root / "noisy.csv"), "--out", str(tmp_path), "--json")
    ok(proc)
    assert last_json(proc)["issues"] == 3
    with (tmp_path / "label_errors.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60
    assert sorted(r["image"].split("cols/")[1] for r in rows[:3]) == sorted(FLIPPED)
    assert all(r["given"] != r["suggested"] for r in rows[:3])
    assert (tmp_path / "label_errors.png").is_file() and "| 1 |" in (tmp_path / "label_errors.md").read_text()


def test_label_errors_out_of_fold_trains_k_models(colours, tmp_path):
    root, _ = colours
    proc = pm("check", "--label-errors", "--folds", "2", "--epochs", "1", "--data", str(root / "noisy.csv"),
                     "--out", str(tmp_path), "--json")  # fmt: skip
    ok(proc)
    assert last_json(proc)["images"] == 60
    assert len(list((tmp_path / "folds").glob("fold*/runs/*/*/weights/best.safetensors"))) == 2


def test_label_errors_needs_weights_or_folds(colours):
    root, _ = colours
    proc = pm("check", "--label-errors", "--data", str(root / "noisy.csv"))
    assert proc.returncode == 2 and "give --weights W" in proc.stderr


def test_out_of_fold_splits_hold_each_index_out_once():
    splits = out_of_fold_splits(11, 3, seed=1)
    held = sorted(i for _, v in splits for i in v)
    assert held == list(range(11))
    assert all(not set(t) & set(v) for t, v in splits)


def test_label_classify_writes_an_imagefolder_that_trains_and_keeps_existing_labels(colours, tmp_path):
    root, weights = colours
    pool = tmp_path / "pool"
    pool.mkdir()
    for p in sorted((root / "cols" / "val").rglob("*.png")):
        (pool / f"{p.parent.name}_{p.name}").write_bytes(p.read_bytes())
    (pool / "broken.png").write_bytes(b"junk")
    out = tmp_path / "labelled"
    (out / "blue").mkdir(parents=True)
    (out / "blue" / "red_0.png").write_bytes((pool / "red_0.png").read_bytes())  # a person's label: must survive
    proc = pm("label", "--weights", str(weights), "--source", str(pool), "--out", str(out), "--conf", "0", "--json")
    ok(proc)
    summary = last_json(proc)
    assert (summary["images"], summary["kept"], summary["added"], summary["unreadable"]) == (16, 1, 15, 1)
    assert (out / "blue" / "red_0.png").is_file() and not (out / "red" / "red_0.png").exists()
    assert sum(1 for _ in out.glob("*/*.png")) == 16
    predicted = {p.name: p.parent.name for p in out.glob("*/*.png")}
    assert sum(predicted[f"{c}_{i}.png"] == c for c in ("red", "blue") for i in range(1, 8)) >= 12
    scores = [json.loads(line) for line in (out / "prelabels.jsonl").read_text().splitlines()]
    assert len(scores) == 16 and all(0 <= s for r in scores for s in r["scores"])
    ok(pm("train", "--task", "classify", "--data", str(out), "--epochs", "1", "--imgsz", "16", "--project", str(tmp_path / "runs")))
    again = pm("label", "--weights", str(weights), "--source", str(pool), "--out", str(out), "--json")
    ok(again)
    assert last_json(again)["added"] == 0 and len((out / "prelabels.jsonl").read_text().splitlines()) == 16


def test_label_refuses_a_format_of_another_task(colours, tmp_path):
    _, weights = colours
    proc = pm("label", "--weights", str(weights), "--source", str(tmp_path), "--to", "yolo", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "folder" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_label_detect_round_trip_and_label_errors(shapes, tmp_path, fmt):
    weights = shapes / "det.safetensors"
    if not weights.is_file():
        _train(shapes, "detect", "pmdet_n", shapes / "shp", "det").rename(weights)
    out = tmp_path / "labels"
    proc = pm("label", "--weights", str(weights), "--source", str(shapes / "pool" / "train" / "images"),
                     "--to", fmt, "--out", str(out), "--conf", "0.01", "--json")  # fmt: skip
    ok(proc)
    assert (last_json(proc)["added"], last_json(proc)["unreadable"]) == (5, 1)
    _train(tmp_path, "detect", "pmdet_n", out, "again")
    if fmt == "coco":
        proc = pm("check", "--label-errors", "--weights", str(weights), "--data", str(shapes / "shp"), "--out", str(tmp_path / "chk"), "--json")
        ok(proc)
        assert last_json(proc)["images"] == 22
        with (tmp_path / "chk" / "label_errors.csv").open() as f:
            qualities = [float(r["quality"]) for r in csv.DictReader(f)]
        assert len(qualities) == 22 and all(0 <= q <= 1 for q in qualities)


@pytest.mark.slow
def test_label_segment_folder_and_coco_train_and_quality_finds_a_wrong_mask(shapes, tmp_path):
    weights = _train(shapes, "segment", "unet_s", shapes / "shp", "seg")
    for fmt in ("folder", "coco"):
        out = tmp_path / fmt
        proc = pm("label", "--weights", str(weights), "--source", str(shapes / "pool" / "train" / "images"),
                         "--to", fmt, "--out", str(out), "--conf", "0.3", "--json")  # fmt: skip
        ok(proc)
        assert last_json(proc)["added"] == 5
        _train(tmp_path, "segment", "unet_s", out, f"again_{fmt}")
    # a mask painted over entirely with one class: the worst label of the set
    data = tmp_path / "noisy"
    save_shapes(data, "train", count=12, size=48)
    masks = sorted((data / "train" / "masks").glob("*.png"))
    wrong = Image.open(masks[3])
    Image.fromarray(np.full(np.asarray(wrong).shape, 2, np.uint8), mode="P").save(masks[3])
    proc = pm("check", "--label-errors", "--weights", str(weights), "--data", str(data), "--out", str(tmp_path / "chk"), "--json")
    ok(proc)
    with (tmp_path / "chk" / "label_errors.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert Path(rows[0]["image"]).stem == masks[3].stem


def test_select_entropy_and_coreset_give_n_distinct_images_with_reasons(colours, tmp_path):
    root, weights = colours
    for strategy in ("entropy", "margin", "coreset", "random"):
        out = tmp_path / strategy
        proc = pm("select", "--weights", str(weights), "--pool", str(root / "cols" / "val"), "--n", "5",
                         "--strategy", strategy, "--out", str(out), "--json")  # fmt: skip
        ok(proc)
        lines = (out / "selected.txt").read_text().splitlines()
        assert len(lines) == 5 == len(set(lines)) and all(Path(p).is_file() for p in lines)
        with (out / "selected.csv").open() as f:
            assert all(r["reason"] for r in csv.DictReader(f))
    proc = pm("select", "--weights", str(weights), "--pool", str(root / "cols" / "val"), "--strategy", "bald")
    assert proc.returncode == 2 and "strategy" in proc.stderr


def test_k_center_greedy_spreads_picks():
    feats = np.array([[0.0, 0], [0.01, 0], [0.02, 0], [5, 5], [-5, 5]])
    picked, gaps = k_center_greedy(feats, 3)
    assert picked[0] == 0 and set(picked[1:]) == {3, 4} and gaps[1] > 7
