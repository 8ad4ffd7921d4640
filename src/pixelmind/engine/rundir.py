"""Run directories: ``<project>/<task>/<name>`` with an incremented name when it exists.

Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> a = make_run_dir(root, "classify", "exp"); b = make_run_dir(root, "classify", "exp")
    >>> a.name, b.name
    ('exp', 'exp2')
"""

from __future__ import annotations

import csv
from pathlib import Path


def make_run_dir(project: str | Path, task: str, name: str | None, exist_ok: bool = False) -> Path:
    base = Path(project) / task
    name = name or "exp"
    path = base / name
    if not exist_ok:
        n = 2
        while path.exists():
            path = base / f"{name}{n}"
            n += 1
    (path / "weights").mkdir(parents=True, exist_ok=True)
    (path / "plots").mkdir(exist_ok=True)
    return path


def write_results_csv(rows: list[dict[str, float]], path: Path) -> None:
    """All epochs so far, one row each; columns are the union of the rows' keys in first-seen order."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    tmp.replace(path)


def read_results_csv(path: Path) -> list[dict[str, float]]:
    with Path(path).open(newline="") as f:
        return [{k: float(v) if v not in ("", None) else float("nan") for k, v in r.items()} for r in csv.DictReader(f)]
