"""``pixelmind label``: a trained model as a labelling assistant.

Predicts every image of ``source``, keeps what is over ``conf``, writes it as a data set in the task's
label format (merged with the labels already in ``out``, which are never overwritten) and writes
``prelabels.jsonl`` (the scores) and ``summary.json`` (counts per class, the low-confidence list).

Example:
    >>> summary = prelabel(Model.load("cls.safetensors"), "new_images/", "labelled/", "folder")  # doctest: +SKIP
    >>> summary["added"], summary["low_confidence"][:1]                                         # doctest: +SKIP
    (118, [{'image': 'new_images/17.png', 'labels': ['7'], 'scores': [0.41]}])
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelmind.errors import ConfigError, DataError
from pixelmind.label import labelling


def prelabel(model, source: Any, out: str | Path, fmt: str | None = None, conf: float = 0.5, review_below: float = 0.8,
             val_fraction: float = 0.2, seed: int = 0, batch: int = 32,
             on_image: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Pre-label ``source`` with ``model`` into the data set at ``out``; returns the summary.

    ``conf``: the least score a label is written with (classify: images under it are left unlabelled;
    detect/segment: boxes and regions under it are dropped). Images whose least confident label is under
    ``review_below``, or that got no label, are listed as ``low_confidence`` for a person to check.
    """
    helper = labelling(model.meta.task)
    fmt = fmt or helper.formats[0]
    if fmt not in helper.formats:
        raise ConfigError(f"to: {model.meta.task} labels are written as {' | '.join(helper.formats)} (not {fmt!r})")
    out = Path(out)
    prelabels, rows, unreadable = [], [], []
    for rec in model.predict_iter(source, batch=batch, _keep_result=True, **helper.predict_options(model.meta, conf)):
        if "error" in rec:
            unreadable.append(rec["error"])
        else:
            p = helper.prelabel(rec.pop("_result"), Path(rec["source"]), conf)
            row = {"image": rec["source"], "labels": p.names if p else [], "scores": [round(s, 4) for s in p.scores] if p else []}
            row["low_confidence"] = not row["scores"] or min(row["scores"]) < review_below
            rows.append(row)
            if p is not None:
                prelabels.append(p)
        if on_image:
            on_image(rec)
    if not rows:
        raise DataError(f"{source}: no readable image" + (f" ({len(unreadable)} unreadable)" if unreadable else ""))
    scores_file = out / "prelabels.jsonl"
    # the data set is rewritten as a whole (into a new folder): keep the scores of earlier runs
    earlier = scores_file.read_text() if scores_file.is_file() else ""
    counts = helper.write(prelabels, out, fmt, model.meta, val_fraction, seed)
    listed = {json.loads(line)["image"] for line in earlier.splitlines() if line.strip()}
    scores_file.write_text(earlier + "".join(json.dumps(r) + "\n" for r in rows if r["image"] not in listed))
    per_class = Counter(n for r in rows for n in r["labels"])
    summary = {"task": model.meta.task, "classes": list(model.meta.class_names), "images": len(rows), "labelled": len(prelabels), "unlabelled": len(rows) - len(prelabels), **counts,
               "unreadable": len(unreadable), "format": fmt, "out": str(out), "conf": conf, "review_below": review_below,
               "per_class": dict(sorted(per_class.items())), "low_confidence": [r for r in rows if r["low_confidence"]]}  # fmt: skip
    (out / "summary.json").write_text(json.dumps({**summary, "unreadable_files": unreadable}, indent=1))
    return summary
