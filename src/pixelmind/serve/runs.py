"""Training runs over HTTP: list ``<root>/<task>/<name>/`` runs, their results.csv and plots.

No request names a path: every ``task``, ``name`` and plot ``file`` in a URL is looked up among
the entries of the real folder listing (plain folders and files only, no symlinks, nothing that
resolves outside the root), and anything not found there is a 404.

Example:
    >>> from fastapi import FastAPI
    >>> app = FastAPI(); app.include_router(runs_router(Path("runs")))
"""

from __future__ import annotations

import csv
import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse

RUN_FILES = ("results.csv", "metrics.json")
PLOT_SUFFIXES = (".png",)


def _not_found(what: str) -> JSONResponse:
    return JSONResponse({"error": f"not found: {what}"}, status_code=404)


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except OSError:
        return False


def _entries(folder: Path, root: Path, want_dir: bool) -> dict[str, Path]:
    """Name -> path of ``folder``'s plain (non-symlink) sub-folders or files that stay under ``root``."""
    out: dict[str, Path] = {}
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.name.startswith(".") or e.is_symlink():
                    continue
                ok = e.is_dir(follow_symlinks=False) if want_dir else e.is_file(follow_symlinks=False)
                if ok and _inside(Path(e.path), root):
                    out[e.name] = Path(e.path)
    except OSError:  # missing or unreadable folder: nothing in it
        pass
    return out


def _is_run(path: Path, root: Path) -> bool:
    return any(f in _entries(path, root, want_dir=False) for f in RUN_FILES)


def _real_root(root: Path) -> Path | None:
    try:
        return root.resolve(strict=True) if root.is_dir() else None
    except OSError:
        return None


def _find_run(root: Path, task: str, name: str) -> Path | None:
    real = _real_root(root)
    if real is None:
        return None
    task_dir = _entries(real, real, want_dir=True).get(task)
    run = _entries(task_dir, real, want_dir=True).get(name) if task_dir is not None else None
    return run if run is not None and _is_run(run, real) else None


def _plots(run: Path, root: Path) -> dict[str, Path]:
    plots = _entries(run, root, want_dir=True).get("plots")
    if plots is None:
        return {}
    return {
        n: p for n, p in _entries(plots, root, want_dir=False).items() if n.lower().endswith(PLOT_SUFFIXES)
    }


def _number(v: str | None) -> float | str | None:
    if v is None or v.strip() == "":
        return None
    try:
        x = float(v)
    except ValueError:
        return v
    return x if math.isfinite(x) else None  # JSON has no NaN / inf


def _read_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _finite(metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, dict):
        return {}
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}  # fmt: skip


def _describe(root: Path, task: str, name: str, run: Path) -> dict[str, Any]:
    files = _entries(run, root, want_dir=False)
    mtime = max((p.stat().st_mtime for f, p in files.items() if f in RUN_FILES), default=run.stat().st_mtime)
    payload = _read_json(files.get("metrics.json"))
    return {
        "id": f"{task}/{name}",
        "task": task,
        "name": name,
        "modified": mtime,
        "modified_iso": datetime.fromtimestamp(mtime, tz=timezone.utc).isoformat(timespec="seconds"),
        "metrics": _finite(payload.get("metrics")),
        "best_epoch": payload.get("best_epoch"),
        "epochs_run": payload.get("epochs_run"),
        "has_results": "results.csv" in files,
        "plots": sorted(_plots(run, root)),
    }


def list_runs(root: Path) -> list[dict[str, Any]]:
    """Every run under ``root``, newest first; an absent root has none."""
    real = _real_root(root)
    if real is None:
        return []
    runs = []
    for task, task_dir in _entries(real, real, want_dir=True).items():
        for name, run in _entries(task_dir, real, want_dir=True).items():
            if _is_run(run, real):
                try:
                    runs.append(_describe(real, task, name, run))
                except OSError:  # removed while listing
                    continue
    return sorted(runs, key=lambda r: (-r["modified"], r["id"]))


def read_results(path: Path) -> list[dict[str, float | str | None]]:
    with path.open(newline="") as f:
        return [{k: _number(v) for k, v in row.items() if k is not None} for row in csv.DictReader(f)]


def runs_router(root: Path) -> APIRouter:
    """``GET /v1/runs``, ``/v1/runs/{task}/{name}/results`` and ``/v1/runs/{task}/{name}/plots/{file}``."""
    root = Path(root)
    router = APIRouter(tags=["runs"])

    @router.get("/v1/runs")
    def runs() -> list[dict[str, Any]]:
        return list_runs(root)

    @router.get("/v1/runs/{task}/{name}/results", response_model=None)
    def results(task: str, name: str) -> Any:
        run, real = _find_run(root, task, name), _real_root(root)
        csv_path = _entries(run, real, want_dir=False).get("results.csv") if run and real else None
        if csv_path is None:
            return _not_found("results")
        try:
            return read_results(csv_path)
        except (OSError, csv.Error, UnicodeDecodeError):
            return JSONResponse({"error": "results.csv could not be read"}, status_code=500)

    @router.get("/v1/runs/{task}/{name}/plots/{file}", response_model=None)
    def plot(task: str, name: str, file: str) -> Any:
        run, real = _find_run(root, task, name), _real_root(root)
        path = _plots(run, real).get(file) if run and real else None
        if path is None:
            return _not_found("plot")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-cache"})

    return router
