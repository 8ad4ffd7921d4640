"""Detection on the built-in ``shapes``: COCO mAP50 of the default recipe trained from scratch on this CPU.

Target (issue #3): mAP50 >= 0.90 within 10 minutes of training on the CPU. Printed beside it,
measured in the same run: the untrained network (the same weights before training), the mAP50
of a model that has learnt nothing.

    python bench/detect_shapes.py [--model pmdet_n] [--epochs N] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import machine

from pixelmind.api import Model

BUDGET_S = 600
TARGET = 0.90


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="default: the task's recipe")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--set", nargs="*", default=[], help="more TrainConfig overrides, key=value (YAML values)")
    args = ap.parse_args()
    import yaml

    overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    model = Model(args.model, task="detect")
    t = time.perf_counter()
    metrics = model.train(data="shapes", epochs=args.epochs, project=str(Path(__file__).resolve().parent / "out"),
                          name="detect_shapes", exist_ok=True, **overrides)  # fmt: skip
    seconds = time.perf_counter() - t
    untrained = Model.load(model.run_dir / "weights" / "best.safetensors")
    untrained.net.load_state_dict(model.task.build_model(None, untrained.meta).state_dict())  # fresh random weights
    base = untrained.val(data="shapes")
    print(f"machine: {machine()}")
    print(f"model {model.meta.model}, {model.config.get('epochs')} epochs, imgsz {model.meta.imgsz}")
    print(f"wall time {seconds:.0f} s (budget {BUDGET_S} s; ratio {seconds / BUDGET_S:.2f})")
    print(f"val mAP50 {metrics['map50']:.4f} (target {TARGET}); mAP50-95 {metrics['map']:.4f}")
    print(f"baseline untrained network mAP50 {base['map50']:.4f}")
    print("per-class AP50-95: " + ", ".join(f"{n} {metrics[f'ap/{n}']:.3f}" for n in model.meta.class_names))


if __name__ == "__main__":
    main()
