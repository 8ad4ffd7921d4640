"""Detection scored on a held-out test split: pixelmind's detector beside Ultralytics YOLO11n (issue 20).

The raccoon photos (``../shared/datasets/detection/raccoon``, 200 images, Pascal VOC, 1 class) split once,
seeded (seed 0), into 120 train / 40 val / 40 test images, written as
- ``<out>/data/voc``: links to the shared images and XML files plus ``ImageSets/Main/{train,val,test}.txt``
  (what pixelmind reads; ``pixelmind val --split test`` reads test.txt);
- ``<out>/data/yolo``: the same three splits as YOLO labels and a data.yaml with ``test:`` (the peer).
Both sides train from scratch on train, keep the epoch with the best val mAP50-95 (their fitness and
ours), and are then scored once on the 40 test images, which neither saw while training or choosing:
pixelmind by ``Model.val(split="test")`` (its COCO evaluator, equal to pycocotools), the peer's test
detections (``val(split="test", save_json=True)``, conf 0.001) re-scored by the same evaluator.

Per side, each in its own process (so peak RSS is that side's alone; ``os.wait4`` gives it):
training wall time (the train call, validation every epoch included), the process's peak RSS (training,
test evaluation, export and predict), test mAP50 / mAP50-95, predict images/s at batch 1 on the 40 test
files by path (decode, letterbox, forward, NMS) with PyTorch and with the ONNX export in onnxruntime.

Same image size, epochs, batch, seed and threads on both sides; one epoch is one pass over the 120
training images (``epoch_samples`` = 120, not pixelmind's small-set default of 400). pixelmind runs its
task's default recipe for photos (``--model`` picks another network). For a fair single-core comparison::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/detect_vs_yolo11n.py --epochs 30 --imgsz 416

``--defaults`` instead gives each side its own default schedule at the same image size and batch:
pixelmind's 30 epochs of >= 400 drawn samples, Ultralytics' 100 passes over the 120 images (the same
12,000 training samples). Images/s divide each side's own sample count by its wall time.

Needs the peer's venv (``bash bench/peer_ultralytics.sh``); skips with a reason without it or the data.
Goal of the issue: a higher test mAP50-95 in <= 0.8x the peer's training wall time. ``--table
<out>/summary.json`` prints a finished run's table again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import yaml
from detect_raccoon import (
    DATA,
    PEER_PYTHON,
    PEER_SCRIPT,
    peer_history,
    predict_speed,
    print_rows,
    rescore_peer,
)

from pixelmind.data.boxes import find_detection_data

SEED = 0
SPLIT = {"train": 120, "val": 40, "test": 40}


def write_split(out: Path) -> Path:
    """``out/voc`` and ``out/yolo``: the seeded 120/40/40 split of the raccoon photos (kept if present)."""
    voc, yolo = out / "voc", out / "yolo"
    if (yolo / "data.yaml").is_file():
        return out
    stems = sorted(p.stem for p in (DATA / "annotations").glob("*.xml"))
    random.Random(SEED).shuffle(stems)
    parts, start = {}, 0
    for name, n in SPLIT.items():
        parts[name], start = sorted(stems[start : start + n]), start + n
    (voc / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for d in ("annotations", "images"):
        if not (voc / d).exists():
            (voc / d).symlink_to(DATA / d)
    for name, ids in parts.items():
        (voc / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{s}\n" for s in ids))
    for name in parts:  # the YOLO copy from what pixelmind reads, so both see identical boxes
        items = find_detection_data(voc, split=name).val if name != "train" else find_detection_data(voc).train
        (yolo / "images" / name).mkdir(parents=True, exist_ok=True)
        (yolo / "labels" / name).mkdir(parents=True, exist_ok=True)
        for it in items:
            link = yolo / "images" / name / it.image.name
            if not link.exists():
                link.symlink_to(it.image.resolve())
            lines = [f"{int(c)} {(x0 + x1) / 2 / it.width:.6f} {(y0 + y1) / 2 / it.height:.6f} "
                     f"{(x1 - x0) / it.width:.6f} {(y1 - y0) / it.height:.6f}\n"
                     for (x0, y0, x1, y1), c in zip(it.boxes.tolist(), it.labels.tolist())]  # fmt: skip
            (yolo / "labels" / name / f"{it.image.stem}.txt").write_text("".join(lines))
    (yolo / "data.yaml").write_text(f"path: {yolo.resolve()}\ntrain: images/train\nval: images/val\ntest: images/test\n"
                                    "names:\n  0: raccoon\n")  # fmt: skip
    return out


def pixelmind_side(args, data: Path, out: Path) -> None:
    """Train, score on test, export, time predict; writes ``out/pixelmind.json`` (runs in a child process)."""
    import torch

    from pixelmind.api import Model

    torch.set_num_threads(args.threads)
    voc = data / "voc"
    model = Model(None if args.model == "default" else args.model, task="detect")
    t = time.perf_counter()
    sets = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}  # as the CLI's --set reads them
    schedule = {} if args.defaults else {"epochs": args.epochs, "epoch_samples": SPLIT["train"]}
    model.train(data=str(voc), **schedule, imgsz=args.imgsz, batch=args.batch, workers=args.workers, seed=SEED,
                project=str(out), name="pixelmind", exist_ok=True, **sets)  # fmt: skip
    train_s = time.perf_counter() - t
    run = model.run_dir
    history = json.loads((run / "metrics.json").read_text())
    best = Model.load(run / "weights" / "best.safetensors")
    test = best.val(data=str(voc), split="test", batch=args.batch)
    files = [it.image for it in find_detection_data(voc, split="test").val]
    onnx_path, _ = best.export("onnx", run / "weights" / "best.onnx", data=str(voc))
    result = {"model": best.meta.model, "threads": torch.get_num_threads(), "train_s": train_s,
              "test_map50": test["map50"], "test_map": test["map"],
              "best_epoch": history["best_epoch"], "epochs": history["epochs_run"],
              "train_samples": history["epochs_run"] * history["train_samples_per_epoch"],
              "params": sum(p.numel() for p in best.net.parameters()),
              "predict_ips": predict_speed(best, files), "predict_onnx_ips": predict_speed(Model.load(onnx_path), files),
              "run_dir": str(run)}  # fmt: skip
    (out / "pixelmind.json").write_text(json.dumps(result, indent=1))


def run_child(cmd: list[str], env: dict[str, str]) -> int:
    """Run ``cmd`` to the end; its peak RSS in MiB (``ru_maxrss`` of that child alone)."""
    print("run:", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd[1]} failed with exit code {proc.returncode}")
    return round(usage.ru_maxrss / 1024)


def print_table(summary: dict) -> None:
    a, pm, peer = summary["args"], summary.get("pixelmind"), summary.get("peer")
    rows = [
        ("test mAP50 (pixelmind's COCO evaluator, both)", pm and pm["test_map50"], peer and peer["test_rescored"]["map50"], "{:.4f}"),
        ("test mAP50-95 (pixelmind's COCO evaluator, both)", pm and pm["test_map"], peer and peer["test_rescored"]["map"], "{:.4f}"),
        ("epoch kept (best val mAP50-95)", pm and pm["best_epoch"], peer and peer["best_epoch"], "{}"),
        ("training wall time (s)", pm and pm["train_s"], peer and peer["train_s"], "{:.0f}"),
        ("epochs x samples per epoch", pm and f"{pm['epochs']} x {pm['train_samples'] // pm['epochs']}",
         peer and f"{peer['epochs']} x {SPLIT['train']}", "{}"),
        ("training images/s (incl. val every epoch)", pm and pm["train_samples"] / pm["train_s"],
         peer and peer["epochs"] * SPLIT["train"] / peer["train_s"], "{:.2f}"),
        ("peak RSS of the process (MiB)", pm and pm["peak_rss_mib"], peer and peer["peak_rss_mib"], "{:.0f}"),
        ("predict images/s, batch 1, PyTorch", pm and pm["predict_ips"], peer and peer["predict_ips"], "{:.1f}"),
        ("predict images/s, batch 1, ONNX (onnxruntime)", pm and pm["predict_onnx_ips"], peer and peer.get("predict_onnx_ips"), "{:.1f}"),
        ("parameters (M)", pm and pm["params"] / 1e6, peer and peer["params"] / 1e6, "{:.2f}"),
    ]  # fmt: skip
    name = pm["model"] if pm else a["model"]
    schedule = "each side's default schedule" if a.get("defaults") else f"{a['epochs']} epochs"
    print(f"\n| {schedule}, imgsz {a['imgsz']}, batch {a['batch']}, {a['threads']} thread(s) | pixelmind {name} "
          f"| Ultralytics {peer['ultralytics'] if peer else ''} YOLO11n | pixelmind / peer |\n|---|---|---|---|")  # fmt: skip
    print_rows(rows)
    if pm:
        print(f"pixelmind: run {pm['run_dir']}")
    if peer:
        print(f"peer: run {peer['run_dir']}; workarounds: " + "; ".join(peer["workarounds"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--defaults", action="store_true", help="each side's own default epochs and samples per epoch")
    ap.add_argument("--imgsz", type=int, default=416)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--model", default="default", help="pixelmind's network ('default': the detect task's own)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="pixelmind training options")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sides", default="pixelmind,peer")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "vs_yolo11n"))
    ap.add_argument("--table", metavar="SUMMARY_JSON")
    ap.add_argument("--side", help=argparse.SUPPRESS)  # the child process of one side
    args = ap.parse_args()
    if args.table:
        return print_table(json.loads(Path(args.table).read_text()))
    if (args.epochs is None) == (not args.defaults):
        ap.error("give --epochs N or --defaults (or --table SUMMARY_JSON)")
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} is absent (the shared data sets are not on this machine)")
    sides = args.sides.split(",")
    if "peer" in sides and not PEER_PYTHON.exists():
        sys.exit(f"skipped: the peer venv {PEER_PYTHON.parent.parent} is absent; make it with: bash bench/peer_ultralytics.sh")
    out = Path(args.out)
    data = write_split(out / "data")
    if args.side == "pixelmind":
        return pixelmind_side(args, data, out)
    print(f"machine: {platform.processor() or platform.machine()}, affinity {sorted(os.sched_getaffinity(0))}; "
          f"split {SPLIT}; {vars(args)}", flush=True)  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    results = {"args": vars(args)}
    if "pixelmind" in sides:
        rss = run_child([sys.executable, __file__, "--side", "pixelmind", *sys.argv[1:]], env)
        results["pixelmind"] = {**json.loads((out / "pixelmind.json").read_text()), "peak_rss_mib": rss}
    if "peer" in sides:
        epochs = [] if args.defaults else ["--epochs", str(args.epochs)]
        rss = run_child([str(PEER_PYTHON), str(PEER_SCRIPT), "--data", str(data / "yolo" / "data.yaml"), "--out",
                         str(out / "ultralytics"), *epochs, "--imgsz", str(args.imgsz), "--batch", str(args.batch),
                         "--workers", str(args.workers), "--threads", str(args.threads), "--seed", str(SEED), "--test"],
                        env)  # fmt: skip
        peer = json.loads((out / "ultralytics" / "result.json").read_text())
        peer["test_rescored"] = rescore_peer(Path(peer["test_predictions_json"]), find_detection_data(data / "voc", split="test").val)
        results["peer"] = {**peer, **peer_history(Path(peer["run_dir"])), "peak_rss_mib": rss}
    # read at the end, not the start: the two sides may run as two processes (--sides) into one folder
    summary_path = out / "summary.json"
    summary = {**(json.loads(summary_path.read_text()) if summary_path.is_file() else {}), **results}
    summary_path.write_text(json.dumps(summary, indent=1))
    print_table(summary)


if __name__ == "__main__":
    main()
