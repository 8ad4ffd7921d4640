"""``POST /v1/models/{name}/embed`` and ``/search`` (mounted by :mod:`pixelmind.serve.app`).

``/embed`` answers any served embed or classify model (penultimate features); ``/search`` the
model that made an index given to the server (``pixelmind serve --index``), with links to the
neighbours' thumbnails at ``GET /v1/models/{name}/search/items/{id}``, which serves only the
images the index lists (never an arbitrary path).
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from pixelmind.errors import ConfigError

THUMB_PX = 256


def attach_indexes(served: dict[str, Any], indexes) -> None:
    """Give each index to the served model whose weights made it; an index no served model made is refused."""
    from pixelmind.similarity.index import VectorIndex

    by_sha = {entry.sha256: entry for entry in served.values() if entry.sha256}
    for folder in indexes:
        index = VectorIndex.load(folder)
        entry = by_sha.get(index.info.get("weights_sha256"))
        if entry is None:
            raise ConfigError(f"{folder}: made with {index.info.get('weights', '?')}, which is not among the served weights")
        entry.index = index


class _Extractors:
    """One :class:`~pixelmind.similarity.extract.FeatureExtractor` per served model, made on first use."""

    def __init__(self, served: dict[str, Any]) -> None:
        self.served, self.made, self.lock = served, {}, threading.Lock()

    def vector(self, name: str, image):
        from pixelmind.similarity.extract import FeatureExtractor

        with self.lock:
            if name not in self.made:
                self.made[name] = FeatureExtractor(self.served[name].model)
        return self.made[name]([image])[0]


def similarity_router(served: dict[str, Any], settings: Any) -> APIRouter:
    """The router; ``served`` maps names to :class:`pixelmind.serve.app.ServedModel`."""
    from pixelmind.serve.app import _decode, _upload_bytes, request_error

    attach_indexes(served, settings.indexes)
    router = APIRouter()
    extractors = _Extractors(served)

    def entry_for(name: str, need_index: bool = False):
        if name not in served:
            raise HTTPException(404, f"no model named {name!r}; served: {', '.join(served) or 'none'}")
        if need_index and served[name].index is None:
            raise HTTPException(404, f"{name!r} has no similarity index: start the server with --index (made by pixelmind index)")
        return served[name]

    async def embed_upload(name: str, request: Request):
        data = await _upload_bytes(request, settings.max_upload_bytes)
        image = await asyncio.to_thread(_decode, data, settings.max_pixels, "upload")
        return await asyncio.wait_for(asyncio.to_thread(extractors.vector, name, image), settings.request_timeout_s)

    @router.post("/v1/models/{name}/embed", tags=["similarity"],
                 summary="The unit-length embedding of one image (embed models; classify: penultimate features)")  # fmt: skip
    async def embed(name: str, request: Request) -> JSONResponse:
        t0 = time.perf_counter()
        entry_for(name)
        try:
            vector = await embed_upload(name, request)
        except Exception as err:  # noqa: BLE001 - every failure answers in one line
            return request_error(err, settings.request_timeout_s)
        return JSONResponse({"model": name, "dim": len(vector), "embedding": [round(float(v), 6) for v in vector],
                             "ms": round((time.perf_counter() - t0) * 1000, 2)})  # fmt: skip

    @router.post("/v1/models/{name}/search", tags=["similarity"],
                 summary="The k most similar images of the model's index to one uploaded image")  # fmt: skip
    async def search(name: str, request: Request, k: int = Query(5, ge=1, le=100, description="neighbours")) -> JSONResponse:
        t0 = time.perf_counter()
        entry = entry_for(name, need_index=True)
        try:
            vector = await embed_upload(name, request)
        except Exception as err:  # noqa: BLE001 - every failure answers in one line
            return request_error(err, settings.request_timeout_s)
        scores, ids = entry.index.search(vector[None], k)
        neighbours = [{"id": int(i), "source": entry.index.items[i], "score": round(float(s), 6),
                       "image": f"/v1/models/{name}/search/items/{int(i)}"} for s, i in zip(scores[0], ids[0]) if i >= 0]  # fmt: skip
        return JSONResponse({"model": name, "neighbours": neighbours, "ms": round((time.perf_counter() - t0) * 1000, 2)})

    @router.get("/v1/models/{name}/search/items/{item}", tags=["similarity"],
                summary="A thumbnail (JPEG) of one image of the model's index")  # fmt: skip
    async def item_image(name: str, item: int) -> Response:
        entry = entry_for(name, need_index=True)
        if not 0 <= item < len(entry.index.items):
            raise HTTPException(404, f"no item {item} in {name!r}'s index ({len(entry.index.items)} items)")
        try:
            jpeg = await asyncio.to_thread(_thumbnail, entry.index.items[item])
        except Exception as err:  # noqa: BLE001 - a gallery file gone or broken since indexing
            raise HTTPException(404, f"item {item}: {str(err).splitlines()[0][:200]}") from None
        return Response(jpeg, media_type="image/jpeg")

    return router


def _thumbnail(path: str) -> bytes:
    from pixelmind.data.decode import load_image

    image = load_image(path).convert("RGB")
    image.thumbnail((THUMB_PX, THUMB_PX))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=88)
    return buf.getvalue()
