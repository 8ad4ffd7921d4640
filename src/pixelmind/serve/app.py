"""The HTTP API of ``pixelmind serve``: a thin FastAPI layer over :class:`pixelmind.api.Model`.

Endpoints (all errors are JSON ``{"error": "<one line>"}``):

* ``GET /health``: ``{"status": "ok", "models": n}`` (never needs the API key).
* ``GET /v1/models``: the served models and their batching settings.
* ``POST /v1/models/{name}/predict``: one image, as the multipart field ``file`` or as the raw
  body; ``?render=true`` answers the rendered image as PNG with the result in the
  ``X-Pixelmind-Result`` header.
* ``POST /v1/models/{name}/explain``: heat maps (:mod:`pixelmind.explain.serve`).
* ``POST /v1/models/{name}/embed`` and, with an index, ``/search`` (:mod:`pixelmind.similarity.serve`).
* ``/v1/runs/...``: the training runs under ``runs_dir`` (:mod:`pixelmind.serve.runs`).
* ``GET /``: the web page; ``/static/...`` its files; ``/docs``: the OpenAPI docs.

The server knows no task by name: it calls ``task.predict`` and uses the Result objects'
``to_dict()``, ``render()`` and, when present, their ``data`` bytes (a bitstream).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import inspect
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pixelmind.api import Model
from pixelmind.data.decode import ImageDecodeError, load_image
from pixelmind.errors import PixelmindError
from pixelmind.explain.pipeline import available_methods
from pixelmind.explain.serve import explain_router
from pixelmind.serve.batching import DynamicBatcher, QueueFullError
from pixelmind.serve.settings import ServeSettings
from pixelmind.similarity.serve import similarity_router

STATIC_DIR = Path(__file__).parent / "static"


class UploadTooLarge(Exception):
    """The request body is over ``max_upload_bytes`` (413)."""


class PixelLimitError(ImageDecodeError):
    """The image has more pixels than ``max_pixels`` (413)."""


@dataclass
class ServedModel:
    """One model behind the API: its name, the loaded :class:`Model`, its batcher and identity."""

    name: str
    model: Model
    batcher: DynamicBatcher
    sha256: str | None
    options: frozenset[str] = field(default_factory=frozenset)  # keyword parameters its predict takes
    index: Any = None  # a similarity index made with this model (/search), see pixelmind.similarity.serve

    def describe(self) -> dict[str, Any]:
        meta, task = self.model.meta, self.model.task
        return {
            "name": self.name, "task": meta.task, "model": meta.model, "classes": list(meta.class_names),
            "input_size": None if getattr(task, "dynamic_image_size", False) else meta.imgsz,
            "sha256": self.sha256, "explain_methods": available_methods(self.model),
            "index": {k: self.index.info[k] for k in ("count", "kind", "dim")} if self.index is not None else None,
            "batching": {"max_batch": self.batcher.max_batch, "max_wait_ms": self.batcher.max_wait_ms},
        }  # fmt: skip


def _predict_options(task: Any) -> frozenset[str]:
    """The named keyword parameters of ``task.predict`` (``**kwargs`` catch-alls do not count)."""
    params = inspect.signature(task.predict).parameters.values()
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return frozenset(p.name for p in params if p.kind in kinds)


def _served_name(path: Path) -> str:
    """The file stem, or the run's name for a run's ``<run>/weights/best.safetensors`` (or ``last``)."""
    if path.stem in ("best", "last") and path.parent.name == "weights" and path.parent.parent.name:
        return path.parent.parent.name
    return path.stem


def _unique_names(paths: list[Path]) -> list[str]:
    names: list[str] = []
    for p in paths:
        base = _served_name(p)
        name, i = base, 1
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.append(name)
    return names


def _load_models(weights: list[Path | str] | dict[str, Model], device: str) -> dict[str, Model]:
    if isinstance(weights, dict):
        return dict(weights)
    paths = [Path(w) for w in weights]
    return {name: Model.load(p, device=device) for name, p in zip(_unique_names(paths), paths)}


def _served(name: str, model: Model, settings: ServeSettings) -> ServedModel:
    from pixelmind.engine.checkpoint import sha256_file

    net, meta, task = model._inference_network(), model.meta, model.task  # detect: BatchNorm folded
    batcher = DynamicBatcher(
        lambda images, **options: task.predict(net, images, meta, **options),
        max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms, queue_size=settings.queue_size, name=name,
    )  # fmt: skip
    sha = (
        sha256_file(model.weights_path) if model.weights_path and Path(model.weights_path).is_file() else None
    )
    return ServedModel(name, model, batcher, sha, _predict_options(task))


def _decode(data: bytes, max_pixels: int, name: str):
    """Decode upload bytes; refuse too many pixels from the header alone (decompression bombs)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as probe:
            w, h = probe.size
    except Image.DecompressionBombError:
        raise PixelLimitError(f"{name}: too many pixels (decompression bomb guard)") from None
    except Exception:  # noqa: BLE001 - load_image says what is wrong with the file
        pass
    else:
        if w * h > max_pixels:
            raise PixelLimitError(f"{name}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,}")
    return load_image(data, max_pixels, name)


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def request_error(err: BaseException, timeout_s: float) -> JSONResponse:
    """The one-line answer to what went wrong while handling an upload (shared by predict, explain, embed, search)."""
    if isinstance(err, StarletteHTTPException):  # e.g. an empty upload (400)
        return _error(err.status_code, str(err.detail), getattr(err, "headers", None))
    if isinstance(err, asyncio.TimeoutError):
        return _error(504, f"request took over {timeout_s:g} s")
    if isinstance(err, UploadTooLarge):
        return _error(413, str(err), {"Connection": "close"})
    if isinstance(err, PixelLimitError):
        return _error(413, str(err))
    if isinstance(err, (ImageDecodeError, PixelmindError)):  # a bad image, method, class or option
        return _error(400, str(err))
    if isinstance(err, QueueFullError):
        return _error(503, str(err), {"Retry-After": "1"})
    return _error(500, _one_line(err))  # a failing model call: one line, the server goes on


async def _read_body(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The request body in chunks, raising :class:`UploadTooLarge` as soon as it passes ``limit`` bytes."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise UploadTooLarge(f"upload over the limit of {limit:,} bytes")
        if chunk:
            yield chunk


async def _upload_bytes(request: Request, limit: int) -> bytes:
    """The image bytes of a request: the multipart field ``file`` or the raw body, at most ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise HTTPException(400, "bad Content-Length header")
        if int(length) > limit:
            raise UploadTooLarge(f"upload of {int(length):,} bytes is over the limit of {limit:,} bytes")
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/"):
        from starlette.formparsers import MultiPartException, MultiPartParser

        parser = MultiPartParser(request.headers, _read_body(request, limit), max_files=1, max_fields=16)
        try:
            form = await parser.parse()
        except MultiPartException as err:
            raise HTTPException(400, f"bad multipart body ({err.message})") from None
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPException(400, "multipart body has no file field named 'file'")
            data = await upload.read()
        finally:
            await form.close()
    else:
        data = b"".join([chunk async for chunk in _read_body(request, limit)])
    if not data:
        raise HTTPException(400, "empty upload: send the image as the body or as the multipart field 'file'")
    return data


def create_app(
    weights: list[Path | str] | dict[str, Model], settings: ServeSettings | None = None
) -> FastAPI:
    """Build the HTTP API for some models.

    Args:
        weights: weights files (served under their file stems, or the run's name for a run's
            ``weights/best.safetensors``; made unique: ``exp``, ``exp_1``)
            or ``{name: Model}`` of loaded models.
        settings: limits, batching and the API key (defaults: :class:`ServeSettings`).

    Returns:
        The FastAPI app; run it with ``uvicorn.run(app)``. Its lifespan starts and stops the batchers.

    Example:
        >>> from fastapi.testclient import TestClient      # doctest: +SKIP
        >>> app = create_app(["runs/classify/exp/weights/best.safetensors"])  # doctest: +SKIP
        >>> with TestClient(app) as client:                  # doctest: +SKIP
        ...     client.get("/v1/models").json()[0]["name"]
        'best'
    """
    settings = settings or ServeSettings()
    served = {name: _served(name, m, settings) for name, m in _load_models(weights, settings.device).items()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        for s in served.values():
            s.batcher.start()
        try:
            yield
        finally:
            for s in served.values():
                await s.batcher.stop()

    app = FastAPI(
        title="pixelmind",
        summary="Vision models over HTTP: classify, enhance, compress and the tasks to come.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.served = served
    app.state.settings = settings

    async def require_key(request: Request) -> None:
        """With an API key set: the ``X-API-Key`` header or ``Authorization: Bearer <key>``."""
        if settings.api_key is None:
            return
        given = request.headers.get("x-api-key")
        if given is None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else None
        if not given or not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise HTTPException(401, "missing or wrong API key (send X-API-Key or Authorization: Bearer)",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "path", "body"))
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
        return _error(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception):
        return _error(500, _one_line(exc))

    @app.get("/health", summary="Liveness: status and number of models", tags=["server"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": len(served)}

    @app.get("/v1/models", summary="The served models, their classes, checksums and batching",
             tags=["models"], dependencies=[Depends(require_key)])  # fmt: skip
    async def list_models() -> list[dict[str, Any]]:
        return [s.describe() for s in served.values()]

    @app.post(
        "/v1/models/{name}/predict",
        summary="Run a model on one image (multipart field 'file' or the raw body)",
        description="JSON with the task's result, or with `render=true` the rendered image as PNG and the "
        "result in the `X-Pixelmind-Result` header. A result holding a bitstream also returns it as "
        "`bitstream_base64`. Errors: 400 bad image, 401 key, 404 model, 413 too big, 503 busy, 504 timeout.",
        tags=["models"],
        dependencies=[Depends(require_key)],
        responses={
            200: {"content": {"image/png": {}}, "description": "JSON result, or PNG with render=true"}
        },
    )
    async def predict(
        name: str,
        request: Request,
        render: bool = Query(False, description="answer the rendered image (PNG) instead of JSON"),
        topk: int | None = Query(None, ge=1, le=1000, description="classification: how many labels"),
    ) -> Response:
        t0 = time.perf_counter()
        entry = served.get(name)
        if entry is None:
            raise HTTPException(404, f"no model named {name!r}; served: {', '.join(served) or 'none'}")
        options = {k: v for k, v in {"topk": topk}.items() if v is not None and k in entry.options}
        try:
            return await asyncio.wait_for(
                _handle(entry, request, render, options, t0), settings.request_timeout_s
            )
        except HTTPException:
            raise
        except Exception as err:  # noqa: BLE001 - every failure answers in one line
            return request_error(err, settings.request_timeout_s)

    async def _handle(
        entry: ServedModel, request: Request, render: bool, options: dict[str, Any], t0: float
    ) -> Response:
        data = await _upload_bytes(request, settings.max_upload_bytes)
        image = await asyncio.to_thread(_decode, data, settings.max_pixels, "upload")
        result, batch_size = await entry.batcher.submit(image, **options)
        out = result.to_dict()
        if render:
            rendered = await asyncio.to_thread(result.render, image)
            if rendered is None:
                raise HTTPException(
                    400, f"render: the {entry.model.meta.task} result of {entry.name!r} has no image"
                )
            png = await asyncio.to_thread(_png, rendered)
            headers = {"X-Pixelmind-Result": json.dumps(out, ensure_ascii=True, default=float),
                       "X-Pixelmind-Model": entry.name, "X-Pixelmind-Batch-Size": str(batch_size),
                       "X-Pixelmind-Ms": f"{(time.perf_counter() - t0) * 1000:.1f}"}  # fmt: skip
            for attr in ("bpp", "psnr"):
                value = getattr(result, attr, None)
                if isinstance(value, (int, float)):
                    headers[f"X-Pixelmind-{attr.upper() if attr == 'psnr' else attr.capitalize()}"] = (
                        f"{value:.5g}"
                    )
            return Response(png, media_type="image/png", headers=headers)
        body: dict[str, Any] = {"model": entry.name, "task": entry.model.meta.task, "result": out}
        bitstream = getattr(result, "data", None)
        if isinstance(bitstream, (bytes, bytearray)):
            body["bitstream_base64"] = base64.b64encode(bytes(bitstream)).decode("ascii")
        body.update(ms=round((time.perf_counter() - t0) * 1000, 2), batch_size=batch_size)
        return JSONResponse(body)

    app.include_router(explain_router(served, settings), dependencies=[Depends(require_key)])
    app.include_router(similarity_router(served, settings), dependencies=[Depends(require_key)])

    if settings.review is not None:  # pixelmind review: pre-labels or suspected label errors, one at a time
        from pixelmind.label.review import review_router

        app.include_router(review_router(settings.review), dependencies=[Depends(require_key)])

    # the training runs browser (its own module) behind the same key
    try:
        from pixelmind.serve.runs import runs_router
    except ModuleNotFoundError as err:  # only when the module itself is missing
        if err.name != "pixelmind.serve.runs":
            raise
    else:
        app.include_router(runs_router(settings.runs_dir), dependencies=[Depends(require_key)])

    if STATIC_DIR.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        page = STATIC_DIR / "index.html"
        if page.is_file():
            return FileResponse(page, media_type="text/html")
        items = "".join(
            f"<li><code>POST /v1/models/{n}/predict</code> ({s.model.meta.task})</li>"
            for n, s in served.items()
        )
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><title>pixelmind</title><h1>pixelmind serve</h1>"
            f"<ul><li><code>GET /health</code></li><li><code>GET /v1/models</code></li>{items}</ul>"
            '<p>API docs: <a href="/docs">/docs</a></p>'
        )

    return app


def _version() -> str:
    from pixelmind import __version__

    return __version__
