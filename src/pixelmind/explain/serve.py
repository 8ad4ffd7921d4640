"""``POST /v1/models/{name}/explain``: heat maps over an uploaded image (mounted by :mod:`pixelmind.serve.app`).

Each served model explains on its own copy of the network, one request at a time: CAM methods hook
layers, which must not see the batcher's concurrent predictions.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import threading
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse


class _Explainer:
    """A served model's private copy for explanations, built on first use, and the lock around it."""

    def __init__(self, model: Any) -> None:
        self.model, self.lock, self.copy = model, threading.Lock(), None

    def run(self, image, method: str | None, classes: list[str] | None, faithfulness: bool, options: dict[str, Any]):
        from pixelmind.explain.pipeline import check_method, explain_image
        from pixelmind.explain.render import overlay
        from pixelmind.serve.app import _png

        method = check_method(self.model, method)
        with self.lock:
            if self.copy is None:
                self.copy = copy.copy(self.model)
                self.copy.net = copy.deepcopy(self.model.net)
            rows = explain_image(self.copy, image, method, classes, faithfulness, **options)
        for row in rows:
            row["overlay_png_base64"] = base64.b64encode(_png(overlay(image, row.pop("map")))).decode("ascii")
        return method, rows


def explain_router(served: dict[str, Any], settings: Any) -> APIRouter:
    """The router; ``served`` maps names to :class:`pixelmind.serve.app.ServedModel`."""
    from pixelmind.serve.app import _decode, _upload_bytes, request_error

    router = APIRouter()
    explainers = {name: _Explainer(entry.model) for name, entry in served.items()}

    @router.post(
        "/v1/models/{name}/explain",
        summary="Heat maps of what the model used for one image (multipart field 'file' or the raw body)",
        description="JSON: per explained class, box, region, change or bit map its label, the overlay as "
        "`overlay_png_base64` and, with `faithfulness=true`, deletion/insertion AUC beside random maps'. "
        "Errors: 400 bad image or method, 401 key, 404 model, 413 too big, 504 timeout.",
        tags=["models"],
    )
    async def explain(
        name: str,
        request: Request,
        method: str | None = Query(None, description="gradcam, gradcam++, eigencam, scorecam, rollout, ig, gradient, "
                                                       "difference, bits (default: the task's first)"),
        class_: list[str] | None = Query(None, alias="class", description="explain these classes (default: the predicted)"),
        faithfulness: bool = Query(True, description="deletion/insertion AUC beside random maps'"),
        conf: float | None = Query(None, ge=0, le=1, description="detect: the least box score explained"),
    ) -> JSONResponse:
        t0 = time.perf_counter()
        if name not in served:
            raise HTTPException(404, f"no model named {name!r}; served: {', '.join(served) or 'none'}")
        options = {"conf": conf} if conf is not None else {}
        try:
            data = await _upload_bytes(request, settings.max_upload_bytes)
            image = await asyncio.to_thread(_decode, data, settings.max_pixels, "upload")
            work = asyncio.to_thread(explainers[name].run, image, method, class_, faithfulness, options)
            method, rows = await asyncio.wait_for(work, settings.request_timeout_s)
        except Exception as err:  # noqa: BLE001 - every failure answers in one line
            return request_error(err, settings.request_timeout_s)
        return JSONResponse({"model": name, "task": served[name].model.meta.task, "method": method, "explanations": rows,
                             "ms": round((time.perf_counter() - t0) * 1000, 2)})  # fmt: skip

    return router
