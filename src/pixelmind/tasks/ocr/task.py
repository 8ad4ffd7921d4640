"""The ocr task: single text lines in, text and per-character confidence out, on the contract of :mod:`pixelmind.tasks.base`.

Batches are ``(images [B, 3, H, 4H], texts)``; the charset is the training transcripts' characters
(``Meta.class_names``; index 0 of the logits is the CTC blank or the end of text). CRNN trains with CTC,
the Transformer with cross-entropy over its position queries; both decode greedily in numpy
(:mod:`pixelmind.tasks.ocr.text`), outside the network, so an ONNX export reads the same.

Example:
    >>> from pixelmind.tasks import get_task
    >>> get_task("ocr").primary_metric, get_task("ocr").metric_mode
    ('cer', 'min')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from pixelmind.nn.device import model_device
from pixelmind.tasks.base import DataBundle, Meta, Task
from pixelmind.tasks.ocr.models import MODELS, build_recognizer
from pixelmind.tasks.ocr.text import Charset

MAX_LEN = 25  # the attention decoder's positions (longer lines are cut; CTC reads up to T = 4 H / 4 columns)


@dataclass
class OcrResult:
    """One line's text and each character's confidence (the decoder's probability for it).

    Example:
        >>> OcrResult("ab", [0.9, 0.5]).to_dict()
        {'text': 'ab', 'confidence': 0.45, 'chars': [{'char': 'a', 'conf': 0.9}, {'char': 'b', 'conf': 0.5}]}
    """

    text: str
    char_confidences: list[float] = field(default_factory=list)
    source: str | None = None

    @property
    def confidence(self) -> float:
        """The probability of the whole reading (product of the characters'); 0 for an empty line."""
        out = 1.0
        for c in self.char_confidences:
            out *= c
        return out if self.text else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {"text": self.text, "confidence": round(self.confidence, 6),
               "chars": [{"char": c, "conf": round(p, 4)} for c, p in zip(self.text, self.char_confidences)]}  # fmt: skip
        return {"source": self.source, **out} if self.source is not None else out

    def render(self, image):
        """The line with what was read (and its confidence) on a banner below."""
        from PIL import Image

        from pixelmind.viz.draw import draw_label_banner

        image = image.convert("RGB")
        if image.height < 64:  # line crops are small: scaled up so the banner's text fits
            k = -(-64 // image.height)
            image = image.resize((image.width * k, image.height * k), Image.Resampling.BICUBIC)
        return draw_label_banner(image, [f"{self.text!r} {self.confidence:.0%}"])


CTC_WEIGHT = 0.5  # the Transformer's auxiliary CTC loss beside the decoder's cross-entropy


def _ctc_loss(logits: torch.Tensor, encoded: list[list[int]]) -> torch.Tensor:
    """CTC over ``[B, T, K + 1]`` logits (blank 0); transcripts longer than T are cut to T."""
    steps = logits.shape[1]
    encoded = [e[:steps] for e in encoded]
    log_probs = logits.float().log_softmax(2).transpose(0, 1)  # [T, B, C]
    targets = torch.tensor([i for e in encoded for i in e], dtype=torch.long, device=logits.device)
    lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long, device=logits.device)
    full = torch.full((len(encoded),), steps, dtype=torch.long, device=logits.device)
    return F.ctc_loss(log_probs, targets, full, lengths, blank=0, zero_infinity=True)


class OcrTask(Task):
    name = "ocr"
    models = MODELS
    primary_metric = "cer"
    test_split = True
    metric_mode = "min"
    defaults = {"model": "crnn_s", "epochs": 10, "imgsz": 32, "batch": 64, "lr": 1e-3, "weight_decay": 0.01,
                "augment": "none", "channels_last": False}  # fmt: skip
    explain_methods = ()
    robust_unsupported = "adversarial attacks on text recognition are not built yet"
    optimize_unsupported = "optimizing text recognisers is not built yet"

    def recipe(self, cfg: Any) -> dict[str, Any]:
        out = dict(self.defaults)
        if (cfg.model or out["model"]).startswith("tr_"):  # a Transformer from scratch wants a gentler rate
            out["lr"] = 5e-4
        return out

    def load_data(self, cfg: Any, meta: Meta | None = None) -> DataBundle:
        from pixelmind.tasks.ocr.data import load_line_data

        bundle = load_line_data(cfg, list(meta.class_names) if meta else None, *(_norm(meta)))
        self._charset = Charset(bundle.class_names)
        bundle.meta_extra["max_len"] = MAX_LEN
        return bundle

    def build_model(self, cfg: Any, meta: Meta) -> torch.nn.Module:
        net = build_recognizer(meta.model, meta.num_classes, meta.imgsz, meta.extra.get("max_len", MAX_LEN))
        meta.extra["decoder"] = net.decoder
        return net

    def collate(self, samples: list[Any]) -> Any:
        images, texts = zip(*samples)
        return torch.stack(images), list(texts)

    def _loss(self, model, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        encoded = [self._charset.encode(t) for t in texts]
        if getattr(model, "decoder", "ctc") == "ctc":
            return _ctc_loss(model(images), encoded)
        logits, ctc_logits = model(images, with_ctc=True)
        positions = logits.shape[1]
        target = torch.full((len(encoded), positions), -100, dtype=torch.long)
        for row, e in enumerate(encoded):
            e = e[: positions - 1]
            target[row, : len(e)] = torch.tensor(e, dtype=torch.long)
            target[row, len(e)] = 0  # end of text
        ce = F.cross_entropy(logits.float().flatten(0, 1), target.to(logits.device).flatten(), ignore_index=-100)
        return ce + CTC_WEIGHT * _ctc_loss(ctc_logits, encoded)

    def training_step(self, model, batch, step: int, optimizer_idx: int = 0) -> dict[str, torch.Tensor]:
        images, texts = batch
        return {"loss": self._loss(model, images, texts)}

    def attack_loss(self, model, batch) -> torch.Tensor:
        images, texts = batch
        return self._loss(model, images, texts)

    def validation_step(self, model, batch) -> tuple[torch.Tensor, list[str]]:
        images, texts = batch
        return model(images), texts

    def evaluator(self, meta: Meta):
        from pixelmind.metrics.text import TextEvaluator

        return TextEvaluator(meta.class_names, meta.extra.get("decoder", "ctc"))

    def preprocess(self, meta: Meta):
        from pixelmind.tasks.ocr.data import line_transform

        return line_transform(meta.imgsz, meta.mean, meta.std)

    def postprocess(self, logits, meta: Meta, sources: Sequence[str] | None = None, **_: Any) -> list[OcrResult]:
        """Network outputs -> results; shared by the PyTorch and the ONNX runtime paths."""
        from pixelmind.metrics.text import decode_logits

        read = decode_logits(logits, Charset(list(meta.class_names)), meta.extra.get("decoder", "ctc"))
        return [OcrResult(text, conf, sources[i] if sources else None) for i, (text, conf) in enumerate(read)]

    @torch.inference_mode()
    def predict(self, model, images, meta: Meta, **_: Any) -> list[OcrResult]:
        tf = self.preprocess(meta)
        x = torch.stack([tf(im) for im in images]).to(model_device(model))
        return self.postprocess(model(x), meta)


def _norm(meta: Meta | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    defaults = Meta("ocr", "-")
    return (meta or defaults).mean, (meta or defaults).std


TASK = OcrTask()
