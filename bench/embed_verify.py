"""Embeddings on unseen identities: pixelmind embed vs pixels+PCA and a classifier's penultimate features.

Fashion-MNIST classes play identities. The embed task's own seeded split holds 4 of the 10 out
of training (``--val-fraction 0.4``); every method is then scored on the *test-split* images of
those 4 classes (4,000 images, none seen in training), with the same 20,000 + 20,000 drawn
verification pairs and leave-one-out retrieval:

* pixelmind embed, default recipe (``pixelmind train --task embed``; ``--loss`` to compare others),
* a pixelmind classifier trained with cross-entropy on the same 6 classes (default recipe), its
  penultimate features,
* raw pixels projected on 128 PCA components fitted to the training images.

    apt-get install -y dataset-fashion-mnist
    python bench/embed_verify.py [--loss arcface|cosface|supcon|triplet] [--epochs N]
"""

from __future__ import annotations

import argparse
import gzip
import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import machine

DATA = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray) -> None:
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape))
        f.write(np.ascontiguousarray(array, np.uint8).tobytes())


def train(task: str, data: Path, project: str, extra: list[str]) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "pixelmind", "train", "--task", task, "--data", str(data), "--project", project, "--json", *extra]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stderr[-2000:])
    print("command:", " ".join(cmd[3:]), flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t


def score(vectors: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from pixelmind.metrics.embedding import EmbeddingEvaluator

    ev = EmbeddingEvaluator(seed=0)
    ev.update(torch.from_numpy(vectors), torch.from_numpy(labels))
    return ev.compute()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loss", default=None)
    ap.add_argument("--epochs", type=int, default=None, help="both trained models (default: their recipes)")
    args = ap.parse_args()
    if not (DATA / "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"skip: {DATA} has no Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    from PIL import Image
    from sklearn.decomposition import PCA

    from pixelmind.api import Model
    from pixelmind.config import TrainConfig
    from pixelmind.similarity.extract import FeatureExtractor
    from pixelmind.tasks.embed.data import load_embedding_data

    bundle = load_embedding_data(TrainConfig(task="embed", data=str(DATA), imgsz=28, augment="none", val_fraction=0.4))
    k = bundle.meta_extra["train_identities"]
    train_x, train_y = bundle.train.images[:, 0].numpy(), bundle.train._targets.numpy()
    val_x, val_y = bundle.val.images[:, 0].numpy(), bundle.val._targets.numpy()
    print(f"machine: {machine()}")
    print(f"train identities {bundle.class_names[:k]} ({len(train_y)} images); "
          f"held out {bundle.class_names[k:]} ({len(val_y)} test images)")  # fmt: skip

    project = tempfile.mkdtemp()
    extra = (["--epochs", str(args.epochs)] if args.epochs else [])
    embed_metrics, embed_wall = train("embed", DATA, project, ["--val-fraction", "0.4", *extra, *(["--set", f"loss={args.loss}"] if args.loss else [])])
    # the classifier sees the same 6 classes' training images (an IDX folder of them; test split = their test images)
    subset = Path(project) / "fashion6"
    subset.mkdir()
    write_idx(subset / "train-images-idx3-ubyte.gz", train_x)
    write_idx(subset / "train-labels-idx1-ubyte.gz", train_y)
    from pixelmind.data.formats import find_idx_split, read_idx

    test = find_idx_split(DATA, "test")
    all_x, all_y = read_idx(test[0]), read_idx(test[1]).astype(int)
    index = {n: i for i, n in enumerate(bundle.class_names)}
    from pixelmind.data.formats import FASHION_MNIST_CLASSES

    remap = np.array([index[n] for n in FASHION_MNIST_CLASSES])[all_y]
    keep = remap < k
    test_x = all_x[keep]
    write_idx(subset / "t10k-images-idx3-ubyte.gz", test_x)
    write_idx(subset / "t10k-labels-idx1-ubyte.gz", remap[keep])
    cls_metrics, cls_wall = train("classify", subset, project, extra)

    images = [Image.fromarray(x).convert("RGB") for x in val_x]

    def features(weights: str) -> np.ndarray:
        extractor = FeatureExtractor(Model.load(weights))
        return np.concatenate([extractor(images[i : i + 256]) for i in range(0, len(images), 256)])

    t = time.perf_counter()
    pca = PCA(128, random_state=0).fit(train_x.reshape(len(train_x), -1) / 255.0)
    pixels = pca.transform(val_x.reshape(len(val_x), -1) / 255.0)
    pca_wall = time.perf_counter() - t
    rows = {
        "pixelmind embed (" + (args.loss or "arcface") + ")": (score(features(embed_metrics["run_dir"] + "/weights/best.safetensors"), val_y), embed_wall),
        "classifier penultimate (cross-entropy, same 6 classes)": (score(features(cls_metrics["run_dir"] + "/weights/best.safetensors"), val_y), cls_wall),
        "pixels + PCA 128": (score((pixels / np.linalg.norm(pixels, axis=1, keepdims=True)).astype(np.float32), val_y), pca_wall),
    }
    print(f"classifier test top-1 on its own 6 classes: {cls_metrics.get('top1', float('nan')):.4f}")
    cols = ("auc", "eer", "tar@far=0.001", "tar@far=0.01", "recall@1", "recall@5", "map@r")
    print("| method | " + " | ".join(cols) + " | train wall |")
    print("|---|" + "---|" * (len(cols) + 1))
    for name, (m, wall) in rows.items():
        print(f"| {name} | " + " | ".join(f"{m[c]:.4f}" for c in cols) + f" | {wall:.0f} s |")
    ours = next(iter(rows.values()))[0]
    for name, (m, _) in list(rows.items())[1:]:
        print(f"ratio vs {name}: EER {ours['eer'] / m['eer']:.2f}x, 1 - recall@1 {(1 - ours['recall@1']) / max(1 - m['recall@1'], 1e-9):.2f}x, "
              f"mAP@R {ours['map@r'] / m['map@r']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
