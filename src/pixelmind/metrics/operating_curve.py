"""One category's detections ranked by score, as COCO's matching left them: precision, recall and F1 at any threshold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class OperatingCurve:
    """One category's detections at IoU 0.5 (area all, 100 per image), best score first: cumulative true
    and false positives at each (COCO's matching; ignored detections count as neither) and its gt count."""

    scores: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_gt: int

    def at(self, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Precision, recall and F1 keeping the detections with score >= each ``conf``.

        Example:
            >>> c = OperatingCurve(np.array([0.9, 0.6, 0.3]), np.array([1.0, 1, 2]), np.array([0.0, 1, 1]), 2)
            >>> [v.round(3).tolist() for v in c.at(np.array([0.5, 0.2]))]
            [[0.5, 0.667], [0.5, 1.0], [0.5, 0.8]]
        """
        n = np.searchsorted(-self.scores, -np.asarray(conf, float), side="right")  # detections kept
        tp = np.where(n > 0, self.tp[np.maximum(n - 1, 0)], 0.0) if len(self.scores) else np.zeros(len(n))
        fp = np.where(n > 0, self.fp[np.maximum(n - 1, 0)], 0.0) if len(self.scores) else np.zeros(len(n))
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-12), 1.0)
        recall = tp / max(self.n_gt, 1)
        return precision, recall, 2 * precision * recall / np.maximum(precision + recall, 1e-12)

    def best_f1(self) -> tuple[float, float, float, float]:
        """``(F1, confidence, precision, recall)`` at the score threshold with the highest F1."""
        if not len(self.scores):
            return 0.0, 0.0, 0.0, 0.0
        precision, recall, f1 = self.at(self.scores)
        i = int(np.argmax(f1))
        if f1[i] == 0:  # no true positive at any threshold: no threshold to recommend
            return 0.0, 0.0, 0.0, 0.0
        return float(f1[i]), float(self.scores[i]), float(precision[i]), float(recall[i])
