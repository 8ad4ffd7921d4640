"""Review pre-labels or suspected label errors one image at a time; decisions are saved to the label files.

A review folder is either what ``pixelmind label -o OUT`` wrote (``OUT/summary.json`` + ``prelabels.jsonl``)
or what ``pixelmind check --label-errors`` wrote (``label_errors.json`` + ``label_errors.csv``):

- pre-labels, least confident first: *accept* keeps the label; *reject* removes the image's labels from
  ``OUT`` (the task's ``discard``), so it is labelled by hand or pre-labelled again later.
- suspected errors, likeliest first: *accept* ("the label is wrong") applies the suggestion to the data
  set where the task knows how (classify: the image moves to the suggested class folder, or its CSV row
  gets the suggested class); otherwise it is recorded for fixing in an annotation tool. *reject*
  ("the label is right") is recorded.

Every decision is appended to ``review.jsonl`` in the folder (the last one per image counts), so a
review can stop and go on later. :func:`review_router` serves it to the web page (``pixelmind review``).

Example:
    >>> queue = ReviewQueue("labelled/")                  # doctest: +SKIP
    >>> queue.items()[0]["title"], queue.decide(0, "reject")["done"]  # doctest: +SKIP
    ('cat 41%', 'labels removed from labelled')
"""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pixelmind.errors import DataError
from pixelmind.label import LabelledImage, labelling, load_item_image

DECISIONS = ("accept", "reject")


def _parsed(value: str) -> Any:
    """CSV cells back to what ``label_errors.csv`` was written from (numbers, lists, strings)."""
    try:
        return json.loads(value)
    except ValueError:
        return value


class ReviewQueue:
    """The images to review in ``folder`` and the decisions taken on them so far."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()  # decisions rewrite label files: one at a time
        if (self.folder / "summary.json").is_file() and (self.folder / "prelabels.jsonl").is_file():
            self.kind, doc = "prelabels", self._json("summary.json")
        elif (self.folder / "label_errors.json").is_file() and (self.folder / "label_errors.csv").is_file():
            self.kind, doc = "label_errors", self._json("label_errors.json")
        else:
            raise DataError(f"{self.folder}: not a review folder (expected what `pixelmind label -o` or "
                            "`pixelmind check --label-errors` wrote)")  # fmt: skip
        if "task" not in doc:
            raise DataError(f"{self.folder}: written by an older pixelmind (no task recorded); run it again")
        self.task, self.class_names, self.doc = doc["task"], list(doc.get("classes") or []), doc
        self.helper = labelling(self.task)
        self._load()

    def _json(self, name: str) -> dict[str, Any]:
        try:
            return json.loads((self.folder / name).read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{self.folder / name}: unreadable ({err})") from None

    def _load(self) -> None:
        """Pair the rows to review with the data set's items (images and their current labels)."""
        log = self.folder / "review.jsonl"
        decided = {}  # image -> its last decision
        for line in log.read_text().splitlines() if log.is_file() else []:
            rec = json.loads(line)
            decided[rec.get("image")] = rec
        if self.kind == "prelabels":
            items, names = self.helper.items(str(self.folder), 0.2, 0)
            by_stem = {Path(str(it.image)).stem: it for it in items if isinstance(it.image, Path)}
            rows = [json.loads(line) for line in (self.folder / "prelabels.jsonl").read_text().splitlines() if line.strip()]
            # a rejected image has no label left in the folder: it stays in the queue as its source image
            gone = {r["image"]: LabelledImage(r["image"], Path(r["image"]), None, "") for r in rows if r["image"] in decided}
            rows = sorted((r for r in rows if r["labels"] and (Path(r["image"]).stem in by_stem or r["image"] in gone)),
                          key=lambda r: min(r["scores"]))  # fmt: skip
            self.entries = [(by_stem.get(Path(r["image"]).stem) or gone[r["image"]], r) for r in rows]
        else:
            items, names = self.helper.items(self.doc["data"], self.doc.get("val_fraction", 0.2), self.doc.get("seed", 0))
            by_id = {it.id: it for it in items}
            with (self.folder / "label_errors.csv").open(newline="") as f:
                rows = [{k: _parsed(v) for k, v in r.items()} for r in csv.DictReader(f)]
            self.entries = [(by_id[str(r["image"])], r) for r in rows if r.get("issue") and str(r["image"]) in by_id]
        self.class_names = self.class_names or names
        self.decisions = {i: decided[self._key(i)] for i in range(len(self.entries)) if self._key(i) in decided}

    def _key(self, i: int) -> str:
        return str(self.entries[i][1]["image"])

    def _title(self, row: dict[str, Any]) -> str:
        if self.kind == "prelabels":
            return ", ".join(f"{n} {s:.0%}" for n, s in zip(row["labels"], row["scores"]))
        return f"{row['issue']}: given {row['given']}, suggested {row['suggested']}"

    def items(self) -> list[dict[str, Any]]:
        """One JSON-safe entry per image to review, in review order."""
        return [{"index": i, "image": self._key(i), "title": self._title(row),
                 "decision": self.decisions.get(i, {}).get("decision"), "done": self.decisions.get(i, {}).get("done")}
                for i, (_, row) in enumerate(self.entries)]  # fmt: skip

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "task": self.task, "folder": str(self.folder), "total": len(self.entries),
                "decided": len(self.decisions), "decisions": list(DECISIONS)}  # fmt: skip

    def _entry(self, i: int) -> tuple[LabelledImage, dict[str, Any]]:
        if not 0 <= i < len(self.entries):
            raise IndexError(i)
        return self.entries[i]

    def image_png(self, i: int) -> bytes:
        """The image with its label (pre-labels) or the suspected error drawn on it, as PNG."""
        item, row = self._entry(i)
        if self.kind == "prelabels" and isinstance(item.image, Path) and not item.image.exists():
            item = LabelledImage(item.id, Path(row["image"]), None, item.split)  # rejected: its source, no label
        with self._lock:
            if item.label is None:
                shown = load_item_image(item)
            elif self.kind == "prelabels":
                shown = self.helper.preview(item, self.class_names)
            else:
                shown = self.helper.thumbnail(item, row, self.class_names)
        buf = io.BytesIO()
        shown.save(buf, format="PNG")
        return buf.getvalue()

    def decide(self, i: int, decision: str) -> dict[str, Any]:
        """Apply ``accept`` or ``reject`` to entry ``i``; returns the record appended to ``review.jsonl``."""
        if decision not in DECISIONS:
            raise ValueError(f"decision: {' or '.join(DECISIONS)}, got {decision!r}")
        item, row = self._entry(i)
        with self._lock:
            earlier = self.decisions.get(i, {}).get("decision")
            if earlier is not None and earlier != decision and (earlier, self.kind) in (("reject", "prelabels"), ("accept", "label_errors")):
                raise ValueError(f"{self._key(i)}: already {earlier}ed and applied to the label files; it cannot be undone here")
            done = "recorded"
            if earlier != decision:
                if self.kind == "prelabels" and decision == "reject":
                    self.helper.discard(self.folder, self.doc["format"], item)
                    done = f"labels removed from {self.folder}"
                elif self.kind == "label_errors" and decision == "accept":
                    done = self.helper.fix(self.doc["data"], item, row, self.class_names) or "recorded (fix it in your annotation tool)"
            rec = {"image": self._key(i), "decision": decision, "done": done, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            with (self.folder / "review.jsonl").open("a") as f:
                f.write(json.dumps(rec) + "\n")
            self.decisions[i] = rec
        return rec


def review_router(folder: str | Path):
    """``GET /v1/review``, ``GET /v1/review/{i}/image`` and ``POST /v1/review/{i}`` (``{"decision": ...}``)."""
    from fastapi import APIRouter, Body
    from fastapi.responses import JSONResponse, Response

    queue = ReviewQueue(folder)
    router = APIRouter(prefix="/v1/review", tags=["review"])

    def missing(i: int) -> JSONResponse:
        return JSONResponse({"error": f"not found: review item {i} (there are {len(queue.entries)})"}, status_code=404)

    @router.get("", summary="What is being reviewed and every item with its decision so far")
    async def listing() -> dict[str, Any]:
        return {**queue.summary(), "items": queue.items()}

    @router.get("/{i}/image", summary="The image with its label or suspected error drawn, as PNG")
    def image(i: int) -> Response:
        try:
            return Response(queue.image_png(i), media_type="image/png")
        except IndexError:
            return missing(i)
        except DataError as err:
            return JSONResponse({"error": str(err)}, status_code=422)

    @router.post("/{i}", summary="accept or reject item i; the label files are changed as the decision says")
    def decide(i: int, decision: str = Body(..., embed=True)) -> Any:
        try:
            return {**queue.decide(i, decision), "decided": len(queue.decisions), "total": len(queue.entries)}
        except IndexError:
            return missing(i)
        except ValueError as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        except DataError as err:
            return JSONResponse({"error": str(err)}, status_code=409)

    return router
