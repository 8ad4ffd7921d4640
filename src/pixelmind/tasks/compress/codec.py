"""Images to ``.pmc`` files and back: padding, the model's bitstreams and the file header.

Example:
    >>> import torch
    >>> from pixelmind.tasks.compress.models import build_codec
    >>> model = build_codec("mean_scale_s", N=8, M=12).eval()
    >>> model.update_tables()
    >>> image = torch.rand(3, 40, 50)
    >>> data = encode_image(model, image, model_name="mean_scale_s", quality=3)
    >>> decode_image(model, data).shape
    torch.Size([3, 40, 50])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pixelmind.errors import BitstreamError
from pixelmind.tasks.compress.bitstream import Header, pack, unpack, weights_fingerprint
from pixelmind.tasks.compress.models import LATENT_STRIDE


def pad_to_stride(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
    """Pad ``[C, H, W]`` bottom/right to multiples of ``stride`` by edge replication (cheaper to code than zeros)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % stride, (-w) % stride
    if pad_h or pad_w:
        x = F.pad(x[None], (0, pad_w, 0, pad_h), mode="replicate")[0]
    return x, pad_h, pad_w


def fingerprint(model: torch.nn.Module) -> bytes:
    """The model's 8-byte weights hash; cached until any parameter or buffer changes in place."""
    state = model.state_dict()
    versions = tuple(t._version for t in state.values())  # bumped by every in-place update (optimizer, copy_)
    cached = getattr(model, "_pmc_fingerprint", None)
    if cached is None or cached[0] != versions:
        cached = (versions, weights_fingerprint(state))
        model._pmc_fingerprint = cached
    return cached[1]


def encode_image(model: torch.nn.Module, image: torch.Tensor, model_name: str, quality: int) -> bytes:
    """Compress one image ``[3, H, W]`` in [0, 1] into the bytes of a ``.pmc`` file."""
    device = next(model.parameters()).device
    padded, pad_h, pad_w = pad_to_stride(image.to(device), model.stride)
    streams, _ = model.compress(padded[None])
    h, w = image.shape[-2:]
    header = Header(weights_hash=fingerprint(model), height=h, width=w, pad_bottom=pad_h, pad_right=pad_w,
                    quality=quality, channels=image.shape[0], model=model_name)  # fmt: skip
    return pack(header, streams)


def read_header(model: torch.nn.Module, data: bytes) -> tuple[Header, list[bytes]]:
    """Parse and check a file against ``model``; raises :class:`BitstreamError` naming the problem."""
    header, streams = unpack(data, expected_hash=fingerprint(model))
    stride = model.stride
    if (header.height + header.pad_bottom) % stride or (header.width + header.pad_right) % stride:
        raise BitstreamError(f"padding {header.pad_bottom}x{header.pad_right} does not fit this model's stride {stride}")
    return header, streams


def decode_image(model: torch.nn.Module, data: bytes) -> torch.Tensor:
    """The image ``[3, H, W]`` in [0, 1] stored in ``data`` (the bytes of a ``.pmc`` file)."""
    header, streams = read_header(model, data)
    latent_hw = ((header.height + header.pad_bottom) // LATENT_STRIDE, (header.width + header.pad_right) // LATENT_STRIDE)
    x_hat = model.decompress(streams, latent_hw)[0]
    return x_hat[:, : header.height, : header.width].clamp(0, 1)
