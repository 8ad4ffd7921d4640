"""Accuracy vs PGD eps for a normally and an adversarially trained classifier, trained and attacked in one run.

Both models get the task's default recipe on the same data; the second adds ``--set adv_train=pgd``
(``adv_eps``, ``adv_steps``). Prints top-1 at each eps for both and their ratio (adv / normal).

    python bench/robust_eps.py                                   # digits (built in)
    python bench/robust_eps.py --data /usr/share/datasets/fashion-mnist --adv-eps 0.0314 --limit 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import machine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--adv-eps", type=float, default=8 / 255)
    ap.add_argument("--adv-steps", type=int, default=3)
    ap.add_argument("--eps", default="1,2,4,8,16", help="attack budgets in 1/255")
    ap.add_argument("--steps", type=int, default=10, help="PGD steps of the evaluation attack")
    ap.add_argument("--limit", type=int, default=1000, help="validation images attacked")
    ap.add_argument("--epochs", type=int, default=None)
    args = ap.parse_args()
    from pixelmind.api import Model

    print(machine())
    eps = [float(e) / 255 for e in args.eps.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("normal", {}), ("adv", {"adv_train": "pgd", "adv_eps": args.adv_eps, "adv_steps": args.adv_steps})):
            t0 = time.perf_counter()
            m = Model(task="classify")
            m.train(data=args.data, project=tmp, name=name, workers=0, **({"epochs": args.epochs} if args.epochs else {}), **extra)
            train_s = time.perf_counter() - t0
            results[name] = m.robust(f"{tmp}/{name}_robust", attacks=["pgd"], eps=eps, steps=args.steps, corruptions=False,
                                     limit=args.limit)  # fmt: skip
            print(f"{name}: trained in {train_s:.0f} s ({m.meta.model}, imgsz {m.meta.imgsz}); clean top1 {results[name]['clean']:.4f}")
    n, a = results["normal"], results["adv"]
    print(f"PGD-{args.steps} on {n['samples']} val images of {args.data}; adversarial training: PGD-{args.adv_steps} at eps {args.adv_eps * 255:g}/255")
    print(f"{'eps (x1/255)':>12s} {'normal':>8s} {'adv':>8s} {'adv/normal':>10s}")
    print(f"{0:>12g} {n['clean']:8.4f} {a['clean']:8.4f} {a['clean'] / n['clean']:10.2f}")
    for rn, ra in zip(n["attacks"], a["attacks"]):
        print(f"{rn['eps_255']:>12g} {rn['top1']:8.4f} {ra['top1']:8.4f} {ra['top1'] / max(rn['top1'], 1e-9):10.2f}")


if __name__ == "__main__":
    main()
