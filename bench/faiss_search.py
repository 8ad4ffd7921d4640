"""Similarity search at scale: build time, queries/s and recall@10 of HNSW and IVF against exact search.

The vectors are real embeddings, not random ones (random high-dimensional points have no
neighbourhood structure and flatter any index): a pixelmind model (``--weights``; default: a
``pm_cnn_t`` embed model trained 1 epoch on Fashion-MNIST here) embeds Fashion-MNIST's 70,000
images, and each image's embedding plus 1 % of seeded noise gives further vectors until there
are ``--count``. Queries are 1,000 held-back test-image embeddings. Exact search
(``IndexFlatIP``) is the baseline and the ground truth for recall, in the same run.

    apt-get install -y dataset-fashion-mnist
    python bench/faiss_search.py [--count 200000] [--weights W]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine

DATA = Path("/usr/share/datasets/fashion-mnist")


def embeddings(weights: str) -> np.ndarray:
    from PIL import Image

    from pixelmind.api import Model
    from pixelmind.data.formats import find_idx_split, read_idx
    from pixelmind.similarity.extract import FeatureExtractor

    extractor = FeatureExtractor(Model.load(weights))
    images = np.concatenate([read_idx(find_idx_split(DATA, s)[0]) for s in ("train", "test")])
    out = []
    for i in range(0, len(images), 1024):
        out.append(extractor([Image.fromarray(x).convert("RGB") for x in images[i : i + 1024]]))
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    if not (DATA / "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"skip: {DATA} has no Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    from pixelmind.similarity.index import VectorIndex

    weights = args.weights
    if weights is None:
        from pixelmind.api import Model

        m = Model("pm_cnn_t", task="embed")
        m.train(data=str(DATA), epochs=1, project=tempfile.mkdtemp(), name="faiss", workers=0)
        weights = str(m.weights_path)
    t = time.perf_counter()
    real = embeddings(weights)
    print(f"machine: {machine()}")
    print(f"embedded {len(real)} Fashion-MNIST images ({real.shape[1]} values) in {time.perf_counter() - t:.0f} s")
    rng = np.random.default_rng(0)
    queries, real = real[-args.queries :], real[: -args.queries]
    reps = -(-args.count // len(real))
    gallery = np.concatenate([real + (0.01 * rng.standard_normal(real.shape) if r else 0) for r in range(reps)])[: args.count]
    gallery = (gallery / np.linalg.norm(gallery, axis=1, keepdims=True)).astype(np.float32)
    items = [""] * len(gallery)
    results = {}
    print(f"| kind | vectors | build | queries/s (batch {args.queries}) | queries/s (one at a time) | recall@10 vs exact | index size |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("flat", "hnsw", "ivf"):
        t = time.perf_counter()
        index = VectorIndex.build(gallery, items, {}, kind)
        build = time.perf_counter() - t
        t = time.perf_counter()
        _, ids = index.search(queries, 10)
        batch_qps = len(queries) / (time.perf_counter() - t)
        t = time.perf_counter()
        for q in queries[:200]:
            index.search(q[None], 10)
        single_qps = 200 / (time.perf_counter() - t)
        results[kind] = ids
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, results["flat"])])
        with tempfile.TemporaryDirectory() as d:
            size = sum(p.stat().st_size for p in index.save(Path(d) / "i").iterdir()) / 1e6
        results[kind + "_qps"] = (batch_qps, single_qps)
        print(f"| {kind} | {len(gallery)} | {build:.1f} s | {batch_qps:.0f} | {single_qps:.0f} | {recall:.4f} | {size:.0f} MB |")
    for kind in ("hnsw", "ivf"):
        b, s = results[kind + "_qps"]
        fb, fs = results["flat_qps"]
        print(f"{kind} vs exact: {b / fb:.1f}x queries/s batched, {s / fs:.1f}x one at a time")


if __name__ == "__main__":
    main()
