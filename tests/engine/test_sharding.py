"""Splitting predict's file stream over torchrun ranks and merging the per-rank results back in order."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from pixelmind.engine import sharding
from pixelmind.engine.console import PredictProgress
from pixelmind.engine.sharding import dist_env, merge_shards, shard
from pixelmind.errors import PixelmindError


def write_shards(folder: Path, items: list[str], world: int) -> list[Path]:
    """What each rank writes: its share of the stream, one JSON line per item with the global index."""
    paths = []
    for rank in range(world):
        p = folder / f"results.rank{rank}.jsonl"
        with p.open("w") as f:
            for i, item in shard(enumerate(items), rank, world):
                f.write(json.dumps({"index": i, "source": item}) + "\n")
        paths.append(p)
    return paths


def test_shard_interleaves_and_covers_every_item_once():
    parts = [list(shard(range(10), r, 3)) for r in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(itertools.chain(*parts)) == list(range(10))
    # lazy: works on an endless stream and reads no further than asked
    assert list(itertools.islice(shard(itertools.count(), 1, 4), 3)) == [1, 5, 9]
    assert [list(shard([], r, 2)) for r in range(2)] == [[], []]
    with pytest.raises(ValueError):
        shard([1], 2, 2)


@pytest.mark.parametrize("n, world", [(10, 2), (7, 3), (2, 4), (0, 2), (1, 1)])
def test_merge_restores_the_stream_order(tmp_path, n, world):
    items = [f"img{i}.png" for i in range(n)]
    paths = write_shards(tmp_path, items, world)
    seen = []
    count = merge_shards(
        paths, tmp_path / "results.jsonl", on_line=lambda line, row: seen.append((line, row))
    )
    assert count == n
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(n))
    assert [r["source"] for r in rows] == items
    assert [row for _, row in seen] == rows
    assert "".join(line for line, _ in seen) == (tmp_path / "results.jsonl").read_text()


def test_merge_streams_holding_one_line_per_shard(tmp_path, monkeypatch):
    """Each shard file is read at most one line ahead of what has been written: iterators, not lists."""
    world, n = 3, 50
    paths = write_shards(tmp_path, [f"{i}.png" for i in range(n)], world)
    read = {}
    real = sharding._indexed_lines

    def counted(path):
        read[path.name] = 0
        for item in real(path):
            read[path.name] += 1
            yield item

    monkeypatch.setattr(sharding, "_indexed_lines", counted)
    written = dict.fromkeys([p.name for p in paths], 0)

    def check(line, row):
        written[f"results.rank{row['index'] % world}.jsonl"] += 1
        for name in written:
            assert read[name] <= written[name] + 1, (name, read, written)

    assert merge_shards(paths, tmp_path / "out.jsonl", on_line=check) == n


def test_merge_refuses_lines_without_index_or_repeated_indices(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"index": 0}\n{"index": 2}\n')
    b.write_text('{"index": 2}\n')
    with pytest.raises(PixelmindError, match="index 2 after 2"):
        merge_shards([a, b], tmp_path / "out.jsonl")
    b.write_text('{"source": "x.png"}\n')
    with pytest.raises(PixelmindError, match=r"b.jsonl:1"):
        merge_shards([a, b], tmp_path / "out.jsonl")


def test_dist_env(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert dist_env() == (0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert dist_env() == (3, 4, 1)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(PixelmindError):
        dist_env()


def test_predict_progress_shows_counts_on_a_terminal_only():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with PredictProgress(console) as bar:
        for i in range(5):
            bar._last = 0.0  # no refresh throttling in the test
            bar.update(error=i == 2)
    assert (bar.done, bar.errors) == (5, 1)
    assert "5 files  1 errors" in bar.info()
    assert "files" in buf.getvalue()
    quiet = io.StringIO()
    with PredictProgress(Console(file=quiet, force_terminal=False)) as bar:
        bar.update()
    assert bar.progress is None and quiet.getvalue() == ""
    assert PredictProgress(console, enabled=False).progress is None


# -- end to end: torchrun --nproc-per-node 2 -m pixelmind predict ---------------------------------------------------


def _gloo_available() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_gloo_available()


@pytest.mark.slow
@pytest.mark.skipif(not _gloo_available(), reason="torch.distributed with the gloo backend is not available")
def test_torchrun_predict_merges_the_shards_into_the_single_process_output(tmp_path):
    from PIL import Image

    from pixelmind.api import Model
    from pixelmind.data.builtin import digits

    m = Model("pm_cnn_t", task="classify")
    m.train(
        data="digits",
        epochs=1,
        imgsz=16,
        project=str(tmp_path / "runs"),
        name="c",
        workers=0,
        device="cpu",
        limit=256,
    )
    weights = m.run_dir / "weights" / "best.safetensors"

    src = tmp_path / "images"
    images, _, _ = digits()
    for i in range(10):  # 11 files, a broken one and a subfolder: uneven shards, one error row
        p = src / ("sub" if i >= 7 else "") / f"d{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i * 5, 0].numpy()).resize((16, 16)).save(p)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    order = [str(p) for p in sorted(src.rglob("*.png"))]

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PIXELMIND_DEBUG", "RANK", "WORLD_SIZE", "LOCAL_RANK")
    }
    env.update(OMP_NUM_THREADS="1", FORCE_COLOR="1")  # FORCE_COLOR: the progress bar is drawn on stderr
    args = ["-m", "pixelmind", "predict", "--weights", str(weights), "--source", str(src), "--batch", "3"]

    def run(cmd, out):
        proc = subprocess.run([sys.executable, *cmd, "--out", str(out)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        assert "Traceback" not in proc.stderr
        return proc

    single = run(args, tmp_path / "single")
    multi = run(
        ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args], tmp_path / "multi"
    )

    single_rows = [json.loads(line) for line in single.stdout.splitlines()]  # stdout is pure JSON lines
    assert [r["source"] if "error" not in r else None for r in single_rows] == [
        s if "broken" not in s else None for s in order
    ]
    assert [r["index"] for r in single_rows] == list(range(11))
    assert (tmp_path / "single" / "results.jsonl").read_text() == single.stdout
    assert (
        "0 errors" in single.stderr and "11 images, 1 unreadable" in single.stderr
    )  # the bar went to stderr

    merged_text = (tmp_path / "multi" / "results.jsonl").read_text()
    merged = [json.loads(line) for line in merged_text.splitlines()]
    assert [r["index"] for r in merged] == list(range(11))  # every file once, in order
    assert [
        json.loads(line) for line in multi.stdout.splitlines() if line.startswith("{")
    ] == merged  # rank 0 only
    for a, b in zip(merged, single_rows):
        assert a.keys() == b.keys() and a.get("label") == b.get("label") and a.get("error") == b.get("error")
        assert a.get("prob", 0) == pytest.approx(b.get("prob", 0), abs=1e-5)
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == ["results.jsonl"]  # shard files removed
    assert "11 images, 1 unreadable" in multi.stderr and "merged from 2 processes" in multi.stderr
