"""ByteTrack on moving-shapes ground truth with simulated detector noise, against its own first pass only.

Detections are the true boxes of :func:`pixelmind.track.synth.moving_shapes` (objects cross and bounce)
with Gaussian jitter, a share missed, and scores spread over 0.3-1.0 (a detector unsure of some boxes).
The baseline in the same run is the same tracker without ByteTrack's second, low-score pass
(``low = high``), which is what IoU trackers that drop unsure boxes do. Scored with TrackEval (HOTA) and motmetrics.

    python bench/track_shapes.py [--seeds 5] [--frames 200] [--objects 6]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def run(truth, tracker, miss, noise, seed):
    rng, out = np.random.default_rng(seed), {}
    for frame, rows in truth.items():
        kept = [b for _, b in rows if rng.random() > miss]
        boxes = np.array([np.array(b) + rng.normal(0, noise, 4) for b in kept]).reshape(-1, 4)
        out[frame] = [(t, b) for t, b, _, _ in tracker.update(boxes, rng.uniform(0.3, 1.0, len(kept)), np.zeros(len(kept), int))]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--objects", type=int, default=6)
    ap.add_argument("--miss", type=float, default=0.1)
    ap.add_argument("--noise", type=float, default=1.5)
    args = ap.parse_args()
    from pixelmind.track.bytetrack import ByteTracker
    from pixelmind.track.mot import hota_metrics, mot_metrics
    from pixelmind.track.synth import moving_shapes

    keys = ("hota", "assa", "mota", "idf1", "num_switches", "recall", "precision")
    totals = {"bytetrack": [], "first pass only": []}
    t = time.perf_counter()
    frames = 0
    for seed in range(args.seeds):
        _, truth = moving_shapes(args.frames, args.objects, 256, seed)
        frames += len(truth)
        for name, tracker in (("bytetrack", ByteTracker()), ("first pass only", ByteTracker(low=0.5))):
            tracks = run(truth, tracker, args.miss, args.noise, seed)
            totals[name].append({**hota_metrics(truth, tracks), **mot_metrics(truth, tracks)})
    wall = time.perf_counter() - t
    print(f"{args.seeds} videos x {args.frames} frames, {args.objects} objects, {args.miss:.0%} missed, jitter {args.noise} px")
    print("| tracker | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for name, runs in totals.items():
        print(f"| {name} | " + " | ".join(f"{np.mean([r[k] for r in runs]):.4f}" for k in keys) + " |")
    (bm, fm), (bh, fh) = ([np.mean([r[k] for r in totals[n]]) for n in totals] for k in ("mota", "hota"))
    print(f"bytetrack / first pass only: MOTA {bm / fm:.2f}x, HOTA {bh / fh:.2f}x; "
          f"{2 * frames / wall:.0f} frames/s tracked and scored")


if __name__ == "__main__":
    main()
