"""Two CPU processes under torchrun: one run directory, written by rank 0 alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelmind.engine.rundir import read_results_csv


def torchrun(*args, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "pixelmind", *map(str, args)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PIXELMIND_DEBUG"}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr
    return proc


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tmp_path):
    project = tmp_path / "runs"
    proc = torchrun("train", "--data", "digits", "--model", "pm_cnn_t", "--epochs", "1", "--imgsz", "16", "--device", "cpu",
                    "--project", project, "--name", "ddp", "--workers", "0", "--json", cwd=tmp_path)  # fmt: skip

    runs = list((project / "classify").iterdir())
    assert [p.name for p in runs] == ["ddp"]
    run_dir = runs[0]
    for name in ("config.yaml", "results.csv", "metrics.json", "report.md", "train.log",
                 "weights/best.safetensors", "weights/last.safetensors"):  # fmt: skip
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "plots").glob("*.png"))
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1

    log = (run_dir / "train.log").read_text()
    assert " x2," in log
    assert log.count("run directory:") == 1  # rank 1 writes nothing
    assert len(read_results_csv(run_dir / "results.csv")) == 1
    # only rank 0 prints the result
    json_lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(json_lines) == 1
    result = json.loads(json_lines[0])
    assert Path(result["run_dir"]) == run_dir
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["metrics"]["top1"] == pytest.approx(result["top1"])
    assert "samples" not in result or result["samples"] > 0


@pytest.mark.slow
def test_torchrun_reports_the_bad_files_that_every_process_met(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 13), ("val", 4)):
        for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
            d = tmp_path / "data" / split / name
            d.mkdir(parents=True)
            for i in range(n):
                a = np.clip(np.array(colour) + rng.normal(0, 20, (20, 20, 3)), 0, 255).astype("uint8")
                Image.fromarray(a).save(d / f"{i}.png")
    bad = [tmp_path / "data" / "train" / ("red" if i % 2 else "blue") / f"bad{i}.png" for i in range(6)]
    for p in bad:
        p.write_bytes(b"not an image")
    # 26 + 6 = 32 files: 8 whole batches of 4 (none dropped), alternating between the two processes
    torchrun("train", "--data", tmp_path / "data", "--model", "pm_cnn_t", "--epochs", "1", "--imgsz", "16", "--batch", "4",
             "--device", "cpu", "--workers", "0", "--project", tmp_path / "runs", cwd=tmp_path)  # fmt: skip
    run_dir = tmp_path / "runs" / "classify" / "exp"
    report = (run_dir / "report.md").read_text()
    assert "skipped files: 6" in report
    assert all(p.name in report for p in bad)
    assert json.loads((run_dir / "metrics.json").read_text())["skipped_files"] == 6
