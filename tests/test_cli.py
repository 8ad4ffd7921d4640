"""End-to-end tests of the ``pixelmind`` command: real subprocesses, tiny models, built-in and on-disk data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

FAST = ["--model", "pm_cnn_t", "--imgsz", "16", "--device", "cpu", "--workers", "0"]


def pixelmind(*args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m pixelmind ARGS`` in ``cwd``; never with the debug traceback switch."""
    env = {k: v for k, v in os.environ.items() if k != "PIXELMIND_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "pixelmind", *map(str, args)],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def last_json(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_digit_pngs(folder: Path, n: int = 4) -> list[Path]:
    """A few real digits (from the built-in data) as PNG files, plus one corrupt ``.png``."""
    from pixelmind.data.builtin import digits

    folder.mkdir(parents=True, exist_ok=True)
    images, _, _ = digits()
    paths = []
    for i in range(n):
        p = folder / f"digit{i}.png"
        Image.fromarray(images[i * 7, 0].numpy()).resize((16, 16)).save(p)
        paths.append(p)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return paths


def write_imagefolder(root: Path, n_train: int = 12, n_val: int = 4, size: int = 20) -> Path:
    """``root/{train,val}/{red,blue}/*.png``: two easily separable colour classes."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = np.clip(np.array(colour) + rng.normal(0, 20, (size, size, 3)), 0, 255).astype("uint8")
                Image.fromarray(a).save(d / f"{i}.png")
    return root


# -- the happy path: one trained run shared by the verbs that use it --------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    proc = ok(pixelmind("train", "--task", "classify", "--data", "digits", "--epochs", "1", *FAST, "--set", "limit=256",
                        "--json", "--project", work / "runs", cwd=work))  # fmt: skip
    result = last_json(proc)
    run_dir = Path(result["run_dir"])
    return work, run_dir, result, proc


def test_train_writes_a_complete_run_directory(trained):
    work, run_dir, result, proc = trained
    assert run_dir == work / "runs" / "classify" / "exp"
    assert 0.0 <= result["top1"] <= 1.0
    for name in ("config.yaml", "results.csv", "metrics.json", "report.md", "train.log",
                 "weights/best.safetensors", "weights/last.safetensors"):  # fmt: skip
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "plots").glob("*.png"))
    assert list(run_dir.glob("events.out.tfevents.*")), "no TensorBoard events file"
    rows = (run_dir / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 2  # header + one epoch
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["metrics"]["top1"] == pytest.approx(result["top1"], abs=1e-9)
    assert metrics["epochs_run"] == 1
    assert "pm_cnn_t" in (run_dir / "train.log").read_text()
    # --json: human output went to stderr, stdout holds only the JSON object
    assert proc.stdout.strip().count("\n") == 0


def test_val_reproduces_the_training_metrics(trained):
    work, run_dir, result, _ = trained
    metrics = last_json(
        ok(pixelmind("val", "--weights", run_dir / "weights" / "best.safetensors", "--json", cwd=work))
    )
    assert metrics["top1"] == pytest.approx(result["top1"], abs=1e-6)
    assert metrics["samples"] > 0


@pytest.fixture(scope="module")
def predictions(trained):
    """PyTorch predictions with --save, and the folder they came from."""
    work, run_dir, _, _ = trained
    src = work / "images"
    write_digit_pngs(src)
    out = work / "pred"
    proc = ok(pixelmind("predict", "--weights", run_dir / "weights" / "best.safetensors", "--source", src,
                        "--save", "--out", out, cwd=work))  # fmt: skip
    rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    return src, out, rows


def test_predict_reports_one_line_per_image_and_survives_a_corrupt_file(predictions):
    _, out, rows = predictions
    assert len(rows) == 5
    bad = [r for r in rows if "error" in r]
    assert len(bad) == 1 and "broken.png" in bad[0]["error"]
    good = [r for r in rows if "error" not in r]
    for r in good:
        assert r["label"] in [str(i) for i in range(10)] and 0.0 <= r["prob"] <= 1.0
        assert Path(r["saved"]).is_file()
    saved = sorted(p.name for p in out.iterdir() if p.suffix == ".jpg")
    assert [name.split("_", 1)[1] for name in saved] == [f"digit{i}.jpg" for i in range(4)]
    assert len((out / "results.jsonl").read_text().strip().splitlines()) == 5


def test_export_onnx_checks_parity_and_predicts_the_same_labels(trained, predictions):
    work, run_dir, _, _ = trained
    src, _, torch_rows = predictions
    proc = ok(
        pixelmind(
            "export", "--weights", run_dir / "weights" / "best.safetensors", "--format", "onnx", cwd=work
        )
    )
    assert "parity" in proc.stdout
    onnx_path = run_dir / "weights" / "best.onnx"
    assert onnx_path.is_file()
    proc = ok(
        pixelmind("predict", "--weights", onnx_path, "--source", src, "--out", work / "pred_onnx", cwd=work)
    )
    onnx_rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
    assert [r.get("label") for r in onnx_rows] == [r.get("label") for r in torch_rows]
    for a, b in zip(onnx_rows, torch_rows):
        if "prob" in a:
            assert a["prob"] == pytest.approx(b["prob"], abs=1e-4)


def test_export_torchscript(trained):
    work, run_dir, _, _ = trained
    proc = ok(
        pixelmind(
            "export",
            "--weights",
            run_dir / "weights" / "best.safetensors",
            "--format",
            "torchscript",
            cwd=work,
        )
    )
    assert "parity" in proc.stdout
    assert (run_dir / "weights" / "best.torchscript").is_file()


def test_info_and_info_of_weights(trained):
    work, run_dir, _, _ = trained
    proc = ok(pixelmind("info", cwd=work))
    assert "pixelmind" in proc.stdout and "task classify" in proc.stdout and "pm_cnn_t" in proc.stdout
    proc = ok(pixelmind("info", "--weights", run_dir / "weights" / "best.safetensors", cwd=work))
    assert "model: pm_cnn_t" in proc.stdout and "task: classify" in proc.stdout and "sha256:" in proc.stdout


def test_check_reports_counts_and_corrupt_files(tmp_path):
    data = write_imagefolder(tmp_path / "data", n_train=3, n_val=2)
    (data / "train" / "red" / "bad.png").write_bytes(b"garbage")
    report = last_json(
        ok(pixelmind("check", "--data", data, "--json", "--out", tmp_path / "check", cwd=tmp_path))
    )
    assert report["classes"] == 2
    assert report["per_class"]["red"] == {"train": 4, "val": 2}
    assert list(report["corrupt"]) == [str(data / "train" / "red" / "bad.png")]
    assert (tmp_path / "check" / "report.md").is_file()


# -- usage errors: exit code 2 and one line on stderr, never a traceback ----------------------------------------------

TRAIN = ["train", "--data", "digits", "--epochs", "1", *FAST]
ERROR_CASES = {
    "bad_value": (TRAIN + ["--set", "optimizer=adam"], "optimizer"),
    "unknown_key": (TRAIN + ["--set", "foo=1"], "foo"),
    "missing_data": (["train", "--data", "NO_SUCH_FOLDER", *FAST], "NO_SUCH_FOLDER"),
    "unknown_model": (
        ["train", "--data", "digits", "--model", "no_such_model_xyz", "--device", "cpu"],
        "no_such_model_xyz",
    ),
    "unknown_task": (["train", "--task", "no_such_task", "--data", "digits"], "no_such_task"),
    "generate_bad_imgsz": (["train", "--task", "generate", "--data", "digits", "--imgsz", "30", "--device", "cpu"], "imgsz"),
    "corrupt_weights": (["val", "--weights", "corrupt.safetensors"], "corrupt.safetensors"),
    "bad_yaml_config": (TRAIN + ["--config", "broken.yaml"], "broken.yaml"),
    "resume_without_training_state": (["train", "--resume", "weights_only.safetensors"], "training state"),
}
if not torch.cuda.is_available():
    ERROR_CASES["cuda_without_gpu"] = (TRAIN + ["--device", "cuda"], "cuda")


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory):
    """All error cases at once, two at a time (each is mostly interpreter start-up)."""
    work = tmp_path_factory.mktemp("errors")
    (work / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    (work / "broken.yaml").write_text("epochs: [1, 2\n")
    from pixelmind.engine.checkpoint import save_weights
    from pixelmind.tasks.base import Meta

    save_weights(work / "weights_only.safetensors", {"w": torch.zeros(1)}, Meta(task="classify", model="pm_cnn_t"),
                 {"task": "classify", "data": "digits"})  # fmt: skip
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {k: pool.submit(pixelmind, *args, "--project", work / "runs", cwd=work) if args[0] == "train"
                   else pool.submit(pixelmind, *args, cwd=work) for k, (args, _) in ERROR_CASES.items()}  # fmt: skip
        runs = {k: f.result() for k, f in futures.items()}
    return work, runs


@pytest.mark.slow  # the first case waits for the whole batch (~25 s)
@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_usage_errors_exit_2_with_one_line(error_runs, case):
    _, runs = error_runs
    proc, needle = runs[case], ERROR_CASES[case][1]
    assert proc.returncode == 2, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}"
    )
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and needle in lines[0]


@pytest.mark.slow
def test_failed_runs_leave_no_run_directory(error_runs):
    work, _ = error_runs
    runs = work / "runs" / "classify"
    assert not runs.exists() or not list(runs.iterdir())


# -- config files, and bad files in the data ----------------------------------------------------------------------------


def test_yaml_config_is_used_and_cli_flags_override_it(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "data: digits\nmodel: pm_cnn_t\nepochs: 3\nimgsz: 16\nlimit: 64\nbatch: 32\nworkers: 0\ndevice: cpu\nlr: 0.01\n"
    )
    proc = ok(pixelmind("train", "--config", cfg, "--epochs", "1", "--lr", "0.002", "--project", tmp_path / "runs",
                        "--name", "fromyaml", "--json", cwd=tmp_path))  # fmt: skip
    run_dir = Path(last_json(proc)["run_dir"])
    assert run_dir.name == "fromyaml"
    import yaml

    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["epochs"] == 1 and saved["lr"] == 0.002  # the flags win
    assert (
        saved["model"] == "pm_cnn_t" and saved["limit"] == 64 and saved["batch"] == 32
    )  # the file fills the rest
    assert len((run_dir / "results.csv").read_text().strip().splitlines()) == 2


def test_training_skips_corrupt_and_truncated_images_and_reports_them(tmp_path):
    data = write_imagefolder(tmp_path / "data")
    (data / "train" / "red" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = (data / "train" / "blue" / "0.png").read_bytes()
    (data / "train" / "blue" / "truncated.png").write_bytes(good[: len(good) // 2])
    proc = ok(pixelmind("train", "--data", data, "--epochs", "2", "--batch", "8", *FAST, "--project", tmp_path / "runs",
                        "--json", cwd=tmp_path))  # fmt: skip
    run_dir = Path(last_json(proc)["run_dir"])
    report = (run_dir / "report.md").read_text()
    assert "skipped files: 2" in report
    assert "corrupt.png" in report and "truncated.png" in report
    assert json.loads((run_dir / "metrics.json").read_text())["skipped_files"] == 2
    assert "skipped 2 unreadable files" in (run_dir / "train.log").read_text()
