"""Text-line recognisers: CRNN (a CNN, a bidirectional LSTM and CTC) and a Transformer with a parallel attention decoder.

Both take ``[B, 3, H, 4H]`` lines and return ``[B, T, K + 1]`` logits (K characters; index 0 is the CTC
blank or the end of text), so export, predict and serving treat them alike; ``decoder`` says how to read them.

- ``crnn_s`` / ``crnn_m`` (Shi et al., 2015): VGG-style convolutions collapse the height and keep one column
  per 4 pixels of width (T = 32 at 128 px), two BiLSTM layers read the columns in both directions (plus a
  linear shortcut around them), a linear layer scores each; trained with CTC.
- ``tr_s`` (PARSeq-style decoder): a convolutional stem makes one token per 4 pixels of width for a
  Transformer encoder; a decoder of ``max_len + 1`` learned position queries attends to them
  (non-autoregressive, all characters at once), trained with cross-entropy up to the end-of-text token plus
  a CTC loss on the encoder tokens (joint CTC-attention); predictions read the decoder.

Example:
    >>> import torch
    >>> net = build_recognizer("crnn_s", num_chars=10, imgsz=32).eval()
    >>> tuple(net(torch.zeros(2, 3, 32, 128)).shape), net.decoder
    ((2, 32, 11), 'ctc')
    >>> tuple(build_recognizer("tr_s", 10, 32, max_len=16).eval()(torch.zeros(1, 3, 32, 128)).shape)
    (1, 17, 11)
"""

from __future__ import annotations

import torch
from torch import nn

from pixelmind.errors import ConfigError
from pixelmind.registry import Registry

MODELS: Registry = Registry("ocr model")


def _conv(cin: int, cout: int, k=3, s=1, p=1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CRNN(nn.Module):
    decoder = "ctc"

    def __init__(self, num_chars: int, imgsz: int = 32, width: int = 64, hidden: int = 128) -> None:
        super().__init__()
        if imgsz % 16:
            raise ConfigError(f"imgsz: CRNN needs a line height divisible by 16 (got {imgsz})")
        c = [width, width * 2, width * 4, width * 4]
        layers = [_conv(3, c[0]), nn.MaxPool2d(2), _conv(c[0], c[1]), nn.MaxPool2d(2),  # H/4, W/4
                  _conv(c[1], c[2]), _conv(c[2], c[2]), nn.MaxPool2d((2, 1)),  # H/8: keep the width's resolution
                  _conv(c[2], c[3]), _conv(c[3], c[3]), nn.MaxPool2d((2, 1))]  # H/16  # fmt: skip
        self.cnn = nn.Sequential(*layers, _conv(c[3], c[3], k=(imgsz // 16, 1), p=0))  # height -> 1
        self.rnn = nn.LSTM(c[3], hidden, num_layers=2, bidirectional=True, batch_first=True, dropout=0.1)
        # a linear shortcut around the LSTM: without it CTC sat on its all-blank plateau for hundreds of
        # steps (overfitting 32 lines: CER 0.97 after 300 steps; with it: 0.00, bench/RESULTS.md section 26)
        self.shortcut = nn.Linear(c[3], 2 * hidden)
        self.head = nn.Linear(2 * hidden, num_chars + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.cnn(x).squeeze(2).transpose(1, 2)  # [B, T, C]
        return self.head(self.rnn(f)[0] + self.shortcut(f))


class AttentionRecognizer(nn.Module):
    decoder = "attention"

    def __init__(self, num_chars: int, imgsz: int = 32, dim: int = 192, depth: int = 4, heads: int = 6,
                 decoder_depth: int = 2, max_len: int = 25) -> None:  # fmt: skip
        super().__init__()
        if imgsz % 8:
            raise ConfigError(f"imgsz: the Transformer recogniser needs a line height divisible by 8 (got {imgsz})")
        # one token per 4 pixels of width, the height folded in by the stem (32 tokens for a 32 x 128 line):
        # with 2D patch tokens (8 x 16 of them) the model did not learn in 10,000 lines x 4 epochs (CER 0.74)
        self.stem = nn.Sequential(_conv(3, dim // 4, s=2), _conv(dim // 4, dim // 2, s=2),
                                  _conv(dim // 2, dim, s=(2, 1)), _conv(dim, dim, k=(imgsz // 8, 1), p=0))  # fmt: skip
        self.pos = nn.Parameter(torch.zeros(1, imgsz, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        # joint CTC-attention training (Kim et al., 2017): a CTC head on the encoder aligns its tokens with
        # the characters early, which the decoder's cross-attention then only has to read
        self.ctc_head = nn.Linear(dim, num_chars + 1)
        self.queries = nn.Parameter(torch.zeros(1, max_len + 1, dim))  # one per position, the last for the end
        dec = nn.TransformerDecoderLayer(dim, heads, 2 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.decoder_layers = nn.TransformerDecoder(dec, decoder_depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_chars + 1)
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.queries, std=0.02)

    def forward(self, x: torch.Tensor, with_ctc: bool = False):
        """Decoder logits ``[B, max_len + 1, K + 1]``; with ``with_ctc`` also the encoder's CTC logits (training)."""
        tokens = self.stem(x).squeeze(2).transpose(1, 2)  # [B, W/4, dim]
        memory = self.encoder(tokens + self.pos[:, : tokens.shape[1]])
        logits = self.head(self.norm(self.decoder_layers(self.queries.expand(x.shape[0], -1, -1), memory)))
        return (logits, self.ctc_head(memory)) if with_ctc else logits


@MODELS.register("crnn_s")
def crnn_s(num_chars: int, imgsz: int, **kw) -> CRNN:
    return CRNN(num_chars, imgsz, width=16, hidden=128)


@MODELS.register("crnn_m")
def crnn_m(num_chars: int, imgsz: int, **kw) -> CRNN:
    return CRNN(num_chars, imgsz, width=32, hidden=256)


@MODELS.register("tr_s")
def tr_s(num_chars: int, imgsz: int, max_len: int = 25, **kw) -> AttentionRecognizer:
    return AttentionRecognizer(num_chars, imgsz, dim=128, depth=3, heads=4, max_len=max_len)


def build_recognizer(name: str, num_chars: int, imgsz: int, max_len: int = 25) -> nn.Module:
    return MODELS.get(name)(num_chars=num_chars, imgsz=imgsz, max_len=max_len)
