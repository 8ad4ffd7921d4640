"""Rate-distortion of learned codecs on McMaster against JPEG, WebP and AVIF (BD-rate), same run.

Three steps (each can run alone, so training can happen on a GPU machine and evaluation here):

    .venv/bin/python bench/compress_rd.py prepare                 # training folder from ../shared
    .venv/bin/python bench/compress_rd.py train --qualities 1 3 5 --epochs 10 [--device cuda --model mean_scale]
    .venv/bin/python bench/compress_rd.py rd bench/out/compress/cpu/q*.safetensors

Training images are not McMaster: the shared raccoon photos, Set5/Set14 HR and scikit-image's
bundled photos (copied into ``.bench_data/compress_train`` so that the folder can travel to a GPU
machine). Evaluation: every McMaster image as a real ``.pmc`` file; the classical codecs are
swept over their quality ranges on the same images; BD-rate is the pixelmind curve against each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import machine

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
TRAIN_DIR = ROOT / ".bench_data" / "compress_train"
TEST_DIR = SHARED / "denoise" / "McMaster"


def prepare() -> int:
    """Copy the training images (not McMaster) into TRAIN_DIR."""
    from pixelmind.data.builtin import photo_paths

    if not SHARED.is_dir():
        print(f"skip: {SHARED} not found (the raccoon photos and Set5/Set14 live in ../shared/datasets)")
        return 0
    sources = sorted((SHARED / "detection" / "raccoon" / "images").glob("*.jpg"))
    sources += sorted((SHARED / "superres").glob("Set*/x2/*_HR.png")) + list(photo_paths())
    TRAIN_DIR.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(sources):
        shutil.copy(p, TRAIN_DIR / f"{i:04d}_{p.name}")
    print(f"{len(sources)} training images in {TRAIN_DIR}")
    return 0


def finalize_weights(weights: Path, out: Path) -> None:
    """Fix the coding tables of a training checkpoint (for a run stopped at the deadline) and save it."""
    from pixelmind.api import Model
    from pixelmind.engine import checkpoint as ckpt

    model = Model.load(weights)
    model.net.update_tables()
    model.meta.extra["tables"] = "fixed"
    ckpt.save_weights(out, model.net.state_dict(), model.meta, model.config)


def train(args) -> int:
    """Train one model per quality level; with --parallel, all at once (one process each, CPU threads shared)."""
    import os

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 2) // (len(args.qualities) if args.parallel else 1))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs, start = [], time.perf_counter()
    for q in args.qualities:
        cmd = [sys.executable, "-m", "pixelmind", "train", "--task", "compress", "--data", str(TRAIN_DIR),
               "--device", args.device, "--project", str(out / "runs"), "--name", f"q{q}", "--set", f"quality={q}"]  # fmt: skip
        for key in ("model", "epochs", "batch", "imgsz", "lr", "workers"):
            if getattr(args, key) is not None:
                cmd += [f"--{key}", str(getattr(args, key))]
        for key in ("samples", "val_fraction"):
            if getattr(args, key) is not None:
                cmd += ["--set", f"{'epoch_samples' if key == 'samples' else key}={getattr(args, key)}"]
        proc = subprocess.Popen(cmd, stdout=open(out / f"train_q{q}.log", "w"), stderr=subprocess.STDOUT, env=env)
        procs.append((q, proc, time.perf_counter()))
        if not args.parallel:
            proc.wait()
    status = 0
    for q, proc, t0 in procs:
        try:
            proc.wait(timeout=max(1.0, args.deadline - (time.perf_counter() - start)) if args.deadline else None)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        weights = out / "runs" / "compress" / f"q{q}" / "weights" / "best.safetensors"
        if not weights.exists():
            print(f"q{q}: no weights (see {out / f'train_q{q}.log'})")
            status = 1
            continue
        if proc.returncode:  # stopped at the deadline: the best epoch so far, tables fixed here
            finalize_weights(weights, out / f"q{q}.safetensors")
            print(f"q{q}: stopped at the {args.deadline:.0f} s deadline; best epoch so far kept -> {out / f'q{q}.safetensors'}")
            continue
        shutil.copy(weights, out / f"q{q}.safetensors")
        metrics = json.loads((weights.parents[1] / "metrics.json").read_text())["metrics"]
        print(f"q{q}: {time.perf_counter() - t0:.0f} s  val bpp {metrics['bpp']:.4f}  psnr {metrics['psnr']:.2f}  "
              f"bpp gap {metrics.get('bpp_gap_pct', float('nan')):+.2f} %  -> {out / f'q{q}.safetensors'}")  # fmt: skip
    return status


def rd(args) -> int:
    from pixelmind.tasks.compress.rd import markdown, rd_report

    test_dir = Path(args.data)
    if not test_dir.is_dir():
        print(f"skip: {test_dir} not found")
        return 0
    print(machine())
    t0 = time.perf_counter()
    report = rd_report(args.weights, str(test_dir), args.out, device=args.device, progress=print)
    print(markdown(report, ("jpeg", "webp", "avif")))
    print(f"evaluation {time.perf_counter() - t0:.0f} s; plots and rd.json in {args.out}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="step", required=True)
    sub.add_parser("prepare")
    t = sub.add_parser("train")
    t.add_argument("--qualities", type=int, nargs="+", default=[1, 3, 5])
    t.add_argument("--model", default=None)
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--samples", type=int, default=None, help="random crops per epoch")
    t.add_argument("--batch", type=int, default=None)
    t.add_argument("--imgsz", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--workers", type=int, default=None)
    t.add_argument("--device", default="cpu")
    t.add_argument("--val-fraction", dest="val_fraction", type=float, default=None)
    t.add_argument("--parallel", action="store_true", help="train the qualities at the same time")
    t.add_argument("--deadline", type=float, default=None, help="seconds; then stop and keep each run's best epoch")
    t.add_argument("--out", default=str(ROOT / "bench" / "out" / "compress" / "cpu"))
    r = sub.add_parser("rd")
    r.add_argument("weights", nargs="+")
    r.add_argument("--out", default=str(ROOT / "bench" / "out" / "compress" / "rd"))
    r.add_argument("--data", default=str(TEST_DIR), help="test images (default: the shared McMaster set)")
    r.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.step == "prepare":
        return prepare()
    if not TRAIN_DIR.is_dir() and args.step == "train":
        print(f"run `{Path(__file__).name} prepare` first ({TRAIN_DIR} is missing)")
        return 1
    return train(args) if args.step == "train" else rd(args)


if __name__ == "__main__":
    sys.exit(main())
