"""``Model.explain`` / ``pixelmind explain``: maps for every image of a source, saved and scored.

Each explained target leaves ``<stem>_<target>_<method>.png`` (the overlay) and ``.npy`` (the raw map
at the image's size, float32 in [0, 1]), plus its deletion/insertion AUC next to random maps'.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixelmind.errors import ConfigError
from pixelmind.explain.faithfulness import deletion_insertion, random_baseline
from pixelmind.explain.methods import CAM_METHODS, attribution_map
from pixelmind.explain.render import overlay, resize_map
from pixelmind.explain.targets import is_vit


def available_methods(model: Any) -> list[str]:
    """The methods that apply to ``model``: its task's, rollout only for Vision Transformers, none for an exported file."""
    path = model.weights_path
    if path is not None and path.suffix.lower() != ".safetensors":
        return []
    vit = model.net is not None and any(is_vit(m) for m in model.net.modules())
    return [m for m in model.task.explain_methods if m != "rollout" or vit]


def check_method(model: Any, method: str | None) -> str:
    """The method to use (the task's default when ``None``), or a one-line error naming the choices."""
    task, path = model.task, model.weights_path
    if path is not None and path.suffix.lower() != ".safetensors":
        raise ConfigError(f"{path}: explain needs PyTorch weights (.safetensors) to follow gradients; an exported or "
                          "INT8 file has none: explain the weights it was made from")  # fmt: skip
    methods = available_methods(model)
    if method == "rollout" and "rollout" in task.explain_methods and "rollout" not in methods:
        raise ConfigError("method: rollout reads the attention of a Vision Transformer (ViT/DeiT); use gradcam for this model")
    if not methods:
        raise ConfigError(f"explain: the {task.name} task has no explanation methods")
    if method is None:
        return methods[0]
    if method not in methods:
        raise ConfigError(f"method: {method!r} does not apply to {task.name} models (choose from: {', '.join(methods)})")
    return method


def explain_image(model: Any, image, method: str, classes: Sequence[str | int] | None = None,
                  faithfulness: bool = True, **options: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Maps for one PIL image: per target ``{"target", "map" (np [H, W] at the image's size), AUCs, info}``.

    ``options`` go to the task's ``explain_targets`` (detect: ``conf``, the least box score explained).
    """
    net, meta, task = model._require_net(), model.meta, model.task
    x, to_image = task.explain_input(image, meta)
    x = x[None].to(next(net.parameters()).device)
    network, targets = task.explain_targets(net, x, meta, classes, image=image, **options)
    network.eval()
    layers = task.explain_layers(net, network, x) if method in CAM_METHODS else None
    out = []
    for target in targets:
        saliency = attribution_map(method, network, x, target, layers)
        row: dict[str, Any] = {"target": target.name, **target.info}
        if faithfulness:
            row.update(deletion_insertion(network, x, saliency, target))
            row.update(random_baseline(network, x, target))
        row["map"] = to_image(saliency, image)
        out.append(row)
    return out


def explain_iter(model: Any, source: Any, method: str | None = None, classes: Sequence[str | int] | None = None,
                 out_dir: str | Path | None = None, faithfulness: bool = True, **options: Any) -> Iterator[dict[str, Any]]:  # fmt: skip
    """One record per image of ``source`` (paths, a folder, PIL images); unreadable files give ``error``."""
    from PIL import Image

    from pixelmind.data.decode import ImageDecodeError, load_image
    from pixelmind.data.sources import iter_sources

    method = check_method(model, method)
    if isinstance(source, Image.Image) or (isinstance(source, (list, tuple)) and source and isinstance(source[0], Image.Image)):
        items: Iterator = ((f"<image {i}>", im) for i, im in enumerate([source] if isinstance(source, Image.Image) else source))
    else:
        items = ((str(p), p) for p in iter_sources(source))
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    for n, (name, item) in enumerate(items, 1):
        try:
            image = item if isinstance(item, Image.Image) else load_image(item)
        except ImageDecodeError as err:
            yield {"source": name, "error": str(err)}
            continue
        rows = explain_image(model, image, method, classes, faithfulness, **options)
        stem = f"{n:04d}_{Path(name).stem}" if not name.startswith("<") else f"{n:04d}_image"
        for row in rows:
            if out is not None:
                base = out / f"{stem}_{_safe(row['target'])}_{_safe(method)}"
                np.save(base.with_suffix(".npy"), row["map"])
                overlay(image, row["map"]).save(base.with_suffix(".png"))
                row["overlay"], row["map_file"] = str(base.with_suffix(".png")), str(base.with_suffix(".npy"))
        yield {"source": name, "method": method, "explanations": rows}


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean AUCs over every explained target, the map's beside the random maps'."""
    rows = [r for rec in records for r in rec.get("explanations", []) if "deletion_auc" in r]
    keys = ("deletion_auc", "random_deletion_auc", "insertion_auc", "random_insertion_auc")
    out: dict[str, Any] = {"images": sum("explanations" in r for r in records), "targets": len(rows),
                           "errors": sum("error" in r for r in records)}  # fmt: skip
    if rows:
        out.update({k: float(np.mean([r[k] for r in rows])) for k in keys})
    return out


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in str(text)).replace("+", "pp")


def resize_to_image(saliency: np.ndarray, image) -> np.ndarray:
    """The default map-to-image step: the network input covers the whole image."""
    return resize_map(saliency, image.size)


def class_indices(classes: Sequence[str | int] | None, names: Sequence[str]) -> list[int] | None:
    """``--class`` values (names or indices) -> indices, or a one-line error naming the classes."""
    if not classes:
        return None
    out = []
    for c in classes:
        if isinstance(c, int) or (isinstance(c, str) and c.isdigit() and c not in names):
            i = int(c)
            if not 0 <= i < len(names):
                raise ConfigError(f"class: index {i} is out of range (the model has {len(names)} classes)")
            out.append(i)
        elif c in names:
            out.append(list(names).index(c))
        else:
            shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
            raise ConfigError(f"class: {c!r} is not one of the model's classes ({shown})")
    return out


__all__ = ["available_methods", "check_method", "class_indices", "explain_image", "explain_iter", "resize_to_image", "summarize"]
