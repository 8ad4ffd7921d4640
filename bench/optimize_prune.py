"""Structured pruning of the default classifier: top-1, FLOPs, parameters and CPU speed, original vs pruned, one run.

Trains the default recipe on ``--data`` (or takes ``--weights``), prunes ``--amount`` of the FLOPs
(the code of ``pixelmind optimize --prune``), measures the pruned network before fine-tuning, then
fine-tunes it through the engine (:func:`pixelmind.optimize.prune.finetune_pruned`). The baseline,
measured in the same run, is the original model: its top-1, FLOPs, parameters and PyTorch CPU latency.
``--scratch`` also trains the pruned architecture from random weights for as many epochs as the
original run had (a second baseline: is pruning + fine-tuning better than a narrower model trained anew?).

    python bench/optimize_prune.py                                           # built-in digits
    python bench/optimize_prune.py --data /usr/share/datasets/fashion-mnist  # apt-get install dataset-fashion-mnist
    python bench/optimize_prune.py --weights runs/classify/exp/weights/best.safetensors --lr-share 1.0 --ft-epochs 2
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from _common import machine, median_time, peak_rss_mb


def _train_original(data: str, project: str, epochs: int | None, seed: int):
    from pixelmind.api import Model

    m = Model(None, task="classify")
    t = time.perf_counter()
    m.train(data=data, project=project, name="original", epochs=epochs, seed=seed, device="cpu")
    return m.weights_path, time.perf_counter() - t


def _speed(nets: list, shape: tuple[int, ...], threads: int, rounds: int = 5) -> list[tuple[float, float]]:
    """Per network (batch-1 latency in ms, batch-256 images per second) of a PyTorch CPU forward.

    The networks take turns, round after round, and each keeps its median: load from other jobs on
    the machine then slows all of them alike rather than whichever happened to run during it.
    """
    import statistics

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    x1, x256 = torch.rand(1, *shape), torch.rand(256, *shape)
    times: list[list[tuple[float, float]]] = [[] for _ in nets]
    with torch.inference_mode():
        for _ in range(rounds):
            for i, net in enumerate(nets):
                run = net.eval().cpu()
                times[i].append((median_time(lambda run=run: run(x1), repeat=20, warmup=3),
                                 median_time(lambda run=run: run(x256), repeat=3, warmup=1)))  # fmt: skip
    torch.set_num_threads(before)
    return [(statistics.median(a for a, _ in t) * 1e3, 256 / statistics.median(b for _, b in t)) for t in times]


def _scratch(original, pruned_meta, project: str, seed: int) -> tuple[float, float]:
    """Top-1 and wall time of the pruned architecture trained from random weights with the original recipe."""
    from pixelmind.api import Model
    from pixelmind.config import TrainConfig
    from pixelmind.optimize.structure import build_network

    meta = copy.deepcopy(pruned_meta)
    config = {**original.config, "name": "scratch", "project": project, "seed": seed, "weights": None}
    net = build_network(original.task, TrainConfig(task="classify", data=config["data"]), meta)
    for m in net.modules():  # fresh random weights in the pruned widths
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    t = time.perf_counter()
    metrics = Model(meta.model, task="classify").train(config=config, _network=(net, meta))
    return metrics["top1"], time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--weights", default=None, help="a trained classifier (default: train the default recipe on --data)")
    parser.add_argument("--train-epochs", type=int, default=None, help="epochs of the original run (default: the recipe's)")
    parser.add_argument("--amount", type=float, default=0.5, help="share of the FLOPs to remove")
    parser.add_argument("--ft-epochs", type=int, default=None, help="fine-tuning epochs (default: finetune_pruned's)")
    parser.add_argument("--lr-share", type=float, default=None, help="fine-tuning lr as a share of the recipe's (default: LR_SHARE)")
    parser.add_argument("--warmup", type=float, default=None, help="fine-tuning warm-up epochs (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distill", action="store_true", help="fine-tune with the original as teacher (optimize --distill)")
    parser.add_argument("--scratch", action="store_true", help="also train the pruned widths from scratch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the latency measurement")
    args = parser.parse_args()

    from pixelmind.api import Model
    from pixelmind.engine import checkpoint as ckpt
    from pixelmind.optimize.prune import LR_SHARE, example_input, finetune_pruned, prune_model

    project = tempfile.mkdtemp(prefix="pm_prune_")
    t_train = None
    weights = Path(args.weights) if args.weights else None
    if weights is None:
        weights, t_train = _train_original(args.data, project, args.train_epochs, args.seed)
    original = Model.load(weights)
    data = original.config["data"] if args.weights and args.data == "digits" else args.data
    top1_original = original.val(data=data)["top1"]

    t = time.perf_counter()
    net, meta, summary = prune_model(original, args.amount)
    t_prune = time.perf_counter() - t
    no_ft_path = Path(project) / "pruned_no_finetune.safetensors"
    ckpt.save_weights(no_ft_path, net.state_dict(), meta, original.config)
    top1_no_ft = Model.load(no_ft_path).val(data=data)["top1"]

    share = LR_SHARE if args.lr_share is None else args.lr_share
    overrides = {"lr": original.config["lr"] * share, "project": project, "teacher": str(weights) if args.distill else None}
    if args.warmup is not None:
        overrides["warmup_epochs"] = args.warmup
    t = time.perf_counter()
    metrics, run_dir, _ = finetune_pruned(original, data, args.amount, epochs=args.ft_epochs, **overrides)
    t_ft = time.perf_counter() - t
    tuned = Model.load(run_dir / "weights" / "best.safetensors")
    ft_cfg = tuned.config
    top1_ft = metrics["top1"]

    shape = tuple(example_input(original.net, original.meta).shape[1:])
    (lat_o, thr_o), (lat_p, thr_p) = _speed([original.net, tuned.net], shape, args.threads)
    scratch = _scratch(original, meta, project, args.seed) if args.scratch else None

    c = original.config
    print(f"machine: {machine()}; latency on {args.threads} thread(s), the two models taking turns")
    print(f"data: {data}; original recipe: {c['model']}, {c['epochs']} epochs, imgsz {c['imgsz']}, batch {c['batch']}, lr {c['lr']:g}"
          + (f"; trained in {t_train:.0f} s" if t_train else f"; weights {weights}"))  # fmt: skip
    print(f"pruning {args.amount:.0%} of the FLOPs: {summary['steps']} steps, {summary['channel_ratio']:.1%} of each layer's channels, {t_prune:.1f} s")
    print(f"fine-tuning: {ft_cfg['epochs']} epochs, lr {ft_cfg['lr']:g} ({share:g}x), warm-up {ft_cfg['warmup_epochs']:g} epochs, "
          f"{'distilled from the original, ' if args.distill else ''}{t_ft:.0f} s wall")  # fmt: skip
    print()
    print("| model | val top-1 | FLOPs | params | torch CPU batch 1 | batch 256 |")
    print("|---|---|---|---|---|---|")
    print(f"| original (baseline) | {top1_original:.4f} | {summary['flops_before']:,} | {summary['params_before']:,} | {lat_o:.3f} ms | {thr_o:.0f} img/s |")
    print(f"| pruned, no fine-tuning | {top1_no_ft:.4f} | {summary['flops_after']:,} | {summary['params_after']:,} | | |")
    print(f"| pruned + fine-tuned | {top1_ft:.4f} | {summary['flops_after']:,} | {summary['params_after']:,} | {lat_p:.3f} ms | {thr_p:.0f} img/s |")
    if scratch:
        print(f"| pruned widths from scratch ({c['epochs']} epochs, {scratch[1]:.0f} s) | {scratch[0]:.4f} | {summary['flops_after']:,} | {summary['params_after']:,} | | |")
    print()
    print(f"ratios pruned/original: FLOPs {summary['flops_ratio']:.3f}x, params {summary['params_after'] / summary['params_before']:.3f}x, "
          f"batch-1 latency {lat_p / lat_o:.2f}x, batch-256 throughput {thr_p / thr_o:.2f}x; "
          f"top-1 {top1_ft - top1_original:+.4f} after fine-tuning ({top1_no_ft - top1_original:+.4f} before)")  # fmt: skip
    print(f"peak RSS {peak_rss_mb():.0f} MB; runs in {project}")


if __name__ == "__main__":
    main()
