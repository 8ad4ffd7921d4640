"""Dynamic batching: the batcher alone, then 16 concurrent HTTP requests against a real server."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from pixelmind.serve.batching import DynamicBatcher, QueueFullError
from pixelmind.serve.settings import ServeSettings


def run(coro):
    return asyncio.run(coro)


def test_requests_gather_into_batches_and_keep_their_order():
    calls: list[list[int]] = []

    def predict(images, scale=1):
        calls.append(list(images))
        return [x * scale for x in images]

    async def main():
        b = DynamicBatcher(predict, max_batch=4, max_wait_ms=50)
        b.start()
        out = await asyncio.gather(*(b.submit(i, scale=10) for i in range(10)))
        await b.stop()
        return out

    out = run(main())
    assert [r for r, _ in out] == [i * 10 for i in range(10)]
    assert max(len(c) for c in calls) == 4 and sum(map(len, calls)) == 10
    assert all(size == len(next(c for c in calls if i in c)) for i, (_, size) in enumerate(out))


def test_different_options_run_in_different_batches():
    calls: list[tuple[list[int], int]] = []

    def predict(images, topk=5):
        calls.append((list(images), topk))
        return [(x, topk) for x in images]

    async def main():
        b = DynamicBatcher(predict, max_batch=8, max_wait_ms=30)
        b.start()
        out = await asyncio.gather(*(b.submit(i, topk=1 + i % 2) for i in range(6)))
        await b.stop()
        return out

    out = run(main())
    assert [r for r, _ in out] == [(i, 1 + i % 2) for i in range(6)]
    assert all(len({i % 2 for i in images}) == 1 for images, _ in calls)


def test_max_batch_1_disables_batching():
    async def main():
        b = DynamicBatcher(lambda images: list(images), max_batch=1, max_wait_ms=50)
        b.start()
        out = await asyncio.gather(*(b.submit(i) for i in range(5)))
        await b.stop()
        return out

    assert run(main()) == [(i, 1) for i in range(5)]


def test_the_worker_survives_a_failing_batch_and_calls_never_overlap():
    active, overlaps = [0], []
    lock = threading.Lock()

    def predict(images):
        with lock:
            active[0] += 1
            overlaps.append(active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        if "bad" in images:
            raise ValueError("cannot handle 'bad'")
        return [x.upper() for x in images]

    async def main():
        b = DynamicBatcher(predict, max_batch=2, max_wait_ms=20)
        b.start()
        first = await asyncio.gather(b.submit("bad"), b.submit("ok"), return_exceptions=True)
        after = await asyncio.gather(*(b.submit(s) for s in ("a", "b", "c")))
        await b.stop()
        return first, after

    first, after = run(main())
    assert all(isinstance(e, ValueError) and "bad" in str(e) for e in first)
    assert [r for r, _ in after] == ["A", "B", "C"]
    assert max(overlaps) == 1


def test_a_full_queue_refuses_and_stop_fails_the_waiting():
    gate = threading.Event()

    def predict(images):
        gate.wait(5)
        return list(images)

    async def main():
        b = DynamicBatcher(predict, max_batch=1, max_wait_ms=0, queue_size=1)
        b.start()
        running = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0.05)  # the worker holds item 1; item 2 waits in the queue
        waiting = asyncio.ensure_future(b.submit(2))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError):
            await b.submit(3)
        gate.set()
        assert (await running) == (1, 1) and (await waiting) == (2, 1)
        gate.clear()
        running = asyncio.ensure_future(b.submit(4))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(b.submit(5))
        await asyncio.sleep(0.01)
        await b.stop()
        gate.set()
        results = await asyncio.gather(running, waiting, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        with pytest.raises(RuntimeError):
            await b.submit(6)

    run(main())


@pytest.mark.usefixtures("one_thread")
def test_concurrent_http_requests_run_in_batches_with_the_same_results(start_server, serve_models, make_png):
    batched = start_server({"best": serve_models["classify"]}, ServeSettings(max_batch=8, max_wait_ms=50))
    single = start_server({"best": serve_models["classify"]}, ServeSettings(max_batch=1))
    images = [make_png((20 + i, 18 + i % 3), seed=i) for i in range(16)]

    async def burst(base):
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            return await asyncio.gather(
                *(c.post("/v1/models/best/predict?topk=3", content=im) for im in images)
            )

    together = [r.json() for r in run(burst(batched))]
    sizes = [r["batch_size"] for r in together]
    assert max(sizes) <= 8 and sum(s > 1 for s in sizes) >= 8, (
        sizes
    )  # most ran batched (tolerant of a busy CI)
    with httpx.Client(base_url=batched, timeout=30) as c:
        alone = [c.post("/v1/models/best/predict?topk=3", content=im).json() for im in images]
    assert all(r["batch_size"] == 1 for r in alone)
    for a, b in zip(together, alone):
        assert [t["label"] for t in a["result"]["topk"]] == [t["label"] for t in b["result"]["topk"]]
        assert a["result"]["prob"] == pytest.approx(b["result"]["prob"], abs=1e-4)
    unbatched = [r.json() for r in run(burst(single))]
    assert all(r["batch_size"] == 1 for r in unbatched)
    assert [r["result"]["label"] for r in unbatched] == [r["result"]["label"] for r in alone]
