"""The ``track`` verb (registered by :mod:`pixelmind.cli`): a detector and ByteTrack over a video."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from pixelmind.errors import PixelmindError


def track_video(model, source: str, out: Path, stride: int = 1, low: float = 0.1, high: float = 0.5,
                save: bool = True, on_frame=None) -> dict[str, Any]:  # fmt: skip
    """Track ``source`` with a loaded detect ``model``; writes ``tracks.txt`` (MOT), ``tracks.jsonl`` and a video."""
    from pixelmind.track.bytetrack import ByteTracker
    from pixelmind.video.io import VideoWriter, is_video
    from pixelmind.viz.draw import draw_boxes

    if model.meta.task != "detect":
        raise PixelmindError(f"track: needs detect weights (these are a {model.meta.task} model)")
    if not is_video(source):
        raise PixelmindError(f"{source}: track needs a video file or stream URL")
    out.mkdir(parents=True, exist_ok=True)
    tracker, rows, errors, writer, frames = ByteTracker(high=high, low=low, new_track=high + 0.1), [], [], None, 0
    with (out / "tracks.jsonl").open("w") as jl:
        for rec in model.predict_iter(source, stride=stride, _keep_result=True, _keep_image=True, conf=low):
            if "error" in rec:
                errors.append(rec["error"])
                continue
            result, image = rec.pop("_result"), rec.pop("_image")
            tracks = tracker.update(result.boxes, result.scores, result.labels)
            frames += 1
            for tid, box, score, label in tracks:
                rows.append((rec["frame"] + 1, tid, box, score, label))
            jl.write(json.dumps({"frame": rec["frame"], "time": rec["time"], "tracks": [
                {"id": tid, "bbox": box, "score": score, "label": result.class_names[label]} for tid, box, score, label in tracks]}) + "\n")
            if save:
                if writer is None:
                    writer = VideoWriter(out / "tracks.mp4", image.info.get("fps", 10))
                colours = [(int(37 * t % 255), int(97 * t % 255), int(171 * t % 255)) for t, *_ in tracks]
                names = [f"#{t} {result.class_names[lab]}" for t, _, _, lab in tracks]
                writer.write(draw_boxes(image, [b for _, b, _, _ in tracks], names, colours))
            if on_frame:
                on_frame(rec)
    if writer is not None:
        writer.close()
    from pixelmind.track.mot import write_mot

    write_mot(out / "tracks.txt", rows)
    return {"frames": frames, "tracks": len({r[1] for r in rows}), "errors": errors, "out": str(out)}


def track(
    weights: Path = typer.Option(..., help="a trained detector"),
    source: str = typer.Option(..., help="a video file or stream URL"),
    out: Path = typer.Option(Path("runs/track"), "-o", "--out", help="folder for tracks.txt (MOT), tracks.jsonl, tracks.mp4"),
    gt: Optional[Path] = typer.Option(None, help="MOT ground truth (gt.txt): HOTA, MOTA, IDF1, ID switches into metrics.json"),
    stride: int = typer.Option(1, min=1, help="every Nth frame"),
    low: float = typer.Option(0.1, min=0, max=1, help="boxes from this score keep tracks alive (ByteTrack's second pass)"),
    high: float = typer.Option(0.5, min=0, max=1, help="boxes from this score are matched first; +0.1 starts a track"),
    save: bool = typer.Option(True, "--save/--no-save", help="write tracks.mp4 with ids drawn"),
    device: str = typer.Option("cpu"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Multi-object tracking: detect every frame, link boxes into tracks (ByteTrack), score against MOT ground truth."""
    from pixelmind.api import Model
    from pixelmind.cli import _console, _emit_json
    from pixelmind.engine.console import PredictProgress

    console = _console(json_out)
    model = Model.load(weights, device=device)
    with PredictProgress(_console(True), description="track") as bar:
        summary = track_video(model, source, out, stride, low, high, save, lambda rec: bar.update(False))
    if gt is not None:
        from pixelmind.track.mot import hota_metrics, mot_metrics, read_mot

        truth, predicted = read_mot(gt), read_mot(out / "tracks.txt")
        summary["metrics"] = {**hota_metrics(truth, predicted), **mot_metrics(truth, predicted)}
        (out / "metrics.json").write_text(json.dumps(summary["metrics"], indent=1))
        console.print("  ".join(f"{k} {v}" for k, v in summary["metrics"].items()), markup=False)
    for err in summary["errors"]:
        console.print(f"note: {err}", markup=False)
    console.print(f"{summary['frames']} frames, {summary['tracks']} tracks: {out / 'tracks.txt'}", markup=False)
    if json_out:
        _emit_json({k: v for k, v in summary.items()})


COMMANDS = [track]
