"""Tracking: ByteTrack on known motion, MOT files and metrics, and `pixelmind track` end to end on a generated video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import last_json, ok, pixelmind

from pixelmind.data.shapes import save_shapes
from pixelmind.errors import DataError
from pixelmind.track.bytetrack import ByteTracker
from pixelmind.track.mot import _trackeval_sequence, hota_metrics, mot_metrics, read_mot, write_mot
from pixelmind.track.synth import moving_shapes, save_moving_shapes
from pixelmind.video.io import iter_frames


def _track(truth, tracker, miss=0.1, noise=1.0, seed=0):
    """Noisy detections of the true boxes (some missed, scores spread over 0.3-1) through ``tracker``."""
    rng, out = np.random.default_rng(seed), {}
    for frame, rows in truth.items():
        kept = [b for _, b in rows if rng.random() > miss]
        boxes = np.array([np.array(b) + rng.normal(0, noise, 4) for b in kept]).reshape(-1, 4)
        tracks = tracker.update(boxes, rng.uniform(0.3, 1.0, len(kept)), np.zeros(len(kept), int))
        out[frame] = [(tid, box) for tid, box, _, _ in tracks]
    return out


def test_bytetrack_keeps_ids_through_crossings_and_its_low_score_pass_pays():
    _, truth = moving_shapes(frames=80, objects=5, size=128, seed=1)
    full = mot_metrics(truth, _track(truth, ByteTracker()))
    high_only = mot_metrics(truth, _track(truth, ByteTracker(low=0.5)))  # no second pass: low boxes dropped
    assert full["mota"] > 0.7 and full["idf1"] > 0.6 and full["num_frames"] == 80
    assert full["recall"] > high_only["recall"] + 0.05


def test_mot_files_round_trip_and_a_malformed_line_is_named(tmp_path):
    write_mot(tmp_path / "t.txt", [(1, 3, [1, 2, 11, 22], 0.9, 0), (2, 3, [2, 2, 12, 22], 0.8, 0)])
    assert read_mot(tmp_path / "t.txt") == {1: [(3, [1.0, 2.0, 11.0, 22.0])], 2: [(3, [2.0, 2.0, 12.0, 22.0])]}
    (tmp_path / "bad.txt").write_text("1,1,0,0,5,5,1\nnot,a,row\n")
    with pytest.raises(DataError, match=r"bad.txt:2: expected 'frame,id,x,y,w,h"):
        read_mot(tmp_path / "bad.txt")
    same = read_mot(tmp_path / "t.txt")
    assert mot_metrics(same, same)["mota"] == 1.0


def test_hota_rewards_association_and_agrees_with_motmetrics_on_the_same_input():
    _, truth = moving_shapes(frames=60, objects=4, size=128, seed=2)
    tracked = _track(truth, ByteTracker())
    swapped = {f: [(tid + 1000 * (f // 10), box) for tid, box in rows] for f, rows in tracked.items()}  # new ids every 10 frames
    good, bad = hota_metrics(truth, tracked), hota_metrics(truth, swapped)
    assert good["hota"] > bad["hota"] + 0.1 and good["assa"] > bad["assa"] + 0.2
    assert abs(good["deta"] - bad["deta"]) < 0.02  # the same boxes (HOTA's matching also weighs association)
    # The sequence handed to TrackEval is the one motmetrics scores: TrackEval's own MOTA (IoU 0.5) matches.
    from trackeval.metrics import CLEAR

    clear = CLEAR().eval_sequence(_trackeval_sequence(truth, tracked))
    assert clear["MOTA"] == pytest.approx(mot_metrics(truth, tracked)["mota"], abs=2e-3)


@pytest.mark.slow
def test_track_verb_on_a_generated_video(tmp_path):
    save_shapes(tmp_path / "shp", "train", count=16, size=64)
    save_shapes(tmp_path / "shp", "val", count=4, size=64)
    proc = ok(pixelmind("train", "--task", "detect", "--model", "pmdet_n", "--data", str(tmp_path / "shp"), "--epochs", "1",
                        "--imgsz", "64", "--batch", "8", "--workers", "0", "--project", str(tmp_path / "runs"), "--json", cwd=tmp_path))  # fmt: skip
    weights = Path(last_json(proc)["run_dir"]) / "weights" / "best.safetensors"
    video, gt = save_moving_shapes(tmp_path / "clip", frames=24, objects=3, size=64)
    proc = ok(pixelmind("track", "--weights", str(weights), "--source", str(video), "--gt", str(gt), "--low", "0.01",
                        "--high", "0.05", "--out", str(tmp_path / "out"), "--json", cwd=tmp_path))  # fmt: skip
    summary = last_json(proc)
    assert summary["frames"] == 24 and set(summary["metrics"]) >= {"hota", "assa", "mota", "idf1", "num_switches"}
    lines = [json.loads(x) for x in (tmp_path / "out" / "tracks.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in lines] == list(range(24))
    assert len(list(iter_frames(tmp_path / "out" / "tracks.mp4"))) == 24
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == summary["metrics"]
    data = video.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    proc = ok(pixelmind("track", "--weights", str(weights), "--source", str(tmp_path / "cut.mp4"), "--out", str(tmp_path / "cut"), cwd=tmp_path))
    assert "note: " in proc.stdout + proc.stderr
    proc = pixelmind("track", "--weights", str(weights), "--source", str(tmp_path / "shp"), "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert proc.returncode != 0 and "track needs a video" in proc.stderr
