"""Review of pre-labels and suspected label errors: over HTTP (real uvicorn), in the page (real chromium), on real files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import pytest
from PIL import Image
from test_cli import write_digit_pngs, write_imagefolder

from pixelmind.api import Model
from pixelmind.data.boxes import find_detection_data, write_detection_data
from pixelmind.data.label_sets import discard_box_item, discard_coco_image, discard_files, relabel_class
from pixelmind.data.shapes import save_shapes
from pixelmind.errors import DataError
from pixelmind.label.errors import find_label_errors
from pixelmind.label.prelabel import prelabel
from pixelmind.label.review import ReviewQueue
from pixelmind.serve import ServeSettings


@pytest.fixture
def prelabelled(tmp_path, serve_models) -> Path:
    """Four digits pre-labelled by the served classifier into an ImageFolder (conf 0: every image gets a label)."""
    write_digit_pngs(tmp_path / "new", n=4)
    out = tmp_path / "labelled"
    prelabel(serve_models["classify"], tmp_path / "new", out, "folder", conf=0.0)
    return out


def _labelled_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("*/*.png"))


def test_review_prelabels_over_http_reject_removes_the_label(prelabelled, start_server, serve_models):
    server = start_server({"digits": serve_models["classify"]}, ServeSettings(review=prelabelled))
    body = httpx.get(f"{server}/v1/review", timeout=30).json()
    assert (body["kind"], body["task"], body["total"], body["decided"]) == ("prelabels", "classify", 4, 0)
    assert _labelled_files(prelabelled) == [f"digit{i}.png" for i in range(4)]
    first, second = body["items"][0], body["items"][1]
    png = httpx.get(f"{server}/v1/review/{first['index']}/image", timeout=30)
    assert png.headers["content-type"] == "image/png" and Image.open(io.BytesIO(png.content)).width >= 96

    r = httpx.post(f"{server}/v1/review/{first['index']}", json={"decision": "reject"}, timeout=30)
    assert r.status_code == 200 and r.json()["decided"] == 1 and "labels removed" in r.json()["done"]
    assert Path(first["image"]).name not in _labelled_files(prelabelled) and len(_labelled_files(prelabelled)) == 3
    assert httpx.get(f"{server}/v1/review/{first['index']}/image", timeout=30).status_code == 200  # shown from its source
    r = httpx.post(f"{server}/v1/review/{second['index']}", json={"decision": "accept"}, timeout=30)
    assert r.status_code == 200 and Path(second["image"]).name in _labelled_files(prelabelled)

    errors = [
        (httpx.post(f"{server}/v1/review/{first['index']}", json={"decision": "accept"}), 422, "cannot be undone"),
        (httpx.post(f"{server}/v1/review/0", json={"decision": "maybe"}), 422, "accept or reject"),
        (httpx.post(f"{server}/v1/review/99", json={"decision": "accept"}), 404, "there are 4"),
        (httpx.get(f"{server}/v1/review/99/image"), 404, "not found"),
    ]
    for response, status, text in errors:
        assert response.status_code == status and text in response.text, (response.status_code, response.text)
    log = [json.loads(line) for line in (prelabelled / "review.jsonl").read_text().splitlines()]
    assert [r["decision"] for r in log] == ["reject", "accept"]
    again = ReviewQueue(prelabelled)  # a later session goes on with the decisions taken
    assert again.summary()["decided"] == 2 and [it["decision"] for it in again.items()][:2] == ["reject", "accept"]


def test_review_label_errors_accept_fixes_the_csv_row_reject_keeps_it(tmp_path):
    data = write_imagefolder(tmp_path / "cols", n_train=30, n_val=8)
    model = Model(task="classify")
    model.train(data=str(data), epochs=2, imgsz=16, workers=0, project=str(tmp_path / "runs"), name="c")
    flipped = {"blue/0.png", "blue/13.png", "red/18.png"}
    rows = [[str(p), p.parent.name] for p in sorted((data / "train").rglob("*.png"))]
    for r in rows:
        if r[0].endswith(tuple(flipped)):
            r[1] = "blue" if r[1] == "red" else "red"
    manifest = tmp_path / "noisy.csv"
    with manifest.open("w", newline="") as f:
        csv.writer(f).writerows([["path", "label"], *rows])
    find_label_errors(str(manifest), weights=model.weights_path, out=tmp_path / "report", log=lambda s: None)
    queue = ReviewQueue(tmp_path / "report")
    items = queue.items()
    assert queue.kind == "label_errors" and len(items) == 3
    assert {it["image"].split("train/")[1] for it in items} == flipped
    first, second = items[0]["image"], items[1]["image"]
    assert "wrong label: given" in items[0]["title"] and Image.open(io.BytesIO(queue.image_png(0))).width >= 96
    assert " is now " in queue.decide(0, "accept")["done"]
    assert queue.decide(1, "reject")["done"] == "recorded"
    labels = {p: y for p, y in csv.reader(manifest.open())}
    assert labels[first] == Path(first).parent.name  # the suggestion (its true colour) applied
    assert labels[second] != Path(second).parent.name  # the reviewer said the given label is right: unchanged


def test_relabel_class_rewrites_the_csv_row_or_moves_the_file(tmp_path):
    for name in ("a.png", "b.png"):
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    manifest = tmp_path / "data.csv"
    manifest.write_text("path,label\na.png,cat\nb.png,cat\n")
    assert "a.png is now dog" in relabel_class(manifest, tmp_path / "a.png", "cat", "dog")
    assert list(csv.reader(manifest.open())) == [["path", "label"], ["a.png", "dog"], ["b.png", "cat"]]
    with pytest.raises(DataError, match="no row for"):
        relabel_class(manifest, tmp_path / "a.png", "cat", "dog")
    folder = tmp_path / "set" / "train"
    (folder / "cat").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(folder / "cat" / "x.png")
    assert relabel_class(tmp_path / "set", folder / "cat" / "x.png", "cat", "dog").startswith("moved to")
    assert (folder / "dog" / "x.png").is_file() and not (folder / "cat" / "x.png").exists()
    assert relabel_class("digits", tmp_path / "a.png", "cat", "dog") is None  # a built-in set: recorded only


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_discard_box_item_rewrites_the_detection_set_without_the_image(tmp_path, fmt):
    save_shapes(tmp_path / "shp", "train", count=5, size=48)
    out = tmp_path / fmt
    write_detection_data(find_detection_data(tmp_path / "shp", val_fraction=0.2), out, fmt)
    before = find_detection_data(out, val_fraction=0.0)
    stem = before.train[0].image.stem
    discard_box_item(out, stem, fmt)
    after = find_detection_data(out, val_fraction=0.0)
    assert len(after.train) + len(after.val) == len(before.train) + len(before.val) - 1
    assert stem not in {it.image.stem for it in after.train + after.val} and after.class_names == before.class_names


def test_discard_segment_labels_from_folders_and_coco(tmp_path):
    for split in ("train", "val"):
        for sub in ("images", "masks"):
            (tmp_path / "seg" / split / sub).mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "seg" / "train" / "images" / "x.png")
    Image.new("L", (4, 4)).save(tmp_path / "seg" / "train" / "masks" / "x.png")
    assert discard_files(tmp_path / "seg", "x", ["*/images", "*/masks"]) == 2
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    (coco / "train").mkdir()
    Image.new("RGB", (4, 4)).save(coco / "train" / "x.png")
    doc = {"images": [{"id": 1, "file_name": "x.png", "width": 4, "height": 4}, {"id": 2, "file_name": "y.png", "width": 4, "height": 4}],
           "annotations": [{"id": 1, "image_id": 1}, {"id": 2, "image_id": 2}], "categories": []}  # fmt: skip
    (coco / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    discard_coco_image(coco, "x")
    left = json.loads((coco / "annotations" / "instances_train.json").read_text())
    assert [im["id"] for im in left["images"]] == [2] and [a["image_id"] for a in left["annotations"]] == [2]
    assert not (coco / "train" / "x.png").exists()


def test_a_folder_that_is_not_a_review_is_refused(tmp_path):
    with pytest.raises(DataError, match="not a review folder"):
        ReviewQueue(tmp_path)


def test_web_page_reviews_one_image_at_a_time(prelabelled, start_server, serve_models, browser_page):
    server = start_server({"digits": serve_models["classify"]}, ServeSettings(review=prelabelled))
    page = browser_page
    page.goto(server + "/#review")
    page.wait_for_function("document.querySelector('#review-image').complete && document.querySelector('#review-image').naturalWidth > 0")
    assert page.locator("#review-title").inner_text() == "Review pre-labels (classify)"
    assert page.locator("#review-progress").inner_text() == "1 of 4 · 0 decided"
    first = page.locator("#review-caption").inner_text().split(":")[0]
    page.click("#review-reject")
    page.wait_for_function("document.querySelector('#review-progress').textContent === '2 of 4 · 1 decided'")
    assert Path(first).name not in _labelled_files(prelabelled)
    page.keyboard.press("a")  # accept the second with the keyboard
    page.wait_for_function("document.querySelector('#review-progress').textContent === '3 of 4 · 2 decided'")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("document.querySelector('#review-done').textContent.startsWith('accepted')")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("document.querySelector('#review-done').textContent.startsWith('rejected: labels removed')")
    log = [json.loads(line)["decision"] for line in (prelabelled / "review.jsonl").read_text().splitlines()]
    assert log == ["reject", "accept"] and len(_labelled_files(prelabelled)) == 3
    page.click("#tab-predict")  # the other tabs still work beside it
    assert page.locator("#view-predict").is_visible() and not page.locator("#view-review").is_visible()
    assert not page.locator("#message").is_visible()


def test_page_has_no_review_tab_without_a_review_folder(start_server, serve_models, browser_page):
    server = start_server({"digits": serve_models["classify"]})
    assert httpx.get(f"{server}/v1/review", timeout=30).status_code == 404
    browser_page.goto(server + "/#review")
    browser_page.wait_for_selector("#model option[value=digits]", state="attached")
    assert not browser_page.locator("#tab-review").is_visible() and browser_page.locator("#view-predict").is_visible()
