"""The ``embed``, ``index``, ``search`` and ``verify`` verbs (registered by :mod:`pixelmind.cli`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

WEIGHTS_HELP = "embed weights, or classify weights (their penultimate features)"


def embed(
    weights: Path = typer.Option(..., help=WEIGHTS_HELP),
    source: str = typer.Option(..., help="an image, a folder, a glob or a .txt list"),
    out: Path = typer.Option(..., "-o", "--out", help="writes OUT.npy (vectors) and OUT.jsonl (their paths, in order)"),
    batch: int = typer.Option(64),
    device: str = typer.Option("cpu"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON on the last line"),
) -> None:
    """Embed images: one unit-length vector per readable image, unreadable ones skipped and counted."""
    import numpy as np

    from pixelmind.api import Model
    from pixelmind.cli import _console, _emit_json
    from pixelmind.engine.console import PredictProgress
    from pixelmind.similarity.extract import embed_files

    model = Model.load(weights, device=device)
    err = _console(True)
    with PredictProgress(err, description="embed") as bar:
        vectors, paths, errors = embed_files(model, source, batch, on_item=bar.update)
    base = out.with_suffix("") if out.suffix in (".npy", ".jsonl") else out
    base.parent.mkdir(parents=True, exist_ok=True)
    np.save(base.with_suffix(".npy"), vectors)
    with base.with_suffix(".jsonl").open("w") as f:
        for i, p in enumerate(paths):
            f.write(json.dumps({"row": i, "source": p}) + "\n")
    for e in errors:
        err.print(f"skipped: {e}", markup=False)
    summary = {"vectors": str(base.with_suffix(".npy")), "paths": str(base.with_suffix(".jsonl")),
               "count": len(paths), "dim": int(vectors.shape[1]), "skipped": len(errors)}  # fmt: skip
    _console(json_out).print(f"{len(paths)} vectors of {vectors.shape[1]} values -> {summary['vectors']} "
                             f"(paths: {summary['paths']}); {len(errors)} skipped")  # fmt: skip
    if json_out:
        _emit_json(summary)


def index(
    weights: Path = typer.Option(..., help=WEIGHTS_HELP),
    source: str = typer.Option(..., help="the gallery: an image folder, a glob or a .txt list"),
    out: Path = typer.Option(..., "-o", "--out", help="index folder (index.faiss, items.jsonl, index.json)"),
    kind: str = typer.Option("auto", help="auto | flat (exact) | hnsw | ivf; auto: exact below 100k vectors, else hnsw"),
    batch: int = typer.Option(64),
    device: str = typer.Option("cpu"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Build a faiss similarity index of a gallery, with its paths and the model's fingerprint beside it."""
    from pixelmind.api import Model
    from pixelmind.cli import _console, _emit_json
    from pixelmind.engine.console import PredictProgress
    from pixelmind.similarity.search import build_index

    model = Model.load(weights, device=device)
    err = _console(True)
    with PredictProgress(err, description="index") as bar:
        info = build_index(model, source, out, kind, batch, on_item=bar.update)
    for e in info["errors"]:
        err.print(f"skipped: {e}", markup=False)
    _console(json_out).print(f"{info['count']} vectors ({info['dim']} values, {info['kind']}) -> {out}; {info['skipped']} skipped")
    if json_out:
        _emit_json(info)


def search(
    index: Path = typer.Option(..., help="an index folder made by pixelmind index"),
    source: str = typer.Option(..., help="query image(s): a file, a folder or a glob"),
    k: int = typer.Option(5, min=1, help="neighbours per query"),
    weights: Optional[Path] = typer.Option(None, help="the weights that made the index (default: the path it records)"),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="folder for results.jsonl and a picture per query"),
    device: str = typer.Option("cpu"),
    json_out: bool = typer.Option(False, "--json", help="one JSON line per query"),
) -> None:
    """The k most similar gallery images of each query, by cosine similarity."""
    from pixelmind.api import Model
    from pixelmind.cli import _console
    from pixelmind.errors import DataError
    from pixelmind.similarity.index import VectorIndex
    from pixelmind.similarity.search import search_index

    vector_index = VectorIndex.load(index)
    weights = weights or (Path(vector_index.info["weights"]) if vector_index.info.get("weights") else None)
    if weights is None or not weights.is_file():
        raise DataError(f"{index}: the weights it was made with ({weights}) are not there; give --weights")
    model = Model.load(weights, device=device)
    console, err = _console(json_out), _console(True)
    rows = list(search_index(model, vector_index, source, k))
    if out is not None:
        _save_results(rows, out)
    for row in rows:
        if json_out:
            typer.echo(json.dumps(row))
        elif "error" in row:
            err.print(f"skipped: {row['error']}", markup=False)
        else:
            hits = "  ".join(f"{Path(n['source']).name} {n['score']:.3f}" for n in row["neighbours"])
            console.print(f"{row['source']}: {hits}", markup=False)
    if out is not None:
        console.print(f"results: {out / 'results.jsonl'} (pictures: {out}/*.jpg)")


def _save_results(rows: list[dict], out: Path, pictures: int = 50) -> None:
    from pixelmind.viz.draw import neighbour_strip

    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    for i, row in enumerate(r for r in rows if "neighbours" in r):
        if i == pictures:
            break
        neighbour_strip(row["source"], [(n["source"], n["score"]) for n in row["neighbours"]]).save(
            out / f"{i:04d}_{Path(row['source']).stem}.jpg", quality=90)  # fmt: skip


def verify(
    images: list[Path] = typer.Argument(..., help="two images: A B"),
    weights: Path = typer.Option(..., help=WEIGHTS_HELP),
    threshold: Optional[float] = typer.Option(None, help="same when the cosine similarity is at least this "
                                                          "(default: the one embed training stored)"),
    device: str = typer.Option("cpu"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Same identity or not: the cosine similarity of two images' embeddings and the threshold."""
    from pixelmind.api import Model
    from pixelmind.cli import _console, _emit_json
    from pixelmind.errors import ConfigError
    from pixelmind.similarity.search import verify_pair

    if len(images) != 2:
        raise ConfigError(f"verify: give exactly two images (got {len(images)})")
    result = verify_pair(Model.load(weights, device=device), images[0], images[1], threshold)
    verdict = "same" if result["same"] else "different"
    _console(json_out).print(f"{verdict}: score {result['score']:.4f} {'>=' if result['same'] else '<'} threshold {result['threshold']:.4f}")
    if json_out:
        _emit_json(result)


COMMANDS = [embed, index, search, verify]
