"""MOT-Challenge files (``frame,id,x,y,w,h,score,-1,-1,-1``; frames from 1) and their scores.

CLEAR MOT and identity metrics come from motmetrics, HOTA from TrackEval's metric class (fed the same IoU
similarities directly: its dataset readers apply MOT17's pedestrian class and distractor rules, which
generic ground truth does not carry).

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "gt.txt")
    >>> write_mot(p, [(1, 7, [10, 10, 30, 40], 1.0, 0)])
    >>> read_mot(p)
    {1: [(7, [10.0, 10.0, 30.0, 40.0])]}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelmind.errors import ConfigError, DataError
from pixelmind.track.bytetrack import iou_matrix


def write_mot(path: str | Path, rows) -> None:
    """``rows``: ``(frame (1-based), track id, xyxy box, score, label)``."""
    with Path(path).open("w") as f:
        for frame, tid, (x1, y1, x2, y2), score, _ in rows:
            f.write(f"{frame},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1\n")


def read_mot(path: str | Path) -> dict[int, list[tuple[int, list[float]]]]:
    """``{frame: [(id, xyxy)]}``; rows marked not to be considered (``conf`` 0 in MOT ground truth) are left out."""
    path = Path(path)
    out: dict[int, list[tuple[int, list[float]]]] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise DataError(f"{path}: cannot read the MOT file ({err.strerror or err})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            frame, tid, x, y, w, h = int(float(parts[0])), int(float(parts[1])), *map(float, parts[2:6])
            keep = len(parts) < 7 or float(parts[6]) != 0
        except (ValueError, IndexError):
            raise DataError(f"{path}:{lineno}: expected 'frame,id,x,y,w,h[,conf,...]', got {line[:80]!r}") from None
        if keep:
            out.setdefault(frame, []).append((tid, [x, y, x + w, y + h]))
    return out


def mot_metrics(truth: dict[int, list], predicted: dict[int, list], iou: float = 0.5) -> dict[str, float]:
    """MOTA, IDF1, ID switches, precision and recall (motmetrics), a box matching when IoU >= ``iou``."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for frame in range(1, max([*truth, *predicted, 0]) + 1):
        gt, hyp = truth.get(frame, []), predicted.get(frame, [])
        # motmetrics' own iou_matrix uses np.asfarray, gone in NumPy 2: the same distances from ours
        overlap = iou_matrix(np.array([b for _, b in gt]).reshape(-1, 4), np.array([b for _, b in hyp]).reshape(-1, 4))
        dist = np.where(overlap >= iou, 1 - overlap, np.nan)
        acc.update([t for t, _ in gt], [t for t, _ in hyp], dist)
    names = ["mota", "idf1", "num_switches", "precision", "recall", "num_frames"]
    summary = mm.metrics.create().compute(acc, metrics=names, name="all")
    return {k: round(float(summary[k].iloc[0]), 4) for k in names}


def _trackeval_sequence(truth: dict[int, list], predicted: dict[int, list]) -> dict:
    """One sequence in TrackEval's input form: ids renumbered 0..n-1, IoU as the similarity per frame."""
    frames = range(1, max([*truth, *predicted, 0]) + 1)
    gt_ids = {t: i for i, t in enumerate(sorted({t for rows in truth.values() for t, _ in rows}))}
    hyp_ids = {t: i for i, t in enumerate(sorted({t for rows in predicted.values() for t, _ in rows}))}
    data: dict = {"gt_ids": [], "tracker_ids": [], "similarity_scores": [], "num_timesteps": len(frames),
                  "num_gt_ids": len(gt_ids), "num_tracker_ids": len(hyp_ids)}  # fmt: skip
    for frame in frames:
        gt, hyp = truth.get(frame, []), predicted.get(frame, [])
        data["gt_ids"].append(np.array([gt_ids[t] for t, _ in gt], dtype=int))
        data["tracker_ids"].append(np.array([hyp_ids[t] for t, _ in hyp], dtype=int))
        data["similarity_scores"].append(
            iou_matrix(np.array([b for _, b in gt]).reshape(-1, 4), np.array([b for _, b in hyp]).reshape(-1, 4))
        )
    data["num_gt_dets"] = sum(len(ids) for ids in data["gt_ids"])
    data["num_tracker_dets"] = sum(len(ids) for ids in data["tracker_ids"])
    return data


def hota_metrics(truth: dict[int, list], predicted: dict[int, list]) -> dict[str, float]:
    """HOTA with its detection (DetA) and association (AssA) parts and LocA, averaged over IoU 0.05-0.95 (TrackEval).

    Example:
        >>> same = {1: [(1, [0, 0, 10, 10])], 2: [(1, [1, 0, 11, 10])]}
        >>> hota_metrics(same, same)["hota"]
        1.0
    """
    try:
        from trackeval.metrics import HOTA
    except ImportError:
        raise ConfigError("HOTA needs TrackEval: pip install --no-deps trackeval (its opencv-python requirement "
                          "is only for segmentation metrics and clashes with opencv-python-headless)") from None  # fmt: skip
    result = HOTA().eval_sequence(_trackeval_sequence(truth, predicted))
    return {name.lower(): round(float(np.mean(result[name])), 4) for name in ("HOTA", "DetA", "AssA", "LocA")}
