"""``POST /v1/models/{name}/explain`` on a real server: overlays at the upload's size, AUCs, one-line errors,
and predictions served correctly while an explanation runs on the same model."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from pixelmind.serve.settings import ServeSettings

pytestmark = pytest.mark.usefixtures("one_thread")


def _png(w: int = 30, h: int = 22) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def url(start_server, serve_models) -> str:
    return start_server({"digits": serve_models["classify"], "codec": serve_models["compress"]}, ServeSettings(max_wait_ms=0))


def test_explain_returns_overlays_and_faithfulness(url):
    models = {m["name"]: m for m in httpx.get(f"{url}/v1/models").json()}
    assert models["digits"]["explain_methods"][0] == "gradcam" and models["codec"]["explain_methods"] == ["bits"]
    r = httpx.post(f"{url}/v1/models/digits/explain", params={"method": "ig", "class": ["3", "7"]},
                   files={"file": ("x.png", _png())}, timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "ig" and [e["target"] for e in body["explanations"]] == ["class 3", "class 7"]
    for e in body["explanations"]:
        overlay = Image.open(io.BytesIO(base64.b64decode(e["overlay_png_base64"])))
        assert overlay.size == (30, 22)
        assert 0 <= e["deletion_auc"] <= 1 and 0 <= e["random_insertion_auc"] <= 1
    bits = httpx.post(f"{url}/v1/models/codec/explain", params={"faithfulness": "false"},
                      files={"file": ("x.png", _png(64, 48))}, timeout=60).json()  # fmt: skip
    (row,) = bits["explanations"]
    assert bits["method"] == "bits" and row["bpp"] > 0 and "deletion_auc" not in row


@pytest.mark.parametrize("params,body,status,message", [
    ({"method": "bits"}, None, 400, "method: 'bits' does not apply to classify models"),
    ({"class": "zebra"}, None, 400, "class: 'zebra' is not one of the model's classes"),
    ({}, b"\x89PNG\r\n\x1a\n truncated", 400, "upload: "),
])  # fmt: skip
def test_bad_requests_get_one_line_errors(url, params, body, status, message):
    r = httpx.post(f"{url}/v1/models/digits/explain", params=params, files={"file": ("x.png", body or _png())}, timeout=60)
    assert r.status_code == status and r.json()["error"].startswith(message), r.text
    missing = httpx.post(f"{url}/v1/models/nope/explain", files={"file": ("x.png", _png())})
    assert missing.status_code == 404 and "served: digits, codec" in missing.json()["error"]


def test_predictions_stay_right_while_explaining(url):
    """The explainer hooks its own copy of the network: concurrent predictions must equal lone ones."""
    image = _png()
    alone = httpx.post(f"{url}/v1/models/digits/predict", files={"file": ("x.png", image)}).json()["result"]

    async def both():
        async with httpx.AsyncClient(timeout=60) as client:
            explain = client.post(f"{url}/v1/models/digits/explain", params={"method": "scorecam"}, files={"file": ("x.png", image)})
            predicts = [client.post(f"{url}/v1/models/digits/predict", files={"file": ("x.png", image)}) for _ in range(8)]
            return await asyncio.gather(explain, *predicts)

    explained, *predicted = asyncio.run(both())
    assert explained.status_code == 200
    for r in predicted:
        assert r.json()["result"]["topk"] == alone["topk"]
