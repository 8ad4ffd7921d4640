"""FID and KID of generated images, with the feature extractor named, hashed and loaded offline.

Two extractors (:func:`load_extractor`):

* ``--feature-weights best.safetensors``: the offline default, the penultimate features of a
  classifier that pixelmind trained on the same domain (e.g. Fashion-MNIST), with that
  classifier's own preprocessing (grey -> 3 channels, resize to its size, its mean/std).
* ``--fid-weights PATH``: the standard FID Inception-v3 (torch-fidelity's port of the 2015
  TensorFlow graph, 2048-d pool features), from a local copy of
  ``pt_inception-2015-12-05-6726825d.pth`` (the sha256 must start with ``6726825d``: any
  other weights give figures that compare with nothing). ``--fid-weights hub`` downloads it
  into torch's hub cache (or uses the copy already there); offline that is a one-line error
  naming the URL to fetch elsewhere.

The features of both sets go once through the extractor and then into torchmetrics'
``FrechetInceptionDistance`` and ``KernelInceptionDistance`` (fed the features themselves
through an identity "extractor"), so the figures are torchmetrics' own. FID/KID from
different extractors, or from different weights of one, are not comparable.

Example:
    >>> import torch
    >>> ext = Extractor(PixelStats(), name="pixel-stats", sha256="-", dim=2)
    >>> ev = GenerationEvaluator(ext, reference_name="toy")
    >>> real = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    >>> ev.update(real, real)
    >>> round(ev.compute()["fid"], 6) == 0
    True
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pixelmind.errors import ConfigError, WeightsError

NOT_COMPARABLE = ("FID/KID figures from different feature extractors (or from different weights of one) "
                  "are not comparable; compare only figures with the same extractor sha256.")  # fmt: skip
INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


class Extractor(nn.Module):
    """A frozen feature network with its identity: ``name``, ``sha256`` of its weights file, feature ``dim``.

    ``__call__(uint8 images [B, C, H, W]) -> float32 features [B, dim]``.
    """

    def __init__(self, net: nn.Module, name: str, sha256: str, dim: int, path: str | None = None) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.name, self.sha256, self.dim, self.path = name, sha256, dim, path

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 images [B, 1 or 3, H, W], got {images.dtype} {tuple(images.shape)}")
        device = next(self.net.parameters(), torch.empty(0)).device
        return self.net(images.to(device)).float().cpu()


class PixelStats(nn.Module):
    """Per-image mean and standard deviation of the pixels: a two-number "extractor" for examples and tests."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().flatten(1) / 255
        return torch.stack([x.mean(1), x.std(1)], 1)


class ClassifierFeatures(nn.Module):
    """The input of a classifier's last linear layer (its penultimate features), with its own preprocessing."""

    def __init__(self, net: nn.Module, imgsz: int, mean, std) -> None:
        super().__init__()
        self.net, self.imgsz = net, imgsz
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255)
        self._timm = hasattr(net, "forward_head") and hasattr(net, "forward_features")
        self._last_linear = None if self._timm else [m for m in net.modules() if isinstance(m, nn.Linear)][-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[1] == 1:  # pixelmind trains classifiers on grey images repeated to 3 channels
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-2:] != (self.imgsz, self.imgsz):  # as the classify task resizes in-memory data sets
            x = F.interpolate(x, size=(self.imgsz, self.imgsz), mode="bilinear", antialias=True, align_corners=False)
            x = x.round().clamp(0, 255)
        x = (x - self.mean) / self.std
        if self._timm:
            return self.net.forward_head(self.net.forward_features(x), pre_logits=True)
        captured: list[torch.Tensor] = []
        handle = self._last_linear.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            self.net(x)
        finally:
            handle.remove()
        return captured[0]


class InceptionFeatures(nn.Module):
    """torch-fidelity's FID Inception-v3 (2048-d pool features); grey images are repeated to 3 channels."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError:
            raise ConfigError("--fid-weights needs torch-fidelity: pip install 'pixelmind[fid]' (or torch-fidelity)") from None

        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return self.net(images.contiguous())[0]


def classifier_extractor(path: str | Path) -> Extractor:
    """The penultimate features of a pixelmind classifier (``pixelmind train --task classify``)."""
    from pixelmind.api import Model
    from pixelmind.engine.checkpoint import load_weights, sha256_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: feature weights file not found")
    if path.suffix.lower() != ".safetensors":
        raise WeightsError(f"{path}: feature weights must be a pixelmind classifier's .safetensors file")
    _, meta, _ = load_weights(path)  # the metadata says what the file is before a model is built for it
    if meta.task != "classify":
        raise WeightsError(f"{path}: weights of a {meta.task!r} model, not a classifier "
                           "(train one with: pixelmind train --task classify)")  # fmt: skip
    model = Model.load(path)
    meta = model.meta
    features = ClassifierFeatures(model.net, meta.imgsz, meta.mean, meta.std).eval()
    with torch.no_grad():
        dim = features(torch.zeros(1, 3, meta.imgsz, meta.imgsz, dtype=torch.uint8)).shape[-1]
    name = f"pixelmind classifier {meta.model} ({path.name}, {meta.imgsz} px, {len(meta.class_names)} classes)"
    return Extractor(features, name, sha256_file(path), int(dim), str(path))


def _hub_inception() -> Path:
    """The Inception weights in torch's hub cache, downloaded first if missing and the host is reachable."""
    import socket
    from urllib.parse import urlparse

    dest = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[1]
    if dest.is_file():
        return dest
    host = urlparse(INCEPTION_URL).hostname or "github.com"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError as err:
        raise ConfigError(f"fid_weights: 'hub' downloads {INCEPTION_URL} but {host} is not reachable "
                          f"({err.strerror or err}); fetch that file elsewhere and pass --fid-weights PATH, "
                          "or use --feature-weights CLASSIFIER.safetensors offline") from None  # fmt: skip
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(INCEPTION_URL, str(dest), hash_prefix=INCEPTION_SHA256_PREFIX, progress=False)
    except Exception as err:  # noqa: BLE001 - any network or hash failure is the same message to the user
        raise ConfigError(f"fid_weights: could not download {INCEPTION_URL} ({str(err).splitlines()[0][:120]})") from None
    return dest


def inception_extractor(fid_weights: str | Path) -> Extractor:
    """The FID Inception-v3 from a local weights file (or ``"hub"``: torch's hub cache, downloading if needed)."""
    from pixelmind.engine.checkpoint import sha256_file

    path = _hub_inception() if str(fid_weights) == "hub" else Path(fid_weights)
    if not path.is_file():
        raise WeightsError(f"{path}: FID Inception weights not found (the file is {INCEPTION_FILE}; or pass --fid-weights hub)")
    sha = sha256_file(path)
    if not sha.startswith(INCEPTION_SHA256_PREFIX):
        raise WeightsError(f"{path}: not the FID Inception-v3 weights (sha256 {sha[:12]}..., expected {INCEPTION_SHA256_PREFIX}...: "
                           f"{INCEPTION_FILE}); other weights give FIDs that compare with nothing")  # fmt: skip
    try:
        torch.load(path, map_location="cpu", weights_only=True)  # refuses pickled code before torch-fidelity reads it
        net = InceptionFeatures(path)
    except Exception as err:  # noqa: BLE001
        raise WeightsError(f"{path}: cannot load the FID Inception weights ({str(err).splitlines()[0][:120]})") from None
    return Extractor(net, "Inception-v3 (FID, torch-fidelity 2048-d pool features)", sha, 2048, str(path))


def load_extractor(feature_weights: str | None, fid_weights: str | None, channels: int) -> Extractor | None:
    """The extractor the user asked for, or None when neither option is given (no FID/KID then).

    Args:
        feature_weights: a pixelmind classifier's ``.safetensors`` (offline default).
        fid_weights: the Inception-v3 FID weights file, or ``"hub"``.
        channels: channels of the generated images (1 or 3); grey is repeated to 3 for both extractors.

    Raises:
        ConfigError: both options given, bad channels, or ``hub`` while offline.
        WeightsError: a missing, corrupt or wrong weights file (one line naming it).
    """
    if channels not in (1, 3):
        raise ConfigError(f"channels: FID/KID extractors take 1 or 3 channels, got {channels}")
    if feature_weights and fid_weights:
        raise ConfigError("feature_weights: give --feature-weights or --fid-weights, not both (their figures are not comparable)")
    if feature_weights:
        return classifier_extractor(feature_weights)
    if fid_weights:
        return inception_extractor(fid_weights)
    return None


class _Given(nn.Module):
    """An identity "feature extractor": torchmetrics receives features we already extracted."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def fid_kid(fake: torch.Tensor, real: torch.Tensor, kid_subsets: int = 100, kid_subset_size: int = 1000,
            seed: int = 0) -> dict[str, float]:  # fmt: skip
    """FID and KID (mean, std over random subsets) of two feature sets ``[N, D]`` by torchmetrics.

    The subset size is capped at the smaller set; the subsets are drawn from ``seed``, so the
    figure is reproducible.

    Example:
        >>> a = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
        >>> out = fid_kid(a + 1, a, kid_subsets=5)  # a shift of 1 in 4 dimensions: FID = 4
        >>> round(out["fid"], 6), out["kid"] > 0.1
        (4.0, True)
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fake, real = fake.double(), real.double()
    fid = FrechetInceptionDistance(feature=_Given(fake.shape[1]))
    with warnings.catch_warnings():  # KID keeps every feature in memory: our sets are small by design
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=_Given(fake.shape[1]), subsets=kid_subsets,
                                      subset_size=min(kid_subset_size, len(fake), len(real)))  # fmt: skip
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


class GenerationEvaluator:
    """Collects extractor features of generated and real images; FID/KID between the two sets.

    ``update(fake_uint8, real_uint8)``: uint8 ``[B, C, H, W]`` batches (either may be None).
    A few images of each set are kept for the figure.
    """

    def __init__(self, extractor: Extractor, reference_name: str, keep: int = 64) -> None:
        self.extractor, self.reference_name, self.keep = extractor, reference_name, keep
        self.fake: list[torch.Tensor] = []
        self.real: list[torch.Tensor] = []
        self.examples: dict[str, list[torch.Tensor]] = {"fake": [], "real": []}

    def _add(self, images: torch.Tensor | None, store: list[torch.Tensor], kind: str) -> None:
        if images is None or len(images) == 0:
            return
        store.append(self.extractor(images).double())
        kept = sum(len(x) for x in self.examples[kind])
        if kept < self.keep:
            self.examples[kind].append(images[: self.keep - kept].cpu())

    def update(self, fake: torch.Tensor | None, real: torch.Tensor | None) -> None:
        self._add(fake, self.fake, "fake")
        self._add(real, self.real, "real")

    @property
    def counts(self) -> tuple[int, int]:
        return sum(len(x) for x in self.fake), sum(len(x) for x in self.real)

    def compute(self) -> dict[str, float]:
        """``{"fid", "kid", "kid_std"}``; empty until both sets hold at least two images."""
        n_fake, n_real = self.counts
        if n_fake < 2 or n_real < 2:
            return {}
        # subsets of half the smaller set (at most 1000, the usual size): their spread is KID's error bar
        return fid_kid(torch.cat(self.fake), torch.cat(self.real), kid_subset_size=min(1000, max(2, min(n_fake, n_real) // 2)))

    def summary(self) -> dict[str, Any]:
        n_fake, n_real = self.counts
        return {
            "extractor": self.extractor.name,
            "extractor_sha256": self.extractor.sha256,
            "feature_dim": self.extractor.dim,
            "fake_samples": n_fake,
            "real_samples": n_real,
            "reference": self.reference_name,
            "note": NOT_COMPARABLE,
        }

    def plots(self, out_dir: Path) -> list[Path]:
        """``samples_vs_real.png``: generated images beside real ones from the reference set."""
        from torchvision.utils import make_grid

        from pixelmind.viz.plots import _pyplot, _save

        if not self.examples["fake"] or not self.examples["real"]:
            return []
        plt = _pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(9, 4.8))
        for ax, kind, title in zip(axes, ("fake", "real"), ("generated", f"real ({self.reference_name})")):
            images = torch.cat(self.examples[kind])
            grid = make_grid(images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images, nrow=8, padding=2, pad_value=128)
            ax.imshow(grid.permute(1, 2, 0).numpy())
            ax.set_title(title)
            ax.axis("off")
        metrics = self.compute()
        if metrics:
            fig.suptitle(f"FID {metrics['fid']:.2f}, KID {metrics['kid']:.4f} ({self.extractor.name})", fontsize=9)
        return [_save(fig, Path(out_dir) / "samples_vs_real.png")]
