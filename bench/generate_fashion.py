"""Fashion-MNIST generation at 28 px: FID/KID of a GAN and a DDPM trained by pixelmind on CPU, with baselines.

Needs the Debian package dataset-fashion-mnist (files in /usr/share/datasets/fashion-mnist).
Every step goes through pixelmind's own CLI, in this order:

1. the feature extractor: ``pixelmind train --task classify`` on Fashion-MNIST (small budget);
   its test accuracy is printed. FID/KID below use its penultimate features, so they compare
   with each other and with nothing else (not with Inception FIDs in papers).
2. real-vs-real baseline: ``--samples`` training images against as many test images, the
   floor a perfect generator reaches with this many samples.
3. untrained generators (the same builders, seed 0): the ceiling.
4. ``pixelmind train --task generate --model gan|ddpm`` for the stated budget (epochs over
   ``--limit`` training images), then ``--samples`` samples of the EMA weights, classes
   cycled 0..9, against the same test images. Sample grids go to bench/generate_fashion_{gan,ddpm}.png.

Each figure is printed with its ratio to the real-vs-real baseline.

    python bench/generate_fashion.py [--limit 6000] [--gan-epochs 2] [--ddpm-epochs 6] [--samples 500] ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import machine

DEFAULT = "/usr/share/datasets/fashion-mnist"
HERE = Path(__file__).parent


def cli(*args: str) -> tuple[dict, float]:
    """Run ``pixelmind ARGS --json``; (the metrics of its last line, wall seconds)."""
    cmd = [sys.executable, "-m", "pixelmind", *args, "--json"]
    print("$ pixelmind " + " ".join(args), flush=True)
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"failed ({out.returncode}): {' '.join(cmd)}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]), wall


def fashion(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from pixelmind.data.formats import find_idx_split, read_idx

    images, labels = find_idx_split(root, split)
    return torch.from_numpy(read_idx(images).copy()).unsqueeze(1), torch.from_numpy(read_idx(labels).astype("int64"))


def evaluate(extractor, fake: torch.Tensor, real: torch.Tensor, reference: str) -> dict[str, float]:
    from pixelmind.metrics.generation import GenerationEvaluator

    ev = GenerationEvaluator(extractor, reference)
    for i in range(0, len(fake), 256):
        ev.update(fake[i : i + 256], real[i : i + 256])
    return ev.compute()


def samples(net, n: int, steps: int | None, guidance: float | None, seed: int = 0) -> torch.Tensor:
    """``n`` uint8 samples, classes cycled 0..9 (as balanced as the test split), fixed seeds."""
    from pixelmind.tasks.generate.sampling import generate

    labels = torch.arange(n) % 10 if getattr(net, "num_classes", 0) else None
    return generate(net.eval(), n, labels, seed, steps=steps, guidance=guidance)


def grid(net, path: Path, steps: int | None, guidance: float | None) -> None:
    from pixelmind.tasks.generate.sampling import generate, image_grid

    labels = torch.arange(10).repeat_interleave(8) if getattr(net, "num_classes", 0) else None
    image_grid(generate(net.eval(), 80, labels, 0, steps=steps, guidance=guidance), nrow=8).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT)
    ap.add_argument("--samples", type=int, default=500, help="generated and real images per FID/KID figure")
    ap.add_argument("--clf-epochs", type=int, default=2, help="feature classifier epochs")
    ap.add_argument("--clf-limit", type=int, default=20000, help="feature classifier training images")
    ap.add_argument("--limit", type=int, default=6000, help="training images of the generators")
    ap.add_argument("--gan-epochs", type=int, default=2, help="~1 s per step of 64 on one core")
    ap.add_argument("--ddpm-epochs", type=int, default=6, help="~0.3 s per step of 64 on one core (width 16)")
    ap.add_argument("--ddpm-lr", type=float, default=1e-3, help="a short budget trains faster with a higher rate")
    ap.add_argument("--ddpm-kwargs", default='{"width": 16}', help="ddpm builder kwargs (JSON): small enough for CPU")
    ap.add_argument("--gan-kwargs", default="{}", help="gan builder kwargs (JSON)")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps of the evaluated samples (and training-time grids)")
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--only", choices=["gan", "ddpm"], default=None, help="train only this generator")
    ap.add_argument("--project", default=None, help="runs folder (default: a temporary one)")
    args = ap.parse_args()

    root = Path(args.data)
    if not (root / "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"skip: {root} has no Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    from pixelmind.api import Model
    from pixelmind.metrics.generation import load_extractor
    from pixelmind.tasks.generate.models import build_generator

    project = args.project or tempfile.mkdtemp(prefix="generate_fashion_")
    print(f"machine: {machine()}")
    t_all = time.perf_counter()

    # 1. the feature extractor
    clf, wall = cli("train", "--task", "classify", "--data", str(root), "--model", "pm_cnn_s", "--epochs", str(args.clf_epochs),
                    "--limit", str(args.clf_limit), "--workers", "0", "--project", project, "--name", "features")  # fmt: skip
    weights = Path(clf["run_dir"]) / "weights" / "best.safetensors"
    extractor = load_extractor(str(weights), None, channels=1)
    print(f"extractor: {extractor.name}, {extractor.dim}-d, sha256 {extractor.sha256[:16]}; "
          f"test top-1 {clf['top1']:.4f} after {args.clf_epochs} epochs on {args.clf_limit} images ({wall:.0f} s)")  # fmt: skip

    train_x, _ = fashion(root, "train")
    test_x, _ = fashion(root, "test")
    n = args.samples
    g = torch.Generator().manual_seed(0)
    real = test_x[torch.randperm(len(test_x), generator=g)[:n]]
    reference = f"Fashion-MNIST test split, {n} random images"

    # 2. real vs real, 3. untrained generators
    rows: list[tuple[str, dict[str, float], str]] = []
    base = evaluate(extractor, train_x[torch.randperm(len(train_x), generator=g)[:n]], real, reference)
    rows.append(("real vs real (train vs test)", base, ""))
    models = {"gan": json.loads(args.gan_kwargs), "ddpm": json.loads(args.ddpm_kwargs)}
    for name, kwargs in models.items():
        torch.manual_seed(0)
        net = build_generator(name, 28, 1, 10, **kwargs)
        t = time.perf_counter()
        rows.append((f"untrained {name}", evaluate(extractor, samples(net, n, args.steps, args.guidance), real, reference),
                     f"sampling {time.perf_counter() - t:.0f} s"))  # fmt: skip

    # 4. trained generators
    for name in [args.only] if args.only else ["gan", "ddpm"]:
        epochs = args.gan_epochs if name == "gan" else args.ddpm_epochs
        extra = ["--lr", str(args.ddpm_lr)] if name == "ddpm" else []
        metrics, wall = cli("train", "--task", "generate", "--data", str(root), "--model", name, "--epochs", str(epochs),
                            "--limit", str(args.limit), "--workers", "0", "--project", project, "--name", name,
                            "--sample-steps", str(args.steps), "--guidance", str(args.guidance),
                            "--set", f"model_kwargs={json.dumps(models[name])}", *extra)  # fmt: skip
        best = Path(metrics["run_dir"]) / "weights" / "best.safetensors"
        net = Model.load(best).net
        t = time.perf_counter()
        fake = samples(net, n, args.steps, args.guidance)
        sampling = time.perf_counter() - t
        rows.append((f"{name}: {epochs} epochs x {args.limit} images", evaluate(extractor, fake, real, reference),
                     f"training {wall:.0f} s, sampling {sampling:.0f} s"))  # fmt: skip
        grid(net, HERE / f"generate_fashion_{name}.png", args.steps, args.guidance)

    print(f"\nFID/KID: {n} generated vs {n} real images ({reference}); extractor sha256 {extractor.sha256[:16]}")
    print(f"DDIM {args.steps} steps, guidance {args.guidance}; generators trained on {args.limit} images; run folders in {project}")
    width = max(len(r[0]) for r in rows)
    kid_base = base["kid"] if base["kid"] > 2 * base["kid_std"] else None  # a KID of ~0 makes no denominator
    for label, m, note in rows:
        kid_ratio = f"{m['kid'] / kid_base:8.1f}x" if kid_base else "   n/a"
        print(f"{label:<{width}}  FID {m['fid']:9.3f} ({m['fid'] / base['fid']:7.1f}x baseline)  "
              f"KID {m['kid']:8.5f} ± {m['kid_std']:.5f} ({kid_ratio})  {note}")  # fmt: skip
    print(f"total wall {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
