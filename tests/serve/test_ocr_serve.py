"""An ocr model behind the real server: a line image in, its text and per-character confidence out."""

from __future__ import annotations

import io

import httpx
from ocr_helpers import write_lines
from PIL import Image

from pixelmind.api import Model


def test_served_ocr_model_reads_a_line_and_renders_it(tmp_path, start_server, one_thread):
    root = write_lines(tmp_path / "lines", 24, "train")
    write_lines(root, 6, "val")
    model = Model("crnn_s", task="ocr")
    model.train(data=str(root), epochs=1, batch=8, workers=0, project=str(tmp_path), name="o")
    server = start_server({"reader": model})
    line = (root / "val" / "000.png").read_bytes()
    body = httpx.post(f"{server}/v1/models/reader/predict", content=line, timeout=30).json()
    assert body["task"] == "ocr" and set(body["result"]) == {"text", "confidence", "chars"}
    rendered = httpx.post(f"{server}/v1/models/reader/predict?render=true", content=line, timeout=30)
    assert rendered.headers["content-type"] == "image/png" and Image.open(io.BytesIO(rendered.content)).height >= 64
