"""Deletion / insertion AUC of explanation maps vs random maps, on a trained classifier and detector, one run.

Trains (or takes) a classifier and a detector, explains ``--images`` validation images with each
method (the same code as ``pixelmind explain``) and prints each method's mean AUCs beside the random
maps' of the same images as ratios: deletion map/random < 1 and insertion map/random > 1 mean the
map points at what the model uses.

    python bench/explain_faithfulness.py                       # digits classifier + shapes detector, trained here
    python bench/explain_faithfulness.py --classifier W1 --detector W2 --data-classify D1 --data-detect D2
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from _common import machine


def _val_images(model, data: str, n: int):
    """``n`` validation images (PIL) of ``data``, seeded."""
    from PIL import Image

    from pixelmind.config import make_config

    meta = model.meta
    cfg = make_config({"task": meta.task, "data": data, "model": meta.model, "imgsz": meta.imgsz, "augment": "none",
                       "seed": meta.extra.get("seed", 0), "val_fraction": meta.extra.get("val_fraction", 0.2)})  # fmt: skip
    val = model.task.load_data(cfg, meta).val
    order = np.random.default_rng(0).permutation(len(val))[:n]
    out = []
    for i in order:
        x = val[int(i)][0]
        if x.dtype.is_floating_point:  # normalised: back to pixels
            mean, std = np.array(meta.mean)[:, None, None], np.array(meta.std)[:, None, None]
            x = (x.numpy() * std + mean).clip(0, 1) * 255
        else:
            x = x.numpy()
        out.append(Image.fromarray(np.asarray(x, dtype=np.uint8).transpose(1, 2, 0)))
    return out


def _measure(model, images, methods, **options) -> None:
    from pixelmind.explain.pipeline import summarize

    for method in methods:
        t0 = time.perf_counter()
        s = summarize(model.explain(images, method=method, **options))
        if not s["targets"]:
            print(f"  {method:10s} nothing explained")
            continue
        print(f"  {method:10s} targets {s['targets']:4d}  deletion {s['deletion_auc']:.3f} vs random {s['random_deletion_auc']:.3f} "
              f"(ratio {s['deletion_auc'] / s['random_deletion_auc']:.2f})  insertion {s['insertion_auc']:.3f} vs random "
              f"{s['random_insertion_auc']:.3f} (ratio {s['insertion_auc'] / s['random_insertion_auc']:.2f})  "
              f"{(time.perf_counter() - t0) / len(images):.2f} s/image")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classifier", help="classify weights (default: train pm_cnn_s on digits here)")
    ap.add_argument("--detector", help="detect weights (default: train pmdet_n on shapes here)")
    ap.add_argument("--data-classify", default="digits")
    ap.add_argument("--data-detect", default="shapes")
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--methods", default="gradcam,gradcam++,eigencam,ig,gradient")
    args = ap.parse_args()
    from pixelmind.api import Model

    print(machine())
    methods = args.methods.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        clf = Model.load(args.classifier) if args.classifier else Model("pm_cnn_s", task="classify")
        if not args.classifier:
            print("classifier val", {k: round(v, 4) for k, v in clf.train(data=args.data_classify, project=tmp, name="c", workers=0).items() if k == "top1"})  # fmt: skip
        print(f"classify {clf.meta.model} on {args.data_classify}, {args.images} images (lower deletion / higher insertion is better):")
        _measure(clf, _val_images(clf, args.data_classify, args.images), methods)
        det = Model.load(args.detector) if args.detector else Model("pmdet_n", task="detect")
        if not args.detector:
            print("detector val", {k: round(v, 4) for k, v in det.train(data=args.data_detect, epochs=15, imgsz=128, project=tmp,
                                                                          name="d", workers=0).items() if k in ("map", "map50")})  # fmt: skip
        n = max(1, args.images // 5)
        print(f"detect {det.meta.model} on {args.data_detect}, {n} images, one map per box above 0.25:")
        _measure(det, _val_images(det, args.data_detect, n), [m for m in methods if m != "gradcam++"])


if __name__ == "__main__":
    main()
