"""Denoising networks for diffusion: a compact U-Net (CNN) and a small DiT (Transformer).

Both map ``(x_t [B, C, H, W], t [B] in [0, T), labels [B] or None) -> [B, C, H, W]`` and say,
as ``size_multiple``, what their input sides must be divisible by (the diffusion wrapper pads).
Labels index ``num_classes + 1`` embeddings: the last one is the "no class" token that
classifier-free guidance trains with and samples against.

Why a U-Net of our own rather than diffusers' ``UNet2DModel``: at the same layout (widths
32/64/64, attention at the lowest level, class embedding) ours trained 1.6-2.2x faster in one
process on one (shared) CPU core at 28 px, forward + backward + AdamW on a batch of 64
(1.19M params: 3.6 s vs 8.0 s with one block per level; 1.74M: 5.9 s vs 9.8 s with two;
inference 1.3 s vs 2.1 s), for the same design: pre-norm residual blocks with a
scale-shift time/class embedding (Dhariwal & Nichol 2021), self-attention at low resolution,
zero-initialised output layers so an untrained model predicts 0.

Example:
    >>> import torch
    >>> net = UNet(channels=1, num_classes=10, width=8, mults=(1, 2))
    >>> net(torch.zeros(2, 1, 28, 28), torch.tensor([0, 999]), torch.tensor([3, 10])).shape
    torch.Size([2, 1, 28, 28])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, ``[B] -> [B, dim]`` (Transformer positions).

    Example:
        >>> timestep_embedding(torch.tensor([0.0, 5.0]), 8).shape
        torch.Size([2, 8])
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], 1)


class Conditioning(nn.Module):
    """Timestep (and class) -> one embedding vector per sample; the class table has a last "no class" row."""

    def __init__(self, base: int, dim: int, num_classes: int) -> None:
        super().__init__()
        self.base = base
        self.time = nn.Sequential(nn.Linear(base, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.base))
        if self.label is not None:
            if labels is None:  # an unconditional call of a conditional net: the "no class" token
                labels = torch.full((t.shape[0],), self.label.num_embeddings - 1, device=t.device, dtype=torch.long)
            emb = emb + self.label(labels)
        return emb


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the embedding as a scale and shift between them; a residual skip."""

    def __init__(self, cin: int, cout: int, emb: int, dropout: float = 0.0, groups: int = 8) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, 2 * cout)
        self.norm2, self.drop, self.conv2 = nn.GroupNorm(groups, cout), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity: a deep net trains from step one
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, 1)
        h = self.conv2(self.drop(F.silu(self.norm2(h) * (1 + scale) + shift)))
        return self.skip(x) + h


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the pixels of a (low-resolution) feature map, residual."""

    def __init__(self, c: int, heads: int = 4, groups: int = 8) -> None:
        super().__init__()
        self.heads = heads if c % heads == 0 else 1
        self.norm, self.qkv, self.proj = nn.GroupNorm(groups, c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2)
        out = F.scaled_dot_product_attention(*qkv.unbind(1))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Level(nn.Module):
    """A residual block, followed by self-attention at the levels that have it."""

    def __init__(self, cin: int, cout: int, emb: int, attention: bool, dropout: float) -> None:
        super().__init__()
        self.res = ResBlock(cin, cout, emb, dropout)
        self.attn = SelfAttention2d(cout) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, emb))


class UNet(nn.Module):
    """The DDPM U-Net: ``len(mults)`` resolutions, ``blocks`` residual blocks each, skips by concatenation.

    Args:
        width: channels at full resolution (a multiple of 8, for GroupNorm's 8 groups).
        mults: channel multiplier per resolution; each after the first halves the side.
        blocks: residual blocks per resolution on the way down (one more on the way up).
        attention: indices of the resolutions with self-attention (the middle always has it).
    """

    def __init__(self, channels: int, num_classes: int, width: int = 32, mults=(1, 2, 2), blocks: int = 1,
                 attention=(2,), dropout: float = 0.1) -> None:  # fmt: skip
        super().__init__()
        emb = 4 * width
        self.size_multiple = 2 ** (len(mults) - 1)
        self.cond = Conditioning(width, emb, num_classes)
        self.stem = nn.Conv2d(channels, width, 3, padding=1)
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        skips, c = [width], width
        for i, m in enumerate(mults):
            for _ in range(blocks):
                self.down.append(Level(c, width * m, emb, i in attention, dropout))
                c = width * m
                skips.append(c)
            if i < len(mults) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([Level(c, c, emb, True, dropout), Level(c, c, emb, False, dropout)])
        for i, m in reversed(list(enumerate(mults))):
            for _ in range(blocks + 1):
                self.up.append(Level(c + skips.pop(), width * m, emb, i in attention, dropout))
                c = width * m
            if i > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)))
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.cond(t, labels)
        h = self.stem(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, Level) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            h = layer(torch.cat([h, hs.pop()], 1), emb) if isinstance(layer, Level) else layer(h)
        return self.out(h)


def sincos_2d(dim: int, side: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings, ``[side * side, dim]`` (MAE / DiT)."""
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32), indexing="ij")
    return torch.cat([timestep_embedding(ys.flatten(), dim // 2), timestep_embedding(xs.flatten(), dim // 2)], 1)


class DiTBlock(nn.Module):
    """Pre-norm Transformer block whose norms are modulated by the conditioning (adaLN-zero, Peebles & Xie 2023)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, elementwise_affine=False), nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(approximate="tanh"), nn.Linear(int(dim * mlp_ratio), dim))
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)  # zero gates: every block starts as the identity
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(F.silu(emb))[:, None].chunk(6, -1)
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        h = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + gate1 * self.proj(h)
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)


class DiT(nn.Module):
    """A small Diffusion Transformer: patchify, ``depth`` adaLN-zero blocks, a modulated linear un-patchify.

    Args:
        image_size: side of the (padded) input; a multiple of ``patch``.
        patch: patch side (2 or 4 for 28-32 px images: 196-256 or 49-64 tokens).
        dim, depth, heads: Transformer width, blocks, attention heads (``dim`` divisible by ``heads``).
    """

    def __init__(self, image_size: int, channels: int, num_classes: int, patch: int = 4, dim: int = 128,
                 depth: int = 6, heads: int = 4) -> None:  # fmt: skip
        super().__init__()
        self.size_multiple, self.patch, self.channels = patch, patch, channels
        side = image_size // patch
        self.embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.register_buffer("pos", sincos_2d(dim, side)[None], persistent=False)
        self.cond = Conditioning(dim, dim, num_classes)
        self.blocks = nn.ModuleList([DiTBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.ada = nn.Linear(dim, 2 * dim)
        self.head = nn.Linear(dim, patch * patch * channels)
        for m in (self.ada, self.head):  # an untrained model predicts 0, as the U-Net does
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.patch
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        emb = self.cond(t, labels)
        for block in self.blocks:
            tokens = block(tokens, emb)
        shift, scale = self.ada(F.silu(emb))[:, None].chunk(2, -1)
        out = self.head(self.norm(tokens) * (1 + scale) + shift)  # [B, (h/p)(w/p), p*p*C]
        out = out.reshape(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(b, c, h, w)
