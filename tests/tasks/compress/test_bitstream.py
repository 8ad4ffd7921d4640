"""The .pmc container: layout, every error message on a real damaged file, fingerprints, fuzzing."""

from __future__ import annotations

import doctest
import struct
import zlib

import numpy as np
import pytest
import torch

from pixelmind.errors import BitstreamError, PixelmindError
from pixelmind.tasks.compress import bitstream
from pixelmind.tasks.compress.bitstream import Header, pack, unpack, weights_fingerprint
from pixelmind.tasks.compress.entropy import build_tables, decode, encode

HASH = bytes.fromhex("0123456789abcdef")
HEADER = Header(HASH, height=30, width=44, pad_bottom=34, pad_right=20, quality=4, channels=3, model="mbt2018_mean")


def _layout(
    *,
    magic=b"PMC\x89",
    version=1,
    channels=3,
    quality=4,
    name=b"mbt2018_mean",
    name_length=None,
    weights_hash=HASH,
    height=30,
    width=44,
    pad_bottom=34,
    pad_right=20,
    streams=(b"abcd", b"efghijkl"),
    crc=None,
) -> bytes:
    """A file built field by field from the layout table in bitstream's docstring."""
    head = magic + struct.pack("<BBBB", version, channels, quality, len(name) if name_length is None else name_length)
    head += name + weights_hash + struct.pack("<IIHHB", height, width, pad_bottom, pad_right, len(streams))
    head += b"".join(struct.pack("<I", len(s)) for s in streams)
    body = b"".join(streams)
    if crc is None:
        crc = zlib.crc32(head + body)
    return head + struct.pack("<I", crc) + body


def _header_size(data: bytes) -> int:
    name_length, n_streams = data[7], data[28 + data[7]]
    return 33 + name_length + 4 * n_streams


def test_pack_follows_the_documented_layout():
    data = pack(HEADER, [b"abcd", b"efghijkl"])
    assert data == _layout()
    assert _header_size(data) == len(data) - 12
    assert unpack(data) == (HEADER, [b"abcd", b"efghijkl"])


@pytest.mark.parametrize(
    "header, streams",
    [
        (HEADER, []),
        (HEADER, [b"", b"", b"x"]),
        (Header(bytes(8), 1, 1, 0, 0, 0, 1, ""), [b"\0" * 1000]),
        (Header(b"\xff" * 8, 65535, 4096, 255, 255, 255, 1, "é" * 32), [bytes(range(256))] * 255),  # 64-byte name
    ],
)
def test_header_roundtrip(header, streams):
    data = pack(header, streams)
    got, got_streams = unpack(bytearray(data), expected_hash=header.weights_hash)
    assert got == header and got_streams == streams
    assert unpack(memoryview(data)) == (header, streams)


def test_pack_refuses_what_unpack_would_refuse():
    def bad(**kw):
        fields = dict(HEADER.__dict__, **kw)
        with pytest.raises(ValueError):
            pack(Header(**fields), [])

    bad(weights_hash=b"short")
    bad(height=0)
    bad(width=65536)
    bad(pad_bottom=256)
    bad(pad_right=-1)
    bad(quality=256)
    bad(channels=2)
    bad(model="x" * 65)
    bad(model="é" * 33)  # 66 bytes of utf-8
    with pytest.raises(ValueError, match="streams"):
        pack(HEADER, [b""] * 256)
    with pytest.raises(ValueError, match="8 bytes"):
        unpack(pack(HEADER, []), expected_hash=b"abc")


def test_module_doctests_pass():
    result = doctest.testmod(bitstream)
    assert result.attempted >= 5 and result.failed == 0


# --- every error message, from a real damaged file -------------------------------------------


def _error(data: bytes, **kw) -> str:
    with pytest.raises(BitstreamError) as info:
        unpack(data, **kw)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, PixelmindError)
    return message


def test_bad_magic():
    data = _layout()
    for bad in (b"", b"P", b"PMC", b"PMC\x88" + data[4:], b"\x89PNG\r\n\x1a\n" + data[8:], data[1:]):
        assert _error(bad) == "not a pixelmind compressed file (bad magic)"


def test_unsupported_version():
    data = bytearray(_layout())
    data[4] = 2
    assert _error(bytes(data)) == "unsupported .pmc format version 2 (this pixelmind reads version 1)"
    assert _error(bytes(data[:6])).startswith("unsupported .pmc format version 2")  # checked before truncation


def test_truncated_header_at_every_length():
    data = _layout()
    for n in range(4, _header_size(data)):
        assert _error(data[:n]) == f"truncated: the header is cut short (the file holds only {n} bytes)"


def test_truncated_streams_and_trailing_bytes():
    data = _layout()  # 12 bytes of streams
    for cut in (1, 5, 12):
        assert _error(data[:-cut]) == f"truncated: the header announces 12 bytes of streams, the file holds {12 - cut}"
    assert _error(data + b"\0") == "trailing bytes: the header announces 12 bytes of streams, the file holds 13"
    assert _error(data + data) == f"trailing bytes: the header announces 12 bytes of streams, the file holds {12 + len(data)}"
    # a stream length grown by one: the header now announces more than the file holds
    grown = bytearray(data)
    grown[29 + 12] += 1
    assert _error(bytes(grown)) == "truncated: the header announces 13 bytes of streams, the file holds 12"


def test_checksum_mismatch_anywhere():
    data = _layout()
    name_length, n_streams, lengths, crc = 7, 28 + 12, range(29 + 12, 37 + 12), range(37 + 12, 41 + 12)
    for i in range(5, len(data)):  # every byte after the magic and version
        damaged = bytearray(data)
        damaged[i] ^= 0x10
        message = _error(bytes(damaged))
        if i == name_length or i == n_streams or i in lengths:  # the layout moves: a length problem or the crc
            assert message.startswith(("truncated", "trailing bytes", "checksum mismatch")), (i, message)
        else:  # fields, crc, streams
            assert message == "checksum mismatch: the file is corrupted", (i, message)
    assert crc.stop == len(data) - 12
    assert _error(_layout(crc=zlib.crc32(b"something else"))) == "checksum mismatch: the file is corrupted"


def test_image_size_out_of_range():
    message = "image size {}x{} out of range (1..65535 per side, at most {} pixels)"
    assert _error(_layout(height=0)) == message.format(0, 44, 2**28)
    assert _error(_layout(width=0)) == message.format(30, 0, 2**28)
    assert _error(_layout(width=65536)) == message.format(30, 65536, 2**28)
    assert _error(_layout(height=2**32 - 1)) == message.format(2**32 - 1, 44, 2**28)
    assert _error(_layout(height=65535, width=65535)) == message.format(65535, 65535, 2**28)
    assert _error(_layout(), max_pixels=30 * 44 - 1) == message.format(30, 44, 30 * 44 - 1)
    assert unpack(_layout(), max_pixels=30 * 44)[0].height == 30


def test_bad_padding_and_channels():
    assert _error(_layout(pad_bottom=256)) == "bad padding (256 rows, 20 columns): at most 255 each"
    assert _error(_layout(pad_right=65535)) == "bad padding (34 rows, 65535 columns): at most 255 each"
    for channels in (0, 2, 4, 255):
        assert _error(_layout(channels=channels)) == f"bad channel count {channels} (1 or 3)"


def test_bad_model_name():
    assert _error(_layout(name=b"mbt\xff2018")) == "bad model name: not utf-8 (b'mbt\\xff2018')"
    assert _error(_layout(name=b"\xc3")) == "bad model name: not utf-8 (b'\\xc3')"  # cut inside a character
    assert _error(_layout(name=b"m" * 65)) == "bad model name: 65 bytes (at most 64)"


def test_other_weights():
    other = bytes.fromhex("fedcba9876543210")
    assert _error(_layout(), expected_hash=other) == (
        "made with other weights (file: 0123456789abcdef, these weights: fedcba9876543210)"
    )
    assert unpack(_layout(weights_hash=other), expected_hash=other)[0].weights_hash == other


def test_checks_come_in_the_documented_order():
    assert _error(_layout(version=3)[:10]).startswith("unsupported")  # version before truncation
    assert _error(_layout(height=0, crc=0)).startswith("checksum")  # checksum before the fields
    assert _error(_layout(crc=0)[:-1]).startswith("truncated: the header announces")  # lengths before checksum
    assert _error(_layout(crc=0) + b"x").startswith("trailing bytes")
    assert _error(_layout(height=0, pad_bottom=300)).startswith("image size")
    assert _error(_layout(pad_bottom=300, channels=2)).startswith("bad padding")
    assert _error(_layout(channels=2, name=b"\xff")).startswith("bad channel count")
    assert _error(_layout(name=b"\xff"), expected_hash=bytes(8)).startswith("bad model name")


# --- weights_fingerprint -----------------------------------------------------------------------


def _state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "encoder.0.weight": torch.randn(8, 3, 5, 5, generator=g),
        "encoder.0.bias": torch.randn(8, generator=g),
        "entropy.counts": torch.randint(1, 100, (4, 9), generator=g, dtype=torch.int32),
        "gdn.beta": torch.randn(8, generator=g).to(torch.bfloat16),
        "step": torch.tensor(3),
    }


def test_weights_fingerprint_is_stable_across_copies():
    state = _state()
    fp = weights_fingerprint(state)
    assert isinstance(fp, bytes) and len(fp) == 8
    assert weights_fingerprint({k: v.clone() for k, v in state.items()}) == fp
    assert weights_fingerprint(dict(reversed(list(state.items())))) == fp  # key order does not matter
    transposed = dict(state, **{"encoder.0.weight": state["encoder.0.weight"].permute(3, 2, 1, 0).contiguous()})
    non_contiguous = dict(state, **{"encoder.0.weight": transposed["encoder.0.weight"].permute(3, 2, 1, 0)})
    assert not non_contiguous["encoder.0.weight"].is_contiguous()
    assert weights_fingerprint(non_contiguous) == fp
    assert weights_fingerprint(dict(state, **{"step": torch.nn.Parameter(torch.tensor(3.0)).long()})) == fp
    if torch.cuda.is_available():
        assert weights_fingerprint({k: v.cuda() for k, v in state.items()}) == fp


def test_weights_fingerprint_changes_with_the_weights():
    state = _state()
    fp = weights_fingerprint(state)
    changed = {k: v.clone() for k, v in state.items()}
    changed["encoder.0.weight"][0, 0, 0, 0] += 1e-3
    others = [
        changed,
        dict(state, **{"encoder.0.bias": state["encoder.0.bias"].double()}),  # dtype
        dict(state, **{"encoder.0.bias": state["encoder.0.bias"].reshape(2, 4)}),  # shape, same bytes
        {("encoder.1.bias" if k == "encoder.0.bias" else k): v for k, v in state.items()},  # a renamed key
        {k: v for k, v in state.items() if k != "step"},  # a missing tensor
        dict(state, extra=torch.zeros(0)),  # an extra (empty) tensor
    ]
    fingerprints = {weights_fingerprint(o) for o in others}
    assert fp not in fingerprints and len(fingerprints) == len(others)
    with pytest.raises(TypeError):
        weights_fingerprint({"x": [1.0]})


# --- fuzzing real files through unpack + decode -------------------------------------------------

TABLES_Y = build_tables([np.array([0.05, 0.2, 0.5, 0.2, 0.04, 0.01]), np.array([0.3, 0.4, 0.25, 0.05])], [-2, 0])
TABLES_Z = build_tables([np.array([0.6, 0.3, 0.1])], [0])


def _indices(header: Header) -> tuple[np.ndarray, np.ndarray]:
    """The table index arrays a decoder derives from the header alone (as the real codec does)."""
    h, w = -(-(header.height + header.pad_bottom) // 16), -(-(header.width + header.pad_right) // 16)
    tidx_y = np.broadcast_to((np.arange(2 * header.channels) % 2)[:, None, None], (2 * header.channels, h, w))
    return tidx_y, np.zeros((header.channels, 2, 2), dtype=np.int32)


def _read(data: bytes) -> tuple[Header, np.ndarray, np.ndarray]:
    """The whole decoding path of a file: unpack, check, entropy-decode."""
    header, streams = unpack(data, expected_hash=HASH, max_pixels=4096)
    if len(streams) != 2:
        raise BitstreamError(f"expected 2 streams, found {len(streams)}")
    tidx_y, tidx_z = _indices(header)
    return header, decode(streams[0], tidx_y, *TABLES_Y), decode(streams[1], tidx_z, *TABLES_Z)


def _real_files(rng) -> list[tuple[bytes, Header, np.ndarray, np.ndarray]]:
    files = []
    for channels, height, width, quality in ((3, 30, 44, 4), (1, 17, 9, 0), (3, 64, 64, 255)):
        pad_bottom, pad_right = -height % 16, -width % 16
        header = Header(HASH, height, width, pad_bottom, pad_right, quality, channels, "mbt2018_mean")
        tidx_y, tidx_z = _indices(header)
        y = np.round(rng.laplace(0, 1.0, tidx_y.shape)).astype(np.int32)
        y.flat[0] = 1000  # an escape
        z = rng.integers(-1, 4, tidx_z.shape).astype(np.int32)
        data = pack(header, [encode(y, tidx_y, *TABLES_Y), encode(z, tidx_z, *TABLES_Z)])
        got = _read(data)
        assert got[0] == header and np.array_equal(got[1], y) and np.array_equal(got[2], z)
        files.append((data, header, y, z))
    return files


def _mutations(rng, data: bytes):
    """Kinds of damage, each a function of one random draw; truncations cover every length class."""
    size = _header_size(data)

    def flip():
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, 8 * len(buf)))
            buf[i // 8] ^= 1 << (i % 8)
        return bytes(buf)

    def overwrite():
        buf = bytearray(data)
        start = int(rng.integers(0, len(buf)))
        chunk = rng.integers(0, 256, int(rng.integers(1, 5)), dtype=np.uint8).tobytes()
        buf[start : start + len(chunk)] = chunk
        return bytes(buf[: len(data)])

    def truncate():
        where = int(rng.integers(0, 4))  # inside the magic, the header, right at its end, the streams
        bounds = [(0, 4), (4, size), (size - 4, size + 1), (size, len(data))][where]
        return data[: int(rng.integers(*bounds))]

    def append():
        return data + rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes()

    def random_bytes():
        return rng.integers(0, 256, int(rng.integers(0, 2 * len(data))), dtype=np.uint8).tobytes()

    def random_after_magic():
        tail = rng.integers(0, 256, int(rng.integers(0, 2 * len(data))), dtype=np.uint8).tobytes()
        return b"PMC\x89\x01" + tail

    return [flip, overwrite, truncate, append, random_bytes, random_after_magic]


def test_fuzz_damaged_files_raise_bitstream_error_or_decode_unchanged():
    """3600 damaged files: each either is unchanged and decodes to the original, or raises BitstreamError."""
    rng = np.random.default_rng(0)
    files = _real_files(rng)
    kinds = {}
    for trial in range(3600):
        data, header, y, z = files[trial % len(files)]
        mutation = _mutations(rng, data)[trial % 6]
        bad = mutation()
        try:
            got = _read(bad)
        except BitstreamError as ex:
            assert str(ex) and "\n" not in str(ex)
            kinds.setdefault(mutation.__name__, set()).add(str(ex).split(":")[0].split(" (")[0])
            continue
        assert bad == data, f"{mutation.__name__} damage went undetected"
        assert got[0] == header and np.array_equal(got[1], y) and np.array_equal(got[2], z)
    assert set(kinds) == {"flip", "overwrite", "truncate", "append", "random_bytes", "random_after_magic"}
    seen = set().union(*kinds.values())
    for expected in ("not a pixelmind compressed file", "truncated", "trailing bytes", "checksum mismatch"):
        assert expected in seen, seen


def test_fuzz_damaged_streams_behind_a_valid_checksum():
    """Streams damaged and the checksum recomputed (a forged file): decode raises BitstreamError
    or yields other symbols that really are what the damaged stream encodes."""
    rng = np.random.default_rng(1)
    files = _real_files(rng)
    decoded_other = errors = 0
    for trial in range(600):
        data, header, y, z = files[trial % len(files)]
        _, streams = unpack(data)
        which = int(rng.integers(0, 2))
        stream = bytearray(streams[which])
        i = int(rng.integers(0, 8 * len(stream)))
        stream[i // 8] ^= 1 << (i % 8)
        streams[which] = bytes(stream)
        forged = pack(header, streams)
        try:
            _, got_y, got_z = _read(forged)
        except BitstreamError:
            errors += 1
            continue
        decoded_other += 1
        tidx_y, tidx_z = _indices(header)
        assert not (np.array_equal(got_y, y) and np.array_equal(got_z, z))
        assert encode(got_y, tidx_y, *TABLES_Y) == streams[0] and encode(got_z, tidx_z, *TABLES_Z) == streams[1]
    assert errors > 500
