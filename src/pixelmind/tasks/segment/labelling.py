"""Segmentation's part of the data engine: mask pre-labels (folders or COCO RLE) and per-image label quality."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pixelmind.data.label_sets import (
    Prelabel,
    discard_coco_image,
    discard_files,
    write_mask_coco,
    write_mask_folder,
)
from pixelmind.errors import ConfigError
from pixelmind.label import LabelledImage, entropy_margin, load_item_image

QUALITY_SIZE = 64  # label quality is judged on masks and probabilities at most this size (memory: N x K x 64 x 64)
FLAGGED_SHARE = 0.05  # an image with this share of its pixels flagged by cleanlab is listed as an issue


class SegmentLabelling:
    formats = ("folder", "coco")

    def predict_options(self, meta, conf: float) -> dict[str, Any]:
        return {"conf": conf}

    def prelabel(self, result, image: Path, conf: float) -> Prelabel:
        """The predicted mask, pixels of classes whose mean confidence is under ``conf`` set to background."""
        scores = result.class_scores()
        mask = result.mask.copy()
        for c, s in scores.items():
            if c > 0 and s < conf:
                mask[mask == c] = 0
        kept = {c: s for c, s in scores.items() if c > 0 and s >= conf}
        return Prelabel(Path(image), [result.class_names[c] for c in kept], list(kept.values()), mask)

    def write(self, prelabels, out, fmt, meta, val_fraction, seed):
        if fmt == "coco":
            return write_mask_coco(prelabels, Path(out), list(meta.class_names), val_fraction, seed)
        from pixelmind.tasks.segment.task import default_colors

        colors = meta.extra.get("colors") or default_colors(len(meta.class_names))
        return write_mask_folder(prelabels, Path(out), list(meta.class_names), colors, val_fraction, seed)

    def items(self, data: str, val_fraction: float, seed: int) -> tuple[list[LabelledImage], list[str]]:
        from pixelmind.data.masks import find_semantic_data

        found = find_semantic_data(data, val_fraction, seed)
        self._class_map = found.class_map
        items = [LabelledImage(str(it.image), it.image, it, split)
                 for split, part in (("train", found.train), ("val", found.val)) for it in part if it.labelled]  # fmt: skip
        return items, list(found.class_map.names)

    def _label(self, item: LabelledImage, size: tuple[int, int]) -> np.ndarray:
        from pixelmind.data.masks import read_mask

        return read_mask(item.label, self._class_map, size)

    def predictions(self, model, items) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """Per image ``(probabilities [K, s, s], given mask [s, s])`` at ``s = min(imgsz, 64)``."""
        import torch
        import torch.nn.functional as F
        from PIL import Image

        from pixelmind.data.decode import ImageDecodeError
        from pixelmind.errors import DataError
        from pixelmind.tasks.segment.task import _stride, padded_logits

        if model.task._is_instance(model.meta.model):
            raise ConfigError("label-errors: segment label quality needs a semantic model (U-Net, DeepLabV3+, FPN, SegFormer)")
        meta, size = model.meta, min(model.meta.imgsz, QUALITY_SIZE)
        mean, std = torch.tensor(meta.mean).view(1, 3, 1, 1), torch.tensor(meta.std).view(1, 3, 1, 1)
        out: list[tuple[np.ndarray, np.ndarray] | None] = []
        for it in items:
            try:
                image = load_item_image(it)
                given = self._label(it, image.size)
            except (ImageDecodeError, DataError):
                out.append(None)
                continue
            x = torch.from_numpy(np.asarray(image.resize((meta.imgsz, meta.imgsz)), np.float32) / 255).permute(2, 0, 1)[None]
            with torch.no_grad():
                logits = padded_logits(model.net, (x - mean) / std, _stride(model.net)).float()
            probs = F.adaptive_avg_pool2d(logits.softmax(1), size)[0].numpy()
            small = np.asarray(Image.fromarray(given.astype(np.uint8)).resize((size, size), Image.Resampling.NEAREST)).astype(np.int64)
            out.append((probs, small))
        return out

    def rank(self, items, predictions, class_names) -> list[dict[str, Any]]:
        from cleanlab.segmentation.filter import find_label_issues
        from cleanlab.segmentation.rank import get_label_quality_scores

        ok = [i for i, p in enumerate(predictions) if p is not None]
        probs = np.stack([predictions[i][0] for i in ok])
        labels = np.stack([predictions[i][1] for i in ok])
        ignored = labels >= probs.shape[1]  # ignore-index pixels: judged as the model sees them (no evidence)
        labels[ignored] = probs.argmax(1)[ignored]
        quality, _ = get_label_quality_scores(labels, probs, verbose=False)
        flagged = find_label_issues(labels, probs, verbose=False)
        rows = []
        for j, i in enumerate(ok):
            share = float(flagged[j].mean())
            wrong = flagged[j]
            suggested = class_names[int(np.bincount(probs[j].argmax(0)[wrong], minlength=len(class_names)).argmax())] if wrong.any() else ""
            given = class_names[int(np.bincount(labels[j][wrong], minlength=len(class_names)).argmax())] if wrong.any() else ""
            rows.append({"image": items[i].id, "split": items[i].split, "quality": round(float(quality[j]), 4),
                         "issue": f"{share:.0%} of pixels mislabelled" if share >= FLAGGED_SHARE else "",
                         "given": given, "suggested": suggested, "flagged_share": round(share, 4)})  # fmt: skip
        return rows

    def fold_data(self, items, train, val, class_names, folder: Path) -> str:
        raise ConfigError("label-errors: --folds is for classify and detect; give segment --weights W")

    def thumbnail(self, item, row, class_names):
        from pixelmind.viz.draw import draw_label_banner

        return draw_label_banner(self.preview(item, class_names), [row["issue"] or "ok", f"given {row['given']} -> {row['suggested']}"])

    def preview(self, item, class_names):
        from pixelmind.tasks.segment.task import default_colors
        from pixelmind.viz.draw import overlay_mask

        image = load_item_image(item)
        return overlay_mask(image, self._label(item, image.size), default_colors(len(class_names)), alpha=0.5, skip=0)

    def discard(self, out: Path, fmt: str, item) -> None:
        stem = Path(item.image).stem
        if fmt == "coco":
            discard_coco_image(out, stem)
        else:
            discard_files(out, stem, ["*/images", "*/masks"])

    def fix(self, data: str, item, row, class_names) -> None:
        return None  # a mask to repaint needs an annotation tool: the decision is recorded

    def uncertainty(self, result) -> dict[str, float]:
        """1 - mean winning probability over the pixels (the share of doubt), and its margin form."""
        if result.confidence is None:
            scores = [i["score"] for i in result.instances or []]
            top = float(np.mean(scores)) if scores else 0.0
        else:
            top = float(result.confidence.mean() / 255)
        return {"entropy": entropy_margin([top, 1 - top])["entropy"], "margin": 2 * top - 1}
