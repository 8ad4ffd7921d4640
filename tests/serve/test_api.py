"""The HTTP API against real uvicorn servers: every task, every response shape, every limit."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import zlib

import httpx
import pytest
from PIL import Image

from pixelmind.engine.checkpoint import sha256_file
from pixelmind.serve.app import STATIC_DIR
from pixelmind.serve.settings import ServeSettings

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def url(start_server, serve_weights) -> str:
    w = serve_weights
    return start_server([w["classify"], w["enhance"], w["compress"], w["classify"]])


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=30) as c:
        yield c


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A 100-byte PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
        + chunk(b"IEND", b"")
    )


def test_health_and_page_and_docs(client):
    assert client.get("/health").json() == {"status": "ok", "models": 4}
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert spec["paths"]["/v1/models/{name}/predict"]["post"]["summary"]


def test_models_lists_every_model_with_unique_names_and_checksums(client, serve_weights):
    models = {m["name"]: m for m in client.get("/v1/models").json()}
    assert set(models) == {"c", "espcn", "codec", "c_1"}
    best = models["c"]
    assert set(best) == {"name", "task", "model", "classes", "input_size", "sha256", "batching", "explain_methods", "index"}
    assert (
        best["task"] == "classify"
        and best["model"] == "pm_cnn_t"
        and best["classes"] == [str(i) for i in range(10)]
    )
    assert best["input_size"] == 16 and best["batching"] == {"max_batch": 8, "max_wait_ms": 0.0}
    assert best["sha256"] == models["c_1"]["sha256"] == sha256_file(serve_weights["classify"])
    assert models["codec"]["sha256"] == sha256_file(serve_weights["compress"])
    assert models["espcn"]["task"] == "enhance" and models["codec"]["task"] == "compress"
    assert best["explain_methods"][0] == "gradcam" and models["codec"]["explain_methods"] == ["bits"]
    assert best["index"] is None  # no --index given


def test_classify_multipart_and_raw_body_agree(client, make_png):
    data = make_png((30, 26))
    a = client.post("/v1/models/c/predict", files={"file": ("x.png", data, "image/png")})
    b = client.post(
        "/v1/models/c/predict", content=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert a.status_code == b.status_code == 200, a.text
    ja, jb = a.json(), b.json()
    assert ja["model"] == "c" and ja["task"] == "classify" and ja["batch_size"] == 1 and ja["ms"] > 0
    assert ja["result"]["label"] == jb["result"]["label"] and len(ja["result"]["topk"]) == 5
    two = client.post("/v1/models/c/predict?topk=2", content=data).json()
    assert [t["label"] for t in two["result"]["topk"]] == [t["label"] for t in ja["result"]["topk"][:2]]


def test_classify_render_is_a_png_with_the_result_in_a_header(client, make_png):
    r = client.post("/v1/models/c/predict?render=true", content=make_png((40, 32)))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    Image.open(io.BytesIO(r.content)).verify()
    assert "label" in json.loads(r.headers["x-pixelmind-result"])


def test_enhance_json_and_render_at_the_scale(client, make_png):
    data = make_png((24, 20))
    j = client.post("/v1/models/espcn/predict", files={"file": ("x.png", data)}).json()
    assert (j["result"]["width"], j["result"]["height"], j["result"]["scale"]) == (48, 40, 2)
    r = client.post(
        "/v1/models/espcn/predict?render=true&topk=3", content=data
    )  # topk: not an enhance option
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (48, 40)


def test_compress_returns_a_decodable_bitstream(client, serve_models, make_png):
    from pixelmind.tasks.compress.codec import decode_image

    data = make_png((40, 32))
    j = client.post("/v1/models/codec/predict", content=data).json()
    stream = base64.b64decode(j["bitstream_base64"])
    assert len(stream) == j["result"]["bytes"] and j["result"]["bpp"] > 0 and "psnr" in j["result"]
    x_hat = decode_image(serve_models["compress"].net, stream)
    assert tuple(x_hat.shape) == (3, 32, 40)
    r = client.post("/v1/models/codec/predict?render=true", files={"file": ("x.png", data)})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (40, 32)
    assert float(r.headers["x-pixelmind-bpp"]) == pytest.approx(j["result"]["bpp"], rel=1e-3)
    assert float(r.headers["x-pixelmind-psnr"]) == pytest.approx(j["result"]["psnr"], rel=1e-3)
    assert json.loads(r.headers["x-pixelmind-result"])["bytes"] == j["result"]["bytes"]


def test_bad_images_unknown_models_and_bad_queries(client, make_png):
    garbage = client.post("/v1/models/c/predict", content=b"this is not an image at all")
    assert garbage.status_code == 400 and "not an image" in garbage.json()["error"]
    buf = io.BytesIO()
    Image.open(io.BytesIO(make_png((64, 64)))).save(buf, format="JPEG")
    truncated = client.post("/v1/models/c/predict", content=buf.getvalue()[: len(buf.getvalue()) // 2])
    assert truncated.status_code == 400 and "truncated" in truncated.json()["error"]
    assert "Traceback" not in truncated.text and "\n" not in truncated.json()["error"]
    empty = client.post("/v1/models/c/predict", content=b"")
    assert empty.status_code == 400
    nofile = client.post("/v1/models/c/predict", files={"other": ("x.png", make_png())})
    assert nofile.status_code == 400 and "'file'" in nofile.json()["error"]
    missing = client.post("/v1/models/nope/predict", content=make_png())
    assert (
        missing.status_code == 404
        and "c" in missing.json()["error"]
        and "codec" in missing.json()["error"]
    )
    for query in ("topk=0", "topk=abc", "render=maybe"):
        bad = client.post(f"/v1/models/c/predict?{query}", content=make_png())
        assert bad.status_code == 422 and bad.json()["error"].split(":")[0] in ("topk", "render")


@pytest.fixture(scope="module")
def limited(start_server, serve_models) -> str:
    settings = ServeSettings(max_upload_bytes=50_000, max_pixels=10_000)
    return start_server({"best": serve_models["classify"]}, settings)


def test_upload_limit_with_and_without_content_length(limited):
    body = b"\0" * 60_000
    with httpx.Client(base_url=limited, timeout=30) as c:
        r = c.post("/v1/models/best/predict", content=body)
        assert r.status_code == 413 and "50,000" in r.json()["error"]

        def chunks():  # no length known: sent chunked, counted by the server as it arrives
            for i in range(0, len(body), 8192):
                yield body[i : i + 8192]

        r = c.post("/v1/models/best/predict", content=chunks())
        assert r.request.headers.get("transfer-encoding") == "chunked"
        assert r.status_code == 413
        r = c.post("/v1/models/best/predict", files={"file": ("x.png", body)})
        assert r.status_code == 413


def test_pixel_limit_refuses_bombs_before_decoding(limited, make_png):
    with httpx.Client(base_url=limited, timeout=30) as c:
        r = c.post("/v1/models/best/predict", content=bomb_png())
        assert r.status_code == 413 and "pixels" in r.json()["error"]
        flat = io.BytesIO()
        Image.new("RGB", (200, 100), (9, 99, 199)).save(flat, format="PNG")  # 20,000 px over a 10,000 limit
        r = c.post("/v1/models/best/predict", content=flat.getvalue())
        assert r.status_code == 413 and "200x100" in r.json()["error"]
        assert c.post("/v1/models/best/predict", content=make_png((100, 100))).status_code == 200


def test_api_key(start_server, serve_models, make_png):
    base = start_server({"best": serve_models["classify"]}, ServeSettings(api_key="s3cret"))
    with httpx.Client(base_url=base, timeout=30) as c:
        assert c.get("/health").status_code == 200 and c.get("/").status_code == 200
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/runs").status_code == 401  # the runs browser is behind the key too
        if (STATIC_DIR / "app.js").is_file():
            assert c.get("/static/app.js").status_code == 200  # the page's files stay open
        assert c.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
        r = c.post("/v1/models/best/predict", content=make_png())
        assert r.status_code == 401 and "API key" in r.json()["error"]
        assert (
            c.post(
                "/v1/models/best/predict", content=make_png(), headers={"Authorization": "Bearer nope"}
            ).status_code
            == 401
        )
        assert c.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        r = c.post("/v1/models/best/predict", content=make_png(), headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200


def test_queue_full_gives_503(start_server, slow_model, make_png):
    base = start_server(
        {"slow": slow_model(0.6)}, ServeSettings(queue_size=1, max_batch=1, request_timeout_s=10)
    )

    async def burst():
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            return await asyncio.gather(
                *(c.post("/v1/models/slow/predict", content=make_png(seed=i)) for i in range(4))
            )

    codes = sorted(r.status_code for r in asyncio.run(burst()))
    assert codes.count(503) >= 1 and codes.count(200) >= 1, codes
    busy = next(r for r in asyncio.run(burst()) if r.status_code == 503)
    assert "waiting" in busy.json()["error"]


def test_slow_requests_time_out_with_504(start_server, slow_model, make_png):
    base = start_server({"slow": slow_model(1.0)}, ServeSettings(request_timeout_s=0.3))
    with httpx.Client(base_url=base, timeout=30) as c:
        r = c.post("/v1/models/slow/predict", content=make_png())
        assert r.status_code == 504 and "0.3" in r.json()["error"]
        assert c.get("/health").status_code == 200  # the server is still answering


def test_serve_command_options():
    from typer.testing import CliRunner

    from pixelmind.cli import app

    out = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    for option in ("--weights", "--host", "--port", "--max-batch", "--max-wait-ms", "--max-upload-mb", "--max-pixels",
                   "--timeout", "--queue", "--api-key", "--runs", "--device"):  # fmt: skip
        assert option in out.output
