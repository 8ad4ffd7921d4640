"""The peer side of bench/detect_raccoon.py: Ultralytics YOLO11n trained from its model YAML, offline.

Run by bench/.venv-ultralytics/bin/python (bench/peer_ultralytics.sh makes that venv), never by the
pixelmind venv: Ultralytics is not a pixelmind dependency. Writes ``<out>/result.json`` with the
training wall time, Ultralytics' own mAP50 / mAP50-95 (its evaluator, on best.pt), the path of the
``predictions.json`` its validator saved (the same detections, for detect_raccoon.py to re-score
with pixelmind's COCO evaluator) and predict images/s at batch 1.

    bench/.venv-ultralytics/bin/python bench/peer_ultralytics_train.py --data D/data.yaml --out DIR --epochs 1

Offline workarounds (this machine has no network), all set here before ``import ultralytics``:
- ``YOLO_CONFIG_DIR=<out>/config``: Ultralytics writes settings.json (and would put fonts) under
  ~/.config/Ultralytics otherwise; keeping it in the run folder leaves the user's home alone.
- ``YOLO_OFFLINE=1`` and settings ``sync=False``: no hub/analytics events (they would time out).
- ``amp=False``: the AMP check downloads yolo11n.pt (it only runs on CUDA anyway; CPU here).
- ``plots=False``: plotting labels/results fetches Arial.ttf from the Ultralytics assets.
- ``pretrained=False`` with ``yolo11n.yaml``: no weights download, the network starts random.
- ``<config>/Ultralytics/Arial.ttf``: ``check_det_dataset`` calls ``check_font("Arial.ttf")`` whatever ``plots``
  says, which probes (HTTP HEAD) and downloads the font from the Ultralytics assets; matplotlib's
  DejaVuSans copied under that name satisfies it without touching the network (the font only
  draws plot labels). Without it the probe failed fast and silently here (no route out); on a
  network that drops packets instead it would wait for the request's timeout.
- ``YOLO_AUTOINSTALL=False``: ``val(save_json=True)`` on a non-COCO set runs faster-coco-eval,
  which ``check_requirements`` would pip-install at run time; without it it warns and goes on.
- threads: ``select_device("cpu")`` calls ``torch.set_num_threads(min(8, cpu_count - 1))``,
  overriding OMP_NUM_THREADS; an ``on_train_epoch_start`` callback sets ``--threads`` again and
  records what torch uses.
The result records the list (``WORKAROUNDS``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

WORKAROUNDS = [
    "YOLO_CONFIG_DIR=<out>/config: settings.json kept in the run folder, not ~/.config/Ultralytics",
    "YOLO_OFFLINE=1 and settings sync=False: no hub / analytics calls",
    "amp=False: the AMP check would download yolo11n.pt (CUDA only; CPU here)",
    "plots=False: plots would download Arial.ttf",
    "pretrained=False with the model YAML yolo11n.yaml: no weights download",
    "<config>/Ultralytics/Arial.ttf (matplotlib's DejaVuSans): check_det_dataset downloads the font even with plots=False",
    "YOLO_AUTOINSTALL=False: val(save_json=True) would pip-install faster-coco-eval at run time",
    "on_train_epoch_start callback re-sets torch threads: select_device('cpu') sets min(8, cpu_count - 1)",
]


def time_predict(model, files: list[Path], args) -> float:
    """Seconds for ``model.predict`` on each file by path (conf 0.25), after ``args.warmup`` untimed calls."""
    import torch

    for f in files[: args.warmup]:
        model.predict(str(f), imgsz=args.imgsz, conf=0.25, device="cpu", verbose=False)
    torch.set_num_threads(args.threads)  # the predictor's select_device reset it, as in training
    t = time.perf_counter()
    for f in files:
        model.predict(str(f), imgsz=args.imgsz, conf=0.25, device="cpu", verbose=False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="Ultralytics data.yaml (pixelmind convert --to yolo)")
    ap.add_argument("--out", required=True, help="folder for the run, config and result.json")
    ap.add_argument("--epochs", type=int, help="default: Ultralytics' own (100 in 8.x)")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=5, help="predict calls before timing")
    ap.add_argument("--test", action="store_true",
                    help="score best.pt on the data.yaml's test split (save_json) and time predict on its images, "
                         "PyTorch and an ONNX export (bench/detect_vs_yolo11n.py)")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    if out.exists():
        shutil.rmtree(out)  # a fresh run each time: Ultralytics would otherwise make train2, train3 ...
    (out / "config" / "Ultralytics").mkdir(parents=True)  # Ultralytics' USER_CONFIG_DIR is $YOLO_CONFIG_DIR/Ultralytics
    os.environ["YOLO_CONFIG_DIR"] = str(out / "config")
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    import matplotlib

    shutil.copy(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", out / "config" / "Ultralytics" / "Arial.ttf")

    import torch

    torch.set_num_threads(args.threads)
    import ultralytics
    from ultralytics import YOLO, settings

    settings.update({"sync": False})
    # Ultralytics may set its own thread count on import; set ours again and record what it is.
    torch.set_num_threads(args.threads)

    model = YOLO("yolo11n.yaml")
    seen_threads: set[int] = set()
    epoch_ends: list[float] = []

    def pin_threads(trainer) -> None:
        torch.set_num_threads(args.threads)
        seen_threads.add(torch.get_num_threads())

    model.add_callback("on_train_epoch_start", pin_threads)
    model.add_callback("on_fit_epoch_end", lambda trainer: epoch_ends.append(time.perf_counter()))
    t0 = t = time.perf_counter()
    schedule = {} if args.epochs is None else {"epochs": args.epochs}
    results = model.train(data=args.data, imgsz=args.imgsz, **schedule, batch=args.batch, device="cpu",
                          workers=args.workers, pretrained=False, amp=False, plots=False, val=True, seed=args.seed,
                          deterministic=True, project=str(out), name="train", exist_ok=True, verbose=False)  # fmt: skip
    train_s = time.perf_counter() - t
    epochs = model.trainer.epochs
    threads_in_training = sorted(seen_threads)
    save_dir = Path(model.trainer.save_dir)
    best = save_dir / "weights" / "best.pt"

    # Ultralytics' own evaluator on best.pt (what train() returns after its final validation)
    own = {"map50": float(results.box.map50), "map": float(results.box.map)}

    # the same evaluation with save_json: its detections (conf 0.001) for re-scoring with pixelmind's evaluator
    peer = YOLO(str(best))
    params = sum(p.numel() for p in peer.model.parameters())  # before predict fuses conv+bn; 1-class head
    val = peer.val(data=args.data, imgsz=args.imgsz, batch=args.batch, device="cpu", conf=0.001, save_json=True,
                   plots=False, project=str(out), name="val", exist_ok=True, verbose=False)  # fmt: skip
    preds_json = Path(val.save_dir) / "predictions.json"

    extra = {}
    if args.test:  # the held-out split, scored once; its detections for re-scoring with pixelmind's evaluator
        test = peer.val(data=args.data, split="test", imgsz=args.imgsz, batch=args.batch, device="cpu", conf=0.001,
                        save_json=True, plots=False, project=str(out), name="test", exist_ok=True, verbose=False)  # fmt: skip
        extra = {"test_own_map50": float(test.box.map50), "test_own_map": float(test.box.map),
                 "test_predictions_json": str(Path(test.save_dir) / "predictions.json")}  # fmt: skip

    # predict images/s at batch 1 on the val (or test) images, files decoded inside the timed loop
    data_root = Path(args.data).resolve().parent
    files = sorted((data_root / "images" / ("test" if args.test else "val")).iterdir())
    predict_s = time_predict(peer, files, args)
    if args.test:
        onnx_path = peer.export(format="onnx", imgsz=args.imgsz, device="cpu", simplify=False, verbose=False)
        extra["predict_onnx_ips"] = len(files) / time_predict(YOLO(onnx_path, task="detect"), files, args)

    result = {
        "ultralytics": ultralytics.__version__, "torch": torch.__version__, "python": sys.version.split()[0],
        "threads": threads_in_training, "params": params, "epochs": epochs, "imgsz": args.imgsz,
        "batch": args.batch, "train_s": train_s, "own_map50": own["map50"], "own_map": own["map"],
        "own_val_map50": float(val.box.map50), "own_val_map": float(val.box.map),
        "predictions_json": str(preds_json), "class_names": [peer.names[i] for i in sorted(peer.names)],
        "predict_images": len(files), "predict_s": predict_s, "predict_ips": len(files) / predict_s,
        "predict_threads": torch.get_num_threads(),
        "run_dir": str(save_dir),
        # on_fit_epoch_end fires after each epoch and once more after the final validation of best.pt
        "epoch_s": [round(b - a, 2) for a, b in zip([t0, *epoch_ends], epoch_ends)][:epochs],
        "final_val_s": round(epoch_ends[-1] - epoch_ends[epochs - 1], 2) if len(epoch_ends) > epochs else None,
        "workarounds": WORKAROUNDS, **extra,
    }  # fmt: skip
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
