"""Text recognition metrics: character error rate, word accuracy and normalised edit distance.

- CER: edit operations over all lines / characters of all ground truths (the usual corpus-level figure).
- word accuracy: the share of lines read exactly (case and spaces count).
- NED: 1 - mean over lines of edit distance / max(len(prediction), len(truth)) (ICDAR 2019's 1-N.E.D.).

Example:
    >>> text_metrics(["hello", "w0rld"], ["hello", "world"])
    {'cer': 0.1, 'word_acc': 0.5, 'ned': 0.9}
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pixelmind.tasks.ocr.text import Charset, attention_greedy, ctc_greedy, edit_distance


def text_metrics(predictions: list[str], truths: list[str]) -> dict[str, float]:
    if not truths:
        return {}
    edits = [edit_distance(p, t) for p, t in zip(predictions, truths)]
    return {
        "cer": round(sum(edits) / max(sum(len(t) for t in truths), 1), 6),
        "word_acc": round(sum(p == t for p, t in zip(predictions, truths)) / len(truths), 6),
        "ned": round(1 - sum(e / max(len(p), len(t), 1) for e, p, t in zip(edits, predictions, truths)) / len(truths), 6),
    }


def decode_logits(logits, charset: Charset, decoder: str) -> list[tuple[str, list[float]]]:
    """``[B, T, K+1]`` logits (tensor or array) -> each line's text and per-character confidence."""
    import numpy as np

    arr = logits.detach().float().cpu().numpy() if hasattr(logits, "detach") else np.asarray(logits)
    read = ctc_greedy if decoder == "ctc" else attention_greedy
    return [(charset.decode(idx), conf) for idx, conf in read(arr)]


class TextEvaluator:
    """Collects decoded lines and their transcripts over the validation set."""

    def __init__(self, chars: list[str], decoder: str) -> None:
        self.charset, self.decoder = Charset(list(chars)), decoder
        self.predictions: list[str] = []
        self.truths: list[str] = []

    def update(self, preds, targets: list[str]) -> None:
        self.predictions += [text for text, _ in decode_logits(preds, self.charset, self.decoder)]
        self.truths += list(targets)

    def compute(self) -> dict[str, float]:
        return text_metrics(self.predictions, self.truths)

    def summary(self) -> dict[str, Any]:
        """The worst lines and the most frequent character confusions, for the report."""
        pairs = sorted(zip(self.predictions, self.truths), key=lambda pt: -edit_distance(*pt))
        confusions: Counter = Counter()
        for p, t in zip(self.predictions, self.truths):
            if len(p) == len(t):  # aligned substitutions only: what a reader would call "read X as Y"
                confusions.update(f"{a!r}->{b!r}" for a, b in zip(t, p) if a != b)
        return {"worst_lines": [{"truth": t, "read": p, "edits": edit_distance(p, t)} for p, t in pairs[:20] if p != t],
                "confusions": dict(confusions.most_common(15)), "lines": len(self.truths)}  # fmt: skip

    def plots(self, out_dir: Path) -> list[Path]:
        """CER by the length of the line: where reading breaks down."""
        if not self.truths:
            return []
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        by_len: dict[int, list[int]] = {}
        for p, t in zip(self.predictions, self.truths):
            by_len.setdefault(len(t), []).append(edit_distance(p, t))
        lengths = sorted(by_len)
        cer = [sum(by_len[n]) / (n * len(by_len[n])) if n else 0 for n in lengths]
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.bar(lengths, cer, color="#2563eb")
        ax.set(xlabel="characters in the line", ylabel="CER", title="Character error rate by line length")
        fig.tight_layout()
        path = Path(out_dir) / "cer_by_length.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return [path]
