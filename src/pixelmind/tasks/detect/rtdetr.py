"""An RT-DETR-style detector (Lv et al. 2023, "DETRs Beat YOLOs on Real-time Object Detection").

timm backbone (strides 8, 16, 32, random init) -> hybrid encoder (AIFI: one transformer encoder
layer with a 2D sin-cos position embedding on the stride-32 map; CCFM: a top-down then bottom-up
fusion of the three levels with CSP blocks) -> query selection (the top-K encoder tokens by class
score give the first queries and reference boxes) -> a decoder of L layers of self-attention and
multi-scale deformable cross-attention (pure PyTorch, :func:`torch.nn.functional.grid_sample`,
so ONNX exports it) with iterative box refinement. Training adds contrastive denoising queries
and one-to-one Hungarian matching with varifocal + L1 + GIoU losses on every decoder layer and on
the encoder proposals (:mod:`pixelmind.tasks.detect.rtdetr_loss`).

In eval mode ``forward(images)`` returns ``(cls_logits [B, K, C], boxes [B, K, 4])`` exactly like
the CNN detector (xyxy input pixels; the sigmoid of a logit is an IoU-aware score), so the same
postprocess and ONNX packing apply; NMS is not needed by a set predictor but removes little.
``K = min(num_queries, tokens)``: a 64 px image has 8x8 + 4x4 + 2x2 = 84 tokens.

Simplified against the paper: plain conv-BN-SiLU blocks in CCFM instead of RepVGG blocks, the
decoder's box refinement uses the detached reference of the previous layer for every layer's loss
(Deformable DETR's, not RT-DETR's "look forward twice"), anchors are ``anchor_size`` strides wide
(RT-DETR's 0.05 x 2^level of the image is 4 strides at 640 px) and never masked as invalid, no
separate decoder input projection, no learning-rate split for the backbone.

Measured on the built-in ``shapes`` (64 px, d4 flips, val mAP on the 200 val images, score
threshold 0.001), default model (7.41M parameters for 3 classes) with ``num_denoising=32``, batch
16, AdamW (lr 1e-3, weight decay 1e-4, gradient norm clipped at 1), 100 warm-up steps, cosine to 5%
over 420 s of process CPU time on one thread (a shared core; data generation and evaluation not
counted): mAP50 0.30 / 0.43 / 0.52 (mAP 0.13 / 0.26 / 0.35) after 141 / 281 / 420 s (123 / 245 / 367
steps). A training step costs 1.24-1.29 CPU s against ``pmdet_s``'s 0.31-0.35 s (batch 16, 64 px:
most of it the decoder's grid_sample and its backward), so per second it learns ``shapes`` about
3x slower than the CNN (mAP50 0.83 at 240 s); per step it is close to it.

Example:
    >>> import torch
    >>> m = rtdetr(3, **TINY_CFG).eval()
    >>> cls_logits, boxes = m(torch.rand(2, 3, 64, 96))
    >>> cls_logits.shape, boxes.shape  # K = num_queries = 20 of the 8x12 + 4x6 + 2x3 tokens
    (torch.Size([2, 20, 3]), torch.Size([2, 20, 4]))
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_convert

from pixelmind.errors import ConfigError
from pixelmind.tasks.detect.rtdetr_loss import denoising_queries, inverse_sigmoid, rtdetr_loss

__all__ = ["RTDETR", "TINY_CFG", "MSDeformAttn", "register", "rtdetr"]

STRIDES = (8, 16, 32)


# ------------------------------------------------------------------------------------------ blocks


class ConvBNAct(nn.Sequential):
    """k x k convolution (same padding), BatchNorm, SiLU."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, act: bool = True) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.SiLU(inplace=True) if act else nn.Identity())  # fmt: skip


class CSPBlock(nn.Module):
    """CCFM's fusion block (RT-DETR's RepC3 with plain convolutions): two 1x1 branches, one through ``depth`` 3x3s, summed."""

    def __init__(self, cin: int, cout: int, depth: int) -> None:
        super().__init__()
        self.a, self.b = ConvBNAct(cin, cout, 1), ConvBNAct(cin, cout, 1)
        self.m = nn.Sequential(*(ConvBNAct(cout, cout) for _ in range(depth)))

    def forward(self, x: Tensor) -> Tensor:
        return self.m(self.a(x)) + self.b(x)


def mlp(din: int, hidden: int, dout: int, layers: int) -> nn.Sequential:
    dims = [din] + [hidden] * (layers - 1)
    mods: list[nn.Module] = []
    for a, b in zip(dims, dims[1:]):
        mods += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    return nn.Sequential(*mods, nn.Linear(dims[-1], dout))


def sincos_2d(feat: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """2D sin-cos position embedding ``[1, h * w, dim]`` of the cells of ``feat [B, C, h, w]`` (row-major).

    The grid comes from cumulative sums over ones shaped like the map, not from ``arange``, so that
    an ONNX export keeps h and w dynamic.

    Example:
        >>> sincos_2d(torch.zeros(1, 8, 2, 3), 16).shape
        torch.Size([1, 6, 16])
    """
    ones = torch.ones_like(feat[0, 0])
    xs, ys = (ones.cumsum(1) - 1).flatten(), (ones.cumsum(0) - 1).flatten()
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=feat.dtype, device=feat.device) / quarter)
    ox, oy = xs[:, None] * omega[None], ys[:, None] * omega[None]
    return torch.cat([ox.sin(), ox.cos(), oy.sin(), oy.cos()], 1)[None]


class Attention(nn.Module):
    """Multi-head attention over ``[B, N, dim]`` sequences; ``mask [Nq, Nk]`` True blocks a pair."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        q, k, v = (lin(t).unflatten(-1, (self.heads, -1)).transpose(1, 2) for lin, t in ((self.q, q), (self.k, k), (self.v, v)))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else ~mask)
        return self.out(out.transpose(1, 2).flatten(2))


class EncoderLayer(nn.Module):
    """AIFI: a post-norm transformer encoder layer (position added to queries and keys)."""

    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.attn = Attention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        x = self.norm1(x + self.attn(x + pos, x + pos, x))
        return self.norm2(x + self.ffn(x))


class HybridEncoder(nn.Module):
    """Input projections, AIFI on the stride-32 level, then CCFM (top-down and bottom-up fusion)."""

    def __init__(self, in_channels: list[int], dim: int, heads: int, ffn: int, depth: int) -> None:
        super().__init__()
        n = len(in_channels)
        self.dim = dim
        self.proj = nn.ModuleList(ConvBNAct(c, dim, 1, act=False) for c in in_channels)
        self.aifi = EncoderLayer(dim, heads, ffn)
        self.lateral = nn.ModuleList(ConvBNAct(dim, dim, 1) for _ in range(n - 1))
        self.fpn = nn.ModuleList(CSPBlock(2 * dim, dim, depth) for _ in range(n - 1))
        self.down = nn.ModuleList(ConvBNAct(dim, dim, 3, 2) for _ in range(n - 1))
        self.pan = nn.ModuleList(CSPBlock(2 * dim, dim, depth) for _ in range(n - 1))

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        x = [p(f) for p, f in zip(self.proj, feats)]
        top = x[-1]
        tokens = top.flatten(2).transpose(1, 2)
        x[-1] = self.aifi(tokens, sincos_2d(top, self.dim)).transpose(1, 2).reshape_as(top)
        # top-down: inner[0] is always the finest level fused so far
        inner = [x[-1]]
        for j, i in enumerate(range(len(x) - 1, 0, -1)):
            high = self.lateral[j](inner[0])
            inner[0] = high
            inner.insert(0, self.fpn[j](torch.cat([F.interpolate(high, scale_factor=2.0, mode="nearest"), x[i - 1]], 1)))
        outs = [inner[0]]
        for j in range(len(x) - 1):
            outs.append(self.pan[j](torch.cat([self.down[j](outs[-1]), inner[j + 1]], 1)))
        return outs


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (Zhu et al. 2021) in pure PyTorch, box references.

    Each query samples ``points`` locations per head and level around its reference box
    (offsets scaled by half the box size, as RT-DETR does with 4-d references), bilinearly with
    :func:`torch.nn.functional.grid_sample`, and mixes them with softmax weights over levels x points.
    Values stay per-level feature maps (a 1x1 projection), so no split by level sizes is traced
    and an ONNX export keeps H and W dynamic.

    Example:
        >>> attn = MSDeformAttn(16, heads=2, levels=2, points=3)
        >>> maps = [torch.randn(1, 16, 8, 8), torch.randn(1, 16, 4, 4)]
        >>> attn(torch.randn(1, 5, 16), torch.rand(1, 5, 4), maps).shape
        torch.Size([1, 5, 16])
    """

    def __init__(self, dim: int, heads: int, levels: int, points: int) -> None:
        super().__init__()
        self.heads, self.levels, self.points = heads, levels, points
        self.offsets = nn.Linear(dim, heads * levels * points * 2)
        self.weights = nn.Linear(dim, heads * levels * points)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        # Deformable DETR's init: head h starts looking along direction 2 pi h / heads, point p at p + 1
        nn.init.zeros_(self.offsets.weight)
        theta = torch.arange(heads, dtype=torch.float32) * (2 * math.pi / heads)
        grid = torch.stack([theta.cos(), theta.sin()], -1)
        grid = (grid / grid.abs().amax(-1, keepdim=True)).view(heads, 1, 1, 2).repeat(1, levels, points, 1)
        grid *= torch.arange(1, points + 1, dtype=torch.float32).view(1, 1, points, 1)
        with torch.no_grad():
            self.offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.weights.weight)
        nn.init.zeros_(self.weights.bias)
        for lin in (self.value, self.out):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: Tensor, ref: Tensor, maps: list[Tensor]) -> Tensor:
        """``query [B, Q, d]``, ``ref [B, Q, 4]`` normalised cxcywh, ``maps``: per level ``[B, d, h, w]`` -> ``[B, Q, d]``."""
        h, lv, pt = self.heads, self.levels, self.points
        off = self.offsets(query).unflatten(-1, (h, lv, pt, 2))  # [B, Q, H, L, P, 2]
        w = self.weights(query).unflatten(-1, (h, lv * pt)).softmax(-1).unflatten(-1, (lv, pt))  # [B, Q, H, L, P]
        r = ref[:, :, None, None, None]
        loc = (r[..., :2] + off / pt * r[..., 2:] * 0.5).transpose(1, 2).flatten(0, 1)  # [B*H, Q, L, P, 2]
        w = w.transpose(1, 2).flatten(0, 1)  # [B*H, Q, L, P]
        out = 0
        for lvl, m in enumerate(maps):
            v = F.conv2d(m, self.value.weight[:, :, None, None], self.value.bias)
            v = v.unflatten(1, (h, -1)).flatten(0, 1)  # [B*H, d/H, h, w]
            out = out + _sample(v, loc[:, :, lvl], w[:, :, lvl])
        return self.out(out.unflatten(0, (-1, h)).flatten(1, 2).transpose(1, 2))


def _sample(v: Tensor, loc: Tensor, weight: Tensor) -> Tensor:
    """``sum_p weight_p * bilinear(v, loc_p)``: ``v [N, c, h, w]``, ``loc [N, Q, P, 2]`` in [0, 1], ``weight [N, Q, P]`` -> ``[N, c, Q]``."""
    s = F.grid_sample(v, 2 * loc - 1, mode="bilinear", padding_mode="zeros", align_corners=False)  # [N, c, Q, P]
    return (s * weight[:, None]).sum(-1)


class DecoderLayer(nn.Module):
    """Self-attention among queries, deformable cross-attention to the encoder maps, FFN; post-norm."""

    def __init__(self, dim: int, heads: int, ffn: int, levels: int, points: int) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.cross_attn = MSDeformAttn(dim, heads, levels, points)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(inplace=True), nn.Linear(ffn, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: Tensor, pos: Tensor, ref: Tensor, maps: list[Tensor], mask: Tensor | None) -> Tensor:
        q = x + pos
        x = self.norm1(x + self.self_attn(q, q, x, mask))
        x = self.norm2(x + self.cross_attn(x + pos, ref, maps))
        return self.norm3(x + self.ffn(x))


# ------------------------------------------------------------------------------------------ model


class RTDETR(nn.Module):
    """RT-DETR-style detector: backbone, hybrid encoder, top-K query selection, deformable decoder.

    ``forward(images [B, 3, H, W], targets=None)``, H and W multiples of 32. Eval mode (or no
    targets in eval): ``(cls_logits [B, K, C], boxes [B, K, 4] xyxy input pixels)``. Training mode:
    a dict of every layer's normalised cxcywh predictions, the encoder proposals and, when
    ``targets`` hold objects, the denoising queries' predictions, which :meth:`loss` consumes.

    Args:
        num_classes: object classes (no background class).
        backbone: a timm model name with a feature pyramid reaching stride 32; random weights.
        hidden_dim: channels of the encoder and decoder (divisible by ``num_heads`` and by 4).
        num_heads: attention heads (encoder and decoder).
        enc_ffn_dim, dec_ffn_dim: feed-forward widths of AIFI and of the decoder layers.
        fusion_depth: 3x3 convolutions in each CCFM block.
        dec_layers: decoder layers (each refines the boxes and is supervised).
        num_points: sampling points per head and level of the deformable attention.
        num_queries: top-K encoder tokens that become queries (fewer when the image has fewer tokens).
        num_denoising: about how many denoising queries per batch in training (0: none).
        label_noise, box_noise: denoising noise (label flip probability x 2, box shift in half sizes).
        anchor_size: side of the initial box of each encoder token, in strides of its level.
        in_channels: image channels.
        cls_weight, l1_weight, giou_weight: loss weights; match_cls, match_l1, match_giou: matching costs.
    """

    wants_targets = True

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet10t",
        hidden_dim: int = 128,
        num_heads: int = 8,
        enc_ffn_dim: int = 512,
        dec_ffn_dim: int = 512,
        fusion_depth: int = 1,
        dec_layers: int = 3,
        num_points: int = 4,
        num_queries: int = 300,
        num_denoising: int = 100,
        label_noise: float = 0.5,
        box_noise: float = 1.0,
        anchor_size: float = 4.0,
        in_channels: int = 3,
        cls_weight: float = 1.0,
        l1_weight: float = 5.0,
        giou_weight: float = 2.0,
        match_cls: float = 2.0,
        match_l1: float = 5.0,
        match_giou: float = 2.0,
    ) -> None:
        super().__init__()
        import timm

        self.num_classes, self.num_queries, self.anchor_size = num_classes, num_queries, anchor_size
        self.num_denoising, self.label_noise, self.box_noise = num_denoising, label_noise, box_noise
        self.strides = STRIDES
        self.loss_cfg = dict(cls_weight=cls_weight, l1_weight=l1_weight, giou_weight=giou_weight,
                             match_weights=(match_cls, match_l1, match_giou))  # fmt: skip
        try:
            self.backbone = timm.create_model(
                backbone, pretrained=False, features_only=True, out_indices=(-3, -2, -1), in_chans=in_channels
            )
        except (RuntimeError, ValueError, TypeError, AssertionError, KeyError) as err:
            raise ConfigError(f"backbone {backbone!r}: timm cannot build it as a feature pyramid: {err}") from None
        reductions = self.backbone.feature_info.reduction()
        if list(reductions) != list(STRIDES):
            raise ConfigError(f"backbone {backbone!r}: its last three feature levels have strides {reductions}; "
                              f"the detector needs {list(STRIDES)} (a CNN such as resnet18, not a plain ViT)")  # fmt: skip
        d = hidden_dim
        self.encoder = HybridEncoder(self.backbone.feature_info.channels(), d, num_heads, enc_ffn_dim, fusion_depth)
        # query selection: per token class scores and a box relative to its anchor
        self.enc_output = nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d))
        self.enc_score = nn.Linear(d, num_classes)
        self.enc_box = mlp(d, d, 4, 3)
        self.label_embed = nn.Embedding(num_classes + 1, d, padding_idx=num_classes)
        self.query_pos = mlp(4, 2 * d, d, 2)
        self.layers = nn.ModuleList(DecoderLayer(d, num_heads, dec_ffn_dim, len(STRIDES), num_points) for _ in range(dec_layers))
        self.score_heads = nn.ModuleList(nn.Linear(d, num_classes) for _ in range(dec_layers))
        self.box_heads = nn.ModuleList(mlp(d, d, 4, 3) for _ in range(dec_layers))
        prior = -math.log((1 - 0.01) / 0.01)  # every score starts at 0.01 (RetinaNet's prior)
        for head in [self.enc_score, *self.score_heads]:
            nn.init.constant_(head.bias, prior)
        for head in [self.enc_box, *self.box_heads]:  # boxes start at their anchor / reference
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def _anchors(self, maps: list[Tensor], wh: Tensor) -> Tensor:
        """Logit-space cxcywh anchors ``[1, N, 4]``: each token's cell centre and ``anchor_size`` strides."""
        out = []
        for m, stride in zip(maps, self.strides):
            ones = torch.ones_like(m[0, 0])
            cx = (ones.cumsum(1) - 0.5) / ones.sum(1, keepdim=True)
            cy = (ones.cumsum(0) - 0.5) / ones.sum(0, keepdim=True)
            size = (self.anchor_size * stride / wh).clamp(max=0.9)  # [2]: (w, h) fractions of the image
            out.append(torch.stack([cx, cy, ones * size[0], ones * size[1]], -1).flatten(0, 1))
        return inverse_sigmoid(torch.cat(out, 0))[None]

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None):
        ones = torch.ones_like(images[0, 0])
        wh = torch.stack([ones[0].sum(), ones[:, 0].sum()])  # (W, H) as tensors: dynamic in an ONNX export
        maps = self.encoder(self.backbone(images))
        memory = torch.cat([m.flatten(2) for m in maps], 2).transpose(1, 2)  # [B, N, d]
        mem = self.enc_output(memory)
        enc_logits = self.enc_score(mem)
        enc_unact = self.enc_box(mem) + self._anchors(maps, wh)
        k = min(self.num_queries, memory.shape[1])
        idx = enc_logits.amax(-1).topk(k, dim=1).indices  # [B, K]
        ref_unact = enc_unact.gather(1, idx[..., None].expand(-1, -1, 4))
        query = mem.gather(1, idx[..., None].expand(-1, -1, mem.shape[-1])).detach()
        train = self.training
        dn = None
        if train and targets is not None and self.num_denoising > 0:
            labels, boxes = _normalised(targets, wh)
            dn = denoising_queries(labels, boxes, self.num_classes, self.num_denoising, self.label_noise,
                                   self.box_noise, self.label_embed, k)  # fmt: skip
        mask = None
        n_dn = 0
        ref = ref_unact.detach()
        if dn is not None:
            query, ref, mask = torch.cat([dn[0], query], 1), torch.cat([dn[1], ref], 1), dn[2]
            n_dn = dn[0].shape[1]
        ref = ref.sigmoid()
        all_logits, all_boxes = [], []
        for i, layer in enumerate(self.layers):
            query = layer(query, self.query_pos(ref), ref, maps, mask)
            boxes = (self.box_heads[i](query) + inverse_sigmoid(ref)).sigmoid()
            if train or i == len(self.layers) - 1:
                all_logits.append(self.score_heads[i](query))
                all_boxes.append(boxes)
            ref = boxes.detach()
        if not train:
            xyxy = box_convert(all_boxes[-1], "cxcywh", "xyxy") * torch.cat([wh, wh])
            return all_logits[-1], xyxy
        logits, boxes = torch.stack(all_logits), torch.stack(all_boxes)
        raw = {"logits": logits[:, :, n_dn:], "boxes": boxes[:, :, n_dn:], "enc_logits": enc_logits.gather(1, idx[..., None].expand(-1, -1, self.num_classes)),
               "enc_boxes": ref_unact.sigmoid()}  # fmt: skip
        if dn is not None:
            raw.update(dn_logits=logits[:, :, :n_dn], dn_boxes=boxes[:, :, :n_dn], dn=dn[3])
        return raw

    def loss(self, raw_outputs, targets: list[dict[str, Tensor]], image_size: tuple[int, int]) -> dict[str, Tensor]:
        """``{"loss", "loss_cls", "loss_box", "loss_giou"}`` of training-mode outputs for an ``(H, W)`` batch.

        ``targets`` holds per image ``{"boxes": [N, 4] xyxy pixels, "labels": [N] 0-based}``; N may
        be 0. See :func:`~pixelmind.tasks.detect.rtdetr_loss.rtdetr_loss`.
        """
        if not isinstance(raw_outputs, dict):
            raise ValueError("RT-DETR's loss needs the training-mode outputs: call model.train() and model(images, targets)")
        h, w = image_size
        wh = torch.tensor([float(w), float(h)], device=raw_outputs["logits"].device)
        labels, boxes = _normalised(targets, wh)
        return rtdetr_loss(raw_outputs, labels, boxes, **self.loss_cfg)


def _normalised(targets: list[dict[str, Tensor]], wh: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Per image labels and cxcywh boxes as fractions of the image (W, H)."""
    scale = torch.cat([wh, wh]).to(torch.float32)
    labels = [torch.as_tensor(t["labels"], device=wh.device).reshape(-1).long() for t in targets]
    boxes = [box_convert(torch.as_tensor(t["boxes"], dtype=torch.float32, device=wh.device).reshape(-1, 4), "xyxy", "cxcywh")
             / scale for t in targets]  # fmt: skip
    return labels, boxes


# ------------------------------------------------------------------------------------------ builder

_OPTIONS = set(inspect.signature(RTDETR.__init__).parameters) - {"self", "num_classes"}
_POSITIVE_INTS = ("hidden_dim", "num_heads", "enc_ffn_dim", "dec_ffn_dim", "dec_layers", "num_points", "num_queries", "in_channels")

#: keyword arguments for a tiny variant for tests: 116k parameters, 82k of them the test_efficientnet backbone
TINY_CFG: dict[str, Any] = dict(backbone="test_efficientnet", hidden_dim=16, num_heads=2, enc_ffn_dim=32, dec_ffn_dim=32,
                                dec_layers=2, num_points=2, num_queries=20, num_denoising=12)  # fmt: skip


def rtdetr(num_classes: int, **kwargs: Any) -> RTDETR:
    """RT-DETR-style detector (ResNet-10-T backbone, 128 channels, 3 decoder layers, 300 queries by default).

    Raises:
        ConfigError: an unknown option (the message lists them) or a bad value.

    Example:
        >>> rtdetr(3, hidden_dim=30, num_heads=4)
        Traceback (most recent call last):
        ...
        pixelmind.errors.ConfigError: hidden_dim: 30 must be divisible by num_heads (4) and by 4
    """
    import timm

    bad = sorted(set(kwargs) - _OPTIONS)
    if bad:
        raise ConfigError(f"model 'rtdetr': unknown option(s) {', '.join(bad)}; choose from: {', '.join(sorted(_OPTIONS))}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes: must be a positive integer, got {num_classes!r}")
    backbone = kwargs.get("backbone", "resnet10t")
    if not isinstance(backbone, str) or not timm.is_model(backbone):
        raise ConfigError(f"backbone: {backbone!r} is not a timm model name (see timm.list_models())")
    for key in _POSITIVE_INTS:
        if key in kwargs and (not isinstance(kwargs[key], int) or kwargs[key] < 1):
            raise ConfigError(f"{key}: must be a positive integer, got {kwargs[key]!r}")
    for key in ("fusion_depth", "num_denoising"):
        if key in kwargs and (not isinstance(kwargs[key], int) or kwargs[key] < 0):
            raise ConfigError(f"{key}: must be a non-negative integer, got {kwargs[key]!r}")
    dim, heads = kwargs.get("hidden_dim", 128), kwargs.get("num_heads", 8)
    if dim % heads or dim % 4:
        raise ConfigError(f"hidden_dim: {dim} must be divisible by num_heads ({heads}) and by 4")
    if not 0 <= kwargs.get("label_noise", 0.5) <= 1:
        raise ConfigError(f"label_noise: must be in [0, 1], got {kwargs['label_noise']!r}")
    return RTDETR(num_classes, **kwargs)


def register(models, info: dict, model_info) -> None:
    """Register ``rtdetr`` in the detection registry: ``register(MODELS, _INFO, ModelInfo)`` from models.py."""
    info["rtdetr"] = model_info("cnn", max(STRIDES))
    models.register("rtdetr")(rtdetr)
