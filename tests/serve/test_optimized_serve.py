"""An INT8 model from ``pixelmind optimize`` behind a real server, beside its fp32 original."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from pixelmind.api import Model


@pytest.fixture(scope="module")
def int8_path(serve_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    Model.load(serve_weights["classify"]).optimize(out, quantize="int8", calib_images=16)
    return out / "model.int8.onnx"


def test_int8_and_fp32_models_served_side_by_side(start_server, serve_weights, int8_path, make_png):
    url = start_server([serve_weights["classify"], int8_path])
    with httpx.Client(base_url=url, timeout=30) as client:
        models = {m["name"]: m for m in client.get("/v1/models").json()}
        assert set(models) == {"c", "model.int8"}
        assert models["model.int8"]["task"] == "classify" and models["model.int8"]["classes"] == models["c"]["classes"]
        image = make_png((24, 24), seed=3)
        fp32 = client.post("/v1/models/c/predict", content=image)
        int8 = client.post("/v1/models/model.int8/predict", content=image)
        assert fp32.status_code == int8.status_code == 200, int8.text
        a, b = fp32.json()["result"], int8.json()["result"]
        (local,) = Model.load(int8_path).predict(Image.open(io.BytesIO(image)))
        assert b["label"] == local["label"] and b["prob"] == pytest.approx(local["prob"], abs=1e-5)  # the INT8 file answered
        assert abs(a["prob"] - b["prob"]) < 0.1  # and close to its fp32 original
