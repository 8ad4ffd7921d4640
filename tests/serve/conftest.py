"""Fixtures of the server tests: tiny real models of three tasks and real uvicorn servers on free ports."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from pixelmind.api import Model
from pixelmind.serve.settings import ServeSettings


@pytest.fixture(scope="session")
def serve_weights(tmp_path_factory) -> dict[str, Path]:
    """Weights files: a classifier trained 1 epoch on digits, an untrained x2 ESPCN and a tiny codec."""
    from pixelmind.engine.checkpoint import save_weights
    from pixelmind.tasks.base import Meta
    from pixelmind.tasks.compress.models import build_codec
    from pixelmind.tasks.enhance.models import build_enhancer

    root = tmp_path_factory.mktemp("serve_weights")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        m = Model("pm_cnn_t", task="classify")
        m.train(data="digits", epochs=1, imgsz=16, project=str(root), name="c", workers=0)
        classify = m.weights_path
        torch.manual_seed(0)
        net = build_enhancer("espcn", scale=2, channels=3).eval()
        extra = {"scale": 2, "channels": 3, "degradation": "sr"}
        meta = Meta(task="enhance", model="espcn", imgsz=48, extra=extra)
        enhance = root / "espcn.safetensors"
        save_weights(enhance, net.state_dict(), meta, {"task": "enhance", "data": "photos"})
        codec = build_codec("mean_scale_s", N=8, M=12).eval()
        codec.update_tables()
        meta = Meta(task="compress", model="mean_scale_s", imgsz=64, model_kwargs={"N": 8, "M": 12},
                    extra={"quality": 3, "lmbda": 0.0067})  # fmt: skip
        compress = root / "codec.safetensors"
        save_weights(compress, codec.state_dict(), meta, {"task": "compress", "data": "photos"})
    finally:
        torch.set_num_threads(before)
    return {"classify": Path(classify), "enhance": enhance, "compress": compress}


@pytest.fixture(scope="session")
def serve_models(serve_weights) -> dict[str, Model]:
    """The loaded models, shared by every test server (each server has its own batchers)."""
    return {task: Model.load(path) for task, path in serve_weights.items()}


class SlowTask:
    """A task whose predict sleeps first (a busy model), everything else delegated to the real task."""

    def __init__(self, task, delay: float) -> None:
        self._task, self.delay = task, delay

    def __getattr__(self, name):
        return getattr(self._task, name)

    def predict(self, model, images, meta, **options):
        time.sleep(self.delay)
        return self._task.predict(model, images, meta, **options)


@pytest.fixture(scope="session")
def slow_model(serve_weights) -> Callable[[float], Model]:
    """``slow_model(delay)``: the classifier with a predict that sleeps ``delay`` seconds."""

    def make(delay: float) -> Model:
        m = Model.load(serve_weights["classify"])
        m.task = SlowTask(m.task, delay)
        return m

    return make


@pytest.fixture(scope="module")
def start_server() -> Iterator[Callable[..., str]]:
    """``start_server(weights_or_models, settings) -> base URL``: a real uvicorn server in a thread."""
    import uvicorn

    from pixelmind.serve.app import create_app

    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(weights, settings: ServeSettings | None = None) -> str:
        app = create_app(weights, settings or ServeSettings())
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        running.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, _ in running:
        server.should_exit = True
    for _, thread in running:
        thread.join(timeout=10)


def png_bytes(size=(24, 20), seed: int = 0) -> bytes:
    """PNG bytes of a random RGB image of ``size`` (width, height)."""
    g = torch.Generator().manual_seed(seed)
    arr = (torch.rand(size[1], size[0], 3, generator=g) * 255).byte().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def make_png() -> Callable[..., bytes]:
    """``make_png(size=(w, h), seed=0)``: PNG bytes of a random RGB image."""
    return png_bytes


@pytest.fixture
def browser_page():
    """A page of Debian's chromium (Playwright, headless); the test fails on any JavaScript error. Skips without them."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(20_000)
        yield page
        browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
