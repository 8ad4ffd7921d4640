"""Transformer enhancement models: SwinIR (shifted-window attention) and Restormer (channel attention).

Built on :mod:`pixelmind.tasks.enhance.layers`; registered in :mod:`pixelmind.tasks.enhance.models`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerNorm2d, trunc_normal_
from torch import nn

from pixelmind.tasks.enhance.layers import Bicubic, conv3x3, pad_to_multiple, pixel_shuffle_tail

# ---------------------------------------------------------------------------------------- Swin transformer


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B * H/window * W/window, window**2, C]``; H and W are multiples of ``window``."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """The inverse of :func:`window_partition`: ``[B * nW, window**2, C]`` -> ``[B, H, W, C]``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shifted_window_mask(
    h: int, w: int, window: int, shift: int, device: torch.device | None = None
) -> torch.Tensor:
    """Additive attention mask ``[nW, window**2, window**2]`` for windows shifted by ``shift`` (Swin).

    After the cyclic shift, windows on the bottom and right edges hold pixels from opposite sides of the
    image; -100 keeps them from attending to each other. The regions are computed with comparisons on
    ``arange`` rather than slice assignment, so that the mask follows the input size in ONNX.

    Example:
        >>> shifted_window_mask(16, 24, window=8, shift=4).shape  # 2 x 3 windows of 64 pixels
        torch.Size([6, 64, 64])
    """

    def bands(n):
        i = torch.arange(n, device=device)
        return (i >= n - window).long() + (i >= n - shift).long()

    region = (bands(h)[:, None] * 3 + bands(w)[None, :]).float()
    ids = window_partition(region[None, :, :, None], window).squeeze(-1)
    return (ids[:, None, :] != ids[:, :, None]).float() * -100.0


def relative_position_index(window: int) -> torch.Tensor:
    """``[window**2, window**2]`` index into the ``(2 * window - 1)**2`` relative position bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative position bias (Swin)."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(trunc_normal_(torch.zeros((2 * window - 1) ** 2, heads), std=0.02))
        self.register_buffer("bias_index", relative_position_index(window), persistent=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1) + self.bias_table[self.bias_index].permute(2, 0, 1)
        if mask is not None:  # shifted windows: [B * nW, heads, N, N] + [nW, 1, N, N]
            attn = (attn.view(-1, mask.shape[0], self.heads, n, n) + mask[:, None]).view(bw, self.heads, n, n)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(bw, n, c))


class SwinLayer(nn.Module):
    """Pre-norm window attention and MLP on ``[B, H, W, C]``; windows shifted by ``shift`` when it is non-zero."""

    def __init__(
        self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float = 0.0
    ):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1:3]
        y = self.norm1(x)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        y = self.attn(window_partition(y, self.window), mask if self.shift else None)
        y = window_reverse(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class RSTB(nn.Module):
    """Residual Swin Transformer Block (SwinIR): Swin layers, alternately shifted, then a 3x3 conv and a skip."""

    def __init__(
        self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float, drop_path: list[float]
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            SwinLayer(dim, heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, drop_path[i])
            for i in range(depth)
        )
        self.conv = conv3x3(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = x
        for layer in self.layers:
            y = layer(y, mask)
        return x + self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class SwinIR(nn.Module):
    """SwinIR (Liang et al. 2021), lightweight form: conv, residual Swin blocks, conv + PixelShuffle out.

    The input is mirror-padded to a multiple of the window and the output cropped back, so any size works.

    Args:
        scale: upscaling factor, 1 to 4 (1: a conv out, no shuffle).
        channels: image channels.
        embed_dim: feature width; a multiple of ``heads``.
        depths: Swin layers in each residual Swin block.
        heads: attention heads in every layer.
        window: attention window side in pixels.
        mlp_ratio: MLP hidden width over ``embed_dim``.
        drop_path: stochastic depth rate of the last layer (linear from 0).
    """

    def __init__(
        self,
        scale: int = 1,
        channels: int = 3,
        embed_dim: int = 60,
        depths: tuple[int, ...] = (6, 6, 6, 6),
        heads: int = 6,
        window: int = 8,
        mlp_ratio: float = 2.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.scale, self.window = scale, window
        self.skip = Bicubic(scale)
        self.conv_first = conv3x3(channels, embed_dim)
        self.embed_norm = nn.LayerNorm(embed_dim)
        rates = torch.linspace(0, drop_path, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.stages = nn.ModuleList(
            RSTB(embed_dim, d, heads, window, mlp_ratio, rates[s : s + d]) for s, d in zip(starts, depths)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = conv3x3(embed_dim, embed_dim)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.tail = pixel_shuffle_tail(embed_dim, channels, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        feat = self.conv_first(pad_to_multiple(x, self.window))
        t = self.embed_norm(feat.permute(0, 2, 3, 1))
        # One mask for every shifted layer: it depends only on the padded size.
        mask = shifted_window_mask(t.shape[1], t.shape[2], self.window, self.window // 2, x.device)
        for stage in self.stages:
            t = stage(t, mask)
        feat = feat + self.conv_after_body(self.norm(t).permute(0, 3, 1, 2))
        return self.skip(x) + self.tail(feat)[..., : h * self.scale, : w * self.scale]


# ------------------------------------------------------------------------------------------------ Restormer


class MDTA(nn.Module):
    """Multi-Dconv head Transposed Attention (Restormer): attention across channels, linear in the pixel count."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dw = nn.Conv2d(dim * 3, dim * 3, 3, 1, 1, groups=dim * 3, bias=False)
        self.proj = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        # Unit-length queries and keys keep the HW-long dot products bounded at any image size.
        attn = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)) * self.temperature
        return self.proj((attn.softmax(-1) @ v).reshape(b, c, h, w))


class GDFN(nn.Module):
    """Gated-Dconv Feed-forward Network (Restormer): a GELU gate on depthwise-convolved features."""

    def __init__(self, dim: int, ffn_factor: float) -> None:
        super().__init__()
        hidden = int(dim * ffn_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, 1, 1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, 1)
        return self.project_out(F.gelu(gate) * value)


class RestormerBlock(nn.Module):
    """Pre-norm MDTA and GDFN with residuals, on ``[B, C, H, W]``."""

    def __init__(self, dim: int, heads: int, ffn_factor: float) -> None:
        super().__init__()
        self.norm1, self.attn = LayerNorm2d(dim, eps=1e-5), MDTA(dim, heads)
        self.norm2, self.ffn = LayerNorm2d(dim, eps=1e-5), GDFN(dim, ffn_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class Restormer(nn.Module):
    """Restormer (Zamir et al. 2022) cut to two levels: encoder, half-resolution latent, decoder, refinement.

    At ``scale > 1`` it works at the input resolution and ends in a conv + PixelShuffle, as SwinIR does.
    The input is mirror-padded to even sizes for the PixelUnshuffle and the output cropped back.

    Args:
        scale: upscaling factor, 1 to 4.
        channels: image channels.
        dim: feature width at full resolution (twice that at half resolution and in the decoder).
        blocks: Restormer blocks in the encoder, the latent and the decoder.
        heads: attention heads at full and at half resolution.
        refine: refinement blocks after the decoder.
        ffn_factor: GDFN hidden width over the block width.
    """

    def __init__(
        self,
        scale: int = 1,
        channels: int = 3,
        dim: int = 24,
        blocks: tuple[int, int, int] = (2, 3, 2),
        heads: tuple[int, int] = (1, 2),
        refine: int = 1,
        ffn_factor: float = 2.66,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.skip = Bicubic(scale)

        def stage(width: int, n: int, n_heads: int) -> nn.Sequential:
            return nn.Sequential(*[RestormerBlock(width, n_heads, ffn_factor) for _ in range(n)])

        self.embed = conv3x3(channels, dim, bias=False)
        self.encoder = stage(dim, blocks[0], heads[0])
        self.down = nn.Sequential(conv3x3(dim, dim // 2, bias=False), nn.PixelUnshuffle(2))
        self.latent = stage(dim * 2, blocks[1], heads[1])
        self.up = nn.Sequential(conv3x3(dim * 2, dim * 4, bias=False), nn.PixelShuffle(2))
        self.decoder = stage(dim * 2, blocks[2], heads[0])
        self.refine = stage(dim * 2, refine, heads[0])
        self.tail = pixel_shuffle_tail(dim * 2, channels, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        enc = self.encoder(self.embed(pad_to_multiple(x, 2)))
        dec = self.decoder(torch.cat([self.up(self.latent(self.down(enc))), enc], 1))
        return self.skip(x) + self.tail(self.refine(dec))[..., : h * self.scale, : w * self.scale]
