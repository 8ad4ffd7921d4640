"""``pixelmind check --label-errors``: the labels most likely wrong, ranked, from a model's predictions.

Predictions come from given weights (fast; a model that saw these images while training is too sure
of them, so flips it memorised are missed) or from ``folds`` quick models, each predicting the images it
was not trained on (out-of-fold: what confident learning assumes). The ranking is cleanlab's, through the
task's ``labelling()`` hook. Writes ``label_errors.csv`` (every image, likeliest errors first),
``label_errors.md`` and ``label_errors.png`` (thumbnails of the top ones).

Example:
    >>> report = find_label_errors("data.csv", weights="cls.safetensors", out="runs/check/data")  # doctest: +SKIP
    >>> report["issues"], report["rows"][0]["given"], report["rows"][0]["suggested"]             # doctest: +SKIP
    (31, 'cat', 'dog')
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelmind.errors import ConfigError
from pixelmind.label import labelling


def out_of_fold_splits(n: int, folds: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """``folds`` (train, held-out) index lists; every index is held out exactly once.

    Example:
        >>> [len(v) for _, v in out_of_fold_splits(10, 3)]
        [4, 3, 3]
    """
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = [sorted(order[k::folds]) for k in range(folds)]
    return [(sorted(set(order) - set(v)), v) for v in held]


def find_label_errors(data: str, task: str | None = None, weights: str | Path | None = None, folds: int = 0,
                      out: str | Path | None = None, top: int = 48, fold_config: dict[str, Any] | None = None,
                      device: str = "cpu", seed: int = 0, val_fraction: float = 0.2,
                      log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """Rank the images of ``data`` by label quality and write the report into ``out``."""
    from pixelmind.api import Model

    if (weights is None) == (folds < 2):
        raise ConfigError("label-errors: give --weights W (a trained model) or --folds K (K >= 2 quick models)")
    model = Model.load(weights, device=device) if weights is not None else None
    task = model.meta.task if model is not None else (task or "classify")
    helper = labelling(task)
    items, names = helper.items(data, val_fraction, seed)
    out = Path(out or Path("runs") / "check" / Path(data).stem)
    out.mkdir(parents=True, exist_ok=True)
    if model is not None:
        if list(model.meta.class_names) != list(names):
            raise ConfigError(f"{weights}: trained on classes {model.meta.class_names}, the data has {names}")
        predictions = helper.predictions(model, items)
    else:
        predictions = [None] * len(items)
        for k, (train, held) in enumerate(out_of_fold_splits(len(items), folds, seed), start=1):
            log(f"fold {k}/{folds}: training on {len(train)} images, predicting {len(held)}")
            fold_dir = out / "folds" / f"fold{k}"
            fold_data = helper.fold_data(items, train, held, names, fold_dir)
            config = {"project": str(fold_dir / "runs"), "name": "fold", "seed": seed + k, "device": device,
                      **(fold_config or {})}  # fmt: skip
            fold_model = Model(task=task)
            fold_model.train(data=fold_data, config=config)
            for i, p in zip(held, helper.predictions(fold_model, [items[i] for i in held])):
                predictions[i] = p
    rows = helper.rank(items, predictions, names)
    rows.sort(key=lambda r: (r["issue"] == "", r["quality"]))
    skipped = sum(p is None for p in predictions)
    _write(out, rows, items, helper, names, top)
    report = {"images": len(rows), "issues": sum(bool(r["issue"]) for r in rows), "unreadable": skipped,
              "source": f"weights {weights}" if weights else f"{folds}-fold out-of-fold models", "out": str(out),
              "task": task, "data": str(data), "classes": names, "val_fraction": val_fraction, "seed": seed, "rows": rows}  # fmt: skip
    (out / "label_errors.json").write_text(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))
    return report


def _write(out: Path, rows: list[dict[str, Any]], items, helper, names, top: int) -> None:
    from pixelmind.viz.draw import contact_sheet

    keys = list(dict.fromkeys(k for r in rows for k in r))
    with (out / "label_errors.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["rank", *keys])
        writer.writeheader()
        for rank, r in enumerate(rows, start=1):
            writer.writerow({"rank": rank, **{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()}})
    by_id = {it.id: it for it in items}
    flagged = [r for r in rows if r["issue"]][:top]
    if flagged:
        contact_sheet([helper.thumbnail(by_id[r["image"]], r, names) for r in flagged]).save(out / "label_errors.png")
    lines = ["# Likely label errors", "", f"{sum(bool(r['issue']) for r in rows)} of {len(rows)} images flagged; "
             "lowest label quality first. Every image is in label_errors.csv.", ""]  # fmt: skip
    if flagged:
        lines += ["![top suspected errors](label_errors.png)", "", "| rank | image | issue | given | suggested | quality |", "|---|---|---|---|---|---|"]
        lines += [f"| {i} | {r['image']} | {r['issue']} | {r['given']} | {r['suggested']} | {r['quality']:.3f} |"
                  for i, r in enumerate(flagged, start=1)]  # fmt: skip
    (out / "label_errors.md").write_text("\n".join(lines) + "\n")
