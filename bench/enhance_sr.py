"""Super-resolution on Set5/Set14 after a fixed CPU training budget, against bicubic, same run.

Trains the default SR recipe (or ``--model``) on images that are not the test sets (the shared
raccoon photos plus scikit-image's bundled photos), then evaluates the best weights on the
shared Set5 and Set14 with the literature's protocol (Y channel, border of ``scale`` px,
given MATLAB-made LR images). Bicubic is MATLAB-compatible imresize of the same LR images.

    .venv/bin/python bench/enhance_sr.py --scale 2 --epochs 12
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def training_folder(root: Path) -> Path:
    """train/ = raccoon photos (all but 10) + bundled photos; val/ = 10 raccoon photos. Symlinks only."""
    from pixelmind.data.builtin import photo_paths

    raccoons = sorted((SHARED / "detection" / "raccoon" / "images").glob("*.jpg"))
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    for p in raccoons[10:] + photo_paths():
        (root / "train" / p.name).symlink_to(p)
    for p in raccoons[:10]:
        (root / "val" / p.name).symlink_to(p)
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--model", default=None, help="default: the task recipe's model")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--samples", type=int, default=None, help="random crops per epoch (default: recipe)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--imgsz", type=int, default=None)
    args = ap.parse_args()
    if not (SHARED / "superres" / "Set5").is_dir():
        print(f"skip: {SHARED} not found (Set5/Set14 and the raccoon photos live in ../shared/datasets)")
        return 0
    from pixelmind.api import Model

    tmp = Path(tempfile.mkdtemp(prefix="pm-sr-"))
    data = training_folder(tmp / "data")
    model = Model(args.model, task="enhance")
    t0 = time.perf_counter()
    model.train(data=str(data), degradation="sr", scale=args.scale, epochs=args.epochs, epoch_samples=args.samples,
                batch=args.batch, lr=args.lr, imgsz=args.imgsz, project=str(tmp / "runs"), name="sr")  # fmt: skip
    train_s = time.perf_counter() - t0
    params = sum(p.numel() for p in model.net.parameters())
    print(f"\nmachine: {machine()}")
    print(f"model {model.meta.model} x{args.scale}: {params / 1e6:.3f}M parameters, trained {train_s:.0f} s "
          f"({model.config['epochs']} epochs x {model.config['epoch_samples'] or 'recipe'} crops of {model.config['imgsz']} px, "
          f"batch {model.config['batch']}, lr {model.config['lr']})")  # fmt: skip
    print("set      model PSNR/SSIM (Y)    bicubic PSNR/SSIM (Y)   gain")
    for name in ("Set5", "Set14"):
        m = model.val(data=str(SHARED / "superres" / name / f"x{args.scale}"), batch=1)
        print(f"{name:6s}   {m['psnr']:.2f} dB / {m['ssim']:.4f}    {m['baseline_psnr']:.2f} dB / {m['baseline_ssim']:.4f}"
              f"   {m['gain_db']:+.2f} dB")  # fmt: skip
    print(f"run directory: {model.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
