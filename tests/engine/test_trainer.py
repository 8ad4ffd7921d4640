"""The training engine through the Python API: determinism and each training option, on tiny runs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from pixelmind import Model
from pixelmind.engine.checkpoint import EMA_PREFIX, TRAIN_PREFIX, load_train_state, load_weights
from pixelmind.engine.rundir import read_results_csv

TIMING = ("img_per_s", "time_s")


def train(tmp_path, **overrides):
    """A 2-epoch run of the tiny CNN on 256 digits (4 steps of 64 per epoch); returns (model, metrics)."""
    args = {"data": "digits", "epochs": 2, "imgsz": 16, "limit": 256, "batch": 64, "workers": 0, "device": "cpu",
            "project": str(tmp_path / "runs")}  # fmt: skip
    args.update(overrides)
    m = Model("pm_cnn_t")
    metrics = m.train(**args)
    return m, metrics


def summary(m) -> dict:
    return json.loads((m.run_dir / "metrics.json").read_text())


def without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def assert_sane(m, metrics, epochs=2):
    assert 0.0 <= metrics["top1"] <= 1.0 and math.isfinite(metrics["loss"])
    rows = read_results_csv(m.run_dir / "results.csv")
    assert len(rows) == epochs
    assert all(math.isfinite(r["train/loss"]) for r in rows)
    return rows


@pytest.mark.slow  # three runs with loader worker processes (~11 s)
def test_same_seed_gives_the_same_run_and_another_seed_does_not(tmp_path):
    # batch 32 -> the loader uses 2 worker processes, whose seeds must follow the run's seed too
    a, _ = train(tmp_path, seed=7, batch=32, workers=2)
    b, _ = train(tmp_path, seed=7, batch=32, workers=2)
    c, _ = train(tmp_path, seed=8, batch=32, workers=2)
    assert a.run_dir != b.run_dir
    rows_a, rows_b = (without_timing(read_results_csv(m.run_dir / "results.csv")) for m in (a, b))
    assert rows_a == rows_b
    wa, _, _ = load_weights(a.run_dir / "weights" / "last.safetensors")
    wb, _, _ = load_weights(b.run_dir / "weights" / "last.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    rows_c = without_timing(read_results_csv(c.run_dir / "results.csv"))
    assert rows_c[0]["train/loss"] != rows_a[0]["train/loss"]


def test_ema_keeps_averaged_weights(tmp_path):
    m, metrics = train(tmp_path, ema=True)
    assert_sane(m, metrics)
    tensors, state = load_train_state(m.run_dir / "weights" / "last.safetensors")
    assert state["ema_updates"] == 8  # 2 epochs x 4 updates
    model_state, _, _ = load_weights(m.run_dir / "weights" / "last.safetensors")
    ema = {k.removeprefix(EMA_PREFIX): v for k, v in tensors.items() if k.startswith(EMA_PREFIX)}
    assert ema.keys() == model_state.keys()
    assert any(not torch.equal(ema[k], model_state[k]) for k in ema if ema[k].is_floating_point())


def test_grad_accum_steps_the_optimizer_once_per_two_batches(tmp_path):
    m, metrics = train(tmp_path, grad_accum=2)
    assert_sane(m, metrics)
    tensors, state = load_train_state(m.run_dir / "weights" / "last.safetensors")
    steps = {
        float(v) for k, v in tensors.items() if k.startswith(f"{TRAIN_PREFIX}opt0.") and k.endswith(".step")
    }
    assert steps == {4.0}  # 2 epochs x 4 batches / 2
    assert state["schedulers"][0]["last_epoch"] == 4


def test_clip_grad(tmp_path):
    m, metrics = train(tmp_path, clip_grad=1.0)
    assert_sane(m, metrics)


def test_bf16_after_an_fp32_run_in_the_same_process(tmp_path):
    train(tmp_path, epochs=1)
    m, metrics = train(tmp_path, precision="bf16")
    assert_sane(m, metrics)
    assert summary(m)["metrics"]["top1"] == pytest.approx(metrics["top1"])


def test_sgd_with_step_schedule(tmp_path):
    m, metrics = train(tmp_path, optimizer="sgd", scheduler="step", step_size=1, warmup_epochs=0, lr=0.05)
    rows = assert_sane(m, metrics)
    # the lr logged after each epoch: one drop by 10x per epoch
    assert rows[0]["lr"] == pytest.approx(0.005) and rows[1]["lr"] == pytest.approx(0.0005)
    _, state = load_train_state(m.run_dir / "weights" / "last.safetensors")
    group = state["optimizers"][0]["param_groups"][0]
    assert group["momentum"] == 0.9 and group["nesterov"] is True


def test_patience_stops_early(tmp_path):
    m, _ = train(tmp_path, epochs=5, lr=1e-9, patience=1)
    run = summary(m)
    assert run["epochs_run"] < 5
    assert len(read_results_csv(m.run_dir / "results.csv")) == run["epochs_run"]
    assert "early stop" in (m.run_dir / "train.log").read_text()


def test_calibrate_stores_a_temperature_in_the_weights(tmp_path):
    m, metrics = train(tmp_path, calibrate=True)
    assert_sane(m, metrics)
    _, meta, _ = load_weights(m.run_dir / "weights" / "best.safetensors")
    t = meta.extra["temperature"]
    assert isinstance(t, float) and 0.0 < t < 100.0
    assert Model.load(m.run_dir / "weights" / "best.safetensors").meta.extra["temperature"] == t


def test_mixup(tmp_path):
    m, metrics = train(tmp_path, mixup=0.2)
    assert_sane(m, metrics)
