"""Classification's part of the data engine: ImageFolder pre-labels, confident learning, uncertainty."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from pixelmind.data.label_sets import Prelabel, discard_files, relabel_class, write_class_folder
from pixelmind.errors import ConfigError
from pixelmind.label import LabelledImage, entropy_margin, load_item_image


class ClassifyLabelling:
    formats = ("folder",)

    def predict_options(self, meta, conf: float) -> dict[str, Any]:
        return {"topk": meta.num_classes}  # every probability: uncertainty needs them all

    def prelabel(self, result, image: Path, conf: float) -> Prelabel | None:
        """The top class, or None when its probability is under ``conf`` (left for a person to label)."""
        if result.probs[0] < conf:
            return None
        return Prelabel(Path(image), [result.labels[0]], [float(result.probs[0])], int(result.indices[0]))

    def write(self, prelabels, out, fmt, meta, val_fraction, seed):
        if fmt != "folder":
            raise ConfigError(f"to: classify labels are written as 'folder' (ImageFolder), not {fmt!r}")
        return write_class_folder(prelabels, Path(out), list(meta.class_names))

    def items(self, data: str, val_fraction: float, seed: int) -> tuple[list[LabelledImage], list[str]]:
        from pixelmind.config import TrainConfig
        from pixelmind.data.check import _items
        from pixelmind.tasks.classify.data import load_classification_data, native_image_size

        imgsz = min(max(8, native_image_size(data) or 32), 4096)
        bundle = load_classification_data(TrainConfig(data=data, imgsz=imgsz, augment="none", val_fraction=val_fraction, seed=seed))
        index = {n: i for i, n in enumerate(bundle.class_names)}
        out = []
        for split, ident, name, src in _items(bundle):
            image = Path(src) if isinstance(src, str) else _hwc(src)
            out.append(LabelledImage(str(ident), image, index[name], split))
        return out, list(bundle.class_names)

    def predictions(self, model, items) -> list[np.ndarray | None]:
        """Each image's full probability vector (None: unreadable)."""
        from pixelmind.data.decode import ImageDecodeError

        k = model.meta.num_classes
        out: list[np.ndarray | None] = []
        for start in range(0, len(items), 64):
            chunk, images = items[start : start + 64], []
            for it in chunk:
                try:
                    images.append(load_item_image(it))
                except ImageDecodeError:
                    images.append(None)
            good = [im for im in images if im is not None]
            results = iter(model.task.predict(model.net, good, model.meta, topk=k) if good else [])
            for im in images:
                if im is None:
                    out.append(None)
                    continue
                r = next(results)
                probs = np.zeros(k, np.float64)
                probs[r.indices] = r.probs
                out.append(probs / max(probs.sum(), 1e-12))
        return out

    def rank(self, items, predictions, class_names) -> list[dict[str, Any]]:
        """Confident learning (cleanlab): every image's label quality, the likely wrong ones flagged."""
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        ok = [i for i, p in enumerate(predictions) if p is not None]
        labels = np.array([items[i].label for i in ok])
        probs = np.stack([predictions[i] for i in ok])
        quality = get_label_quality_scores(labels, probs)
        issues = find_label_issues(labels, probs) if len(set(labels.tolist())) > 1 else np.zeros(len(ok), bool)
        return [{"image": items[i].id, "split": items[i].split, "quality": round(float(q), 4),
                 "issue": "wrong label" if bad else "", "given": class_names[int(y)],
                 "suggested": class_names[int(p.argmax())], "suggested_prob": round(float(p.max()), 4)}
                for i, q, bad, y, p in zip(ok, quality, issues, labels, probs)]  # fmt: skip

    def fold_data(self, items, train, val, class_names, folder: Path) -> str:
        """A CSV manifest ``path,label,split`` (in-memory images written as PNG beside it)."""
        from PIL import Image

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "fold.csv"
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label", "split"])
            for split, idx in (("train", train), ("val", val)):
                for i in idx:
                    it = items[i]
                    if not isinstance(it.image, Path):
                        png = folder / "images" / f"{i}.png"
                        if not png.is_file():
                            png.parent.mkdir(exist_ok=True)
                            Image.fromarray(it.image).save(png)
                        image = png
                    else:
                        image = it.image.resolve()
                    writer.writerow([str(image), class_names[it.label], split])
        return str(path)

    def thumbnail(self, item, row, class_names):
        from pixelmind.viz.draw import draw_label_banner

        return draw_label_banner(_readable(item), [f"given {row['given']}", f"model {row['suggested']} {row['suggested_prob']:.0%}"])

    def preview(self, item, class_names):
        from pixelmind.viz.draw import draw_label_banner

        return draw_label_banner(_readable(item), [class_names[item.label]])

    def discard(self, out: Path, fmt: str, item) -> None:
        discard_files(out, Path(item.image).stem, ["*"])  # OUT/<class>/<image>

    def fix(self, data: str, item, row, class_names) -> str | None:
        return relabel_class(data, item.image, row["given"], row["suggested"]) if isinstance(item.image, Path) else None

    def uncertainty(self, result) -> dict[str, float]:
        probs = np.zeros(max(result.indices) + 1)
        probs[result.indices] = result.probs
        return entropy_margin(probs)


def _readable(item):
    """The item's image; digits-sized ones scaled up (sharp pixels) so a banner's text fits."""
    from PIL import Image

    image = load_item_image(item)
    if max(image.size) < 96:
        k = -(-96 // max(image.size))
        image = image.resize((image.width * k, image.height * k), Image.Resampling.NEAREST)
    return image


def _hwc(tensor) -> np.ndarray:
    arr = tensor.numpy()
    return np.repeat(arr, 3, axis=0).transpose(1, 2, 0) if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
