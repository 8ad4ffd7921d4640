"""The versioned ``.pmc`` file format: a small checked header in front of entropy-coded streams.

All integers are little-endian (``struct``); ``n`` is the model name's length, ``S`` the number
of streams:

=================  ===========  ===========================================================
offset             size         field
=================  ===========  ===========================================================
0                  4            magic ``b"PMC\\x89"``
4                  1            format version (u8, = :data:`VERSION`)
5                  1            channels (u8, 1 or 3)
6                  1            quality (u8, 0..255)
7                  1            ``n``: model name length (u8, <= 64)
8                  ``n``        model name (utf-8, e.g. ``mbt2018_mean``)
8+n                8            weights hash (first 8 bytes of a sha256, :func:`weights_fingerprint`)
16+n               4            image height (u32, 1..65535)
20+n               4            image width (u32, 1..65535)
24+n               2            pad_bottom (u16, < 256)
26+n               2            pad_right (u16, < 256)
28+n               1            ``S``: number of streams (u8)
29+n               4 * ``S``    length of each stream in bytes (u32 each)
29+n+4S            4            CRC32 (``zlib.crc32``) of all bytes before it and of the streams
33+n+4S            sum          the streams, concatenated in order
=================  ===========  ===========================================================

:func:`unpack` checks everything before any decoding starts and raises a one-line
:class:`~pixelmind.errors.BitstreamError` naming the first problem; the API knows no paths, so
callers prefix the file name.

Example:
    >>> header = Header(b"\\x01" * 8, height=48, width=64, pad_bottom=16, pad_right=0, quality=3,
    ...                 channels=3, model="mbt2018_mean")
    >>> data = pack(header, [b"abcd", b""])
    >>> unpack(data, expected_hash=b"\\x01" * 8) == (header, [b"abcd", b""])
    True
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

import torch

from pixelmind.errors import BitstreamError

MAGIC = b"PMC\x89"
VERSION = 1
HASH_BYTES = 8
MAX_MODEL_NAME = 64
MAX_SIDE = 65535
MAX_PAD = 255
MAX_STREAMS = 255

_FIXED = struct.Struct("<IIHHB")  # height, width, pad_bottom, pad_right, number of streams
_U32 = struct.Struct("<I")


@dataclass
class Header:
    """What a decoder needs besides the streams.

    Attributes:
        weights_hash: the first 8 bytes of the sha256 of the weights (:func:`weights_fingerprint`).
        height: image height in pixels (before padding).
        width: image width in pixels (before padding).
        pad_bottom: rows the encoder added at the bottom (< 256).
        pad_right: columns the encoder added at the right (< 256).
        quality: the quality level, 0..255.
        channels: 1 (grey) or 3 (RGB).
        model: the model's name, at most 64 bytes of utf-8.
    """

    weights_hash: bytes
    height: int
    width: int
    pad_bottom: int
    pad_right: int
    quality: int
    channels: int
    model: str


def _check_header(header: Header) -> bytes:
    """Raise ValueError for a header :func:`unpack` would refuse; return the encoded model name."""
    if not isinstance(header.weights_hash, bytes) or len(header.weights_hash) != HASH_BYTES:
        raise ValueError(f"weights_hash must be {HASH_BYTES} bytes, got {header.weights_hash!r}")
    if not (1 <= header.height <= MAX_SIDE and 1 <= header.width <= MAX_SIDE):
        raise ValueError(f"image size {header.height}x{header.width} out of range (1..{MAX_SIDE} per side)")
    if not (0 <= header.pad_bottom <= MAX_PAD and 0 <= header.pad_right <= MAX_PAD):
        raise ValueError(f"padding ({header.pad_bottom}, {header.pad_right}) out of range (0..{MAX_PAD})")
    if not 0 <= header.quality <= 255:
        raise ValueError(f"quality {header.quality} out of range (0..255)")
    if header.channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {header.channels}")
    name = header.model.encode("utf-8")
    if len(name) > MAX_MODEL_NAME:
        raise ValueError(f"model name {header.model!r} is longer than {MAX_MODEL_NAME} bytes")
    return name


def pack(header: Header, streams: list[bytes]) -> bytes:
    """Serialise a header and its streams to the bytes of a ``.pmc`` file.

    Args:
        header: the image and model description.
        streams: the entropy-coded streams (at most 255, each below 4 GiB).

    Returns:
        The file's bytes.

    Raises:
        ValueError: a header field out of range, or too many / too long streams.

    Example:
        >>> data = pack(Header(bytes(8), 1, 1, 0, 0, 0, 1, "m"), [b"xy"])
        >>> data[:4], len(data)
        (b'PMC\\x89', 40)
    """
    name = _check_header(header)
    streams = [bytes(s) for s in streams]
    if len(streams) > MAX_STREAMS:
        raise ValueError(f"at most {MAX_STREAMS} streams fit a .pmc file, got {len(streams)}")
    if any(len(s) >= 2**32 for s in streams):
        raise ValueError("a stream of 4 GiB or more does not fit a .pmc file")
    head = b"".join(
        [
            MAGIC,
            bytes([VERSION, header.channels, header.quality, len(name)]),
            name,
            header.weights_hash,
            _FIXED.pack(header.height, header.width, header.pad_bottom, header.pad_right, len(streams)),
            b"".join(_U32.pack(len(s)) for s in streams),
        ]
    )
    body = b"".join(streams)
    crc = zlib.crc32(body, zlib.crc32(head))
    return head + _U32.pack(crc) + body


class _Reader:
    """Reads header fields in order; running out of bytes means a truncated header."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise BitstreamError(f"truncated: the header is cut short (the file holds only {len(self.data)} bytes)")
        self.pos += n
        return self.data[self.pos - n : self.pos]


def unpack(
    data: bytes, expected_hash: bytes | None = None, max_pixels: int = 2**28
) -> tuple[Header, list[bytes]]:
    """Parse and check the bytes of a ``.pmc`` file.

    Checks, in order: magic, version, header length, stream lengths against the file size,
    trailing bytes, checksum, image size, padding and channels, model name, and (if given) the
    weights hash.

    Args:
        data: the file's bytes.
        expected_hash: the fingerprint of the weights that will decode it; ``None`` skips the check.
        max_pixels: refuse images of more pixels than this (a guard against huge allocations).

    Returns:
        ``(header, streams)``.

    Raises:
        BitstreamError: the file is not a ``.pmc`` file, is truncated or corrupt, or was made
            with other weights; the message is one line.
        ValueError: ``expected_hash`` is not 8 bytes.

    Example:
        >>> unpack(b"GIF89a")
        Traceback (most recent call last):
        ...
        pixelmind.errors.BitstreamError: not a pixelmind compressed file (bad magic)
    """
    if expected_hash is not None and (not isinstance(expected_hash, bytes) or len(expected_hash) != HASH_BYTES):
        raise ValueError(f"expected_hash must be {HASH_BYTES} bytes, got {expected_hash!r}")
    data = bytes(data)
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise BitstreamError("not a pixelmind compressed file (bad magic)")
    reader = _Reader(data)
    reader.take(len(MAGIC))
    version = reader.take(1)[0]
    if version != VERSION:
        raise BitstreamError(f"unsupported .pmc format version {version} (this pixelmind reads version {VERSION})")
    channels, quality, name_length = reader.take(3)
    name = reader.take(name_length)
    weights_hash = reader.take(HASH_BYTES)
    height, width, pad_bottom, pad_right, n_streams = _FIXED.unpack(reader.take(_FIXED.size))
    lengths = [_U32.unpack(reader.take(4))[0] for _ in range(n_streams)]
    (crc,) = _U32.unpack(reader.take(4))
    announced, held = sum(lengths), len(data) - reader.pos
    if announced > held:
        raise BitstreamError(f"truncated: the header announces {announced} bytes of streams, the file holds {held}")
    if announced < held:
        raise BitstreamError(f"trailing bytes: the header announces {announced} bytes of streams, the file holds {held}")
    if zlib.crc32(data[reader.pos :], zlib.crc32(data[: reader.pos - 4])) != crc:
        raise BitstreamError("checksum mismatch: the file is corrupted")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= max_pixels):
        raise BitstreamError(
            f"image size {height}x{width} out of range (1..{MAX_SIDE} per side, at most {max_pixels} pixels)"
        )
    if pad_bottom > MAX_PAD or pad_right > MAX_PAD:
        raise BitstreamError(f"bad padding ({pad_bottom} rows, {pad_right} columns): at most {MAX_PAD} each")
    if channels not in (1, 3):
        raise BitstreamError(f"bad channel count {channels} (1 or 3)")
    if name_length > MAX_MODEL_NAME:
        raise BitstreamError(f"bad model name: {name_length} bytes (at most {MAX_MODEL_NAME})")
    try:
        model = name.decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError(f"bad model name: not utf-8 ({name!r})") from None
    if expected_hash is not None and weights_hash != expected_hash:
        raise BitstreamError(
            f"made with other weights (file: {weights_hash.hex()}, these weights: {expected_hash.hex()})"
        )
    streams, pos = [], reader.pos
    for n in lengths:
        streams.append(data[pos : pos + n])
        pos += n
    header = Header(weights_hash, height, width, pad_bottom, pad_right, quality, channels, model)
    return header, streams


def weights_fingerprint(state_dict: dict[str, torch.Tensor]) -> bytes:
    """The first 8 bytes of a sha256 over the weights: the same on every device.

    Hashes, for each key in sorted order, the key, the tensor's dtype and shape and its
    contiguous CPU bytes (native byte order, little-endian on every supported machine).

    Args:
        state_dict: parameter name -> tensor.

    Returns:
        8 bytes.

    Raises:
        TypeError: a value is not a tensor.

    Example:
        >>> a = weights_fingerprint({"w": torch.ones(2, 3)})
        >>> len(a), a == weights_fingerprint({"w": torch.ones(2, 3).clone()}), a == weights_fingerprint({"w": torch.ones(3, 2)})
        (8, True, False)
    """
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] is a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().to("cpu").contiguous()
        meta = f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode()
        digest.update(_U32.pack(len(meta)) + meta)
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.digest()[:HASH_BYTES]
