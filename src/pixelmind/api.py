"""The Python API: one :class:`Model` to train, validate, predict, export and serve, for every task.

Example:
    >>> from pixelmind import Model
    >>> m = Model("pm_cnn_t", task="classify")
    >>> metrics = m.train(data="digits", epochs=1, imgsz=16, project=tmp_project)  # doctest: +SKIP
    >>> m.predict("digit.png")[0]["label"]                                          # doctest: +SKIP
    '3'
    >>> Model.load("runs/classify/exp/weights/best.safetensors").export("onnx")    # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from pixelmind.config import TrainConfig, load_yaml, make_config
from pixelmind.data.medical import set_window
from pixelmind.engine import checkpoint as ckpt
from pixelmind.errors import ConfigError, DataError, PixelmindError, WeightsError
from pixelmind.nn.device import model_device
from pixelmind.tasks import get_task
from pixelmind.tasks.base import Meta


class Model:
    """A model of one task: built from a name to train, or loaded from weights to use.

    Args:
        model: a registered model name or any timm model name; ``None`` takes the task default.
        task: one of classify, detect, segment, generate, enhance, compress, embed.
    """

    def __init__(self, model: str | None = None, task: str = "classify") -> None:
        self.task = get_task(task)
        self.model_name = model
        self.net: torch.nn.Module | None = None
        self.meta: Meta | None = None
        self.config: dict[str, Any] = {}
        self.weights_path: Path | None = None
        self.run_dir: Path | None = None
        self.load_messages: list[str] = []
        self._fast: tuple = (None, None)  # (self.net, the network predict runs for it)

    def __repr__(self) -> str:
        where = f", weights={str(self.weights_path)!r}" if self.weights_path else ""
        return f"Model({self.model_name!r}, task={self.task.name!r}{where})"

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Model:
        """Load ``.safetensors`` (pixelmind weights), ``.onnx`` or ``.torchscript``/``.pt`` exports, ``.pt2`` INT8 programs."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            from pixelmind.export.onnx import OnnxModule

            net = OnnxModule(path)
            meta, config = net.meta, {}
        elif suffix in (".torchscript", ".ts"):
            from pixelmind.export.onnx import TorchScriptModule

            net = TorchScriptModule(path)
            meta, config = net.meta, {}
        elif suffix == ".pt2":
            from pixelmind.optimize.pt2e import Pt2Module

            net = Pt2Module(path)
            meta, config = net.meta, {}
        else:
            from pixelmind.optimize.structure import build_network

            state, meta, raw = ckpt.load_weights(path)
            config = json.loads(raw.get("config", "{}"))
            task = get_task(meta.task)
            net = build_network(task, TrainConfig(task=meta.task, data=config.get("data", "?")), meta)
            try:
                net.load_state_dict(state)
            except RuntimeError as err:
                raise WeightsError(f"{path}: weights do not fit model {meta.model!r} ({str(err).splitlines()[0][:160]})") from None
        set_window(meta.extra.get("window"))  # the window the model was trained with, for predict and val
        m = cls(meta.model, task=meta.task)
        m.net, m.meta, m.config, m.weights_path = net.eval().to(device), meta, config, path
        return m

    def _require_net(self) -> torch.nn.Module:
        if self.net is None or self.meta is None:
            raise PixelmindError("this model has no weights yet: train it or use Model.load(path)")
        return self.net

    # -- training --------------------------------------------------------------------------
    def train(
        self,
        data: str | None = None,
        config: str | Path | dict | None = None,
        resume: str | Path | None = None,
        console=None,
        _network: tuple[torch.nn.Module, Meta] | None = None,
        **overrides: Any,
    ) -> dict[str, float]:
        """Train and leave a run directory; returns the best weights' validation metrics.

        Args:
            data: a data set path or a built-in name (e.g. ``"digits"``).
            config: a YAML file or dict of :class:`~pixelmind.config.TrainConfig` fields.
            resume: a run directory or its ``weights/last.safetensors`` to continue.
            overrides: any TrainConfig field (``epochs=5``, ``lr=1e-3`` ...).
            _network: ``(network, its Meta)`` to train instead of a freshly built one (a pruned
                network: :func:`pixelmind.optimize.prune.finetune_pruned`); ``config`` is then complete.
        """
        from pixelmind.engine.trainer import Trainer
        from pixelmind.optimize.structure import build_network, pruned_summary

        resume_path = _resolve_resume(resume) if resume else None
        if resume_path is not None:
            _, meta, raw = ckpt.load_weights(resume_path)
            base = json.loads(raw["config"])
            cfg = make_config(base, **{k: v for k, v in overrides.items() if k in ("epochs", "device", "workers")})
        else:
            base = load_yaml(config) if isinstance(config, (str, Path)) else dict(config or {})
            base.setdefault("task", self.task.name)
            if base["task"] != self.task.name:
                raise ConfigError(f"task: config says {base['task']!r} but the model is for {self.task.name!r}")
            cfg = make_config(base, data=data, model=self.model_name, **overrides)
            cfg = cfg.filled(self.task.recipe(cfg))
            meta = _network[1] if _network is not None else None
        set_window(cfg.window)  # DICOM/NIfTI intensity window: before any image is decoded
        bundle = self.task.load_data(cfg, meta)
        if meta is not None and (pruned := pruned_summary(meta)):
            bundle.summary["pruned model"] = pruned  # in report.md, also after a resume
        if meta is None:
            meta = Meta(task=self.task.name, model=cfg.model, class_names=bundle.class_names, imgsz=cfg.imgsz,
                        model_kwargs=dict(cfg.model_kwargs or {}),
                        extra={"seed": cfg.seed, "val_fraction": cfg.val_fraction, **bundle.meta_extra,
                               **({"window": cfg.window} if cfg.window else {})})  # fmt: skip
        from accelerate.utils import set_seed

        set_seed(cfg.seed)  # the initial weights depend on the seed alone (same on every DDP process)
        net = _network[0] if _network is not None else build_network(self.task, cfg, meta)
        if _network is None and meta.extra.get("qat"):  # a resumed quantization-aware run goes on fake-quantizing
            from pixelmind.optimize.prune import example_input
            from pixelmind.optimize.qat import attach_fake_quant

            layers = attach_fake_quant(net, example_input(net, meta))
            (console.print if console else print)(f"quantization-aware run: {len(layers)} layers fake-quantized")
        if cfg.weights and resume_path is None and _network is None:
            self.load_messages = ckpt.load_state_into(net, cfg.weights)
            for msg in self.load_messages:
                (console.print if console else print)(msg)
        trainer = Trainer(self.task, cfg, meta, net, bundle, resume_from=resume_path, console=console)
        metrics = trainer.fit()
        self.run_dir = trainer.run_dir
        best = trainer.run_dir / "weights" / "best.safetensors"
        if trainer.is_main and best.exists():
            loaded = Model.load(best)
            self.net, self.meta, self.config, self.weights_path = loaded.net, loaded.meta, loaded.config, best
        self.model_name = cfg.model
        return metrics

    # -- evaluation ------------------------------------------------------------------------
    def val(self, data: str | None = None, batch: int = 64, workers: int = 0, plots_dir: str | Path | None = None,
            split: str = "val", **overrides: Any) -> dict[str, float]:  # fmt: skip
        """Evaluate on a data set's validation split (default: the one the model was trained on), or with
        ``split="test"`` its test split (classify, detect, segment, ocr; an error where there is none)."""
        from pixelmind.engine.evaluate import run_validation
        from pixelmind.engine.trainer import make_loader

        net, meta = self._require_net(), self.meta
        data = data or self.config.get("data")
        if not data:
            raise ConfigError("data: give --data (the weights do not name their training data)")
        if split == "test" and not self.task.test_split:
            raise ConfigError(f"split: {meta.task} data has no test split layout yet; evaluate its val split")
        cfg = make_config(
            {"task": meta.task, "data": data, "model": meta.model, "imgsz": meta.imgsz, "batch": batch, "workers": workers, "split": split,
             "seed": meta.extra.get("seed", 0), "val_fraction": meta.extra.get("val_fraction", 0.2), "augment": "none"},
            **overrides,
        )  # fmt: skip
        bundle = self.task.load_data(cfg, meta)
        loader = make_loader(bundle.val, self.task, cfg, train=False, pin=False)
        skipped: dict[str, str] = {}
        evaluator = run_validation(self.task, net, self.task.evaluator(meta), loader, model_device(net), skipped)
        metrics = evaluator.compute()
        if not metrics:
            raise DataError(f"{data}: no readable {'test' if split == 'test' else 'validation'} images")
        metrics.update(samples=float(len(bundle.val) - len(skipped)), **({"skipped": float(len(skipped))} if skipped else {}))
        if plots_dir:
            evaluator.plots(Path(plots_dir))
        return metrics

    # -- inference -------------------------------------------------------------------------
    def predict_iter(
        self, source: Any, batch: int = 32, save_dir: str | Path | None = None, max_pixels: int = 100_000_000,
        _keep_result: bool = False, _keep_image: bool = False, stride: int = 1, **options: Any,
    ) -> Iterator[dict[str, Any]]:
        """Stream one JSON-safe dict per image (``error`` instead of a result for unreadable files).

        Videos (files or stream URLs, :mod:`pixelmind.video`) give one dict per ``stride``-th frame, with
        ``frame`` and ``time``; ``save_dir`` then gets one annotated video per source video.
        """
        from PIL import Image

        from pixelmind.data.decode import ImageDecodeError, load_image
        from pixelmind.data.sources import iter_sources
        from pixelmind.video.io import VideoSaver, is_video, iter_frames

        self._require_net()
        if isinstance(source, Image.Image) or (isinstance(source, (list, tuple)) and source and isinstance(source[0], Image.Image)):
            images = [source] if isinstance(source, Image.Image) else list(source)
            items: Iterator = ((f"<image {i}>", im) for i, im in enumerate(images))
        else:
            def decode(paths):
                for p in paths:
                    if is_video(p):
                        yield from iter_frames(p, stride, max_pixels)
                        continue
                    try:
                        yield str(p), load_image(p, max_pixels)
                    except ImageDecodeError as err:
                        yield str(p), err

            items = decode(iter_sources(source))
        if save_dir is not None:
            Path(save_dir).mkdir(parents=True, exist_ok=True)
        videos = VideoSaver(save_dir) if save_dir is not None else None
        try:
            yield from self._answer(items, batch, save_dir, videos, _keep_result, _keep_image, options)
        finally:
            if videos is not None:
                videos.close()

    def _answer(self, items, batch, save_dir, videos, keep_result, keep_image, options) -> Iterator[dict[str, Any]]:
        """Batches of ``(name, image or error)`` through the task: one dict each, pictures or videos saved."""
        net, meta, count = self._inference_network(), self.meta, 0
        while chunk := list(itertools.islice(items, batch)):
            good = [(name, im) for name, im in chunk if not isinstance(im, Exception)]
            results = iter(self.task.predict(net, [im for _, im in good], meta, **options) if good else [])
            for name, im in chunk:
                if isinstance(im, Exception):
                    yield {"source": name, "error": str(im)}
                    continue
                result = next(results)
                out = {"source": name, **({k: im.info[k] for k in ("frame", "time")} if "video" in im.info else {}),
                       **result.to_dict()}  # fmt: skip
                count += 1
                if videos is not None and "video" in im.info:
                    out["saved"] = str(videos.add(im, result.render(im)))
                elif save_dir is not None:
                    # numbered, so that same-named files from different folders do not overwrite each other
                    stem = Path(name).stem if not name.startswith("<") else "image"
                    suffix = getattr(result, "file_suffix", ".jpg")  # lossless for image outputs (enhance)
                    target = Path(save_dir) / f"{count:06d}_{stem}{suffix}"
                    if hasattr(result, "save"):  # a result that is a file of its own (compress: .pmc bytes)
                        result.save(target)
                    else:
                        result.render(im).save(target, **({"quality": 92} if suffix == ".jpg" else {}))
                    out["saved"] = str(target)
                if keep_result:  # for the package's own callers (label, select, compress, track)
                    out["_result"] = result
                if keep_image:  # track draws its ids on the frame
                    out["_image"] = im
                yield out

    def _inference_network(self) -> torch.nn.Module:
        self._require_net()
        if self._fast[0] is not self.net:  # made again when the model trains or loads other weights
            self._fast = (self.net, self.task.inference_network(self.net, self.meta))
        return self._fast[1]

    def _require_task(self, task: str, verb: str) -> None:
        self._require_net()
        if self.meta.task != task:
            raise PixelmindError(f"{self.weights_path or self.model_name}: a {self.meta.task} model; {verb} needs {task} weights")

    def _save_each(self, rows: Iterator[dict[str, Any]], out_dir: Path, suffix: str) -> Iterator[dict[str, Any]]:
        """Write each row's result into ``out_dir`` named like its source; same-named sources get ``_1``, ``_2`` ..."""
        out_dir.mkdir(parents=True, exist_ok=True)
        used: set[str] = set()
        for row in rows:
            result = row.pop("_result", None)
            if result is not None:
                stem = Path(row["source"]).stem if not row["source"].startswith("<") else "image"
                name, n = f"{stem}{suffix}", 0
                while name in used:
                    n += 1
                    name = f"{stem}_{n}{suffix}"
                used.add(name)
                if hasattr(result, "save"):
                    result.save(out_dir / name)
                else:
                    result.render().save(out_dir / name)
                row["saved"] = str(out_dir / name)
            yield row

    def enhance(self, source: Any, out_dir: str | Path, **options: Any) -> Iterator[dict[str, Any]]:
        """Enhance images into ``out_dir`` as PNG files named like their sources; one dict per image.

        Options go to the task's predict (``tile``, ``overlap``, ``progress``).
        """
        self._require_task("enhance", "enhance")  # here, not on the first next(): wrong weights fail at the call
        rows = self.predict_iter(source, batch=1, save_dir=None, _keep_result=True, **options)
        return self._save_each(rows, Path(out_dir), ".png")

    def compress(self, source: Any, out_dir: str | Path, verify: bool = True) -> Iterator[dict[str, Any]]:
        """Compress images into ``out_dir`` as ``.pmc`` files named like their sources; one dict per image.

        ``verify``: decode each file again and report its PSNR (twice the work).
        """
        self._require_task("compress", "compress")
        rows = self.predict_iter(source, batch=1, save_dir=None, _keep_result=True, decode=verify)
        return self._save_each(rows, Path(out_dir), ".pmc")

    def decompress(self, files: Any, out_dir: str | Path) -> Iterator[dict[str, Any]]:
        """Decode ``.pmc`` files (paths, folders or globs) into ``out_dir`` as PNG; one dict per file.

        A file that is truncated, corrupt or made with other weights gives ``{"source", "error"}``.
        """
        from pixelmind.data.sources import iter_sources
        from pixelmind.tasks.compress.codec import decode_image

        self._require_task("compress", "decompress")

        def decoded() -> Iterator[dict[str, Any]]:
            for path in iter_sources(files, suffixes=(".pmc",)):
                try:
                    x = decode_image(self.net, Path(path).read_bytes())
                except (PixelmindError, OSError) as err:
                    yield {"source": str(path), "error": f"{path}: {err}"}
                    continue
                image = _to_pil(x)
                yield {"source": str(path), "width": image.size[0], "height": image.size[1], "_result": image}

        return self._save_each(decoded(), Path(out_dir), ".png")

    def _generate(self, **options: Any) -> list[Any]:
        self._require_task("generate", "generate")
        if not hasattr(self.net, "sample"):
            raise PixelmindError(f"{self.weights_path}: generation runs from .safetensors weights (an exported generator is a plain network)")
        return self.task.predict(self.net, [], self.meta, **options)

    def generate(self, n: int = 16, class_name: str | None = None, seed: int | None = None, steps: int | None = None,
                 guidance: float | None = None) -> list[Any]:  # fmt: skip
        """Generate ``n`` PIL images (of class ``class_name``, else cycling through the classes).

        Sample ``i`` comes from seed ``seed + i`` (a random seed when None); ``steps`` and
        ``guidance`` set a diffusion model's DDIM steps and classifier-free guidance.
        """
        return [r.image for r in self._generate(n=n, class_name=class_name, seed=seed, steps=steps, guidance=guidance)]

    def generate_to(self, out_dir: str | Path, n: int = 16, class_name: str | None = None, seed: int | None = None,
                    steps: int | None = None, guidance: float | None = None, interpolate: int | None = None) -> dict[str, Any]:  # fmt: skip
        """Write generated images into ``out_dir``: ``grid.png`` and one PNG per sample, or with
        ``interpolate=K`` ``interpolation.png`` (``n`` strips of K frames) and the frames.

        Returns what was written: ``{"grid": path, "images": [{"saved", "seed", "class", ...}]}``.
        """
        from pixelmind.tasks.generate.sampling import image_grid

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        options = {"class_name": class_name, "seed": seed, "steps": steps, "guidance": guidance}
        if interpolate is not None:
            results = self._generate(interpolate=interpolate, rows=n, **options)
            names = [f"interp_{r.index // interpolate:03d}_{r.index % interpolate:03d}.png" for r in results]
            grid_name, per_row = "interpolation.png", interpolate
        else:
            results = self._generate(n=n, **options)
            names = [f"{r.index:06d}_seed{r.seed}" + (f"_{_safe_name(r.class_name)}" if r.class_name else "") + ".png" for r in results]
            distinct = len({r.class_name for r in results})
            # cycling through the classes: one column per class
            per_row = distinct if class_name is None and 1 < distinct <= 16 else min(8, max(1, round(len(results) ** 0.5)))
            grid_name = "grid.png"
        rows = []
        for r, name in zip(results, names):
            r.image.save(out / name)
            rows.append({**r.to_dict(), "saved": str(out / name)})
        tensors = torch.stack([torch.from_numpy(_np_image(r.image)) for r in results])
        image_grid(tensors, nrow=per_row).save(out / grid_name)
        return {"grid": str(out / grid_name), "images": rows}

    def predict(self, source: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """Predict on a file, folder, glob, list of paths, or PIL image(s); see :meth:`predict_iter`."""
        return list(self.predict_iter(source, **kwargs))

    # -- export ----------------------------------------------------------------------------
    def embed(self, source: Any, batch: int = 64):
        """Unit-length vectors of the readable images of ``source``: ``(vectors [N, dim], paths, errors)``.

        Embed weights give their embedding, classify weights their penultimate features.
        """
        from pixelmind.similarity.extract import embed_files

        return embed_files(self, source, batch)

    def verify(self, a: Any, b: Any, threshold: float | None = None) -> dict[str, Any]:
        """Whether two images (paths or PIL images) show the same identity: score, threshold, same."""
        from pixelmind.similarity.search import verify_pair

        return verify_pair(self, a, b, threshold)

    def export(self, format: str = "onnx", path: str | Path | None = None, data: str | None = None,
               tolerance: float = 1e-3, samples: int = 64) -> tuple[Path, float]:  # fmt: skip
        """Export to ``onnx`` or ``torchscript`` and check parity on real validation images.

        Returns:
            (path, :func:`~pixelmind.export.onnx.parity_error` against PyTorch). Raises if above ``tolerance``.
        """
        from pixelmind.export.pipeline import export_model

        self.exported = export_model(self, format, path, data, tolerance, samples)
        return max(self.exported, key=lambda pd: pd[1])

    def optimize(self, out_dir: str | Path, data: str | None = None, quantize: str | None = None, prune: float | None = None,
                 distill: bool = False, **options: Any) -> dict[str, Any]:  # fmt: skip
        """INT8-quantize and/or prune this model into ``out_dir`` and measure what it cost; returns the report.

        See :func:`pixelmind.optimize.pipeline.optimize` for the options (``calibration``, ``max_drop``, ``epochs``, ``qat`` ...).

        Example:
            >>> Model.load("best.safetensors").optimize("opt", quantize="int8")["speedup_b1"]  # doctest: +SKIP
            2.3
        """
        from pixelmind.optimize.pipeline import optimize

        return optimize(self, out_dir, data=data, quantize=quantize, prune=prune, distill=distill, **options)

    def explain(self, source: Any, method: str | None = None, classes: Sequence[str | int] | None = None,
                out_dir: str | Path | None = None, faithfulness: bool = True, **options: Any) -> list[dict[str, Any]]:  # fmt: skip
        """Heat maps of what the model used, per image of ``source`` and per class, box, region or bit map.

        See :func:`pixelmind.explain.pipeline.explain_iter`; each explanation holds ``map`` (``[H, W]``
        in [0, 1] at the image's size) and, with ``faithfulness``, deletion/insertion AUC beside random maps'.

        Example:
            >>> Model.load("best.safetensors").explain("cat.jpg", method="gradcam")[0]["explanations"][0]["target"]  # doctest: +SKIP
            'class cat'
        """
        from pixelmind.explain.pipeline import explain_iter

        return list(explain_iter(self, source, method, classes, out_dir, faithfulness, **options))

    def robust(self, out_dir: str | Path, data: str | None = None, **options: Any) -> dict[str, Any]:
        """The task metric clean, under adversarial attacks and under common corruptions; returns the report.

        See :func:`pixelmind.robust.evaluate.robustness_report` for the options (``attacks``, ``eps``, ``corruptions`` ...).

        Example:
            >>> Model.load("best.safetensors").robust("robust", attacks=["pgd"], eps=[2 / 255])["attacks"][0]["top1"]  # doctest: +SKIP
            0.41
        """
        from pixelmind.robust.evaluate import robustness_report

        return robustness_report(self, out_dir, data=data, **options)

    def info(self) -> dict[str, Any]:
        net, meta = self._require_net(), self.meta
        return {
            "task": meta.task, "model": meta.model, "classes": meta.class_names, "imgsz": meta.imgsz,
            "parameters": sum(p.numel() for p in net.parameters()),
            "weights": str(self.weights_path) if self.weights_path else None,
            "sha256": ckpt.sha256_file(self.weights_path) if self.weights_path else None,
        }  # fmt: skip


def _to_pil(x: torch.Tensor):
    """A ``[C, H, W]`` float image in [0, 1] as an 8-bit PIL image."""
    from PIL import Image

    arr = (x.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)


def _safe_name(text: str) -> str:
    """A class name as part of a file name ("T-shirt/top" -> "T-shirt_top")."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)


def _np_image(image):
    """A PIL image as a uint8 ``[C, H, W]`` numpy array."""
    import numpy as np

    arr = np.asarray(image)
    return (arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)).copy()


def _resolve_resume(resume: str | Path) -> Path:
    p = Path(resume)
    if p.is_dir():
        p = p / "weights" / "last.safetensors"
    if not p.is_file():
        raise ConfigError(f"resume: {p} not found (give a run directory or its weights/last.safetensors)")
    if "train_state" not in ckpt.read_metadata(p):  # fail before loading data and building the model
        raise WeightsError(f"{p}: holds no training state; resume from a run's weights/last.safetensors")
    return p
