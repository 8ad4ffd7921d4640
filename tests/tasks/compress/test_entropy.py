"""Range coding with fixed integer tables: quantization, round trips, code length, corrupt data."""

from __future__ import annotations

import doctest

import constriction
import numpy as np
import pytest

from pixelmind.errors import BitstreamError
from pixelmind.tasks.compress import entropy
from pixelmind.tasks.compress.entropy import build_tables, decode, encode, estimate_bits, pmf_to_counts

SCALES = [0.2, 0.5, 1.0, 2.0, 4.0, 8.0]


def _laplace_tables(scales=SCALES, tail=1e-4, precision=16):
    """One discretised Laplace table per scale (values -r..r plus escape), a 2-bin and an escape-only table."""
    pmfs, offsets = [], []
    for s in scales:
        r = int(np.ceil(4 * s))
        grid = np.arange(-r, r + 1)
        p = np.exp(-np.abs(grid) / s)
        pmfs.append(np.append(p / p.sum() * (1 - tail), tail))
        offsets.append(-r)
    pmfs += [np.array([0.9, 0.1]), np.array([1.0])]
    offsets += [3, 0]
    return build_tables(pmfs, offsets, precision)


TABLES = _laplace_tables()
K = len(TABLES[1])


def _symbols(rng, shape, escapes=0):
    """Laplacian-ish integers with their table indices; ``escapes`` values far outside every table."""
    tidx = rng.integers(0, K, shape)
    scale = np.array(SCALES + [1.0, 1.0])[tidx]
    values = np.round(rng.laplace(0.0, scale)).astype(np.int64)
    if escapes:
        where = rng.choice(values.size, escapes, replace=False)
        values.flat[where] = rng.integers(-(2**31) + 1, 2**31, escapes)
    return values, tidx


def _roundtrip(values, tidx, tables=TABLES):
    data = encode(values, tidx, *tables)
    assert isinstance(data, bytes) and len(data) % 4 == 0
    out = decode(data, tidx, *tables)
    assert out.dtype == np.int32 and out.shape == np.shape(tidx)
    np.testing.assert_array_equal(out, values)
    return data


# --- pmf_to_counts / build_tables ----------------------------------------------------------


def test_pmf_to_counts_sums_exactly_with_every_bin_used():
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(1, 300))
        precision = int(rng.integers(9, 17))
        pmf = rng.random(n) ** rng.uniform(1, 30)  # from flat to very peaked (many bins below one count)
        if trial % 3 == 0:
            pmf[rng.random(n) < 0.5] = 0.0
            pmf[0] += 1e-3
        counts = pmf_to_counts(pmf, precision)
        assert counts.dtype == np.int32 and counts.shape == (n,)
        assert counts.min() >= 1 and int(counts.sum()) == 2**precision
        # close to the pmf: no count is off by more than the bins' rounding allows
        ideal = pmf / pmf.sum() * 2**precision
        assert np.abs(counts - ideal).max() <= n + 1
        np.testing.assert_array_equal(counts, pmf_to_counts(pmf.copy(), precision))  # deterministic


def test_pmf_to_counts_edge_cases():
    assert pmf_to_counts(np.array([0.7, 0.3, 0.0]), 4).tolist() == [11, 4, 1]
    assert pmf_to_counts(np.array([1.0]), 16).tolist() == [65536]
    assert pmf_to_counts(np.ones(256), 8).tolist() == [1] * 256  # exactly one count per bin
    peaked = pmf_to_counts(np.array([1.0] + [0.0] * 255), 8)  # the only big bin gives up all but one
    assert peaked.tolist() == [1] * 256
    excess = pmf_to_counts(np.array([0.5, 0.3] + [1e-9] * 100), 10)
    assert excess.sum() == 1024 and excess[2:].tolist() == [1] * 100 and excess[0] > excess[1] > 1
    assert pmf_to_counts(np.array([2.0, 6.0]), 3).tolist() == [2, 6]  # pmf is normalised first
    with pytest.raises(ValueError, match="does not fit precision"):
        pmf_to_counts(np.ones(257), 8)
    for bad in (np.array([]), np.array([0.0, 0.0]), np.array([0.5, -0.1]), np.array([np.nan, 1.0]), np.ones((2, 2))):
        with pytest.raises(ValueError):
            pmf_to_counts(bad)
    with pytest.raises(ValueError, match="precision"):
        pmf_to_counts(np.ones(2), 25)


def test_build_tables_pads_rows_to_the_longest():
    counts, lengths, offsets = build_tables([np.array([0.5, 0.5]), np.array([0.2, 0.6, 0.1, 0.1])], [-1, 7], 10)
    assert counts.dtype == lengths.dtype == offsets.dtype == np.int32
    assert counts.shape == (2, 4) and lengths.tolist() == [2, 4] and offsets.tolist() == [-1, 7]
    assert counts[0, 2:].tolist() == [0, 0] and counts.sum(axis=1).tolist() == [1024, 1024]
    with pytest.raises(ValueError):
        build_tables([np.ones(2)], [0, 1])
    with pytest.raises(ValueError):
        build_tables([], [])
    with pytest.raises(ValueError, match="int32"):
        build_tables([np.ones(4)], [2**31 - 2])


def test_module_doctests_pass():
    result = doctest.testmod(entropy, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 8 and result.failed == 0


# --- round trips ----------------------------------------------------------------------------


def test_roundtrip_many_tables_with_escapes():
    rng = np.random.default_rng(1)
    values, tidx = _symbols(rng, (3, 40, 50), escapes=30)
    values.flat[:4] = [2**31 - 1, -(2**31) + 1, 0, -1]
    tidx.flat[:4] = [0, 1, K - 1, K - 1]  # extremes; escape-only table
    counts, lengths, offsets = TABLES
    bins = values - offsets[tidx]
    n_escaped = int(((bins < 0) | (bins >= lengths[tidx] - 1)).sum())
    assert n_escaped > 100  # natural tails, the planted values and the escape-only table
    _roundtrip(values, tidx)


def test_roundtrip_dtypes_shapes_and_broadcast_table_index():
    rng = np.random.default_rng(2)
    values, _ = _symbols(rng, (4, 6, 5))
    tidx = np.broadcast_to(np.arange(4)[:, None, None], values.shape)  # read-only view, as models give
    for dtype in (np.int8, np.int16, np.int32, np.int64, np.uint8):
        v = np.abs(values).astype(dtype) if dtype == np.uint8 else values.astype(dtype)
        _roundtrip(v, tidx)


@pytest.mark.parametrize("shape", [(0,), (2, 0, 3)])
def test_empty_arrays(shape):
    values = np.zeros(shape, dtype=np.int32)
    assert encode(values, values, *TABLES) == b""
    out = decode(b"", values, *TABLES)
    assert out.shape == shape and out.dtype == np.int32
    assert estimate_bits(values, values, *TABLES) == 0.0
    with pytest.raises(BitstreamError):
        decode(b"\0\0\0\0", values, *TABLES)


@pytest.mark.parametrize("value", [0, 1, -3, 500, -(2**31) + 1])
@pytest.mark.parametrize("table", [0, 5, K - 1])
def test_single_symbol(value, table):
    data = _roundtrip(np.array([value]), np.array([table]))
    assert len(data) <= 12


def test_large_input_roundtrip_64_tables():
    """300k symbols over 64 tables (the size of a real latent); the speed claim's workload."""
    rng = np.random.default_rng(3)
    tables = _laplace_tables(np.geomspace(0.11, 60, 62).tolist())
    tidx = rng.integers(0, 64, (8, 200, 188))
    scale = np.append(np.geomspace(0.11, 60, 62), [1.0, 1.0])[tidx]
    values = np.round(rng.laplace(0.0, scale)).astype(np.int32)
    data = _roundtrip(values, tidx, tables)
    estimate = estimate_bits(values, tidx, *tables)
    assert estimate * 0.99 - 64 <= 8 * len(data) <= estimate * 1.01 + 64


def test_bytes_are_fixed():
    """The same tables and symbols give these exact bytes (little-endian words) on every machine."""
    tables = build_tables([np.array([0.1, 0.4, 0.3, 0.15, 0.05]), np.array([0.7, 0.3])], [-2, 0])
    assert tables[0].tolist() == [[6553, 26215, 19661, 9831, 3276], [45876, 19660, 0, 0, 0]]
    values = np.array([-2, -1, 0, 1, 7, 0, 0, 5, -100000, 3, 0, 2**31 - 1])
    tidx = np.array([0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1])
    assert encode(values, tidx, *tables).hex() == "e4ef980a5b9eda72b9b819cf003af39b"
    assert decode(bytes.fromhex("e4ef980a5b9eda72b9b819cf003af39b"), tidx, *tables).tolist() == values.tolist()


# --- code length ------------------------------------------------------------------------------


def test_code_length_matches_estimate():
    rng = np.random.default_rng(4)
    for escapes in (0, 20):
        values, tidx = _symbols(rng, (20_000,), escapes=escapes)
        data = encode(values, tidx, *TABLES)
        estimate = estimate_bits(values, tidx, *TABLES)
        assert estimate > 0
        assert estimate * 0.99 - 64 <= 8 * len(data) <= estimate * 1.01 + 64


def test_estimate_bits_by_hand():
    tables = build_tables([np.array([0.5, 0.25, 0.25])], [0], precision=8)
    idx = np.zeros(4, dtype=np.int64)
    assert estimate_bits(np.array([0, 0, 1, 1]), idx, *tables) == pytest.approx(6.0)
    # an escape: 2 bits for the escape bin, log2(33) for the bit length of zigzag(-5) = 9, 3 bits below its top
    assert estimate_bits(np.array([-5]), idx[:1], *tables) == pytest.approx(2 + np.log2(33) + 3)


# --- wrong tables, bad input -------------------------------------------------------------------


def test_decode_with_other_tables_or_table_index_changes_the_result():
    rng = np.random.default_rng(5)
    values, tidx = _symbols(rng, (2000,))
    data = encode(values, tidx, *TABLES)
    counts, lengths, offsets = TABLES
    other_counts = counts.copy()
    other_counts[2, :2] += [1, -1]  # one count moved: still a valid table
    others = [
        (np.roll(tidx, 1), counts, offsets),
        ((tidx + 1) % K, counts, offsets),
        (tidx, other_counts, offsets),
        (tidx, counts, offsets + 1),
    ]
    for other_tidx, c, o in others:
        try:
            out = decode(data, other_tidx, c, lengths, o)
        except BitstreamError:
            continue
        assert not np.array_equal(out, values)


def test_bad_arguments_raise_value_error():
    counts, lengths, offsets = TABLES
    values = np.zeros(5, dtype=np.int32)
    with pytest.raises(ValueError, match="table_index"):
        encode(values, np.full(5, K), *TABLES)
    with pytest.raises(ValueError, match="table_index"):
        decode(b"", np.array([-1]), *TABLES)
    with pytest.raises(ValueError, match="shape"):
        encode(values, np.zeros(4, dtype=np.int32), *TABLES)
    with pytest.raises(ValueError, match="2\\*\\*31"):
        encode(np.array([2**31]), np.zeros(1, dtype=np.int32), *TABLES)
    with pytest.raises(ValueError, match="2\\*\\*31"):
        encode(np.array([-(2**31)]), np.zeros(1, dtype=np.int32), *TABLES)
    with pytest.raises(ValueError, match="integers"):
        encode(values.astype(float), values, *TABLES)
    bad_sum = counts.copy()
    bad_sum[0, 0] += 1
    with pytest.raises(ValueError, match="power of two"):
        encode(values, np.zeros(5, dtype=np.int32), bad_sum, lengths, offsets)
    zero_bin = counts.copy()
    zero_bin[0, :2] = [zero_bin[0, 0] + zero_bin[0, 1], 0]
    with pytest.raises(ValueError, match=">= 1"):
        encode(values, np.zeros(5, dtype=np.int32), zero_bin, lengths, offsets)
    with pytest.raises(ValueError, match="lengths"):
        decode(b"", values, counts, np.full_like(lengths, counts.shape[1] + 1), offsets)


def _words(*symbols_and_models) -> bytes:
    """A hand-made stream: (symbols, model[, params]) groups in order."""
    encoder = constriction.stream.queue.RangeEncoder()
    for symbols, *model in symbols_and_models:
        encoder.encode(np.asarray(symbols, dtype=np.int32), *model)
    return encoder.get_compressed().astype("<u4").tobytes()


def test_corrupt_escapes_raise_bitstream_error():
    tables = build_tables([np.array([0.5, 0.3, 0.2])], [0], precision=8)  # values 0, 1; bin 2 escapes
    escape_bin = constriction.stream.model.Categorical(tables[0][0] / 2**8, perfect=False)  # as decode builds it
    idx = np.zeros(1, dtype=np.int32)
    uniform = constriction.stream.model.Uniform
    # zigzag 2**32 - 1 is -2**31: 32 bits, the 31 below the leading one all set
    too_big = _words(([2], escape_bin), ([32], uniform(33)), ([0xFFFF, 0x7FFF], uniform(), np.array([2**16, 2**15], np.int32)))
    with pytest.raises(BitstreamError, match="out of range"):
        decode(too_big, idx, *tables)
    # an escaped 1 (zigzag 2: bit length 2, low bit 0) lies inside the table: a stream encode never writes
    inside = _words(([2], escape_bin), ([2], uniform(33)), ([0], uniform(), np.array([2], np.int32)))
    with pytest.raises(BitstreamError, match="inside its table"):
        decode(inside, idx, *tables)
    # the same, made by encoding with a shifted table and decoding with the real one
    shifted = encode(np.array([0]), idx, tables[0], tables[1], np.array([10], np.int32))
    with pytest.raises(BitstreamError, match="inside its table"):
        decode(shifted, idx, *tables)


def test_truncated_extended_and_odd_length_data():
    rng = np.random.default_rng(6)
    values, tidx = _symbols(rng, (3000,), escapes=5)
    data = encode(values, tidx, *TABLES)
    with pytest.raises(BitstreamError, match="32-bit words"):
        decode(data[:-1], tidx, *TABLES)
    for bad in (data[:-4], data[: len(data) // 2], b"", data + b"\0\0\0\0", data + data[:4], data[4:]):
        with pytest.raises(BitstreamError):
            decode(bad, tidx, *TABLES)
    with pytest.raises(BitstreamError):  # too few symbols asked for: the data does not end there
        decode(data, tidx[:-1], *TABLES)


# --- fuzz -----------------------------------------------------------------------------------


def _mutate(rng, data: bytes) -> bytes:
    """One random corruption of ``data``: bit flips, byte overwrites, truncation, appending, random bytes."""
    kind = int(rng.integers(0, 6))
    buf = bytearray(data)
    if kind == 0 and buf:
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(0, 8 * len(buf)))
            buf[i // 8] ^= 1 << (i % 8)
    elif kind == 1 and buf:
        for _ in range(int(rng.integers(1, 4))):
            buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
    elif kind == 2:
        del buf[int(rng.integers(0, len(buf) + 1)) :]
    elif kind == 3:
        buf += rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
    elif kind == 4:
        buf = bytearray(rng.integers(0, 256, int(rng.integers(0, 4 * len(buf) + 8)), dtype=np.uint8).tobytes())
    else:  # word-aligned random words: gets past the length check into the range decoder
        buf = bytearray(rng.integers(0, 256, 4 * int(rng.integers(0, len(buf) // 4 + 3)), dtype=np.uint8).tobytes())
    return bytes(buf)


def test_fuzz_corrupt_streams_never_crash():
    """2000 corrupt streams: each raises BitstreamError or decodes to a valid array of other symbols."""
    rng = np.random.default_rng(7)
    originals = []
    for n, escapes in ((1, 0), (7, 1), (40, 3), (120, 0), (200, 10)):
        values, tidx = _symbols(rng, (n,), escapes=escapes)
        originals.append((values, tidx, encode(values, tidx, *TABLES)))
    outcomes = {"error": 0, "other symbols": 0}
    for trial in range(2000):
        values, tidx, data = originals[trial % len(originals)]
        bad = _mutate(rng, data)
        if bad == data:
            continue
        try:
            out = decode(bad, tidx, *TABLES)
        except BitstreamError as ex:
            assert "\n" not in str(ex) and str(ex)
            outcomes["error"] += 1
            continue
        # no CRC at this level: a corrupt stream may be a valid stream of other symbols, never of ours
        assert out.shape == tidx.shape and out.dtype == np.int32
        assert not np.array_equal(out, values)
        assert encode(out, tidx, *TABLES) == bad
        outcomes["other symbols"] += 1
    assert outcomes["error"] > 1500, outcomes
