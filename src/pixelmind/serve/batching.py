"""Dynamic batching: requests for one model are gathered into batches for one model call.

One :class:`DynamicBatcher` per model owns an ``asyncio.Queue`` of ``(image, options, future)``
items and one worker task. The worker takes the first waiting item, keeps collecting until
``max_batch`` items or ``max_wait_ms`` have passed, groups the items whose options are equal,
and runs each group with one call of ``predict(images, **options)`` on the model's own single
thread, so calls into one network never overlap and the event loop never blocks. A failing call
fails only the requests of its batch; the worker carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


class QueueFullError(RuntimeError):
    """The model's queue holds ``queue_size`` waiting images already (the server answers 503)."""


@dataclass
class _Item:
    image: Any
    options: dict[str, Any]
    future: asyncio.Future


def _options_key(options: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in options.items()))


class DynamicBatcher:
    """Batch single-image requests for one model.

    Args:
        predict: ``predict(images, **options) -> list`` with one result per image (run in a thread).
        max_batch: most images per ``predict`` call; 1 disables batching.
        max_wait_ms: how long the first image waits for more before its batch runs.
        queue_size: most images waiting; :meth:`submit` raises :class:`QueueFullError` beyond.
        name: names the worker thread.

    Example:
        >>> import asyncio
        >>> async def demo():
        ...     batcher = DynamicBatcher(lambda images, **o: [x * 2 for x in images], max_batch=4, max_wait_ms=20)
        ...     batcher.start()
        ...     out = await asyncio.gather(*(batcher.submit(i) for i in range(3)))
        ...     await batcher.stop()
        ...     return out
        >>> asyncio.run(demo())
        [(0, 3), (2, 3), (4, 3)]
    """

    def __init__(
        self,
        predict: Callable[..., Sequence[Any]],
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        queue_size: int = 64,
        name: str = "model",
    ) -> None:
        self.predict = predict
        self.max_batch = max(1, int(max_batch))
        self.max_wait_ms = max(0.0, float(max_wait_ms))
        self.queue_size = max(1, int(queue_size))
        self.name = name
        self.batches = 0  # predict calls made (for tests and stats)
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def start(self) -> None:
        """Start the worker on the running event loop (call from async code, e.g. a lifespan)."""
        if self.running:
            return
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"pixelmind-{self.name}")
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Cancel the worker, fail the requests still waiting and release the thread."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._queue is not None:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if not item.future.done():
                    item.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def submit(self, image: Any, **options: Any) -> tuple[Any, int]:
        """Queue one image and wait for its result.

        Returns:
            ``(result, batch_size)``: the result of ``predict`` for this image and how many
            images that ``predict`` call held.

        Raises:
            QueueFullError: ``queue_size`` images are waiting already.
            RuntimeError: the batcher is not running.
            Exception: whatever ``predict`` raised for this image's batch.
        """
        if not self.running or self._queue is None:
            raise RuntimeError(f"the batcher of {self.name!r} is not running")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Item(image, dict(options), future))
        except asyncio.QueueFull:
            raise QueueFullError(
                f"{self.name}: {self.queue_size} requests are waiting already; retry later"
            ) from None
        return await future  # cancelled by the caller's timeout: the worker skips it

    async def _collect(self) -> list[_Item]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_ms / 1000
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:  # a get() cancelled by the timeout leaves its item in the queue
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def _run_group(self, items: list[_Item]) -> None:
        live = [it for it in items if not it.future.done()]  # timed-out requests cost nothing
        if not live:
            return
        loop = asyncio.get_running_loop()
        images, options = [it.image for it in live], live[0].options
        try:
            results = await loop.run_in_executor(
                self._executor, lambda: list(self.predict(images, **options))
            )
            if len(results) != len(live):
                raise RuntimeError(f"predict returned {len(results)} results for {len(live)} images")
        except asyncio.CancelledError:
            for it in live:
                if not it.future.done():
                    it.future.set_exception(RuntimeError("the server is shutting down"))
            raise
        except Exception as err:  # noqa: BLE001 - the error goes to the requests of this batch
            for it in live:
                if not it.future.done():
                    it.future.set_exception(err)
            return
        finally:
            self.batches += 1
        for it, result in zip(live, results):
            if not it.future.done():
                it.future.set_result((result, len(live)))

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            groups: dict[tuple, list[_Item]] = {}
            for item in batch:
                groups.setdefault(_options_key(item.options), []).append(item)
            for items in groups.values():
                await self._run_group(items)
