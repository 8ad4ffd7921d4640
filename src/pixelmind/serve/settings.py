"""The settings of ``pixelmind serve``: limits, batching, authentication."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pixelmind.errors import ConfigError


@dataclass
class ServeSettings:
    """What the server accepts and how it batches.

    Args:
        max_upload_bytes: largest request body (the image file); larger ones get 413.
        max_pixels: largest decoded image (width x height); larger ones get 413 before decoding.
        request_timeout_s: a request still unanswered after this long gets 504.
        max_batch: most images per model call (1 disables batching).
        max_wait_ms: how long the first image of a batch waits for others. 0 (the default) batches
            what queued while the previous call ran, with no extra wait: on the load test this beat a
            5 ms wait for both a compute-bound and an HTTP-bound model (bench/RESULTS.md section 9).
        queue_size: images waiting per model; beyond that, requests get 503.
        api_key: when set, every ``/v1`` endpoint needs ``X-API-Key`` or ``Authorization: Bearer``.
        runs_dir: the training runs folder the ``/v1/runs`` endpoints browse.
        device: where the models run (``cpu``, ``cuda``, ``cuda:N``).
        review: a ``label`` output or ``check --label-errors`` report folder the web page reviews.
        indexes: similarity index folders (``pixelmind index``); each answers ``/search`` for the
            served model whose weights made it.

    Example:
        >>> s = ServeSettings(api_key="secret", max_batch=1)
        >>> s.max_upload_bytes, s.max_batch
        (20000000, 1)
    """

    max_upload_bytes: int = 20_000_000
    max_pixels: int = 40_000_000
    request_timeout_s: float = 30.0
    max_batch: int = 8
    max_wait_ms: float = 0.0
    queue_size: int = 64
    api_key: str | None = None
    runs_dir: Path = Path("runs")
    device: str = "cpu"
    indexes: tuple[Path, ...] = ()
    review: Path | None = None

    def __post_init__(self) -> None:
        self.runs_dir = Path(self.runs_dir)
        self.indexes = tuple(Path(p) for p in self.indexes)
        self.review = Path(self.review) if self.review is not None else None
        for name in ("max_upload_bytes", "max_pixels", "max_batch", "queue_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0 or self.request_timeout_s <= 0:
            raise ConfigError("max_wait_ms must be >= 0 and request_timeout_s > 0")
