"""A segmentation model behind the server: the task plugs in with no server change."""

from __future__ import annotations

import io

import httpx
import numpy as np
import torch
from PIL import Image

from pixelmind.engine.checkpoint import save_weights
from pixelmind.tasks.base import Meta
from pixelmind.tasks.segment.models import TINY
from pixelmind.tasks.segment.task import TASK


def test_segment_json_and_rendered_overlay(tmp_path, start_server, make_png):
    torch.manual_seed(0)
    meta = Meta(task="segment", model="unet_s", class_names=["background", "cell"], imgsz=64, model_kwargs=TINY["unet_s"])
    net = TASK.build_model(None, meta).eval()
    weights = tmp_path / "cells.safetensors"
    save_weights(weights, net.state_dict(), meta, {"task": "segment", "data": "shapes"})
    url = start_server([weights])
    data = make_png((40, 30))
    with httpx.Client(base_url=url, timeout=30) as client:
        j = client.post("/v1/models/cells/predict", files={"file": ("x.png", data)}).json()
        assert (j["result"]["width"], j["result"]["height"]) == (40, 30)
        assert abs(sum(j["result"]["classes"].values()) - 1) < 1e-4
        r = client.post("/v1/models/cells/predict?render=true", content=data)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    overlay = Image.open(io.BytesIO(r.content))
    assert overlay.size == (40, 30)
    # the overlay is the input where the mask says background, tinted elsewhere
    expected = TASK.predict(net, [Image.open(io.BytesIO(data))], meta)[0].render(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(np.asarray(overlay.convert("RGB")), np.asarray(expected))
