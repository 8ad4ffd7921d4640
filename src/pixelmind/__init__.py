"""pixelmind: train, evaluate, run, export and serve deep vision models for six image tasks.

Importing the package is cheap and changes nothing global; the heavy parts (torch, timm,
the engine) load on first use.

Example:
    >>> from pixelmind import Model
    >>> m = Model("pm_cnn_s", task="classify")  # doctest: +SKIP
    >>> m.train(data="digits", epochs=1)         # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Model", "__version__"]


def __getattr__(name: str):
    if name == "Model":
        from pixelmind.api import Model

        return Model
    raise AttributeError(f"module 'pixelmind' has no attribute {name!r}")
