"""The ``pixelmind`` command: a thin Typer layer over :mod:`pixelmind.api`.

Exit codes: 0 ok, 2 bad usage / config / data / weights (one line on stderr), 1 anything else.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from pixelmind.errors import PixelmindError

app = typer.Typer(
    name="pixelmind",
    help="Train, evaluate, run, export and serve deep vision models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _console(json_mode: bool = False):
    from rich.console import Console

    # With --json, human output goes to stderr so stdout's last line is the JSON object.
    return Console(stderr=json_mode, highlight=False, soft_wrap=True)


def _parse_sets(pairs: list[str] | None) -> dict[str, Any]:
    import yaml

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise PixelmindError(f"--set: expected KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


def _emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=float) + "\n")
    sys.stdout.flush()


@app.command()
def train(
    task: str = typer.Option("classify", help="classify | detect | segment | generate | enhance | compress | embed"),
    data: Optional[str] = typer.Option(None, help="data set folder / manifest, or a built-in name (digits)"),
    model: Optional[str] = typer.Option(None, help="registered model or any timm model name"),
    epochs: Optional[int] = typer.Option(None),
    imgsz: Optional[int] = typer.Option(None, help="training image size (pixels, square)"),
    batch: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda | cuda:N"),
    name: Optional[str] = typer.Option(None, help="run name (incremented if it exists)"),
    project: Optional[str] = typer.Option(None, help="runs root folder (default runs/)"),
    config: Optional[Path] = typer.Option(None, help="YAML file of config keys"),
    resume: Optional[Path] = typer.Option(None, help="run directory or its weights/last.safetensors"),
    weights: Optional[str] = typer.Option(None, help="start from local weights (.safetensors or .pth)"),
    teacher: Optional[str] = typer.Option(None, help="distil from this .safetensors model of the same task and classes"),
    pretrained: Optional[bool] = typer.Option(None, "--pretrained", help="timm hub weights (needs network)"),
    optimizer: Optional[str] = typer.Option(None, help="adamw | sgd"),
    precision: Optional[str] = typer.Option(None, help="fp32 | bf16 | fp16 | auto (bf16 where native)"),
    workers: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    patience: Optional[int] = typer.Option(None, help="early stopping patience in epochs"),
    ema: Optional[bool] = typer.Option(None, "--ema", help="keep EMA weights"),
    calibrate: Optional[bool] = typer.Option(None, "--calibrate", help="fit a temperature on the val set"),
    augment: Optional[str] = typer.Option(None, help="none | light | trivial | randaugment"),
    val_fraction: Optional[float] = typer.Option(None, help="val share when the data has no val split"),
    degradation: Optional[str] = typer.Option(None, help="enhance: sr | denoise | jpeg | deblur"),
    scale: Optional[int] = typer.Option(None, help="enhance: super-resolution factor 2, 3 or 4"),
    quality: Optional[int] = typer.Option(None, help="compress: quality level 1 (smallest files) to 8"),
    loss: Optional[str] = typer.Option(None, help="embed: arcface | cosface | supcon | triplet; enhance: l1 | mse | charbonnier; segment: ce | dice | focal | ce+dice | focal+dice"),
    limit: Optional[int] = typer.Option(None, help="use at most this many training images (quick tries)"),
    fid_weights: Optional[str] = typer.Option(None, help="generate: Inception weights file for FID/KID"),
    feature_weights: Optional[str] = typer.Option(None, help="generate: a pixelmind classifier of this domain as FID/KID extractor"),
    sample_steps: Optional[int] = typer.Option(None, help="generate, diffusion: DDIM steps of validation samples"),
    guidance: Optional[float] = typer.Option(None, help="generate, diffusion: classifier-free guidance of validation samples"),
    set_: Optional[list[str]] = typer.Option(None, "--set", "-s", help="any config key: --set mixup=0.2"),
    json_out: bool = typer.Option(False, "--json", help="print the final metrics as JSON on the last line"),
) -> None:
    """Train a model; leaves runs/<task>/<name>/ with weights, metrics, plots and report.md."""
    from pixelmind.api import Model

    overrides = dict(
        epochs=epochs, imgsz=imgsz, batch=batch, lr=lr, device=device, name=name, project=project, weights=weights, teacher=teacher,
        pretrained=pretrained, optimizer=optimizer, precision=precision, workers=workers, seed=seed, patience=patience,
        ema=ema, calibrate=calibrate, augment=augment, val_fraction=val_fraction, degradation=degradation, scale=scale, quality=quality,
        loss=loss, limit=limit, fid_weights=fid_weights, feature_weights=feature_weights, sample_steps=sample_steps, guidance=guidance,
    )  # fmt: skip
    overrides.update(_parse_sets(set_))
    if data is None and resume is None and not config:
        raise PixelmindError("data: --data is required (a folder, a .csv manifest, or a built-in name such as digits)")
    m = Model(model, task=task)
    metrics = m.train(data=data, config=config, resume=resume, console=_console(json_out), **overrides)
    if json_out and metrics:
        _emit_json({"run_dir": str(m.run_dir), **metrics})


@app.command()
def val(
    weights: Path = typer.Option(..., help="weights file (.safetensors, .onnx)"),
    data: Optional[str] = typer.Option(None, help="data set (default: the one the weights were trained on)"),
    split: str = typer.Option("val", help="val | test: the data set's test split (VOC test.txt, data.yaml test:, test/)"),
    batch: int = typer.Option(64),
    device: str = typer.Option("cpu"),
    plots: Optional[Path] = typer.Option(None, help="write the evaluation plots into this folder"),
    fid_weights: Optional[str] = typer.Option(None, help="generate: Inception weights file for FID/KID"),
    feature_weights: Optional[str] = typer.Option(None, help="generate: a pixelmind classifier of this domain as FID/KID extractor"),
    json_out: bool = typer.Option(False, "--json", help="print the metrics as JSON on the last line"),
) -> None:
    """Evaluate weights on a data set's validation (or test) split."""
    from pixelmind.api import Model

    m = Model.load(weights, device=device)
    metrics = m.val(data=data, split=split, batch=batch, plots_dir=plots, fid_weights=fid_weights, feature_weights=feature_weights)
    console = _console(json_out)
    console.print("  ".join(f"{k} {v:.4f}" if k not in ("samples", "skipped") else f"{k} {int(v)}" for k, v in metrics.items()))
    if json_out:
        _emit_json(metrics)


@app.command()
def predict(
    weights: Path = typer.Option(..., help="weights (.safetensors, .onnx, .torchscript)"),
    source: list[str] = typer.Option(..., help="image or video file, folder, glob, .txt list or stream URL; repeatable"),
    save: bool = typer.Option(False, "--save", help="write annotated images (an annotated .mp4 per video)"),
    stride: int = typer.Option(1, min=1, help="videos: every Nth frame"),
    out: Path = typer.Option(Path("runs/predict"), help="folder for --save and results.jsonl"),
    batch: int = typer.Option(32),
    topk: int = typer.Option(5),
    conf: Optional[float] = typer.Option(None, help="instance models: lowest score reported (default 0.5)"),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N; under torchrun, cuda means cuda:LOCAL_RANK"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress on stderr (terminal only)"),
) -> None:
    """Predict on images; prints one JSON line per image (errors included, never fatal).

    Streams: folders are walked lazily, so memory stays bounded whatever their size. Under
    ``torchrun --nproc-per-node N`` (or ``accelerate launch``) the files are split over the
    processes and rank 0 merges their results into OUT/results.jsonl in file order.
    """
    from collections import deque

    from pixelmind.api import Model
    from pixelmind.data.sources import ResolvedPaths, iter_sources
    from pixelmind.engine.console import PredictProgress
    from pixelmind.engine.sharding import barrier, dist_env, merge_shards, process_group, shard

    rank, world, local_rank = dist_env()
    if world > 1 and device == "cuda":
        device = f"cuda:{local_rank}"
    err = _console(True)
    indices: deque[int] = deque()  # global positions of the paths handed to predict_iter, not yet answered
    playing: list[str] = []  # the video whose frames are being answered (they share its index)

    def next_index(row: dict) -> int:
        source, video = row["source"], row["source"].split("#frame=")[0] if "frame" in row else None
        if playing and (video or source) != playing[0]:
            indices.popleft()  # the previous video is done
            playing.clear()
        if video is not None:
            playing[:] = [video]
            return indices[0]
        if playing:  # the video's last row: its error after the frames that could be read
            playing.clear()
        return indices.popleft()

    def paths():
        for i, path in shard(enumerate(iter_sources(source)), rank, world):
            indices.append(i)
            yield path

    with process_group(world):
        m = Model.load(weights, device=device)
        out.mkdir(parents=True, exist_ok=True)
        # per-rank picture folders: each process numbers its own pictures
        save_dir = (out if world == 1 else out / f"rank{rank}") if save else None
        target = out / ("results.jsonl" if world == 1 else f"results.rank{rank}.jsonl")
        n = errors = 0
        show = progress and rank == 0
        label = "predict" if world == 1 else f"predict (rank 0 of {world})"
        with target.open("w") as f, PredictProgress(err, enabled=show, description=label,
                                                    redirect_stdout=world == 1 and sys.stdout.isatty()) as bar:
            options = {"topk": topk} if conf is None else {"topk": topk, "conf": conf}
            for row in m.predict_iter(ResolvedPaths(paths()), batch=batch, save_dir=save_dir, stride=stride, **options):
                line = json.dumps({"index": next_index(row), **row})
                if world == 1:
                    sys.stdout.write(line + "\n")
                f.write(line + "\n")
                n += 1
                errors += "error" in row
                bar.update("error" in row)
        if world > 1:
            barrier()  # every shard file is complete
            if rank != 0:
                return
            n = errors = 0

            def echo(line: str, row: dict[str, Any]) -> None:
                nonlocal n, errors
                sys.stdout.write(line)
                n += 1
                errors += "error" in row

            shards = [out / f"results.rank{r}.jsonl" for r in range(world)]
            merge_shards(shards, out / "results.jsonl", on_line=echo)
            for s in shards:
                s.unlink()
    sys.stdout.flush()
    if (coco := _write_coco_results(out / "results.jsonl", out / "coco_results.json")) is not None:
        err.print(f"detections in COCO results format: {coco} (image_id = index, category_id = class index + 1)")
    err.print(f"{n} images, {errors} unreadable; results in {out / 'results.jsonl'}" + (f", pictures in {out}" if save else "")
              + (f" (merged from {world} processes)" if world > 1 else ""))


def _write_coco_results(jsonl: Path, target: Path) -> Path | None:
    """Rows with ``instances`` (instance masks) or ``detections`` (boxes) as one COCO results JSON list; None when there are none."""
    instance_rows = written = 0
    with jsonl.open() as src, target.open("w") as dst:
        dst.write("[")
        for line in src:
            row = json.loads(line)
            found = row.get("instances", row.get("detections"))
            instance_rows += found is not None
            for inst in found or []:
                item = {"image_id": row["index"], "category_id": inst["class_index"] + 1, "score": inst["score"], "bbox": inst["bbox"]}
                if "segmentation" in inst:
                    item["segmentation"] = inst["segmentation"]
                dst.write(("," if written else "") + json.dumps(item))
                written += 1
        dst.write("]\n")
    if not instance_rows:
        target.unlink()
        return None
    return target


@app.command()
def generate(
    weights: Path = typer.Option(..., help="generate weights (.safetensors)"),
    n: int = typer.Option(16, help="images to generate (with --interpolate: interpolation strips)"),
    class_: Optional[str] = typer.Option(None, "--class", help="class of every image (default: cycle through the classes)"),
    seed: Optional[int] = typer.Option(None, help="image i uses seed SEED+i (default: a random seed, printed)"),
    steps: Optional[int] = typer.Option(None, help="diffusion: DDIM sampling steps"),
    guidance: Optional[float] = typer.Option(None, help="diffusion: classifier-free guidance scale"),
    interpolate: Optional[int] = typer.Option(None, help="write strips of K frames along a latent interpolation instead"),
    out: Path = typer.Option(Path("runs/generated"), "--out", "-o", help="output folder (grid.png + one PNG per image)"),
    device: str = typer.Option("cpu"),
    json_out: bool = typer.Option(False, "--json", help="print what was written as JSON on the last line"),
) -> None:
    """Generate new images from generate weights: a grid PNG and one PNG per image (or interpolation strips)."""
    from pixelmind.api import Model

    m = Model.load(weights, device=device)
    written = m.generate_to(out, n=n, class_name=class_, seed=seed, steps=steps, guidance=guidance, interpolate=interpolate)
    images = written["images"]
    seeds = sorted({r["seed"] for r in images})
    what = f"{len(images) // interpolate} interpolation strips of {interpolate} frames" if interpolate else f"{len(images)} images"
    _console(True).print(f"{what} (seeds {seeds[0]}..{seeds[-1]}) in {out}; grid: {written['grid']}", markup=False)
    if json_out:
        _emit_json(written)


@app.command()
def enhance(
    inputs: list[str] = typer.Argument(..., help="image files, folders, globs or .txt lists"),
    weights: Path = typer.Option(..., help="enhance weights (.safetensors or .onnx)"),
    out: Path = typer.Option(Path("runs/enhanced"), "--out", "-o", help="output folder (PNG files, same names)"),
    tile: int = typer.Option(256, help="tile size in input pixels (memory is bounded by the tile, not the image)"),
    overlap: int = typer.Option(32, help="tile overlap in input pixels, blended"),
    device: str = typer.Option("cpu"),
) -> None:
    """Enhance images (super-resolve, denoise, remove JPEG artifacts, deblur) into OUT as PNG files."""
    from pixelmind.api import Model
    from pixelmind.engine.console import FileProgress

    m = Model.load(weights, device=device)
    err = _console(True)
    with FileProgress(err) as progress:
        rows = list(m.enhance(inputs, out, tile=tile, overlap=overlap, progress=progress))
    bad = [r for r in rows if "error" in r]
    for r in bad:
        err.print(f"skipped {r['error']}", markup=False)
    err.print(f"{len(rows) - len(bad)} images enhanced into {out}" + (f", {len(bad)} unreadable" if bad else ""))
    if len(bad) == len(rows):
        raise PixelmindError("no readable input images")


def _report_files(rows: list[dict[str, Any]], out: Path, verb: str) -> None:
    err = _console(True)
    bad = [r for r in rows if "error" in r]
    for r in bad:
        err.print(f"skipped {r['error']}", markup=False)
    err.print(f"{len(rows) - len(bad)} files {verb} into {out}" + (f", {len(bad)} failed" if bad else ""))
    if len(bad) == len(rows):
        raise PixelmindError(f"nothing {verb}: every input failed")


@app.command()
def compress(
    inputs: list[str] = typer.Argument(..., help="image files, folders, globs or .txt lists"),
    weights: Path = typer.Option(..., help="compress weights (.safetensors)"),
    out: Path = typer.Option(Path("runs/compressed"), "--out", "-o", help="output folder (.pmc files, same names)"),
    verify: bool = typer.Option(True, help="decode each file again and print its PSNR"),
    device: str = typer.Option("cpu"),
) -> None:
    """Compress images into .pmc files; prints one JSON line per image (bytes, bpp, PSNR)."""
    from pixelmind.api import Model

    rows = []
    for row in Model.load(weights, device=device).compress(inputs, out, verify=verify):
        sys.stdout.write(json.dumps(row) + "\n")
        rows.append(row)
    _report_files(rows, out, "compressed")


@app.command()
def decompress(
    inputs: list[str] = typer.Argument(..., help=".pmc files, folders or globs"),
    weights: Path = typer.Option(..., help="the weights the files were made with"),
    out: Path = typer.Option(Path("runs/decompressed"), "--out", "-o", help="output folder (PNG files, same names)"),
    device: str = typer.Option("cpu"),
) -> None:
    """Decode .pmc files into PNG images; a corrupt file or one made with other weights is named and skipped."""
    from pixelmind.api import Model

    rows = list(Model.load(weights, device=device).decompress(inputs, out))
    _report_files(rows, out, "decoded")


@app.command()
def rd(
    weights: list[Path] = typer.Argument(..., help="compress weights, one per quality level"),
    data: str = typer.Option(..., help="folder of test images"),
    out: Path = typer.Option(Path("runs/rd"), "--out", "-o", help="folder for rd.json, rd.md and the plots"),
    codecs: str = typer.Option("jpeg,webp,avif", help="classical codecs to compare with (Pillow)"),
    device: str = typer.Option("cpu"),
) -> None:
    """Rate-distortion curves of compress weights against JPEG/WebP/AVIF on DATA, with BD-rates and plots."""
    from pixelmind.metrics.rate_distortion import CLASSICAL_CODECS
    from pixelmind.tasks.compress.rd import markdown, rd_report

    chosen = tuple(c.strip().lower() for c in codecs.split(",") if c.strip())
    unknown = [c for c in chosen if c not in CLASSICAL_CODECS]
    if unknown:
        raise PixelmindError(f"codecs: unknown {', '.join(unknown)}; choose from: {', '.join(CLASSICAL_CODECS)}")
    err = _console(True)
    report = rd_report(weights, data, out, device=device, codecs=chosen, progress=lambda msg: err.print(msg, markup=False))
    typer.echo(markdown(report, chosen))
    err.print(f"rd.json, rd.md, rd_psnr.png and rd_ms_ssim.png in {out}")


@app.command()
def info(weights: Optional[Path] = typer.Option(None, help="show what a weights file holds")) -> None:
    """Version, devices, tasks and models; or what a weights file holds."""
    if weights is not None:
        from pixelmind.api import Model

        for k, v in Model.load(weights).info().items():
            typer.echo(f"{k}: {v}")
        return
    import torch

    from pixelmind import __version__
    from pixelmind.tasks import TASK_NAMES, available_tasks, get_task

    typer.echo(f"pixelmind {__version__}  torch {torch.__version__}  python {sys.version.split()[0]}")
    cuda = f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cuda: not available"
    typer.echo(f"cpu threads: {torch.get_num_threads()}  {cuda}")
    ready = available_tasks()
    for t in TASK_NAMES:
        if t in ready:
            typer.echo(f"task {t}: models {', '.join(get_task(t).models)} (+ any timm model)" if t in ("classify", "embed") else f"task {t}: {', '.join(get_task(t).models)}")
        else:
            typer.echo(f"task {t}: not implemented yet")


@app.command()
def demo(
    task: str = typer.Option("classify"),
    project: str = typer.Option("runs", help="runs root folder"),
    epochs: Optional[int] = typer.Option(None),
) -> None:
    """Train on built-in data on the CPU, predict a few images and say where the results are."""
    from pixelmind.demo import run_demo

    run_demo(task, project, epochs, _console())


@app.command()
def serve(
    weights: list[Path] = typer.Option(..., help="weights to serve (.safetensors, .onnx, .torchscript); repeatable"),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000),
    max_batch: int = typer.Option(8, help="most images per model call (1 disables batching)"),
    max_wait_ms: float = typer.Option(0.0, help="how long a batch waits for more images (0: batch what queued meanwhile)"),
    max_upload_mb: float = typer.Option(20.0, help="largest upload in MB (413 beyond)"),
    max_pixels: int = typer.Option(40_000_000, help="largest image in pixels (413 beyond)"),
    timeout: float = typer.Option(30.0, help="seconds before a request gets 504"),
    queue: int = typer.Option(64, help="images waiting per model before requests get 503"),
    api_key: Optional[str] = typer.Option(None, envvar="PIXELMIND_API_KEY", help="require this key on /v1 (X-API-Key or Bearer)"),
    runs: Path = typer.Option(Path("runs"), help="runs folder the web page browses"),
    index: Optional[list[Path]] = typer.Option(None, help="a similarity index (pixelmind index) to search with the model that made it; repeatable"),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
) -> None:
    """Serve models over HTTP: a web page, a JSON API for every task and its docs at /docs."""
    import uvicorn

    from pixelmind.serve.app import create_app
    from pixelmind.serve.settings import ServeSettings

    settings = ServeSettings(
        max_upload_bytes=int(max_upload_mb * 1_000_000), max_pixels=max_pixels, request_timeout_s=timeout,
        max_batch=max_batch, max_wait_ms=max_wait_ms, queue_size=queue, api_key=api_key or None, runs_dir=runs,
        device=device, indexes=tuple(index or ()),
    )  # fmt: skip
    fastapi_app = create_app(list(weights), settings)
    shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "") else host)
    for m in fastapi_app.state.served.values():
        typer.echo(f"model {m.name}: {m.model.meta.task} {m.model.meta.model}")
    typer.echo(f"page: http://{shown}:{port}/")
    typer.echo(f"API docs: http://{shown}:{port}/docs")
    if api_key:
        typer.echo("API key required on /v1 (X-API-Key or Authorization: Bearer)")
    uvicorn.run(fastapi_app, host=host, port=port, log_level="info")


for _package in ("data", "export", "optimize", "explain", "robust", "similarity", "label", "track"):  # verbs in modules of their own (they import the helpers above)
    _module = importlib.import_module(f"pixelmind.{_package}.cli")
    for _command in getattr(_module, "COMMANDS", None) or [getattr(_module, _package)]:
        app.command()(_command)


def main() -> None:
    try:
        app()
    except PixelmindError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - one line, not a traceback, unless asked for
        if os.environ.get("PIXELMIND_DEBUG"):
            raise
        msg = str(err).splitlines()[0] if str(err) else ""
        typer.echo(f"error: {type(err).__name__}: {msg} (set PIXELMIND_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)
