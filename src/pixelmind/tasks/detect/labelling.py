"""Detection's part of the data engine: COCO/YOLO/VOC pre-labels and cleanlab's box-level label issues."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pixelmind.data.boxes import (
    BoxItem,
    DetectionData,
    find_detection_data,
    make_box_item,
    write_detection_data,
)
from pixelmind.data.label_sets import Prelabel, discard_box_item, write_box_set
from pixelmind.label import LabelledImage, load_item_image

# cleanlab's per-box scores, and what each means for the person fixing the label
_KINDS = {"overlooked": "missing box", "badloc": "badly placed or spurious box", "swap": "wrong class"}


class DetectLabelling:
    formats = ("coco", "yolo", "voc")

    def predict_options(self, meta, conf: float) -> dict[str, Any]:
        return {"conf": conf}

    def prelabel(self, result, image: Path, conf: float) -> Prelabel:
        keep = [i for i, s in enumerate(result.scores) if s >= conf]
        w, h = result.size
        item = make_box_item(image, w, h, [(result.boxes[i], int(result.labels[i]), False) for i in keep])
        return Prelabel(Path(image), [result.class_names[result.labels[i]] for i in keep], [float(result.scores[i]) for i in keep], item)

    def write(self, prelabels, out, fmt, meta, val_fraction, seed):
        return write_box_set(prelabels, Path(out), fmt, list(meta.class_names), val_fraction, seed)

    def items(self, data: str, val_fraction: float, seed: int) -> tuple[list[LabelledImage], list[str]]:
        found = find_detection_data(data, val_fraction, seed)
        items = [LabelledImage(str(it.image), it.image, it, split) for split, part in (("train", found.train), ("val", found.val)) for it in part]
        return items, list(found.class_names)

    def predictions(self, model, items) -> list[list[np.ndarray] | None]:
        """Per image, cleanlab's layout: one ``[M, 5]`` array (x1, y1, x2, y2, score) per class."""
        from pixelmind.data.decode import ImageDecodeError

        k = model.meta.num_classes
        out: list[list[np.ndarray] | None] = []
        for it in items:
            try:
                image = load_item_image(it)
            except ImageDecodeError:
                out.append(None)
                continue
            r = model.task.predict(model.net, [image], model.meta, conf=0.01)[0]
            rows = np.array([[*b, s] for b, s in zip(r.boxes, r.scores)], np.float32).reshape(-1, 5)
            labels = np.asarray(r.labels, np.int64)
            out.append([rows[labels == c] for c in range(k)])
        return out

    def rank(self, items, predictions, class_names) -> list[dict[str, Any]]:
        from cleanlab.object_detection.filter import find_label_issues
        from cleanlab.object_detection.rank import (
            compute_badloc_box_scores,
            compute_overlooked_box_scores,
            compute_swap_box_scores,
            get_label_quality_scores,
        )

        ok = [i for i, p in enumerate(predictions) if p is not None]
        labels = [{"bboxes": items[i].label.boxes[~items[i].label.iscrowd].astype(np.float32),
                   "labels": items[i].label.labels[~items[i].label.iscrowd]} for i in ok]  # fmt: skip
        preds = [predictions[i] for i in ok]
        quality = get_label_quality_scores(labels, preds, verbose=False)
        issues = find_label_issues(labels, preds)
        per_box = {"overlooked": compute_overlooked_box_scores(labels=labels, predictions=preds),
                   "badloc": compute_badloc_box_scores(labels=labels, predictions=preds),
                   "swap": compute_swap_box_scores(labels=labels, predictions=preds)}  # fmt: skip
        rows = []
        for j, i in enumerate(ok):
            worst = None  # (score, kind, box)
            for kind, scores in per_box.items():
                s = np.asarray(scores[j], np.float64)
                if s.size and np.isfinite(s).any():
                    b = int(np.nanargmin(s))
                    if worst is None or s[b] < worst[0]:
                        box = _predicted_box(preds[j], b) if kind == "overlooked" else labels[j]["bboxes"][b]
                        worst = (float(s[b]), kind, [round(float(v), 1) for v in box])
            given = ", ".join(sorted({class_names[c] for c in labels[j]["labels"]})) or "(no boxes)"
            row = {"image": items[i].id, "split": items[i].split, "quality": round(float(quality[j]), 4),
                   "issue": _KINDS[worst[1]] if issues[j] and worst else ("label issue" if issues[j] else ""),
                   "given": given, "suggested": f"{worst[1]} box {worst[2]}" if worst else "", "box": worst[2] if worst else []}  # fmt: skip
            rows.append(row)
        return rows

    def fold_data(self, items, train, val, class_names, folder: Path) -> str:
        data = DetectionData([items[i].label for i in train], [items[i].label for i in val], list(class_names), "coco", [])
        return str(write_detection_data(data, folder / "data", "coco", copy_images=False))

    def thumbnail(self, item, row, class_names):
        from pixelmind.viz.draw import draw_boxes

        it: BoxItem = item.label
        boxes = it.boxes.tolist() + ([row["box"]] if row.get("box") else [])
        names = [class_names[c] for c in it.labels.tolist()] + ([row["issue"]] if row.get("box") else [])
        colors = [(40, 200, 40)] * len(it.boxes) + [(230, 30, 30)] * bool(row.get("box"))
        return draw_boxes(load_item_image(item), boxes, names, colors)

    def preview(self, item, class_names):
        return self.thumbnail(item, {}, class_names)

    def discard(self, out: Path, fmt: str, item) -> None:
        discard_box_item(out, Path(item.image).stem, fmt)

    def fix(self, data: str, item, row, class_names) -> None:
        return None  # a box to redraw needs an annotation tool: the decision is recorded

    def uncertainty(self, result) -> dict[str, float]:
        """Mean binary entropy of the boxes' scores (0 without boxes) and the least margin from 0.5."""
        s = np.clip(np.asarray(result.scores, np.float64), 1e-6, 1 - 1e-6)
        if not s.size:
            return {"entropy": 0.0, "margin": 1.0}
        entropy = -(s * np.log(s) + (1 - s) * np.log(1 - s))
        return {"entropy": float(entropy.mean()), "margin": float(np.abs(2 * s - 1).min())}


def _predicted_box(per_class: list[np.ndarray], flat_index: int) -> np.ndarray:
    """The ``flat_index``-th predicted box over all classes, in cleanlab's class-major order."""
    return np.concatenate([p for p in per_class if len(p)])[flat_index, :4]
