"""A bounded load generator for ``pixelmind serve``: N concurrent clients, each sending M requests.

Used by ``bench/serve_load.py`` and by the smoke test in the suite.

Example:
    >>> stats = run_load("http://127.0.0.1:8000/v1/models/best/predict", png_bytes, clients=50, requests=20)  # doctest: +SKIP
    >>> stats["errors"], stats["p99_ms"]  # doctest: +SKIP
    (0, 180.2)
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from typing import Any


def _percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between order statistics."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


async def _client(http, url: str, payload: bytes, requests: int, latencies: list[float], statuses: Counter,
                  batch_sizes: Counter, headers: dict[str, str]) -> None:  # fmt: skip
    for _ in range(requests):
        t0 = time.perf_counter()
        try:
            response = await http.post(url, content=payload, headers=headers)
            statuses[response.status_code] += 1
            if response.status_code == 200:
                batch_sizes[response.json().get("batch_size", 1)] += 1
        except Exception as err:  # noqa: BLE001 - a failed connection is a counted error, not a crash
            statuses[type(err).__name__] += 1
        latencies.append((time.perf_counter() - t0) * 1000)


async def _run(url: str, payload: bytes, clients: int, requests: int, timeout: float, headers: dict[str, str]) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    statuses: Counter = Counter()
    batch_sizes: Counter = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(_client(http, url, payload, requests, latencies, statuses, batch_sizes, headers) for _ in range(clients)))
        wall = time.perf_counter() - t0
    total = clients * requests
    ok = statuses.get(200, 0)
    return {"requests": total, "ok": ok, "errors": total - ok, "statuses": {str(k): v for k, v in statuses.items()},
            "wall_s": wall, "throughput_rps": ok / wall, "p50_ms": _percentile(latencies, 50),
            "p99_ms": _percentile(latencies, 99), "mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
            "mean_batch": sum(k * v for k, v in batch_sizes.items()) / max(ok, 1)}  # fmt: skip


def run_load(url: str, payload: bytes, clients: int = 50, requests: int = 20, timeout: float = 60.0,
             headers: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Send ``clients * requests`` POSTs of ``payload`` (raw body) to ``url``, ``clients`` at a time.

    Returns:
        counts (``ok``, ``errors``, ``statuses``), ``throughput_rps``, latency ``p50_ms`` / ``p99_ms`` /
        ``mean_ms`` and the mean batch size the server reported.
    """
    return asyncio.run(_run(url, payload, clients, requests, timeout, headers or {}))
