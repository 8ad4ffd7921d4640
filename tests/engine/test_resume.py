"""A run killed with SIGKILL and resumed from weights/last.safetensors ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pixelmind.engine.rundir import read_results_csv

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

# pm_cnn_s on all of digits at 16 px: ~0.5-1 s per epoch on 2 cores, so the kill lands around epoch 3
ARGS = ["train", "--data", "digits", "--model", "pm_cnn_s", "--epochs", "4", "--imgsz", "16", "--seed", "0",
        "--device", "cpu"]  # fmt: skip
TIMING = ("img_per_s", "time_s")


def command(*args) -> list[str]:
    return [sys.executable, "-m", "pixelmind", *map(str, args)]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PIXELMIND_DEBUG"}


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        command(*args), check=False, cwd=cwd, env=env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr
    return proc


def epochs_written(results: Path) -> int:
    try:
        return max(0, len(results.read_text().strip().splitlines()) - 1)
    except FileNotFoundError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, workers):
    project = tmp_path / "runs"
    args = [*ARGS, "--workers", workers, "--project", project]
    run_a, run_b = project / "classify" / "A", project / "classify" / "B"
    # A runs alongside B (the results do not depend on timing), which also slows B's epochs down
    a_log = (tmp_path / "A.log").open("w")
    proc_a = subprocess.Popen(
        command(*args, "--name", "A"), cwd=tmp_path, env=env(), stdout=a_log, stderr=subprocess.STDOUT
    )
    with (tmp_path / "B.log").open("w") as log:
        proc = subprocess.Popen(
            command(*args, "--name", "B"), cwd=tmp_path, env=env(), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 240
            while epochs_written(run_b / "results.csv") < 2:
                assert proc.poll() is None, (
                    f"run B ended before it could be killed:\n{(tmp_path / 'B.log').read_text()}"
                )
                assert time.monotonic() < deadline, "run B wrote no epochs in time"
                time.sleep(0.02)
            assert proc.poll() is None, "run B finished before the kill; make its epochs longer"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None and proc.returncode is None:
                proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert proc_a.wait(timeout=300) == 0, (tmp_path / "A.log").read_text()
    a_log.close()
    killed_at = epochs_written(run_b / "results.csv")
    assert 2 <= killed_at < 4
    assert not (run_b / "metrics.json").exists()

    proc = run("train", "--resume", run_b / "weights" / "last.safetensors", "--json", cwd=tmp_path)
    assert Path(json.loads(proc.stdout.strip().splitlines()[-1])["run_dir"]) == run_b
    assert (
        f"resumed from {run_b / 'weights' / 'last.safetensors'} at epoch {killed_at + 1}/4"
        in (run_b / "train.log").read_text()
    )

    rows_a, rows_b = (read_results_csv(d / "results.csv") for d in (run_a, run_b))
    assert [r["epoch"] for r in rows_b] == [1.0, 2.0, 3.0, 4.0]
    for ra, rb in zip(rows_a, rows_b):
        for key in ra:
            if key not in TIMING:
                assert rb[key] == pytest.approx(ra[key], abs=1e-6), (int(ra["epoch"]), key)
    sum_a, sum_b = (json.loads((d / "metrics.json").read_text()) for d in (run_a, run_b))
    assert sum_b["epochs_run"] == 4 and sum_b["best_epoch"] == sum_a["best_epoch"]
    for key, value in sum_a["metrics"].items():
        assert sum_b["metrics"][key] == pytest.approx(value, abs=1e-6), key


def test_resume_needs_a_checkpoint(tmp_path):
    proc = subprocess.run(command("train", "--resume", tmp_path / "nothing_here"), check=False, cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: resume:") and "nothing_here" in lines[0]
