"""The one training loop, driven only by the task contract (:mod:`pixelmind.tasks.base`).

Accelerate places the model and data on the device, runs DDP when launched with
``accelerate launch`` or ``torchrun`` and handles mixed precision and gradient
accumulation. Rank 0 alone writes files. Each epoch starts by reseeding every RNG with
``seed + epoch``, so a run resumed from ``last.safetensors`` replays exactly the epochs an
uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from pixelmind.data.datasets import SkipBadCollate
from pixelmind.engine import checkpoint as ckpt
from pixelmind.engine.ema import ModelEMA
from pixelmind.engine.rundir import make_run_dir, write_results_csv
from pixelmind.errors import ConfigError, DataError
from pixelmind.tasks.base import DataBundle, Meta, Task


def first_tensor_len(batch: Any) -> int:
    """Samples in a batch of any structure: the length of the first tensor found."""
    if torch.is_tensor(batch):
        return len(batch)
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            if (n := first_tensor_len(item)) > 0:
                return n
    return 0


def _reset_accelerate_state() -> None:
    """Forget the process-wide state of an earlier run in this process (Python API, notebooks, tests).

    Accelerate keeps singletons that refuse another precision or device in the same process; the
    device part (PartialState) is kept when a process group is up (DDP), since it owns that group.
    """
    import torch.distributed as dist
    from accelerate.state import AcceleratorState, GradientState

    distributed = dist.is_available() and dist.is_initialized()
    AcceleratorState._reset_state(reset_partial_state=not distributed)
    GradientState._reset_state()


ETA_STEPS = 6  # the first epoch's step after which the expected training time is printed


def _duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"2.5 h"``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


@contextmanager
def _without_autocast(model: torch.nn.Module):
    """Run ``model`` with the forward Accelerate wrapped in autocast for mixed precision set aside."""
    wrapped = model.__dict__.get("forward")
    original = model.__dict__.get("_original_forward")
    if wrapped is None or original is None:
        yield
        return
    model.forward = original
    try:
        yield
    finally:
        model.forward = wrapped


def _wants_cuda(cfg: Any) -> bool:
    return cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())


def resolve_precision(cfg: Any) -> str:
    """``cfg.precision`` made concrete: None is fp32; ``auto`` is bf16 where the hardware computes it natively
    (CUDA with bf16 support, else fp16; a CPU with AVX512-BF16 or AMX), else fp32.

    Example:
        >>> from pixelmind.config import TrainConfig
        >>> resolve_precision(TrainConfig(data="shapes", device="cpu")), resolve_precision(TrainConfig(data="shapes", precision="bf16"))
        ('fp32', 'bf16')
    """
    if cfg.precision != "auto":
        return cfg.precision or "fp32"
    if _wants_cuda(cfg):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


def make_accelerator(cfg: Any):
    from accelerate import Accelerator

    want_cuda = _wants_cuda(cfg)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {cfg.device!r} asked for but CUDA is not available here; use --device cpu")
    if cfg.precision == "fp16" and not want_cuda:
        raise ConfigError("precision: fp16 needs a CUDA device; use bf16 on CPU")
    if cfg.device.startswith("cuda:"):
        torch.cuda.set_device(int(cfg.device.split(":")[1]))
    mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[resolve_precision(cfg)]
    _reset_accelerate_state()
    return Accelerator(cpu=not want_cuda, mixed_precision=mixed, gradient_accumulation_steps=cfg.grad_accum)


def make_loader(
    dataset, task: Task, cfg: Any, train: bool, pin: bool, generator: torch.Generator | None = None
) -> DataLoader:
    workers = cfg.workers if len(dataset) > 4 * cfg.batch else 0
    return DataLoader(
        dataset,
        batch_size=cfg.batch,
        shuffle=train,
        drop_last=train and len(dataset) > cfg.batch,
        num_workers=workers,
        # fresh training workers each epoch take their seeds from the reseeded generator (exact resume)
        persistent_workers=workers > 0 and not train,
        pin_memory=pin,
        collate_fn=SkipBadCollate(task.collate),
        generator=generator,
    )


class Trainer:
    """Fits ``model`` on ``bundle`` for ``task`` and leaves a complete run directory.

    Args:
        resume_from: a run's ``weights/last.safetensors`` to continue from.
    """

    def __init__(self, task: Task, cfg: Any, meta: Meta, model: torch.nn.Module, bundle: DataBundle,
                 resume_from: Path | None = None, console=None) -> None:  # fmt: skip
        from pixelmind.engine.console import RunLog

        cfg = cfg.model_copy(update={"precision": resolve_precision(cfg)})  # config.yaml records what ran
        self.task, self.cfg, self.meta, self.bundle = task, cfg, meta, bundle
        if cfg.adv_train and task.robust_unsupported:
            raise ConfigError(f"adv_train: the {task.name} task cannot train adversarially: {task.robust_unsupported}")
        self.acc = make_accelerator(cfg)
        self.is_main = self.acc.is_main_process
        # checked before the run directory exists, so that a refused teacher leaves no empty run behind
        self.teacher, self.teacher_meta = self._load_teacher()
        self.run_dir = self._shared_run_dir(resume_from)
        self.log = RunLog(self.run_dir / "train.log" if self.is_main else None, console, enabled=self.is_main)
        self.skipped: dict[str, str] = {}
        self.rows: list[dict[str, float]] = []
        self.start_epoch, self.best, self.bad_epochs = 0, None, 0
        self.best_loss: float | None = None  # val/loss at the best epoch: breaks ties of the primary metric
        self.resume_from = resume_from

        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.raw_model = model
        pin = self.acc.device.type == "cuda"
        # Shuffling and worker seeds come from this generator, reseeded each epoch (also under DDP,
        # where Accelerate would otherwise keep one sampler generator running across epochs).
        self.loader_generator = torch.Generator()
        self.train_loader = make_loader(bundle.train, task, cfg, train=True, pin=pin, generator=self.loader_generator)
        self.val_loader = make_loader(bundle.val, task, cfg, train=False, pin=pin)
        self.model, self.train_loader = self.acc.prepare(model, self.train_loader)
        self.updates_per_epoch = math.ceil(len(self.train_loader) / cfg.grad_accum)
        pairs = task.configure_optimizers(self.raw_model, cfg, self.updates_per_epoch)
        self.optimizers = [self.acc.prepare_optimizer(o) for o, _ in pairs]
        self.schedulers = [s for _, s in pairs]
        self.ema = ModelEMA(self.acc.unwrap_model(self.model), cfg.ema_decay) if cfg.ema else None
        task.setup_training(cfg, meta)

    def _load_teacher(self) -> tuple[torch.nn.Module | None, Meta | None]:
        """With ``cfg.teacher``: the frozen teacher on the training device, under the run's autocast, and its Meta."""
        if not self.cfg.teacher:
            return None, None
        from pixelmind.engine.distill import load_teacher

        net, teacher_meta = load_teacher(self.task, self.cfg, self.meta)
        # evaluation mode: device placement and mixed precision only, no DDP wrapper (it is never trained)
        return self.acc.prepare_model(net, evaluation_mode=True), teacher_meta

    def _shared_run_dir(self, resume_from: Path | None) -> Path:
        from accelerate.utils import broadcast_object_list

        if resume_from is not None:
            return resume_from.parent.parent
        holder = [str(make_run_dir(self.cfg.project, self.cfg.task, self.cfg.name, self.cfg.exist_ok)) if self.is_main else None]
        if self.acc.num_processes > 1:
            broadcast_object_list(holder)
        return Path(holder[0])

    # -- checkpoints -------------------------------------------------------------------------
    def _eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.acc.unwrap_model(self.model)

    def _save_last(self, epoch: int) -> None:
        tensors: dict[str, torch.Tensor] = {}
        opt_plain = []
        for i, opt in enumerate(self.optimizers):
            t, plain = ckpt.flatten_optimizer(f"{ckpt.TRAIN_PREFIX}opt{i}.", opt.state_dict())
            tensors.update(t)
            opt_plain.append(plain)
        if self.ema is not None:
            tensors.update({f"{ckpt.EMA_PREFIX}{k}": v for k, v in self.ema.module.state_dict().items()})
        state = {
            "epoch": epoch, "best": self.best, "best_loss": self.best_loss, "bad_epochs": self.bad_epochs, "rows": self.rows, "skipped": self.skipped,
            "optimizers": opt_plain, "schedulers": [s.state_dict() for s in self.schedulers],
            "ema_updates": self.ema.updates if self.ema is not None else 0,
        }  # fmt: skip
        ckpt.save_weights(
            self.run_dir / "weights" / "last.safetensors", self.acc.unwrap_model(self.model).state_dict(), self.meta,
            self.cfg.model_dump(), tensors, {"train_state": json.dumps(state, default=str)},
        )  # fmt: skip

    def _restore(self, path: Path) -> None:
        state_dict, _, _ = ckpt.load_weights(path)
        tensors, state = ckpt.load_train_state(path)
        self.acc.unwrap_model(self.model).load_state_dict(state_dict)
        for i, (opt, plain) in enumerate(zip(self.optimizers, state["optimizers"])):
            opt.load_state_dict(ckpt.unflatten_optimizer(f"{ckpt.TRAIN_PREFIX}opt{i}.", tensors, plain))
        for sched, s in zip(self.schedulers, state["schedulers"]):
            fresh = sched.state_dict()
            if "lr_lambdas" in fresh:  # LambdaLR: keep the schedule built from this config (e.g. more epochs)
                s["lr_lambdas"] = fresh["lr_lambdas"]
            sched.load_state_dict(s)
        if self.ema is not None:
            self.ema.module.load_state_dict({k.removeprefix(ckpt.EMA_PREFIX): v for k, v in tensors.items() if k.startswith(ckpt.EMA_PREFIX)})
            self.ema.updates = state["ema_updates"]
        self.start_epoch = state["epoch"] + 1
        self.best, self.bad_epochs, self.rows, self.skipped = state["best"], state["bad_epochs"], state["rows"], state["skipped"]
        self.best_loss = state.get("best_loss")
        self.log.info(f"resumed from {path} at epoch {self.start_epoch + 1}/{self.cfg.epochs}")

    # -- loop --------------------------------------------------------------------------------
    def _improved(self, value: float, loss: float | None = None) -> bool:
        if self.best is None:
            return True
        if value == self.best and loss is not None and self.best_loss is not None:
            # a tie (top-1 saturates on easy data): the lower validation loss is the better model,
            # not the first epoch that reached it (an under-confident one)
            return loss < self.best_loss
        return value > self.best if self.task.metric_mode == "max" else value < self.best

    @contextmanager
    def _only_params_of(self, index: int) -> Iterator[None]:
        """With several optimizers, the loss of optimizer ``index`` gives gradients to its own parameters only.

        Parameters that only other optimizers step are frozen meanwhile (as Lightning's
        ``toggle_optimizer``): a loss that runs through another network (a GAN generator's loss
        through the discriminator) would otherwise leave gradients there that the other
        optimizer's next step would apply. Freezing, not zeroing, keeps gradient accumulation intact.
        """
        if len(self.optimizers) < 2:
            yield
            return
        own = {id(p) for group in self.optimizers[index].param_groups for p in group["params"]}
        frozen = [p for j, opt in enumerate(self.optimizers) if j != index
                  for group in opt.param_groups for p in group["params"] if id(p) not in own and p.requires_grad]  # fmt: skip
        for p in frozen:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def _step(self, batch: Any, step: int, optimizer_idx: int) -> dict[str, torch.Tensor]:
        if self.cfg.adv_train:  # Madry et al.: train on the attack's images (pixelmind.robust)
            from pixelmind.robust.attacks import adversarial_batch

            batch = adversarial_batch(self.task, self.model, batch, self.meta, self.cfg, step)
        if self.teacher is not None:  # only tasks with one optimizer distil (Task.check_teacher refused the others)
            return self.task.distillation_step(self.model, self.teacher, batch, step, self.cfg)
        return self.task.training_step(self.model, batch, step, optimizer_idx)

    def train_epoch(self, epoch: int, progress) -> dict[str, float]:
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        steps, samples, t0 = 0, 0, time.perf_counter()
        bar = progress.start(f"epoch {epoch + 1}/{self.cfg.epochs}", len(self.train_loader))
        for batch, bad in self.train_loader:
            self.skipped.update({b.path: b.reason for b in bad})
            if batch is None:
                continue
            step = epoch * len(self.train_loader) + steps
            with self.acc.accumulate(self.model):
                for i, opt in enumerate(self.optimizers):
                    with self._only_params_of(i):
                        out = self._step(batch, step, i)
                        self.acc.backward(out["loss"])
                    if self.cfg.clip_grad and self.acc.sync_gradients:
                        self.acc.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    if self.acc.sync_gradients:
                        self.schedulers[i].step()
                    for k, v in out.items():
                        key = k if len(self.optimizers) == 1 or k != "loss" else f"loss{i}"
                        sums[key] = sums.get(key, 0.0) + v.detach().float()
            if self.ema is not None and self.acc.sync_gradients:
                self.ema.update(self.acc.unwrap_model(self.model))
            steps += 1
            samples += first_tensor_len(batch) * self.acc.num_processes
            if steps == 1:
                t1 = time.perf_counter()  # the first step pays one-off costs (allocations, oneDNN kernels): not timed
            if self.is_main and epoch == self.start_epoch and steps == ETA_STEPS < len(self.train_loader):
                per_step = (time.perf_counter() - t1) / (steps - 1)
                left = per_step * len(self.train_loader) * (self.cfg.epochs - epoch)
                self.log.info(f"expected: about {_duration(left)} of training for {self.cfg.epochs - epoch} epochs of "
                              f"{len(self.train_loader)} steps ({per_step:.2f} s per step), validation on top")  # fmt: skip
            if self.is_main and (steps % 10 == 0 or steps == len(self.train_loader)):
                loss = sums.get("loss", sums.get("loss0", torch.zeros(()))).item() / steps
                progress.advance(bar, steps, f"loss {loss:.4f}  {samples / (time.perf_counter() - t0):.0f} img/s")
        progress.stop(bar)
        elapsed = time.perf_counter() - t0
        totals = {k: (v.item() if torch.is_tensor(v) else v) for k, v in sums.items()}
        if self.acc.num_processes > 1:
            totals, steps = self._gather_epoch(totals, steps)
        out = {f"train/{k}": v / max(steps, 1) for k, v in totals.items()}
        out["lr"] = self.optimizers[0].param_groups[0]["lr"]
        out["img_per_s"] = samples / max(elapsed, 1e-9)
        out["time_s"] = elapsed
        return out

    def _gather_epoch(self, totals: dict[str, float], steps: int) -> tuple[dict[str, float], int]:
        """Under DDP: loss sums and steps of all processes, and every process's skipped files on each."""
        from accelerate.utils import gather_object

        merged: dict[str, float] = {}
        all_steps = 0
        for part_totals, part_steps, part_skipped in gather_object([(totals, steps, self.skipped)]):
            for k, v in part_totals.items():
                merged[k] = merged.get(k, 0.0) + v
            all_steps += part_steps
            self.skipped.update(part_skipped)
        return merged, all_steps

    def evaluate(self, model: torch.nn.Module, meta: Meta):
        """One validation pass on rank 0's device; returns the evaluator (metrics via ``compute()``).

        In full precision, as ``pixelmind val`` and predict run the saved weights: the checkpoint is chosen
        on the numbers a user gets back (bf16 autocast moved a tiny detector's mAP by 50 % relative).
        """
        from pixelmind.engine.evaluate import run_validation

        with _without_autocast(model):
            return run_validation(self.task, model, self.task.evaluator(meta), self.val_loader, self.acc.device, self.skipped)

    def fit(self) -> dict[str, float]:
        from accelerate.utils import set_seed

        from pixelmind.engine.console import EpochProgress

        cfg, task = self.cfg, self.task
        if self.resume_from is not None:
            self._restore(self.resume_from)
        elif self.is_main:
            import yaml

            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
        if len(self.train_loader) == 0:
            raise DataError(f"{cfg.data}: the training set is smaller than one batch on each process")
        self.log.info(f"run directory: {self.run_dir}")
        self.log.info(self._describe())
        writer = self._tensorboard()
        progress = EpochProgress(enabled=self.is_main, console=self.log.console)
        metric_key = f"val/{task.primary_metric}"
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                set_seed(cfg.seed + epoch, deterministic=cfg.deterministic and self.acc.device.type == "cuda")
                self.loader_generator.manual_seed(cfg.seed + epoch)
                row: dict[str, float] = {"epoch": epoch + 1}
                epoch_start = time.perf_counter()
                row.update(self.train_epoch(epoch, progress))
                if self.is_main:
                    metrics = self.evaluate(self._eval_model(), self.meta).compute()
                    self.task.on_epoch_end(self._eval_model(), epoch, self.run_dir)
                    row.update({f"val/{k}": v for k, v in metrics.items()})
                    self.rows.append(row)
                    value = row.get(metric_key)
                    if value is not None and self._improved(value, row.get("val/loss")):
                        self.best, self.best_loss, self.bad_epochs = value, row.get("val/loss"), 0
                        ckpt.save_weights(self.run_dir / "weights" / "best.safetensors",
                                          self._eval_model().state_dict(), self.meta, cfg.model_dump())  # fmt: skip
                    else:
                        self.bad_epochs += 1
                    self._save_last(epoch)
                    write_results_csv(self.rows, self.run_dir / "results.csv")
                    if writer is not None:
                        for k, v in row.items():
                            if k != "epoch":
                                writer.add_scalar(k, v, epoch + 1)
                        writer.flush()
                    self.log.epoch_line(row, metric_key)
                    if epoch == self.start_epoch and cfg.epochs - epoch > 1:  # now with validation measured too
                        left = (time.perf_counter() - epoch_start) * (cfg.epochs - epoch - 1)
                        self.log.info(f"expected: about {_duration(left)} more for the other {cfg.epochs - epoch - 1} epochs")
                stop = torch.tensor(int(bool(cfg.patience) and self.bad_epochs >= (cfg.patience or 0)), device=self.acc.device)
                if self.acc.num_processes > 1:
                    stop = self.acc.reduce(stop, "max")
                if stop.item():
                    self.log.info(f"early stop: no improvement of {metric_key} for {cfg.patience} epochs")
                    break
        except KeyboardInterrupt:
            self.log.info(f"interrupted; continue with: pixelmind train --resume {self.run_dir / 'weights' / 'last.safetensors'}")
            raise
        finally:
            if writer is not None:
                writer.close()
        self.acc.wait_for_everyone()
        result = self._finish() if self.is_main else {}
        self.acc.wait_for_everyone()
        return result

    def _finish(self) -> dict[str, float]:
        from pixelmind.viz.plots import plot_curves

        best_path = self.run_dir / "weights" / "best.safetensors"
        if not best_path.exists():  # the metric was never computed (e.g. an empty val set): keep the last weights
            ckpt.save_weights(best_path, self._eval_model().state_dict(), self.meta, self.cfg.model_dump())
        state, _, _ = ckpt.load_weights(best_path)
        model = self._eval_model()
        model.load_state_dict(state)
        extra = self.task.finalize(model, self.val_loader, self.meta, self.cfg)
        if extra:
            self.meta.extra.update(extra)
            # the model's state, not the loaded one: finalize may fix buffers (compress: coding tables)
            ckpt.save_weights(best_path, model.state_dict(), self.meta, self.cfg.model_dump())
            self.log.info("stored with the weights: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else k for k, v in extra.items()))
        evaluator = self.evaluate(model, self.meta)
        metrics = evaluator.compute()
        details = evaluator.summary()
        plots = []
        if self.rows:
            plots.append(plot_curves(self.rows, self.run_dir / "plots" / "curves.png"))
        plots += evaluator.plots(self.run_dir / "plots")
        payload = {"metrics": metrics, "best_epoch": self._best_epoch(), "epochs_run": len(self.rows),
                   "train_samples_per_epoch": len(self.bundle.train), "skipped_files": len(self.skipped),
                   "weights": str(best_path), **details}  # fmt: skip
        (self.run_dir / "metrics.json").write_text(json.dumps(payload, indent=2))
        from pixelmind.engine.report import write_report

        write_report(self.run_dir, f"{self.task.name} run {self.run_dir.name}: {self.meta.model}", self.cfg.model_dump(),
                     self.bundle.summary, self.skipped, metrics, details, plots)  # fmt: skip
        if self.skipped:
            self.log.info(f"skipped {len(self.skipped)} unreadable files (listed in report.md)")
        self.log.info("final " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        self.log.info(f"results: {self.run_dir}  (report.md, plots/, weights/best.safetensors)")
        return metrics

    def _best_epoch(self) -> int | None:
        key = f"val/{self.task.primary_metric}"
        for r in self.rows:
            if r.get(key) == self.best and (self.best_loss is None or r.get("val/loss") == self.best_loss):
                return int(r["epoch"])
        return None

    def _describe(self) -> str:
        n_params = sum(p.numel() for p in self.raw_model.parameters())
        images, samples = self.bundle.summary.get("train_images"), len(self.bundle.train)
        # tasks that draw random crops or augmented copies say how many images one epoch's samples come from
        drawn = f" ({samples / images:.1f} passes over {images} train images)" if images and images != samples else ""
        line = (f"{self.task.name}: {self.meta.model} ({n_params / 1e6:.2f}M params) on {self.acc.device}"
                f" x{self.acc.num_processes}, {samples} train samples per epoch{drawn} / {len(self.bundle.val)} val samples,"
                f" {self.cfg.epochs} epochs, batch {self.cfg.batch}, imgsz {self.cfg.imgsz}, {self.cfg.precision}")  # fmt: skip
        if self.teacher is not None:
            t_params = sum(p.numel() for p in self.teacher.parameters())
            line += (f", distilling from teacher {self.cfg.teacher} ({self.teacher_meta.model}, {t_params / 1e6:.2f}M params;"
                     f" alpha {self.cfg.distill_alpha:g}, temperature {self.cfg.distill_temperature:g})")  # fmt: skip
        return line

    def _tensorboard(self):
        if not self.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - TensorBoard is a convenience, not a requirement
            return None
        return SummaryWriter(str(self.run_dir))
