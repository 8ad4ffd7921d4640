"""Engine overhead: images/s of pixelmind's training loop vs a bare PyTorch loop, same everything.

Both loops train the same model (same init), on the same data set object and transforms,
with the same DataLoader settings, optimizer and schedule, in this one process, one after
the other; the first epoch of each is a warm-up and is not counted. Target: ratio >= 0.97.

    python bench/engine_overhead.py [--model pm_cnn_m] [--imgsz 32] [--epochs 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from _common import machine
from torch.utils.data import DataLoader

from pixelmind.config import make_config
from pixelmind.data.batch_transforms import BatchAugment
from pixelmind.data.datasets import SkipBadCollate
from pixelmind.engine.optim import build_optimizer, build_scheduler
from pixelmind.engine.trainer import Trainer
from pixelmind.tasks import get_task
from pixelmind.tasks.base import Meta


def bare_loop(model, dataset, cfg, meta, device) -> list[float]:
    """The loop a user would write by hand: images/s per epoch.

    In-memory data arrives as uint8 batches; like ClassifyTask, the loop augments them per batch.
    """
    augment = BatchAugment(meta.mean, meta.std, hflip=meta.extra.get("hflip", True), scale=(0.75, 1.0), ratio=(0.85, 1.18))
    model = model.to(device).train()
    loader = DataLoader(dataset, batch_size=cfg.batch, shuffle=True, drop_last=True, num_workers=cfg.workers,
                        persistent_workers=cfg.workers > 0, collate_fn=SkipBadCollate(torch.utils.data.default_collate))  # fmt: skip
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, len(loader))
    rates = []
    for _ in range(cfg.epochs):
        n, t0 = 0, time.perf_counter()
        for (x, y), _bad in loader:
            x, y = x.to(device), y.to(device)
            if x.dtype == torch.uint8:
                x = augment(x)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            n += len(x)
        rates.append(n / (time.perf_counter() - t0))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="pm_cnn_m")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--imgsz", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32")
    args = ap.parse_args()

    task = get_task("classify")
    cfg = make_config({"task": "classify", "data": args.data, "model": args.model, "imgsz": args.imgsz, "batch": args.batch,
                       "epochs": args.epochs, "workers": args.workers, "device": args.device, "precision": args.precision,
                       "lr": 1e-3, "augment": "light", "project": tempfile.mkdtemp()})  # fmt: skip
    bundle = task.load_data(cfg)
    meta = Meta(task="classify", model=args.model, class_names=bundle.class_names, imgsz=args.imgsz, extra=dict(bundle.augment_ok))
    torch.manual_seed(0)
    model = task.build_model(cfg, meta)
    init = copy.deepcopy(model.state_dict())

    torch.manual_seed(0)
    bare = bare_loop(model, bundle.train, cfg, meta, torch.device("cuda" if args.device.startswith("cuda") else "cpu"))
    model.load_state_dict(init)
    trainer = Trainer(task, cfg, meta, model, bundle)
    trainer.fit()
    ours = [r["img_per_s"] for r in trainer.rows]
    b, o = statistics.median(bare[1:]), statistics.median(ours[1:])
    print(f"machine: {machine()}; model {args.model} imgsz {args.imgsz} batch {args.batch} on {args.data}, {args.device} {args.precision}")
    print(f"bare PyTorch loop: {b:.0f} img/s (epochs: {', '.join(f'{r:.0f}' for r in bare)})")
    print(f"pixelmind train:   {o:.0f} img/s (epochs: {', '.join(f'{r:.0f}' for r in ours)})")
    print(f"ratio pixelmind/bare: {o / b:.3f}  (target >= 0.97)")


if __name__ == "__main__":
    main()
