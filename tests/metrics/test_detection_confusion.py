"""The detection confusion matrix on hand-made images, alone and through CocoEvaluator."""

import numpy as np
import pytest
import torch

from pixelmind.metrics.coco_eval import CocoEvaluator
from pixelmind.metrics.detection_confusion import detection_confusion_matrix

BOX = np.array([[0.0, 0, 10, 10]])


def test_right_class_wrong_class_missed_and_invented():
    gts = [(np.array([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]), np.array([0, 1, 1]))]
    dets = [(np.array([[0.0, 0, 10, 10], [21, 21, 30, 30], [70, 70, 80, 80]]), np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]))]
    cm = detection_confusion_matrix(gts, dets, num_classes=2)
    # a -> a; b found as a; b missed; an invented b
    assert cm.tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 0]]
    assert cm.sum() == 4  # every object and every detection counted once


def test_one_detection_per_object_and_duplicates_are_false_positives():
    dets = [(np.array([[0.0, 0, 10, 10], [0.5, 0, 10, 10]]), np.array([0.9, 0.95]), np.array([0, 0]))]
    cm = detection_confusion_matrix([(BOX, np.array([0]))], dets, num_classes=1)
    assert cm.tolist() == [[1, 0], [1, 0]]


def test_low_scores_and_low_overlap_do_not_match():
    dets = [(np.array([[0.0, 0, 10, 10], [5.0, 5, 15, 15]]), np.array([0.1, 0.9]), np.array([0, 0]))]
    # the exact box scores below 0.25; the other overlaps IoU 25/175 < 0.45
    cm = detection_confusion_matrix([(BOX, np.array([0]))], dets, num_classes=1)
    assert cm.tolist() == [[0, 1], [1, 0]]
    assert detection_confusion_matrix([(BOX, np.array([0]))], dets, num_classes=1, conf=0.05, iou=0.1).tolist() == [[1, 0], [1, 0]]


def test_empty_images():
    empty = (np.zeros((0, 4)), np.zeros(0, np.int64))
    cm = detection_confusion_matrix([empty, (BOX, np.array([1]))], [(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))] * 2, 2)
    assert cm.tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]
    with pytest.raises(ValueError, match="detection lists"):
        detection_confusion_matrix([empty], [], 2)


def test_evaluator_reports_and_plots_it_without_crowd_boxes(tmp_path):
    ev = CocoEvaluator(["cat", "dog"])
    ev.update([{"boxes": torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]]), "scores": torch.tensor([0.9, 0.9]),
                "labels": torch.tensor([1, 0])}],
              [{"boxes": torch.tensor([[0.0, 0, 10, 10], [20.0, 20, 30, 30]]), "labels": torch.tensor([1, 0]),
                "iscrowd": torch.tensor([False, True])}])  # fmt: skip
    ev.compute()
    matrix = ev.summary()["confusion_matrix"]
    assert matrix["names"] == ["cat", "dog", "background"]
    # the dog is found; the crowd of cats is not an object and the detection on it is not counted
    assert matrix["counts"] == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
    paths = ev.plots(tmp_path)
    assert [p.name for p in paths] == ["pr_curves.png", "f1_confidence.png", "confusion_matrix.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
