"""Video sources for predict: frames with their index and time, stride, an annotated video, broken videos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import ok, pixelmind, write_digit_pngs
from video_helpers import write_video

from pixelmind.api import Model
from pixelmind.data.sources import iter_sources
from pixelmind.video.io import as_source, is_video, iter_frames


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("video_model")
    model = Model("pm_cnn_t", task="classify")
    model.train(data="digits", epochs=1, imgsz=16, workers=0, project=str(root), name="c")
    return model.weights_path


def test_frames_carry_index_time_and_stride(tmp_path):
    video = write_video(tmp_path / "clip.mp4", frames=30, fps=10)
    frames = list(iter_frames(video, stride=3))
    assert [name.rsplit("=", 1)[1] for name, _ in frames] == [str(k) for k in range(0, 30, 3)]
    image = frames[1][1]
    assert image.size == (64, 64) and image.info["frame"] == 3 and abs(image.info["time"] - 0.3) < 1e-6
    assert image.info["fps"] == pytest.approx(10 / 3)


def test_urls_survive_pathlib_and_are_videos():
    assert as_source(Path("rtsp://camera.local:554/stream")) == "rtsp://camera.local:554/stream"
    assert is_video("rtsp://camera.local/1") and is_video("clip.MKV") and not is_video("a.png")
    assert [str(p) for p in iter_sources("rtsp://camera.local/1")] and as_source(next(iter_sources("rtsp://cam/1"))) == "rtsp://cam/1"


def test_broken_videos_end_with_one_line_after_the_frames_read(tmp_path):
    data = write_video(tmp_path / "full.mp4", frames=60).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    cut = list(iter_frames(tmp_path / "cut.mp4"))
    *good, (name, err) = cut
    assert good and all(not isinstance(im, Exception) for _, im in good)
    assert isinstance(err, Exception) and f"ended after {len(good)} of its 60 frames" in str(err)
    (name, err), = list(iter_frames(tmp_path / "junk.mp4"))
    assert "junk.mp4: not a readable video" in str(err) and "\n" not in str(err)
    (name, err), = list(iter_frames("http://127.0.0.1:9/none.mp4"))  # nothing listens: refused, no hang
    assert "not a readable video" in str(err)


def test_predict_writes_rows_per_frame_and_an_annotated_video(classifier, tmp_path):
    (tmp_path / "src").mkdir()
    write_video(tmp_path / "src" / "clip.mp4", frames=20)
    model = Model.load(classifier)
    rows = list(model.predict_iter(tmp_path / "src" / "clip.mp4", batch=4, stride=2, save_dir=tmp_path / "out"))
    assert [r["frame"] for r in rows] == list(range(0, 20, 2)) and all("label" in r for r in rows)
    saved = Path(rows[0]["saved"])
    assert saved.name == "clip.mp4.annotated.mp4" and len(list(iter_frames(saved))) == 10


def test_cli_predict_mixes_images_and_videos_with_one_index_per_file(classifier, tmp_path):
    src = tmp_path / "src"
    write_digit_pngs(src, n=1)  # digit0.png and a broken.png
    write_video(src / "clip.mp4", frames=12)
    data = (src / "clip.mp4").read_bytes()
    (src / "cut.mp4").write_bytes(data[: len(data) // 2])
    proc = ok(pixelmind("predict", "--weights", str(classifier), "--source", str(src), "--stride", "4", "--save",
                        "--out", str(tmp_path / "out"), cwd=tmp_path))  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    names = [(r["index"], Path(r["source"]).name) for r in rows]
    assert names[:4] == [(0, "broken.png"), (1, "clip.mp4#frame=0"), (1, "clip.mp4#frame=4"), (1, "clip.mp4#frame=8")]
    cut = [i for i, (index, _) in enumerate(names) if index == 2]
    assert names[cut[-1]] == (2, "cut.mp4") and "truncated" in rows[cut[-1]]["error"]  # after its readable frames
    assert all(names[i][1].startswith("cut.mp4#frame=") for i in cut[:-1]) and names[-1] == (3, "digit0.png")
    assert (tmp_path / "out" / "clip.mp4.annotated.mp4").is_file() and len(proc.stdout.splitlines()) == len(rows)
