"""Characters, edit distances and the two decoders of the ocr task (plain numpy: the PyTorch and ONNX paths share them).

Class index 0 is the CTC blank (CRNN) or the end of text (the attention decoder); characters are 1..K.

Example:
    >>> cs = Charset.from_texts(["abc", "cab 1"])
    >>> cs.chars, cs.encode("cab"), cs.decode([3, 1, 2])
    ([' ', '1', 'a', 'b', 'c'], [5, 3, 4], 'a 1')
    >>> edit_distance("kitten", "sitting")
    3
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class Charset:
    """The characters a recogniser knows, index 1..K (0 is blank / end of text)."""

    chars: list[str]

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Charset:
        return cls(sorted({c for t in texts for c in t}))

    def __post_init__(self) -> None:
        self.index = {c: i + 1 for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Indices of the characters it knows; unknown characters are left out (they count as errors in CER)."""
        return [self.index[c] for c in text if c in self.index]

    def decode(self, indices: Iterable[int]) -> str:
        return "".join(self.chars[i - 1] for i in indices if 0 < i <= len(self.chars))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions), two rows of dynamic programming."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def ctc_greedy(logits: np.ndarray) -> list[tuple[list[int], list[float]]]:
    """Best path of ``[B, T, K+1]`` CTC logits: repeats merged, blanks dropped; each kept step's probability.

    Example:
        >>> z = np.log(np.array([[[.1, .9, 0], [.1, .8, .1], [.9, .05, .05], [.2, .1, .7]]]) + 1e-9)
        >>> [(i, [round(p, 2) for p in c]) for i, c in ctc_greedy(z)]
        [([1, 2], [0.9, 0.7])]
    """
    probs = _softmax(np.asarray(logits, np.float64))
    best, conf = probs.argmax(-1), probs.max(-1)
    out = []
    for path, p in zip(best, conf):
        keep = (path != 0) & np.concatenate([[True], path[1:] != path[:-1]])
        out.append((path[keep].tolist(), p[keep].tolist()))
    return out


def attention_greedy(logits: np.ndarray) -> list[tuple[list[int], list[float]]]:
    """``[B, L, K+1]`` position logits of the parallel attention decoder, read up to the first end of text."""
    probs = _softmax(np.asarray(logits, np.float64))
    best, conf = probs.argmax(-1), probs.max(-1)
    out = []
    for path, p in zip(best, conf):
        stop = int(np.argmax(path == 0)) if (path == 0).any() else len(path)
        out.append((path[:stop].tolist(), p[:stop].tolist()))
    return out
