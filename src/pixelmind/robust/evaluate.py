"""``Model.robust`` / ``pixelmind robust``: the task metric on the validation split, clean, under attacks
and under common corruptions, all from one pass over the data (every condition sees the same images).

Writes ``report.json``, ``report.md`` and ``plots/robust.png`` (metric vs eps, metric vs severity).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixelmind.errors import ConfigError, DataError
from pixelmind.robust.attacks import ATTACKS, attack
from pixelmind.robust.corruptions import CORRUPTIONS, SEVERITIES, corrupt

DEFAULT_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)


def check_supported(model: Any) -> None:
    """A one-line refusal for an exported file or a task without robustness support."""
    path, task = model.weights_path, model.task
    if path is not None and path.suffix.lower() != ".safetensors":
        raise ConfigError(f"{path}: robust needs PyTorch weights (.safetensors): attacks follow gradients; "
                          "evaluate the weights the exported file was made from")  # fmt: skip
    if task.robust_unsupported:
        raise ConfigError(f"robust: the {task.name} task is not supported: {task.robust_unsupported}")


def _conditions(attacks: Sequence[str], eps: Sequence[float], corruptions: Sequence[str]) -> list[tuple[str, str, float]]:
    out = [("clean", "", 0.0)]
    out += [("attack", a, e) for a in attacks for e in eps]
    out += [("corruption", c, float(s)) for c in corruptions for s in SEVERITIES]
    return out


def _per_sample_batches(task: Any, batch: Any) -> list[Any]:
    """A batch of images of different sizes (a list) as batches of one, through the task's own collate."""
    images, *rest = batch
    if torch.is_tensor(images):
        return [batch]
    return [task.collate([(im, *(r[i] for r in rest))]) for i, im in enumerate(images)]


def robustness_report(model: Any, out_dir: str | Path, data: str | None = None, attacks: Sequence[str] = ("fgsm",),
                      eps: Sequence[float] = DEFAULT_EPS, steps: int = 10, corruptions: Sequence[str] | bool = True,
                      limit: int | None = 500, batch: int = 32, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Measure ``model`` clean, under ``attacks`` at every ``eps`` (pixel units) and under every corruption at 5 severities.

    ``limit`` caps the validation images (a seeded random subset); ``steps`` is PGD's. Returns the report.

    Example:
        >>> robustness_report(Model.load("best.safetensors"), "robust", attacks=["pgd"], corruptions=False)["attacks"][0]  # doctest: +SKIP
        {'attack': 'pgd', 'eps': 0.0039, 'steps': 10, 'top1': 0.71}
    """
    from accelerate.utils import send_to_device

    from pixelmind.config import make_config
    from pixelmind.engine.trainer import make_loader
    from pixelmind.nn.device import model_device

    check_supported(model)
    net, meta, task = model._require_net(), model.meta, model.task
    bad = [a for a in attacks if a not in ATTACKS]
    if bad:
        raise ConfigError(f"attack: unknown {bad[0]!r} (choose from: {', '.join(ATTACKS)})")
    if any(not 0 < e <= 1 for e in eps):
        raise ConfigError("eps: every value must be in (0, 1] (pixel units: 8/255 = 0.0314)")
    names = list(CORRUPTIONS) if corruptions is True else list(corruptions or [])
    unknown = [c for c in names if c not in CORRUPTIONS]
    if unknown:
        raise ConfigError(f"corruption: unknown {unknown[0]!r} (choose from: {', '.join(CORRUPTIONS)})")
    data = data or model.config.get("data")
    if not data:
        raise ConfigError("data: give --data (the weights do not name their training data)")
    cfg = make_config({"task": meta.task, "data": data, "model": meta.model, "imgsz": meta.imgsz, "batch": batch, "workers": 0,
                       "seed": meta.extra.get("seed", 0), "val_fraction": meta.extra.get("val_fraction", 0.2), "augment": "none"})  # fmt: skip
    val = task.load_data(cfg, meta).val
    if limit is not None and len(val) > limit:
        order = torch.randperm(len(val), generator=torch.Generator().manual_seed(seed))[:limit].tolist()
        val = torch.utils.data.Subset(val, sorted(order))
    loader = make_loader(val, task, cfg, train=False, pin=False)
    conditions = _conditions(attacks, eps, names)
    evaluators = [task.evaluator(meta) for _ in conditions]
    space, device = task.pixel_space(meta), model_device(net)
    net.eval()
    skipped = 0
    for b, (loaded, bad_samples) in enumerate(loader):
        skipped += len(bad_samples)
        if loaded is None:
            continue
        for part in _per_sample_batches(task, task.attack_batch(send_to_device(loaded, device), meta)):
            x, rest = part[0], tuple(part[1:])
            for (kind, name, level), ev in zip(conditions, evaluators):
                if kind == "attack":
                    xp = attack(name, lambda inp, rest=rest: task.attack_loss(net, (inp, *rest)), x, space, level, steps,
                                seed=seed + b)  # fmt: skip
                elif kind == "corruption":
                    xp = space.from_pixels(corrupt(name, space.to_pixels(x).clamp(0, 1), int(level), seed=seed + b))
                else:
                    xp = x
                with torch.inference_mode():
                    ev.update(*task.validation_step(net, (xp, *rest)))
        if progress:
            progress(b + 1, len(loader))
    report = _report(model, task.primary_metric, conditions, [ev.compute() for ev in evaluators], steps, seed)
    if not report["clean"]:
        raise DataError(f"{data}: no readable validation images")
    report["samples"], report["skipped"] = len(val) - skipped, skipped
    write_report(report, Path(out_dir))
    return report


def _report(model: Any, metric: str, conditions, results: list[dict[str, float]], steps: int, seed: int) -> dict[str, Any]:
    def value(r: dict[str, float]) -> float | None:
        return float(r[metric]) if metric in r else None

    report: dict[str, Any] = {"task": model.meta.task, "model": model.meta.model,
                              "weights": str(model.weights_path) if model.weights_path else None, "metric": metric,
                              "seed": seed, "clean": value(results[0]), "attacks": [], "corruptions": []}  # fmt: skip
    for (kind, name, level), r in zip(conditions[1:], results[1:]):
        if kind == "attack":
            report["attacks"].append({"attack": name, "eps": level, "eps_255": round(level * 255, 2),
                                      **({"steps": steps} if name == "pgd" else {}), metric: value(r)})  # fmt: skip
        else:
            report["corruptions"].append({"corruption": name, "severity": int(level), metric: value(r)})
    if report["corruptions"]:
        per = {}
        for row in report["corruptions"]:
            per.setdefault(row["corruption"], []).append(row[metric])
        report["corruption_means"] = {c: float(np.mean(v)) for c, v in per.items()}
        report["corruption_mean"] = float(np.mean([row[metric] for row in report["corruptions"]]))
    return report


def write_report(report: dict[str, Any], out: Path) -> None:
    """report.json, report.md (tables) and plots/robust.png."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(markdown(report))
    plot(report, out / "plots" / "robust.png")


def markdown(report: dict[str, Any]) -> str:
    m = report["metric"]
    lines = [f"# Robustness of {report['model']} ({report['task']})", "",
             f"{report['samples']} validation images; clean {m}: **{report['clean']:.4f}**", ""]  # fmt: skip
    if report["attacks"]:
        lines += ["## Adversarial attacks (L-inf, pixel space)", "", f"| attack | eps | eps x 255 | {m} | drop |", "|---|---|---|---|---|"]
        for r in report["attacks"]:
            name = f"pgd-{r['steps']}" if r["attack"] == "pgd" else r["attack"]
            lines.append(f"| {name} | {r['eps']:.4f} | {r['eps_255']:g} | {r[m]:.4f} | {report['clean'] - r[m]:+.4f} |")
        lines.append("")
    if report["corruptions"]:
        sev = "|".join(f" {s} " for s in SEVERITIES)
        lines += ["## Common corruptions (severity 1-5)", "", f"| corruption |{sev}| mean |", "|---" * (len(SEVERITIES) + 2) + "|"]
        rows: dict[str, list[float]] = {}
        for r in report["corruptions"]:
            rows.setdefault(r["corruption"], []).append(r[m])
        for name, values in rows.items():
            lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {np.mean(values):.4f} |")
        lines += ["", f"Mean over all corruptions and severities: **{report['corruption_mean']:.4f}**", ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = report["metric"]
    panels = [p for p in ("attacks", "corruptions") if report[p]]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6 * max(len(panels), 1), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        key, x_key, label = ("attack", "eps_255", "eps (x 1/255)") if panel == "attacks" else ("corruption", "severity", "severity")
        for name in dict.fromkeys(r[key] for r in report[panel]):
            rows = [r for r in report[panel] if r[key] == name]
            ax.plot([0] + [r[x_key] for r in rows], [report["clean"]] + [r[m] for r in rows], marker="o", label=name)
        ax.axhline(report["clean"], color="grey", linestyle="--", linewidth=1, label="clean")
        ax.set(xlabel=label, ylabel=m, title=f"{m} under {panel}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
