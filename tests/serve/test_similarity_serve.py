"""``/embed`` and ``/search`` over HTTP (real uvicorn on loopback) and the neighbours on the web page (real chromium)."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from pixelmind.api import Model
from pixelmind.errors import ConfigError
from pixelmind.serve import ServeSettings
from pixelmind.serve.app import create_app
from pixelmind.similarity.search import build_index

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gallery_setup(tmp_path_factory, serve_models, one_thread):
    """An embed model trained 1 epoch on digits, a gallery of 30 digits and its index."""
    from pixelmind.data.builtin import digits

    root = tmp_path_factory.mktemp("simserve")
    model = Model("pm_cnn_t", task="embed")
    model.train(data="digits", epochs=1, imgsz=16, project=str(root), name="faces", workers=0, model_kwargs={"dim": 24})
    images, labels, _ = digits()
    gallery = root / "gallery"
    gallery.mkdir()
    for i in range(30):
        Image.fromarray(images[i, 0].numpy()).resize((32, 32)).save(gallery / f"{int(labels[i])}_{i}.png")
    build_index(model, gallery, root / "index")
    return {"model": model, "gallery": gallery, "index": root / "index"}


@pytest.fixture(scope="module")
def server(start_server, gallery_setup, serve_models) -> str:
    models = {"faces": gallery_setup["model"], "digits": serve_models["classify"], "codec": serve_models["compress"]}
    return start_server(models, ServeSettings(indexes=(gallery_setup["index"],)))


def _png(path: Path) -> bytes:
    return path.read_bytes()


def test_embed_answers_embed_and_classify_models(server, gallery_setup, serve_models):
    query = sorted(gallery_setup["gallery"].glob("*.png"))[3]
    r = httpx.post(f"{server}/v1/models/faces/embed", files={"file": ("q.png", _png(query))}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dim"] == 24 and abs(np.linalg.norm(body["embedding"]) - 1) < 1e-4
    local = gallery_setup["model"].predict(str(query))[0]["embedding"]  # the same vector as predict's
    assert np.allclose(body["embedding"], local, atol=1e-5)
    r = httpx.post(f"{server}/v1/models/digits/embed", content=_png(query), timeout=30)
    assert r.status_code == 200 and r.json()["dim"] == serve_models["classify"].net.head[-1].in_features  # penultimate
    r = httpx.post(f"{server}/v1/models/codec/embed", content=_png(query), timeout=30)
    assert r.status_code == 400 and "no image embedding" in r.json()["error"]


def test_search_returns_the_query_first_with_thumbnails(server, gallery_setup):
    models = {m["name"]: m for m in httpx.get(f"{server}/v1/models").json()}
    assert models["faces"]["index"] == {"count": 30, "kind": "flat", "dim": 24} and models["digits"]["index"] is None
    query = sorted(gallery_setup["gallery"].glob("*.png"))[5]
    r = httpx.post(f"{server}/v1/models/faces/search?k=4", files={"file": ("q.png", _png(query))}, timeout=30)
    assert r.status_code == 200, r.text
    hits = r.json()["neighbours"]
    assert len(hits) == 4 and hits[0]["source"] == str(query) and hits[0]["score"] > 0.9999
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    thumb = httpx.get(server + hits[0]["image"], timeout=30)
    assert thumb.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(thumb.content)).size == (32, 32)


def test_search_errors_are_one_line(server, gallery_setup):
    query = _png(sorted(gallery_setup["gallery"].glob("*.png"))[0])
    cases = [
        (httpx.post(f"{server}/v1/models/digits/search", content=query), 404, "has no similarity index"),
        (httpx.post(f"{server}/v1/models/nope/search", content=query), 404, "no model named"),
        (httpx.post(f"{server}/v1/models/faces/search", content=b""), 400, "empty upload"),
        (httpx.post(f"{server}/v1/models/faces/search", content=b"\x89PNG\r\n\x1a\nbroken"), 400, "upload"),
        (httpx.get(f"{server}/v1/models/faces/search/items/30"), 404, "no item 30"),
        (httpx.get(f"{server}/v1/models/faces/search/items/-1"), 404, "no item -1"),
        (httpx.post(f"{server}/v1/models/faces/search?k=0", content=query), 422, "k"),
    ]
    for response, status, text in cases:
        assert response.status_code == status and text in response.json()["error"], (response.status_code, response.text)


def test_an_index_no_served_model_made_is_refused(gallery_setup, serve_models):
    with pytest.raises(ConfigError, match="not among the served weights"):
        create_app({"digits": serve_models["classify"]}, ServeSettings(indexes=(gallery_setup["index"],)))


def test_web_page_shows_the_nearest_neighbours(server, gallery_setup, browser_page):
    query = sorted(gallery_setup["gallery"].glob("*.png"))[7]
    page = browser_page
    page.goto(server + "/")
    page.wait_for_selector("#model option[value=faces]", state="attached")
    page.select_option("#model", "faces")
    page.set_input_files("#file", str(query))
    page.wait_for_selector("#result .neighbours figure.neighbour img")
    page.wait_for_function("[...document.querySelectorAll('.neighbour img')].every(i => i.complete && i.naturalWidth > 0)")
    assert "24-value embedding" in page.locator("#result .verdict").inner_text()
    captions = page.locator("#result .neighbour figcaption").all_inner_texts()
    assert len(captions) == 8 and captions[0].startswith("1. 1") and query.name in captions[0]  # itself, cosine 1
    assert page.locator("#result .neighbours h2").inner_text().startswith("Nearest neighbours in the index (30 images")
    assert not page.locator("#message").is_visible()
