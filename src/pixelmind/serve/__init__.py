"""``pixelmind serve``: an HTTP API over :class:`pixelmind.api.Model` for every task.

Example:
    >>> from pixelmind.serve import ServeSettings
    >>> ServeSettings(max_batch=4).max_batch
    4

Run it with ``pixelmind serve --weights best.safetensors`` or build the app in Python with
:func:`pixelmind.serve.app.create_app` (imported lazily: FastAPI loads only when serving).
"""

from __future__ import annotations

from typing import Any

from pixelmind.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def create_app(*args: Any, **kwargs: Any):
    """Build the FastAPI app; see :func:`pixelmind.serve.app.create_app`."""
    from pixelmind.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)
