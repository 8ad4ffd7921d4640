"""Typed, validated training configs, loadable from YAML and overridable from the CLI.

A wrong key or value raises :class:`~pixelmind.errors.ConfigError` with one line naming the
field and what is allowed.

Example:
    >>> from pixelmind.config import TrainConfig
    >>> cfg = TrainConfig(task="classify", data="digits", epochs=3)
    >>> cfg.optimizer, cfg.epochs
    ('adamw', 3)
    >>> TrainConfig(task="classify", data="digits", optimizer="adam")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    pixelmind.errors.ConfigError: optimizer: Input should be 'adamw' or 'sgd' (got 'adam')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pixelmind.errors import ConfigError


class TrainConfig(BaseModel):
    """Everything a training run needs; saved in config.yaml and in every checkpoint.

    Fields left as ``None`` take the task's default recipe (see each task's ``defaults``).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    task: str = "classify"
    data: str
    model: str | None = Field(None, description="registered model name or any timm model name")
    epochs: int | None = Field(None, ge=1)
    imgsz: int | None = Field(None, ge=8, le=4096)
    batch: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float | None = Field(None, ge=0, description="AdamW/SGD weight decay (task recipe: 0.05 classify, 0 enhance)")
    momentum: float = Field(0.9, ge=0, lt=1)
    scheduler: Literal["cosine", "step", "constant"] = "cosine"
    step_size: int = Field(10, ge=1, description="epochs between lr drops for the step schedule")
    warmup_epochs: float = Field(1.0, ge=0)
    grad_accum: int = Field(1, ge=1)
    clip_grad: float | None = Field(None, gt=0)
    precision: Literal["fp32", "bf16", "fp16", "auto"] | None = Field(
        None, description="auto: bf16 where the CPU/GPU computes it natively (task recipe: auto for detect), else fp32")
    channels_last: bool | None = Field(None, description="channels-last memory format (faster CNNs on CPU and GPU)")
    ema: bool | None = Field(None, description="keep EMA weights for evaluation and the saved model (task recipe: on for generate)")
    ema_decay: float = Field(0.999, gt=0, lt=1)
    patience: int | None = Field(None, ge=1, description="stop after this many epochs without improvement")
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    workers: int = Field(2, ge=0)
    name: str | None = None
    project: str = "runs"
    exist_ok: bool = False
    pretrained: bool = False
    weights: str | None = Field(None, description="local safetensors/.pth to start from")
    # knowledge distillation: loss = (1 - distill_alpha) * task loss + distill_alpha * distillation loss
    teacher: str | None = Field(None, description="a pixelmind .safetensors weights file of the same task and classes to distil from")
    distill_alpha: float = Field(0.5, ge=0, le=1, description="with teacher: weight of the distillation term (0 = task loss only)")
    distill_temperature: float = Field(4.0, gt=0, description="with teacher: softmax temperature of the KL terms (classify, segment)")
    # adversarial training (pixelmind.robust): every training batch replaced by its attacked copy
    adv_train: Literal["fgsm", "pgd"] | None = Field(None, description="train on FGSM or PGD images (classify, detect, segment, enhance)")
    adv_eps: float = Field(2 / 255, gt=0, le=1, description="with adv_train: L-inf budget in pixel units (2/255)")
    adv_steps: int = Field(3, ge=1, description="with adv_train=pgd: attack steps per batch")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    split: Literal["val", "test"] = Field("val", description="the split `val` scores; test must be in the data (ImageSets test.txt, data.yaml test:, instances_test*.json, test/)")
    augment: Literal["none", "light", "trivial", "randaugment"] | None = None
    mixup: float = Field(0.0, ge=0)
    cutmix: float = Field(0.0, ge=0)
    mosaic: float = Field(0.0, ge=0, le=1, description="detect: probability that a training image is a 4-image mosaic")
    label_smoothing: float | None = Field(None, ge=0, lt=1)
    calibrate: bool = False
    max_pixels: int = Field(100_000_000, ge=1, description="larger images are refused (decompression bombs)")
    window: str | None = Field(None, description="DICOM/NIfTI intensity window 'centre,width' (CT soft tissue: 40,400); default: from each file")
    limit: int | None = Field(None, ge=1, description="use at most this many training samples (quick tries)")
    # enhance: the degradation learned in reverse, applied on the fly to clean images
    degradation: Literal["sr", "denoise", "jpeg", "deblur"] | None = Field(None, description="enhance: what to undo")
    scale: int | None = Field(None, ge=1, le=4, description="enhance: super-resolution factor (1 for restoration)")
    noise_sigma: float | tuple[float, float] = Field(25.0, description="enhance denoise: Gaussian sigma on 0-255, or [lo, hi] (blind)")
    jpeg_quality: int | tuple[int, int] = Field(20, description="enhance jpeg: Pillow quality, or [lo, hi]")
    blur: Literal["gaussian", "motion", "both"] = Field("both", description="enhance deblur: kernel family")
    loss: Literal["l1", "mse", "charbonnier", "ce", "dice", "focal", "ce+dice", "focal+dice",
                  "arcface", "cosface", "supcon", "triplet"] | None = Field(
        None, description="enhance: pixel loss (l1, mse, charbonnier); segment: ce, dice, focal, ce+dice, focal+dice; "
                          "embed: arcface, cosface, supcon, triplet (semi-hard mining)")
    pairs: str | None = Field(None, description="embed: an LFW-style pairs file for verification (default: pairs drawn from held-out identities)")
    class_weights: list[float] | Literal["auto"] | None = Field(
        None, description="segment: a weight per class for the ce/focal loss, or auto (inverse sqrt of pixel share)")
    channels: Literal[1, 3] | None = Field(None, description="enhance: 1 = greyscale, 3 = colour (default: from the data)")
    epoch_samples: int | None = Field(None, ge=1, description="enhance, compress, segment: random crops per epoch")
    model_kwargs: dict[str, Any] | None = Field(None, description="enhance, compress, generate, embed: arguments of the model builder, e.g. {N: 192, M: 320}, {dim: 128}")
    # compress: the rate-distortion trade-off
    quality: int | None = Field(None, ge=1, le=8, description="compress: quality level 1 (smallest files) to 8 (picks lambda)")
    lmbda: float | None = Field(None, gt=0, description="compress: rate-distortion lambda (default: from quality)")
    distortion: Literal["mse", "ms_ssim"] | None = Field(None, description="compress: distortion term of the loss")
    # generate: what FID/KID are measured with, and how validation samples are drawn
    fid_weights: str | None = Field(None, description="generate: Inception weights file for FID/KID (torchmetrics' FID Inception)")
    feature_weights: str | None = Field(None, description="generate: a pixelmind classifier (.safetensors) of this domain as the FID/KID extractor")
    val_samples: int | None = Field(None, ge=1, description="generate: most real val images (and as many samples) per FID/KID evaluation")
    sample_steps: int | None = Field(None, ge=1, description="generate, diffusion: DDIM steps of validation samples")
    guidance: float | None = Field(None, ge=0, description="generate, diffusion: classifier-free guidance scale of validation samples")

    def __init__(self, **data: Any) -> None:
        # The module promises ConfigError (one line per field) for any bad key or value, also
        # when TrainConfig is built directly (data checks, the API), not only via make_config.
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(format_validation_error(err)) from None

    @field_validator("window", mode="before")
    @classmethod
    def _check_window(cls, value: Any) -> str | None:
        from pixelmind.data.medical import parse_window

        try:
            pair = parse_window(value)
        except ConfigError:
            raise ValueError("expected 'centre,width' with width > 0 (e.g. 40,400)") from None
        return None if pair is None else f"{pair[0]:g},{pair[1]:g}"

    @model_validator(mode="after")
    def _check_device(self) -> TrainConfig:
        ok = self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")
        if not ok:
            raise ValueError(f"device: must be auto, cpu, cuda, cuda:N or mps (got {self.device!r})")
        return self

    @model_validator(mode="after")
    def _check_ranges(self) -> TrainConfig:
        for key, lo, hi in (("noise_sigma", 0, 255), ("jpeg_quality", 1, 100)):
            value = getattr(self, key)
            pair = value if isinstance(value, tuple) else (value, value)
            if not (lo <= pair[0] <= pair[1] <= hi):
                raise ValueError(f"{key}: must lie in {lo}..{hi} (a number or [lo, hi] with lo <= hi; got {value!r})")
        return self

    def filled(self, defaults: dict[str, Any]) -> TrainConfig:
        """A copy where every field left as None takes the value from ``defaults``."""
        updates = {k: v for k, v in defaults.items() if getattr(self, k, None) is None}
        return self.model_copy(update=updates)


def format_validation_error(err: ValidationError) -> str:
    """One line per problem: ``field: message (got value)``."""
    parts = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "config"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(TrainConfig.model_fields)
            parts.append(f"{field}: unknown key; allowed keys: {allowed}")
        elif e["type"] == "missing":
            parts.append(f"{field}: required")
        elif msg.startswith(f"{field}:") or not e["loc"]:
            # model-level validators name their own field; "got" would repeat the whole config
            parts.append(msg)
        else:
            parts.append(f"{field}: {msg} (got {e.get('input')!r})")
    return "; ".join(parts)


def make_config(base: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
    """Build a TrainConfig from a dict (e.g. a YAML file) and overrides; None overrides are ignored.

    Raises:
        ConfigError: one line naming each bad field and what is allowed.
    """
    values = dict(base or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TrainConfig(**values)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict; a missing file or bad YAML is a ConfigError."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of config keys, got {type(data).__name__}")
    return data
