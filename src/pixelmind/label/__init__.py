"""The data engine: pre-labelling (``label``), label-error finding (``check --label-errors``) and
active learning (``select``), task-free; each task's part is the object its ``labelling()`` hook returns.

That object (see :class:`Labelling`) knows the task's label files and how a prediction compares with a label;
this package runs models, ranks, writes reports and picks images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass
class LabelledImage:
    """One labelled image of a data set: ``image`` is a path or a uint8 ``[H, W, 3]`` array (in-memory data)."""

    id: str
    image: Path | Any
    label: Any  # class index (classify), BoxItem (detect), MaskItem (segment)
    split: str


class Labelling(Protocol):
    formats: tuple[str, ...]  # what ``label --to`` writes for this task, the default first

    def predict_options(self, meta: Any, conf: float) -> dict[str, Any]: ...  # for Model.predict_iter
    def prelabel(self, result: Any, image: Path, conf: float) -> Any: ...
    def write(self, prelabels: list[Any], out: Path, fmt: str, meta: Any, val_fraction: float, seed: int) -> dict[str, int]: ...
    def items(self, data: str, val_fraction: float, seed: int) -> tuple[list[LabelledImage], list[str]]: ...
    def predictions(self, model: Any, items: list[LabelledImage]) -> list[Any]: ...
    def rank(self, items: list[LabelledImage], predictions: list[Any], class_names: list[str]) -> list[dict[str, Any]]: ...
    def fold_data(self, items: list[LabelledImage], train: list[int], val: list[int], class_names: list[str], folder: Path) -> str: ...
    def thumbnail(self, item: LabelledImage, row: dict[str, Any], class_names: list[str]) -> Any: ...
    def uncertainty(self, result: Any) -> dict[str, float]: ...
    # review (label/review.py): draw an item's label; remove an image's labels from a label set; apply a suggestion
    def preview(self, item: LabelledImage, class_names: list[str]) -> Any: ...
    def discard(self, out: Path, fmt: str, item: LabelledImage) -> None: ...
    def fix(self, data: str, item: LabelledImage, row: dict[str, Any], class_names: list[str]) -> str | None: ...


def labelling(task_name: str) -> Labelling:
    """The labelling part of a task, or a one-line ConfigError for tasks without labels to fix."""
    from pixelmind.tasks import get_task

    return get_task(task_name).labelling()


def load_item_image(item: LabelledImage):
    """The item's image as RGB PIL (decoded safely for paths)."""
    from PIL import Image

    from pixelmind.data.decode import load_image

    return load_image(item.image) if isinstance(item.image, (str, Path)) else Image.fromarray(item.image).convert("RGB")


def entropy_margin(probs) -> dict[str, float]:
    """Entropy (nats) and top-2 margin of a probability vector: the two usual uncertainties.

    Example:
        >>> {k: round(v, 3) for k, v in entropy_margin([0.5, 0.5]).items()}
        {'entropy': 0.693, 'margin': 0.0}
    """
    import numpy as np

    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    top = np.sort(p)[::-1]
    return {"entropy": float(-(p * np.log(p)).sum()), "margin": float(top[0] - (top[1] if len(top) > 1 else 0.0))}
