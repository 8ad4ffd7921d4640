"""Tasks plug into the engine through the contract in :mod:`pixelmind.tasks.base`.

Each task lives in its own subpackage and registers itself on import; :func:`get_task`
imports it on first use so that ``import pixelmind`` stays cheap.

Example:
    >>> from pixelmind.tasks import get_task
    >>> get_task("classify").name
    'classify'
"""

from __future__ import annotations

import importlib

from pixelmind.errors import ConfigError

#: every task pixelmind plans; a name here without a subpackage is not built yet.
TASK_NAMES = ("classify", "detect", "segment", "generate", "enhance", "compress", "embed", "ocr")


def get_task(name: str):
    """The task object registered under ``name`` (a :class:`~pixelmind.tasks.base.Task`)."""
    if name not in TASK_NAMES:
        raise ConfigError(f"task: unknown task {name!r}; choose from: {', '.join(TASK_NAMES)}")
    try:
        module = importlib.import_module(f"pixelmind.tasks.{name}.task")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith(f"pixelmind.tasks.{name}"):
            raise ConfigError(f"task: {name!r} is planned but not implemented yet") from None
        raise
    return module.TASK


def available_tasks() -> list[str]:
    """Names of the tasks that are implemented in this install."""
    out = []
    for name in TASK_NAMES:
        if importlib.util.find_spec(f"pixelmind.tasks.{name}") is not None:
            out.append(name)
    return out
