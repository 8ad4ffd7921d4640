"""A small version of bench/serve_load.py: concurrent clients against a real server, no errors."""

from __future__ import annotations

import pytest

from pixelmind.serve.loadtest import run_load
from pixelmind.serve.settings import ServeSettings

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("max_batch", [1, 8])
def test_concurrent_clients_get_answers_without_errors(start_server, serve_models, make_png, max_batch):
    base = start_server({"digits": serve_models["classify"]}, ServeSettings(max_batch=max_batch, max_wait_ms=10))
    stats = run_load(f"{base}/v1/models/digits/predict", make_png((32, 32)), clients=12, requests=5)
    assert stats["requests"] == 60 and stats["errors"] == 0, stats["statuses"]
    assert stats["p50_ms"] <= stats["p99_ms"] and stats["throughput_rps"] > 0
    if max_batch == 1:
        assert stats["mean_batch"] == 1.0
    else:  # 12 clients at once: some requests must have shared a model call
        assert stats["mean_batch"] > 1.0
