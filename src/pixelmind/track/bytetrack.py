"""ByteTrack association (Zhang et al., 2022) with a constant-velocity Kalman filter, in numpy and scipy.

Written here rather than taken from the ``trackers`` package: that package requires ``opencv-python``,
which cannot share an environment with the ``opencv-python-headless`` other dependencies install.

Example:
    >>> t = ByteTracker()
    >>> [tr[0] for tr in t.update(np.array([[0, 0, 10, 10.]]), np.array([0.9]), np.array([0]))]
    [1]
    >>> [tr[0] for tr in t.update(np.array([[1, 0, 11, 10.]]), np.array([0.9]), np.array([0]))]
    [1]
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every ``xyxy`` box of ``a`` with every one of ``b``."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(-1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


class KalmanBox:
    """State ``[cx, cy, w, h, vx, vy, vw, vh]``; noise scaled by the box height (as in SORT/ByteTrack)."""

    F = np.eye(8) + np.eye(8, k=4)
    H = np.eye(4, 8)

    def __init__(self, box: np.ndarray) -> None:
        self.x = np.r_[_cxcywh(box), np.zeros(4)]
        h = max(self.x[3], 1.0)
        self.P = np.diag(np.r_[[2 * h / 20] * 4, [10 * h / 160] * 4]) ** 2

    def predict(self) -> None:
        h = max(self.x[3], 1.0)
        Q = np.diag(np.r_[[h / 20] * 4, [h / 160] * 4]) ** 2
        self.x = self.F @ self.x
        self.P = self.F @ self.P @ self.F.T + Q

    def update(self, box: np.ndarray) -> None:
        h = max(self.x[3], 1.0)
        R = np.diag([h / 20] * 4) ** 2
        S = self.H @ self.P @ self.H.T + R
        K = self.P @ self.H.T @ np.linalg.inv(S)
        self.x = self.x + K @ (_cxcywh(box) - self.H @ self.x)
        self.P = (np.eye(8) - K @ self.H) @ self.P

    @property
    def box(self) -> np.ndarray:
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _cxcywh(b: np.ndarray) -> np.ndarray:
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]], float)


class _Track:
    def __init__(self, track_id: int, box, score: float, label: int) -> None:
        self.id, self.kf, self.score, self.label, self.lost, self.hits = track_id, KalmanBox(box), score, label, 0, 1

    def update(self, box, score: float, label: int) -> None:
        self.kf.update(box)
        self.score, self.label, self.lost, self.hits = score, label, 0, self.hits + 1


def _match(tracks: list[_Track], boxes: np.ndarray, min_iou: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    iou = iou_matrix(np.array([t.kf.box for t in tracks]).reshape(-1, 4), boxes)
    pairs = []
    if iou.size:
        rows, cols = linear_sum_assignment(-iou)
        pairs = [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]
    used_t, used_d = {r for r, _ in pairs}, {c for _, c in pairs}
    return pairs, [i for i in range(len(tracks)) if i not in used_t], [j for j in range(len(boxes)) if j not in used_d]


class ByteTracker:
    """Per frame: ``update(boxes xyxy [N, 4], scores [N], labels [N])`` -> ``[(track id, box, score, label)]``.

    Args:
        high: boxes at or above this score are matched first and may start tracks.
        low: boxes between ``low`` and ``high`` only keep existing tracks alive (ByteTrack's second pass).
        new_track: the least score a box needs to start a track.
        match_iou / low_iou: the least IoU between a track's predicted box and a box in the two passes.
        max_lost: frames a track survives without a box before it ends.
    """

    def __init__(self, high: float = 0.5, low: float = 0.1, new_track: float = 0.6, match_iou: float = 0.2,
                 low_iou: float = 0.5, max_lost: int = 30) -> None:  # fmt: skip
        self.high, self.low, self.new_track, self.match_iou, self.low_iou, self.max_lost = high, low, new_track, match_iou, low_iou, max_lost
        self.tracks: list[_Track] = []
        self.next_id = 1

    def update(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> list[tuple[int, list[float], float, int]]:
        boxes, scores, labels = np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float), np.asarray(labels, int)
        for t in self.tracks:
            t.kf.predict()
        high, low = scores >= self.high, (scores >= self.low) & (scores < self.high)
        hi_idx, lo_idx = np.flatnonzero(high), np.flatnonzero(low)
        seen: set[int] = set()
        pairs, left, new = _match(self.tracks, boxes[hi_idx], self.match_iou)
        for r, c in pairs:
            self.tracks[r].update(boxes[hi_idx[c]], scores[hi_idx[c]], labels[hi_idx[c]])
            seen.add(self.tracks[r].id)
        alive = [self.tracks[i] for i in left if self.tracks[i].lost == 0]  # low boxes only for tracks seen last frame
        pairs2, _, _ = _match(alive, boxes[lo_idx], self.low_iou)
        for r, c in pairs2:
            alive[r].update(boxes[lo_idx[c]], scores[lo_idx[c]], labels[lo_idx[c]])
            seen.add(alive[r].id)
        for t in self.tracks:
            if t.id not in seen:
                t.lost += 1
        self.tracks = [t for t in self.tracks if t.lost <= self.max_lost]
        for c in new:
            j = hi_idx[c]
            if scores[j] >= self.new_track:
                self.tracks.append(_Track(self.next_id, boxes[j], scores[j], labels[j]))
                seen.add(self.next_id)
                self.next_id += 1
        return [(t.id, [round(float(v), 2) for v in t.kf.box], round(float(t.score), 4), int(t.label))
                for t in self.tracks if t.id in seen]  # fmt: skip
