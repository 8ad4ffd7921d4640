"""The task contract: the only thing the engine, CLI, API, server and export know about a task.

A task is one object (a :class:`Task` subclass instance) with these members:

* ``load_data(cfg) -> DataBundle``: train/val data sets of samples ``(image, target)``; the
  target type is the task's own. Bad files are skipped and counted, never fatal mid-run.
* ``build_model(cfg, meta) -> nn.Module`` from the task's model registry ``models``.
* ``configure_optimizers(model, cfg, steps_per_epoch) -> list[(optimizer, scheduler)]``.
* ``training_step(model, batch, step, optimizer_idx) -> dict[str, Tensor]`` with a ``"loss"``
  key; the engine calls it once per optimizer, backpropagates ``loss`` and steps that
  optimizer. Other keys are logged.
* ``validation_step(model, batch) -> (preds, targets)``, fed to ``evaluator(meta).update``;
  the evaluator's ``compute() -> dict[str, float]`` gives metrics, ``summary()`` the JSON-safe
  details for metrics.json and the report, ``plots(dir)`` the figures.
  ``primary_metric`` / ``metric_mode`` pick the best checkpoint and drive early stopping.
* ``predict(model, images, meta) -> list[Result]``; a :class:`Result` has ``to_dict()``
  (JSON-safe) and ``render(image) -> PIL.Image``.
* optional, for ``train --teacher W`` (knowledge distillation): ``distillation_step(model, teacher,
  batch, step, cfg) -> dict[str, Tensor]`` takes ``training_step``'s place with a frozen teacher
  network of the same task and classes; it returns ``"loss"`` = ``(1 - cfg.distill_alpha) * task
  loss + cfg.distill_alpha * distillation loss`` and logs ``"loss_task"`` and ``"loss_distill"``.
  ``check_teacher(meta, teacher_meta)`` refuses, before training, a teacher the task cannot
  distil from. The defaults refuse distillation (generate, compress).
* ``preprocess(meta)``: PIL image -> input tensor, the same in training-time validation,
  predict, export and serve; ``meta`` (:class:`Meta`) is stored in every weights file.

How the six tasks fit without the engine knowing any of them:

* **classify**: target = class index; batches are ``(images, labels)`` tensors.
* **detect**: variable boxes per image. The target is a dict ``{"boxes": Tensor[N, 4],
  "labels": Tensor[N]}`` (N may be 0) and the task's ``collate`` keeps a *list* of targets
  next to the stacked images; the engine moves tensors to the device without looking
  inside. ``validation_step`` returns lists of per-image dicts; the evaluator computes COCO
  mAP. Results draw boxes.
* **segment**: target = an index mask ``Tensor[H, W]`` (ignore index allowed); collate
  stacks masks; predict returns masks resized to the original image; long images use
  sliding-window inference inside ``predict``.
* **generate** (GAN): ``configure_optimizers`` returns two (discriminator, generator)
  optimizers; the engine calls ``training_step(..., optimizer_idx=0)`` then ``1`` on each
  batch, each returning its own ``loss``, and keeps each loss's gradients to its own optimizer's
  parameters. Diffusion uses one optimizer. The target is the class index (0 for
  unconditional data); ``validation_step`` draws as many samples as real images (seeded) and
  the evaluator computes FID/KID between them; ``on_epoch_end`` writes sample grids; predict
  takes parameters (n, class, seed) in ``images``' place.
* **enhance**: the target is the clean image; the dataset degrades it on the fly and
  returns ``(degraded, clean)``; metrics are PSNR/SSIM; results are images.
* **compress**: target ``None``; the model returns reconstruction and likelihoods; the
  loss is ``lambda * 255^2 * MSE + bpp`` with both terms logged. A post-training hook
  (``finalize``) fixes the integer CDF tables stored with the weights; predict returns a
  Result holding the real bitstream.

Tasks may override ``collate``, ``on_epoch_end``, ``finalize`` and ``export_parts``; nothing else in pixelmind branches on a
task's name.

Optimization hooks (``pixelmind optimize``): ``calibration_inputs`` (INT8 calibration images as the
network sees them), ``optimize_max_drop`` (the default parity gate in the primary metric's units)
and ``optimize_unsupported`` (a one-line reason to refuse). ``prune_ignored_layers(model) -> list[nn.Module]``
(``optimize --prune``, :mod:`pixelmind.optimize.prune`) names the layers whose output channels structured
pruning must keep: classifier heads, box and class predictors, segmentation heads, image-output
convolutions and the convolutions before a PixelShuffle (their inputs are still narrowed); it
raises a one-line ConfigError for a model it cannot prune (a DETR, Mask R-CNN, a Transformer whose
attention reshapes by head). The default refuses the task.

Explanation hooks (``pixelmind explain``, :mod:`pixelmind.explain`): ``explain_methods`` (the
methods that apply, the first the default; empty refuses the task), ``explain_input(image, meta)
-> (x, to_image)`` (the network input ``[C, H, W]`` and a function mapping an input-sized map back
onto the image), ``explain_targets(model, x, meta, classes) -> (network, targets)`` (the network
to explain, one tensor out, and one :class:`pixelmind.explain.targets.ExplainTarget` per class,
box, region, change or bit map; ``options`` hold the source ``image``) and ``explain_layers(model, network, x)`` (the layers CAMs weigh,
with a reshape for token models).

Similarity hook (``pixelmind embed``, ``index``, ``search``, ``verify``, ``check --duplicates``;
:mod:`pixelmind.similarity`): ``feature_network(model, meta)`` -> a network mapping preprocessed
images ``[N, C, H, W]`` to one vector each (embed: the model; classify: the model without its
last linear layer). The default refuses the task.

Robustness hooks (``pixelmind robust``, ``train --set adv_train=pgd``; :mod:`pixelmind.robust`):
``robust_unsupported`` (a one-line reason to refuse), ``pixel_space(meta)`` (the normalisation
between [0, 1] pixels and network inputs), ``attack_batch(batch, meta, train)`` (the batch with its
images, ``batch[0]``, as normalised float tensors: uint8 batches augmented in training, normalised
otherwise) and ``attack_loss(model, batch)`` (the scalar attacks increase; default: the training loss).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pixelmind.errors import ConfigError
from pixelmind.registry import Registry


@dataclass
class Meta:
    """What a weights file must say so that it can be used alone: task, model, classes, preprocessing.

    Example:
        >>> m = Meta(task="classify", model="pm_cnn_s", class_names=["a", "b"], imgsz=32)
        >>> Meta.from_json(m.to_json()) == m
        True
    """

    task: str
    model: str
    class_names: list[str] = field(default_factory=list)
    imgsz: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Meta:
        data = json.loads(text)
        data["mean"] = tuple(data["mean"])
        data["std"] = tuple(data["std"])
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class DataBundle:
    """A task's data: the train and val data sets plus what the report says about them."""

    train: Any
    val: Any
    class_names: list[str]
    summary: dict[str, Any] = field(default_factory=dict)
    meta_extra: dict[str, Any] = field(default_factory=dict)  # stored in Meta.extra (e.g. hflip allowed)


class Evaluator(Protocol):
    def update(self, preds: Any, targets: Any) -> None: ...
    def compute(self) -> dict[str, float]: ...
    def summary(self) -> dict[str, Any]: ...
    def plots(self, out_dir: Path) -> list[Path]: ...


class Result(Protocol):
    def to_dict(self) -> dict[str, Any]: ...
    def render(self, image: Any) -> Any: ...


class Task(ABC):
    """Base class of the six tasks; see the module docstring for the contract."""

    name: str
    models: Registry
    primary_metric: str
    metric_mode: str = "max"
    #: the default recipe: fills every TrainConfig field the user left as None.
    defaults: dict[str, Any] = {}
    #: the model takes images of any height and width (exports leave them dynamic)
    dynamic_image_size: bool = False
    #: why ``pixelmind optimize`` refuses this task (None: it supports it)
    optimize_unsupported: str | None = None
    #: the largest primary-metric drop ``optimize`` accepts by default (1 point of a 0-1 metric)
    optimize_max_drop: float = 0.01
    #: ``pixelmind explain`` methods that apply to this task's models, the default first (empty: refused)
    explain_methods: tuple[str, ...] = ()
    #: why ``pixelmind robust`` and adversarial training refuse this task (None: supported)
    robust_unsupported: str | None = None
    #: ``load_data`` honours ``cfg.split == "test"`` (puts the data's test split in ``val``)
    test_split: bool = False

    def recipe(self, cfg: Any) -> dict[str, Any]:
        """The default recipe for this data: values for every config field the user left as None."""
        return dict(self.defaults)

    @abstractmethod
    def load_data(self, cfg: Any, meta: Meta | None = None) -> DataBundle: ...

    @abstractmethod
    def build_model(self, cfg: Any, meta: Meta) -> Any: ...

    def configure_optimizers(self, model: Any, cfg: Any, steps_per_epoch: int) -> list[tuple[Any, Any]]:
        from pixelmind.engine.optim import build_optimizer, build_scheduler

        opt = build_optimizer(model, cfg)
        return [(opt, build_scheduler(opt, cfg, steps_per_epoch))]

    @abstractmethod
    def training_step(self, model: Any, batch: Any, step: int, optimizer_idx: int = 0) -> dict[str, Any]: ...

    def distillation_step(self, model: Any, teacher: Any, batch: Any, step: int, cfg: Any) -> dict[str, Any]:
        """``training_step`` with a frozen ``teacher`` network (``train --teacher W``); the default refuses.

        Returns ``"loss"`` = ``(1 - cfg.distill_alpha) * task loss + cfg.distill_alpha * distillation
        loss`` plus the logged parts ``"loss_task"`` and ``"loss_distill"``
        (:func:`pixelmind.nn.distill.blend`). The teacher sees the same inputs as the student.

        Example:
            >>> from pixelmind.tasks import get_task
            >>> get_task("generate").distillation_step(None, None, None, 0, None)  # doctest: +IGNORE_EXCEPTION_DETAIL
            Traceback (most recent call last):
            pixelmind.errors.ConfigError: teacher: the generate task has no distillation loss (supported: ...)
        """
        raise ConfigError(self._no_distillation())

    def check_teacher(self, meta: Meta, teacher_meta: Meta) -> None:
        """Refuse, before training, a teacher (its :class:`Meta`) this task cannot distil from into ``meta``'s model.

        The engine checks the task before and the classes and preprocessing after this hook
        (:mod:`pixelmind.engine.distill`) and adds the file's name to the message. The default
        refuses every teacher when the task defines no :meth:`distillation_step`.
        """
        if type(self).distillation_step is Task.distillation_step:
            raise ConfigError(self._no_distillation())

    def _no_distillation(self) -> str:
        from pixelmind.tasks import TASK_NAMES, get_task

        # asked of the tasks themselves, so that the list cannot go stale (an error path: importing them is fine)
        supported = [n for n in TASK_NAMES if type(get_task(n)).distillation_step is not Task.distillation_step]
        return f"teacher: the {self.name} task has no distillation loss (supported: {', '.join(supported)})"

    @abstractmethod
    def validation_step(self, model: Any, batch: Any) -> tuple[Any, Any]: ...

    @abstractmethod
    def evaluator(self, meta: Meta) -> Evaluator: ...

    @abstractmethod
    def preprocess(self, meta: Meta) -> Callable[[Any], Any]: ...

    @abstractmethod
    def predict(self, model: Any, images: Sequence[Any], meta: Meta, **options: Any) -> list[Result]: ...

    def export_any_size(self, meta: Meta) -> bool:
        """Whether ONNX exports leave height and width free (default: the tasks that take any image size)."""
        return self.dynamic_image_size

    def inference_network(self, model: Any, meta: Meta) -> Any:
        """The network predict runs: ``model`` itself by default; a task may return a faster equivalent
        (detect: BatchNorm folded into the convolutions, channels-last)."""
        return model

    def setup_training(self, cfg: Any, meta: Meta) -> None:  # noqa: B027 - an optional hook
        """Called once before training (e.g. to build batch-level augmentation from ``cfg``)."""

    def collate(self, samples: list[Any]) -> Any:
        from torch.utils.data import default_collate

        return default_collate(samples)

    def export_parts(self, model: Any, inputs: Any) -> list[tuple[str, Any, Any]]:
        """The networks to export as ``(part name, module, parity inputs)``; one unnamed part by default."""
        return [("", model, inputs)]

    def on_epoch_end(self, model: Any, epoch: int, run_dir: Path) -> None:  # noqa: B027 - an optional hook
        """Called on the main process after each epoch's validation with the evaluation model (e.g. to write samples)."""

    def calibration_inputs(self, dataset: Any, meta: Meta, n: int, seed: int = 0) -> list[Any]:
        """Up to ``n`` network inputs ``[C, H, W]`` drawn (seeded) from ``dataset``, for INT8 calibration.

        ``dataset`` is the training split loaded without augmentation; unreadable samples are left out.
        """
        import torch

        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
        out = []
        for i in order:
            item = dataset[i]
            x = item[0] if isinstance(item, tuple) else item
            if torch.is_tensor(x):
                out.append(x)
            if len(out) == n:
                break
        return out

    def prune_ignored_layers(self, model: Any) -> list[Any]:
        """The layers of ``model`` whose output channels structured pruning must keep; the default refuses.

        Their input channels may still go (a classifier head loses the features pruned before it).
        A task raises ``ConfigError("<task>: pruning is not supported: <reason>")`` for a model it
        cannot prune.

        Example:
            >>> from pixelmind.tasks import get_task
            >>> get_task("compress").prune_ignored_layers(None)  # doctest: +IGNORE_EXCEPTION_DETAIL
            Traceback (most recent call last):
            pixelmind.errors.ConfigError: compress: pruning is not supported: a bitstream must decode ...
        """
        raise ConfigError(self.pruning_unsupported(self.optimize_unsupported or "the task names no layers that must keep their channels"))

    def pruning_unsupported(self, reason: str) -> str:
        """The one-line refusal of :meth:`prune_ignored_layers`."""
        return f"{self.name}: pruning is not supported: {reason}"

    def finalize(self, model: Any, val_loader: Any, meta: Meta, cfg: Any) -> dict[str, Any]:
        """Called once after training with the best weights; returns updates to ``meta.extra``."""
        return {}

    def explain_input(self, image: Any, meta: Meta) -> tuple[Any, Callable[[Any, Any], Any]]:
        """``(x [C, H, W], to_image)`` for explaining ``image``: the predict preprocessing, and the map
        at the input's size resized onto the image. Models of any image size see at most 512 px."""
        from pixelmind.explain.pipeline import resize_to_image

        if self.dynamic_image_size and max(image.size) > 512:
            scale = 512 / max(image.size)
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        return self.preprocess(meta)(image), resize_to_image

    def explain_targets(self, model: Any, x: Any, meta: Meta, classes: Sequence[str | int] | None, **options: Any) -> tuple[Any, list[Any]]:
        """The network to explain and what to explain in its output for input ``x`` ``[1, C, H, W]``.

        ``options`` hold ``image`` (the PIL image ``x`` came from) and the user's task options.
        """
        raise ConfigError(f"explain: the {self.name} task has no explanation methods")

    def explain_layers(self, model: Any, network: Any, x: Any) -> tuple[list[Any], Any]:
        """The layers CAM methods weigh and their reshape (:func:`pixelmind.explain.targets.cam_layers`)."""
        from pixelmind.explain.targets import cam_layers

        return cam_layers(network, x)

    def feature_network(self, model: Any, meta: Meta) -> Any:
        """A network from preprocessed images ``[N, C, H, W]`` to one vector each; the default refuses.

        Example:
            >>> from pixelmind.tasks import get_task
            >>> get_task("compress").feature_network(None, None)  # doctest: +IGNORE_EXCEPTION_DETAIL
            Traceback (most recent call last):
            pixelmind.errors.ConfigError: compress: its models give no image embedding (use embed or classify weights)
        """
        raise ConfigError(f"{self.name}: its models give no image embedding (use embed or classify weights)")

    def labelling(self) -> Any:
        """This task's part of ``label``, ``check --label-errors`` and ``select`` (:class:`pixelmind.label.Labelling`)."""
        raise ConfigError(f"{self.name}: label, check --label-errors and select work with classify, detect and segment")

    def pixel_space(self, meta: Meta) -> Any:
        """How network inputs relate to [0, 1] pixels (:class:`pixelmind.robust.attacks.PixelSpace`)."""
        from pixelmind.robust.attacks import PixelSpace

        return PixelSpace(meta.mean, meta.std)

    def attack_batch(self, batch: Any, meta: Meta, train: bool = False) -> Any:
        """``batch`` with normalised float images first (the default: it already has them)."""
        return batch

    def attack_loss(self, model: Any, batch: Any) -> Any:
        """The scalar an attack increases on ``batch`` (with ``attack_batch``'s images)."""
        return self.training_step(model, batch, 0)["loss"]
