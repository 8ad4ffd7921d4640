"""RT-DETR's training-only parts: contrastive denoising queries, Hungarian matching and the set losses.

Boxes here are normalised ``cxcywh`` (fractions of the image width and height), as the decoder
predicts them. :func:`rtdetr_loss` sums, with the weights of RT-DETR (Lv et al. 2023):

- every decoder layer's queries, each matched one-to-one to the objects by
  :func:`hungarian_match` (focal class cost + L1 + GIoU, weights 2 / 5 / 2);
- the encoder's top-K proposals (the initial queries), matched the same way;
- every decoder layer's denoising queries: noised copies of the objects whose match is known
  (a positive reconstructs its object, a negative, noised further, must be background);

each term being a varifocal (IoU-aware) classification loss (weight 1) + L1 (5) + GIoU (2),
normalised by the number of objects in the batch (times the denoising groups for denoising terms).

Example:
    >>> import torch
    >>> logits = torch.tensor([[[4.0, -4.0], [-4.0, -4.0]]])  # query 0 says class 0, query 1 nothing
    >>> boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]]])
    >>> [(q.tolist(), t.tolist()) for q, t in hungarian_match(logits, boxes, [torch.tensor([0])],
    ...                                                      [torch.tensor([[0.1, 0.1, 0.1, 0.1]])])]
    [([1], [0])]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_convert, generalized_box_iou

__all__ = ["denoising_queries", "hungarian_match", "inverse_sigmoid", "paired_iou", "rtdetr_loss", "set_loss"]


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """``logit(x)`` with ``x`` clamped to ``[eps, 1 - eps]`` (box coordinates live in logit space between layers).

    Example:
        >>> inverse_sigmoid(torch.tensor([0.5, 0.0])).tolist()[0]
        0.0
    """
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def _xyxy(b: Tensor) -> Tensor:
    return box_convert(b, "cxcywh", "xyxy")


def denoising_queries(
    labels: Sequence[Tensor], boxes: Sequence[Tensor], num_classes: int, num_denoising: int, label_noise: float,
    box_noise: float, label_embed: nn.Embedding, num_queries: int,
) -> tuple[Tensor, Tensor, Tensor, dict] | None:  # fmt: skip
    """Contrastive denoising groups (DN-DETR / DINO, as RT-DETR builds them) for one batch.

    Each group holds every object twice: a positive (box corners moved by up to half its size
    times ``box_noise``, label flipped with probability ``label_noise / 2``) that must reconstruct
    the object, and a negative (moved by 1-2 times as much) that must say "background". Images
    with fewer objects than the batch's most are padded with queries of the padding label.

    Args:
        labels, boxes: per image ``[N]`` labels and ``[N, 4]`` normalised cxcywh boxes.
        num_denoising: about how many denoising queries in all (groups = this // most objects).
        label_embed: ``Embedding(num_classes + 1, d)``; index ``num_classes`` is the padding.
        num_queries: the matching queries that follow the denoising ones in the decoder.

    Returns:
        ``None`` when the batch has no object; else the query contents ``[B, D, d]``, reference
        boxes in logit space ``[B, D, 4]``, the self-attention mask ``[D + Q, D + Q]`` (True:
        blocked; matching queries cannot see denoising ones, groups cannot see each other) and
        ``{"positive": per image query indices, "groups": int}`` for the loss.

    Example:
        >>> emb = torch.nn.Embedding(3, 8)
        >>> out = denoising_queries([torch.tensor([0, 1]), torch.tensor([1])], [torch.rand(2, 4), torch.rand(1, 4)],
        ...                         2, 4, 0.5, 1.0, emb, num_queries=5)
        >>> out[0].shape, out[2].shape, out[3]["groups"], [p.tolist() for p in out[3]["positive"]]
        (torch.Size([2, 8, 8]), torch.Size([13, 13]), 2, [[0, 1, 4, 5], [0, 4]])
    """
    counts = [len(lab) for lab in labels]
    most = max(counts, default=0)
    if most == 0:
        return None
    groups = max(1, num_denoising // most)
    b, device = len(labels), label_embed.weight.device
    cls = torch.full((b, most), num_classes, dtype=torch.long, device=device)
    box = torch.zeros(b, most, 4, device=device)
    real = torch.zeros(b, most, dtype=torch.bool, device=device)
    for i, (lab, bx) in enumerate(zip(labels, boxes)):
        cls[i, : len(lab)], box[i, : len(lab)], real[i, : len(lab)] = lab, bx, True
    # layout per group: [positives of every object slot, negatives of every slot]
    cls, box, real = cls.repeat(1, 2 * groups), box.repeat(1, 2 * groups, 1), real.repeat(1, 2 * groups)
    negative = torch.zeros(most * 2, dtype=torch.bool, device=device)
    negative[most:] = True
    negative = negative.repeat(groups)[None, :, None].float()  # [1, D, 1]
    positive = [torch.nonzero(real[i] & (negative[0, :, 0] == 0)).squeeze(1) for i in range(b)]
    if label_noise > 0:
        flip = (torch.rand(cls.shape, device=device) < label_noise * 0.5) & real
        cls = torch.where(flip, torch.randint_like(cls, 0, num_classes), cls)
    if box_noise > 0:
        corners = _xyxy(box)
        half = box[..., 2:].repeat(1, 1, 2) * 0.5 * box_noise
        sign = torch.randint_like(box, 0, 2) * 2.0 - 1.0
        part = torch.rand_like(box) + negative  # negatives move by 1-2 half sizes, positives by 0-1
        box = box_convert((corners + sign * part * half).clamp(0.0, 1.0), "xyxy", "cxcywh")
    d = cls.shape[1]
    mask = torch.zeros(d + num_queries, d + num_queries, dtype=torch.bool, device=device)
    mask[d:, :d] = True
    for g in range(groups):
        s, e = most * 2 * g, most * 2 * (g + 1)
        mask[s:e, :s] = True
        mask[s:e, e:d] = True
    return label_embed(cls), inverse_sigmoid(box), mask, {"positive": positive, "groups": groups}


@torch.no_grad()
def hungarian_match(
    logits: Tensor, boxes: Tensor, labels: Sequence[Tensor], gt_boxes: Sequence[Tensor], cls_weight: float = 2.0,
    l1_weight: float = 5.0, giou_weight: float = 2.0, alpha: float = 0.25, gamma: float = 2.0,
) -> list[tuple[Tensor, Tensor]]:  # fmt: skip
    """One-to-one query-object matching per image (scipy's ``linear_sum_assignment``).

    Cost: ``cls_weight`` x focal class cost (Deformable DETR's: the focal loss of calling the
    query the object's class minus that of calling it background) + ``l1_weight`` x L1 distance
    of the cxcywh boxes - ``giou_weight`` x GIoU.

    Args:
        logits: ``[B, Q, C]``; boxes: ``[B, Q, 4]`` normalised cxcywh.
        labels, gt_boxes: per image ``[N]`` and ``[N, 4]`` normalised cxcywh.

    Returns:
        Per image ``(query indices, object indices)``, int64, ``min(Q, N)`` long, sorted by query.
    """
    from scipy.optimize import linear_sum_assignment

    out = []
    for lg, bx, lab, gt in zip(logits.float(), boxes.float(), labels, gt_boxes):
        if len(lab) == 0:
            empty = torch.zeros(0, dtype=torch.long)
            out.append((empty, empty.clone()))
            continue
        p = lg.sigmoid()[:, lab]  # [Q, N]
        pos = alpha * (1 - p) ** gamma * -(p + 1e-8).log()
        neg = (1 - alpha) * p**gamma * -(1 - p + 1e-8).log()
        cost = cls_weight * (pos - neg) + l1_weight * torch.cdist(bx, gt, p=1)
        cost = cost - giou_weight * generalized_box_iou(_xyxy(bx), _xyxy(gt))
        q, t = linear_sum_assignment(cost.cpu().numpy())
        out.append((torch.as_tensor(q, dtype=torch.long), torch.as_tensor(t, dtype=torch.long)))
    return out


def paired_iou(a: Tensor, b: Tensor, eps: float = 1e-7) -> tuple[Tensor, Tensor]:
    """IoU and GIoU of row i of ``a`` with row i of ``b`` (xyxy ``[N, 4]``): torchvision's are pairwise, N x N.

    Example:
        >>> iou, giou = paired_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 0, 3, 2]]))
        >>> round(iou.item(), 4), round(giou.item(), 4)
        (0.3333, 0.3333)
    """
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    inter = (torch.min(a[:, 2:], b[:, 2:]) - torch.max(a[:, :2], b[:, :2])).clamp(min=0).prod(1)
    union = area_a + area_b - inter
    iou = inter / (union + eps)
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).clamp(min=0).prod(1)
    return iou, iou - (hull - union) / (hull + eps)


def set_loss(
    logits: Tensor, boxes: Tensor, labels: Sequence[Tensor], gt_boxes: Sequence[Tensor],
    matches: Sequence[tuple[Tensor, Tensor]], norm: float, alpha: float = 0.75, gamma: float = 2.0,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``(varifocal, L1, GIoU)`` of one set of queries given their matches, each summed and divided by ``norm``.

    Varifocal loss (Zhang et al. 2021): a matched query's target for its object's class is its
    IoU with the object (so the score ranks boxes by quality); every other (query, class) pair is
    a negative weighted by ``alpha * p ** gamma``.

    Example:
        >>> logits, boxes = torch.zeros(1, 2, 2), torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]]])
        >>> vfl, l1, giou = set_loss(logits, boxes, [torch.tensor([1])], [torch.tensor([[0.5, 0.5, 0.2, 0.2]])],
        ...                          [(torch.tensor([0]), torch.tensor([0]))], norm=1.0)
        >>> round(vfl.item(), 3), l1.item(), round(giou.item(), 4)  # 0.693 for the exact match + 3 negatives at p = 0.5
        (1.083, 0.0, 0.0)
    """
    logits, boxes = logits.float(), boxes.float()
    bi = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(matches)]).to(logits.device)
    qi = torch.cat([q for q, _ in matches]).to(logits.device)
    tgt_lab = torch.cat([lab[t.to(lab.device)] for lab, (_, t) in zip(labels, matches)]).to(logits.device)
    tgt_box = torch.cat([gt[t.to(gt.device)] for gt, (_, t) in zip(gt_boxes, matches)]).to(logits.device).float()
    target = torch.zeros_like(logits)
    if len(qi):
        src = boxes[bi, qi]
        l1 = F.l1_loss(src, tgt_box, reduction="sum") / norm
        iou, giou = paired_iou(_xyxy(src), _xyxy(tgt_box))
        giou = (1 - giou).sum() / norm
        target[bi, qi, tgt_lab] = iou.detach()
    else:
        l1 = giou = boxes.sum() * 0.0  # keeps the graph whole for DDP
    hit = torch.zeros_like(logits)
    if len(qi):
        hit[bi, qi, tgt_lab] = 1.0
    p = logits.sigmoid().detach()
    weight = alpha * p**gamma * (1 - hit) + target
    vfl = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum") / norm
    return vfl, l1, giou


def rtdetr_loss(
    raw: dict, labels: Sequence[Tensor], gt_boxes: Sequence[Tensor], cls_weight: float = 1.0, l1_weight: float = 5.0,
    giou_weight: float = 2.0, match_weights: tuple[float, float, float] = (2.0, 5.0, 2.0),
) -> dict[str, Tensor]:  # fmt: skip
    """The weighted sum of the set losses of every decoder layer, the encoder proposals and the denoising queries.

    Args:
        raw: the training outputs of :class:`~pixelmind.tasks.detect.rtdetr.RTDETR`: ``logits``
            ``[L, B, Q, C]``, ``boxes`` ``[L, B, Q, 4]``, ``enc_logits`` / ``enc_boxes`` ``[B, Q, .]``,
            and when denoising ran ``dn_logits`` / ``dn_boxes`` ``[L, B, D, .]`` and ``dn``.
        labels, gt_boxes: per image ``[N]`` and ``[N, 4]`` normalised cxcywh; N may be 0.

    Returns:
        ``{"loss", "loss_cls", "loss_box", "loss_giou"}``: the total, and the last decoder layer's
        unweighted varifocal, L1 and GIoU terms (the predictions the model returns in eval mode).
    """
    device = raw["logits"].device
    labels = [lab.to(device) for lab in labels]
    gt_boxes = [b.to(device).float() for b in gt_boxes]
    n_obj = max(float(sum(len(lab) for lab in labels)), 1.0)
    weights = (cls_weight, l1_weight, giou_weight)
    total = raw["logits"].sum() * 0.0
    last = None
    sets = [(lg, bx) for lg, bx in zip(raw["logits"], raw["boxes"])] + [(raw["enc_logits"], raw["enc_boxes"])]
    for i, (lg, bx) in enumerate(sets):
        matches = hungarian_match(lg, bx, labels, gt_boxes, *match_weights)
        terms = set_loss(lg, bx, labels, gt_boxes, matches, n_obj)
        total = total + sum(w * t for w, t in zip(weights, terms))
        if i == len(raw["logits"]) - 1:
            last = terms
    if "dn" in raw:
        dn = raw["dn"]
        matches = [(pos, torch.arange(len(lab), device=device).repeat(dn["groups"]))
                   for pos, lab in zip(dn["positive"], labels)]  # fmt: skip
        for lg, bx in zip(raw["dn_logits"], raw["dn_boxes"]):
            terms = set_loss(lg, bx, labels, gt_boxes, matches, n_obj * dn["groups"])
            total = total + sum(w * t for w, t in zip(weights, terms))
    return {"loss": total, "loss_cls": last[0].detach(), "loss_box": last[1].detach(), "loss_giou": last[2].detach()}
