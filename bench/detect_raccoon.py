"""Raccoon photos: pixelmind's detector beside Ultralytics YOLO11n, both trained from scratch (issue #3, benchmark 2).

Data: ``../shared/datasets/detection/raccoon`` (200 photos, Pascal VOC, 1 class), pixelmind's seeded
80/20 split (160 train / 40 val, seed 0). The peer reads the same split from ``pixelmind convert
--to yolo`` (written to ``<out>/yolo``), so both sides see identical train and val images.

Both sides: the same image size, epochs, batch, seed and threads, on this machine's CPU.
- pixelmind: ``pmdet_n`` (YOLO11n's budget) through the Python API, in this process. One epoch is
  one pass over the 160 training images (``epoch_samples`` = the train count; pixelmind's default
  for small sets is 400 random samples per epoch, 2.5 passes, which would not be "the same epochs").
- peer: Ultralytics ``YOLO("yolo11n.yaml").train(...)`` (random init, its default recipe: mosaic,
  SGD/AdamW "auto", warm-up, EMA) in its own venv, ``bench/.venv-ultralytics`` (made by
  ``bench/peer_ultralytics.sh``), run by ``bench/peer_ultralytics_train.py`` in a subprocess.
  Its offline workarounds are listed in that script's docstring.

Reported per side: mAP50 and mAP50-95 from each side's own evaluator (pixelmind: its COCO evaluator,
equal to pycocotools; Ultralytics: its ``DetMetrics``, AP integrated with the trapezoid rule over a
101-point interpolated PR curve, up to 300 detections per image, not COCO's), then the peer's
validation detections (conf 0.001, its ``predictions.json``) re-scored with pixelmind's COCO
evaluator on the same val ground truth, so both mAPs come from the same code; wall time of
training (the ``train`` call, validation every epoch included, interpreter start-up excluded);
predict images/s at batch 1: each of the 40 val files passed by path to the Python API
(``Model.predict`` / ``YOLO.predict``, conf 0.25: decode, letterbox, forward, NMS), after 5 warm-up
calls, total time over the 40 calls (pixelmind letterboxes to a 320x320 square; Ultralytics'
predictor to the smallest stride-32 rectangle, fewer pixels for non-square photos).

For a fair single-core comparison run it as::

    OMP_NUM_THREADS=1 flock /tmp/core0.lock taskset -c 0 .venv/bin/python bench/detect_raccoon.py --epochs E

``--threads`` (default 1) is set with ``torch.set_num_threads`` on both sides and checked.
Skips with a reason when the shared data or the peer venv is absent. Both sides keep the weights
of the epoch with the best val mAP50-95 (pixelmind's primary metric, Ultralytics' fitness), scored
on the same 40 images that are reported, so the table also gives each side's last-epoch mAPs (own
evaluator) and the epoch kept. Everything lands in ``<out>/summary.json``;
``--table <out>/summary.json`` prints the table of a finished run again.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from pixelmind.api import Model
from pixelmind.data.boxes import find_detection_data, write_detection_data
from pixelmind.metrics.coco_eval import CocoEvaluator

BENCH = Path(__file__).resolve().parent
DATA = BENCH.parents[1] / "shared" / "datasets" / "detection" / "raccoon"
PEER_PYTHON = BENCH / ".venv-ultralytics" / "bin" / "python"
PEER_SCRIPT = BENCH / "peer_ultralytics_train.py"
VAL_FRACTION, SEED = 0.2, 0


def predict_speed(model: Model, files: list[Path], warmup: int = 5) -> float:
    """Images/s of ``Model.predict`` on one file at a time (decode included), after ``warmup`` calls."""
    for f in files[:warmup]:
        model.predict(str(f), batch=1)
    t = time.perf_counter()
    for f in files:
        model.predict(str(f), batch=1)
    return len(files) / (time.perf_counter() - t)


def run_pixelmind(args, out: Path, n_train: int, val_files: list[Path]) -> dict:
    model = Model(args.model, task="detect")
    t = time.perf_counter()
    metrics = model.train(data=str(DATA), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, workers=args.workers,
                          seed=SEED, val_fraction=VAL_FRACTION, epoch_samples=n_train, project=str(out),
                          name="pixelmind", exist_ok=True)  # fmt: skip
    train_s = time.perf_counter() - t
    threads = torch.get_num_threads()
    best = Model.load(model.run_dir / "weights" / "best.safetensors")
    with open(model.run_dir / "results.csv", newline="") as f:
        history = list(csv.DictReader(f))
    epoch_s = [float(row["time_s"]) for row in history]
    best_epoch = json.loads((model.run_dir / "metrics.json").read_text()).get("best_epoch")
    return {"map50": metrics["map50"], "map": metrics["map"], "train_s": train_s, "threads": threads,
            "epoch_s": epoch_s, "best_epoch": best_epoch,
            "last_map50": float(history[-1]["val/map50"]), "last_map": float(history[-1]["val/map"]),
            "params": sum(p.numel() for p in best.net.parameters()), "predict_ips": predict_speed(best, val_files),
            "run_dir": str(model.run_dir)}  # fmt: skip


def run_peer(args, out: Path) -> dict:
    yolo = out / "yolo"
    if not (yolo / "data.yaml").exists():
        write_detection_data(find_detection_data(DATA, VAL_FRACTION, SEED), yolo, "yolo")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    cmd = [str(PEER_PYTHON), str(PEER_SCRIPT), "--data", str(yolo / "data.yaml"), "--out", str(out / "ultralytics"),
           "--epochs", str(args.epochs), "--imgsz", str(args.imgsz), "--batch", str(args.batch),
           "--workers", str(args.workers), "--threads", str(args.threads), "--seed", str(SEED)]  # fmt: skip
    print("peer:", " ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, check=True)
    result = json.loads((out / "ultralytics" / "result.json").read_text())
    return {**result, **peer_history(Path(result["run_dir"]))}


def peer_history(run_dir: Path) -> dict:
    """Ultralytics' last-epoch mAPs and its best epoch (its fitness: mAP50-95) from the run's results.csv."""
    with open(run_dir / "results.csv", newline="") as f:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]
    best = max(rows, key=lambda r: float(r["metrics/mAP50-95(B)"]))
    return {"last_own_map50": float(rows[-1]["metrics/mAP50(B)"]), "last_own_map": float(rows[-1]["metrics/mAP50-95(B)"]),
            "best_epoch": int(best["epoch"])}  # fmt: skip


def rescore_peer(preds_json: Path, val_items) -> dict[str, float]:
    """The peer's saved validation detections scored by pixelmind's COCO evaluator on pixelmind's val ground truth.

    Ultralytics writes ``image_id`` as the file stem (an int when the stem is numeric), ``bbox`` as
    COCO xywh in the original image's pixels and ``category_id`` 1-based for non-COCO data (its
    ``class_map``); a 0-based file (older versions) is detected from the ids it holds.
    """
    rows = json.loads(preds_json.read_text())
    by_stem: dict[str, list[dict]] = {}
    for r in rows:
        by_stem.setdefault(str(r["image_id"]), []).append(r)
    stems = {it.image.stem for it in val_items}
    if unknown := sorted(set(by_stem) - stems):
        raise SystemExit(f"{preds_json}: detections for images not in pixelmind's val split: {unknown[:5]}")
    offset = 1 if rows and min(r["category_id"] for r in rows) >= 1 else 0
    ev = CocoEvaluator(["raccoon"])
    for i, it in enumerate(val_items):
        rs = by_stem.get(it.image.stem, [])
        xywh = torch.tensor([r["bbox"] for r in rs], dtype=torch.float64).reshape(-1, 4)
        boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
        pred = {"boxes": boxes, "scores": torch.tensor([r["score"] for r in rs], dtype=torch.float64),
                "labels": torch.tensor([r["category_id"] - offset for r in rs], dtype=torch.int64)}  # fmt: skip
        target = {"boxes": torch.from_numpy(it.boxes), "labels": torch.from_numpy(it.labels),
                  "iscrowd": torch.from_numpy(it.iscrowd), "image_id": torch.tensor(i)}  # fmt: skip
        ev.update([pred], [target])
    m = ev.compute()
    return {"map50": m["map50"], "map": m["map"], "detections": len(rows)}


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def print_rows(rows: list[tuple]) -> None:
    """Markdown rows ``(label, pixelmind, peer, format)`` with their ratio (none for ``"{}"``: epoch numbers)."""
    for label, a, b, fmt in rows:
        cells = [fmt.format(v) if v is not None else "-" for v in (a, b)]
        comparable = a is not None and b is not None and fmt != "{}"
        print(f"| {label} | {cells[0]} | {cells[1]} | {ratio(a, b) if comparable else '-'} |")


def print_table(summary: dict) -> None:
    """The side-by-side markdown table of a ``summary.json`` (one side may be missing)."""
    args, pm, peer = summary["args"], summary.get("pixelmind"), summary.get("peer")
    rows = [
        ("mAP50 (own evaluator)", pm and pm["map50"], peer and peer["own_map50"], "{:.4f}"),
        ("mAP50-95 (own evaluator)", pm and pm["map"], peer and peer["own_map"], "{:.4f}"),
        ("mAP50 (pixelmind COCO evaluator, both)", pm and pm["map50"], peer and peer["rescored"]["map50"], "{:.4f}"),
        ("mAP50-95 (pixelmind COCO evaluator, both)", pm and pm["map"], peer and peer["rescored"]["map"], "{:.4f}"),
        ("mAP50 at the last epoch (own evaluator)", pm and pm.get("last_map50"), peer and peer.get("last_own_map50"), "{:.4f}"),
        ("mAP50-95 at the last epoch (own evaluator)", pm and pm.get("last_map"), peer and peer.get("last_own_map"), "{:.4f}"),
        ("best epoch (kept weights, chosen on val mAP50-95)", pm and pm.get("best_epoch"), peer and peer.get("best_epoch"), "{}"),
        ("training wall time (s)", pm and pm["train_s"], peer and peer["train_s"], "{:.0f}"),
        ("training wall time / epoch (s)", pm and pm["train_s"] / args["epochs"], peer and peer["train_s"] / args["epochs"], "{:.1f}"),
        ("predict images/s (batch 1)", pm and pm["predict_ips"], peer and peer["predict_ips"], "{:.1f}"),
        ("parameters (M)", pm and pm["params"] / 1e6, peer and peer["params"] / 1e6, "{:.2f}"),
    ]  # fmt: skip
    peer_name = f"Ultralytics {peer['ultralytics']} YOLO11n" if peer else "Ultralytics YOLO11n"
    print(f"\n| {args['epochs']} epochs, imgsz {args['imgsz']}, batch {args['batch']} | pixelmind {args['model']} | {peer_name} | pixelmind / peer |")  # fmt: skip
    print("|---|---|---|---|")
    print_rows(rows)
    threads = [pm and pm["threads"], peer and peer["threads"]]
    print(f"| torch threads (checked) | {threads[0] or '-'} | {threads[1] or '-'} | |")
    if pm:
        print(f"pixelmind: run {pm['run_dir']}")
    if peer:
        print(f"peer: torch {peer['torch']}, run {peer['run_dir']}; workarounds: " + "; ".join(peer["workarounds"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--model", default="pmdet_n")
    ap.add_argument("--workers", type=int, default=0, help="data loader processes, both sides (0: in the main process)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    ap.add_argument("--sides", default="pixelmind,peer")
    ap.add_argument("--out", default=str(BENCH / "out" / "raccoon"))
    ap.add_argument("--table", metavar="SUMMARY_JSON", help="print the table of a finished run's summary.json and exit")
    args = ap.parse_args()
    if args.table:
        print_table(json.loads(Path(args.table).read_text()))
        return
    if args.epochs is None:
        ap.error("--epochs is required (or --table SUMMARY_JSON)")
    if not DATA.is_dir():
        sys.exit(f"skipped: {DATA} is absent (the shared data sets are not on this machine)")
    sides = args.sides.split(",")
    if "peer" in sides and not PEER_PYTHON.exists():
        sys.exit(f"skipped: the peer venv {PEER_PYTHON.parent.parent} is absent; make it with: bash bench/peer_ultralytics.sh")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = find_detection_data(DATA, VAL_FRACTION, SEED)
    val_files = [it.image for it in data.val]
    print(f"machine: {platform.processor() or platform.machine()}, affinity {sorted(os.sched_getaffinity(0))}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; data {DATA} ({len(data.train)} train / {len(data.val)} val); "
          f"epochs {args.epochs}, imgsz {args.imgsz}, batch {args.batch}, workers {args.workers}", flush=True)  # fmt: skip

    res: dict[str, dict] = {}
    if "pixelmind" in sides:
        res["pixelmind"] = run_pixelmind(args, out, len(data.train), val_files)
        print("pixelmind:", json.dumps(res["pixelmind"]), flush=True)
    if "peer" in sides:
        res["peer"] = run_peer(args, out)
        res["peer"]["rescored"] = rescore_peer(Path(res["peer"]["predictions_json"]), data.val)
        print("peer:", json.dumps(res["peer"]), flush=True)
    summary = {"args": vars(args), **res}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print_table(summary)


if __name__ == "__main__":
    main()
