"""Entropy coding of integer symbols with fixed integer tables (range coding via ``constriction``).

A codec holds ``K`` discrete distributions ("tables"), fixed once after training as integer arrays:

* ``counts`` -- int32 ``[K, L]``: frequency of each bin; every used bin is >= 1 and each row's used
  bins sum to exactly ``2**precision`` (``precision`` <= 24, default :data:`PRECISION`);
* ``lengths`` -- int32 ``[K]``: number of used bins of table ``k`` (bins ``>= lengths[k]`` are padding);
* ``offsets`` -- int32 ``[K]``: the symbol value of bin 0 of table ``k``.

Bins ``0 .. lengths[k]-2`` stand for the values ``offsets[k] + bin``. The last used bin
``lengths[k]-1`` is an *escape*: a value outside the table's range is coded as the escape bin and,
after all table-coded symbols, the value itself in a bypass code: zigzag ``v -> u >= 0``, the bit
length ``n`` of ``u`` with a uniform model over ``0..32``, then the ``n-1`` bits of ``u`` below its
leading one in 16-bit chunks (low chunk first) with uniform models. Values must satisfy
``|v| < 2**31``.

Stream layout (one ``constriction`` range coder, 32-bit words stored little-endian):

1. for each table ``k`` in ascending order, the bins of all symbols with ``table_index == k`` in
   their flattened (C) order;
2. for each escaped symbol in flattened order: its bit length, then its chunks.

Determinism: the models are built from the float64 probabilities ``counts / 2**precision``,
which are *exact* (a power-of-two division of integers below 2**24), and ``constriction``
quantizes them with plain IEEE arithmetic. So the decoded symbols depend only on the integer
tables and the bytes: decoding is bit-exact on every machine, whatever wrote the file.

:func:`decode` never trusts its input: truncated, padded or corrupt data raises
:class:`~pixelmind.errors.BitstreamError` (it re-encodes what it decoded and requires the very same
bytes, so a stream that runs past its end, or carries extra words, is caught too).

Example:
    >>> counts, lengths, offsets = build_tables([np.array([0.25, 0.5, 0.2, 0.05])], [-1])
    >>> values = np.array([[0, 1, -1, 0, 40]])
    >>> data = encode(values, np.zeros_like(values), counts, lengths, offsets)
    >>> decode(data, np.zeros_like(values), counts, lengths, offsets).tolist()
    [[0, 1, -1, 0, 40]]
"""

from __future__ import annotations

import constriction
import numpy as np

from pixelmind.errors import BitstreamError

#: default fixed-point precision of the tables: each row's counts sum to 2**PRECISION
PRECISION = 16
#: escaped values must satisfy |v| < ESCAPE_LIMIT
ESCAPE_LIMIT = 2**31
#: the bit length of a zigzagged escape value is one of 0..MAX_BITS
MAX_BITS = 32
#: escape bits are coded in chunks of at most this many bits
CHUNK_BITS = 16
#: constriction's models have 24-bit precision: finer tables cannot be represented exactly
MAX_PRECISION = 24

_model = constriction.stream.model
_queue = constriction.stream.queue


def pmf_to_counts(pmf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Quantize a probability mass function to integer counts that sum to exactly ``2**precision``.

    Each bin gets ``floor(p * 2**precision)``, at least 1. A shortfall is given, one count each, to
    the largest bins; an excess (from bins raised to 1) is taken from the bins in proportion to
    what they hold above 1, the rounding remainder one count each from the largest. The result is
    deterministic for a given float64 ``pmf``.

    Args:
        pmf: non-negative float weights ``[L]`` (normalised here); the last entry is the escape
            (tail) mass.
        precision: the counts sum to ``2**precision`` (1..24).

    Returns:
        int32 counts ``[L]``, every one >= 1, summing to ``2**precision``.

    Raises:
        ValueError: ``pmf`` is not a non-empty 1-D array of finite non-negative numbers with a
            positive sum, ``precision`` is out of range, or ``L > 2**precision``.

    Example:
        >>> pmf_to_counts(np.array([0.7, 0.3, 0.0]), precision=4).tolist()
        [11, 4, 1]
    """
    if not 1 <= int(precision) <= MAX_PRECISION:
        raise ValueError(f"precision must be in 1..{MAX_PRECISION}, got {precision}")
    pmf = np.asarray(pmf, dtype=np.float64)
    total_count = 2 ** int(precision)
    if pmf.ndim != 1 or pmf.size == 0:
        raise ValueError(f"pmf must be a non-empty 1-D array, got shape {pmf.shape}")
    if pmf.size > total_count:
        raise ValueError(f"a pmf of {pmf.size} bins does not fit precision {precision} (at most {total_count} bins)")
    if not np.all(np.isfinite(pmf)) or np.any(pmf < 0) or not pmf.sum() > 0:
        raise ValueError("pmf must hold finite non-negative numbers with a positive sum")
    counts = np.maximum(np.floor(pmf / pmf.sum() * total_count).astype(np.int64), 1)
    by_size = np.argsort(-counts, kind="stable")  # largest first, ties by bin index
    diff = total_count - int(counts.sum())
    if diff > 0:  # floors lost less than one count per bin, so diff < L
        counts[by_size[:diff]] += 1
    elif diff < 0:  # sum(counts - 1) = 2**precision + excess - L >= excess
        excess = -diff
        spare = counts - 1
        take = excess * spare // int(spare.sum())
        counts -= take
        left = excess - int(take.sum())  # < number of bins with a fractional share, each can give 1
        can_give = by_size[(counts - 1)[by_size] > 0]
        counts[can_give[:left]] -= 1
    assert int(counts.sum()) == total_count and counts.min() >= 1
    return counts.astype(np.int32)


def build_tables(
    pmfs: list[np.ndarray], offsets: list[int], precision: int = PRECISION
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantize a list of pmfs to the integer tables used by :func:`encode` and :func:`decode`.

    Args:
        pmfs: one float pmf per table; its last entry is the escape mass.
        offsets: the value of bin 0 of each table.
        precision: every row's counts sum to ``2**precision``.

    Returns:
        ``(counts, lengths, offsets)``: int32 ``[K, L]`` (rows zero-padded to the longest pmf),
        int32 ``[K]`` and int32 ``[K]``.

    Raises:
        ValueError: no tables, mismatched lengths, a bad pmf, or offsets that do not fit int32.

    Example:
        >>> counts, lengths, offsets = build_tables([np.array([0.5, 0.5]), np.array([0.2, 0.6, 0.2])], [0, -1], 8)
        >>> counts.tolist(), lengths.tolist(), offsets.tolist()
        ([[128, 128, 0], [51, 154, 51]], [2, 3], [0, -1])
    """
    if len(pmfs) == 0 or len(pmfs) != len(offsets):
        raise ValueError(f"need one offset per pmf and at least one table, got {len(pmfs)} pmfs, {len(offsets)} offsets")
    rows = [pmf_to_counts(p, precision) for p in pmfs]
    width = max(len(r) for r in rows)
    counts = np.zeros((len(rows), width), dtype=np.int32)
    for k, row in enumerate(rows):
        counts[k, : len(row)] = row
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    offs = np.array([int(o) for o in offsets], dtype=np.int64)
    if np.any(offs < -(2**31)) or np.any(offs + lengths > 2**31 - 1):
        raise ValueError("table offsets (and offset + length) must fit int32")
    return counts, lengths.astype(np.int32), offs.astype(np.int32)


class _Tables:
    """Validated tables as int64 numpy arrays plus one constriction model per table."""

    def __init__(self, counts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> None:
        counts, lengths, offsets = (np.asarray(a) for a in (counts, lengths, offsets))
        for name, a, ndim in (("counts", counts, 2), ("lengths", lengths, 1), ("offsets", offsets, 1)):
            if a.ndim != ndim or not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"{name} must be a {ndim}-D integer array, got {a.dtype} of shape {a.shape}")
        k, width = counts.shape
        if k == 0 or lengths.shape != (k,) or offsets.shape != (k,):
            raise ValueError(f"tables disagree: counts {counts.shape}, lengths {lengths.shape}, offsets {offsets.shape}")
        self.counts = counts.astype(np.int64)
        self.lengths = lengths.astype(np.int64)
        self.offsets = offsets.astype(np.int64)
        if np.any(self.lengths < 1) or np.any(self.lengths > width):
            raise ValueError(f"table lengths must be in 1..{width}")
        used = np.arange(width)[None, :] < self.lengths[:, None]
        if np.any(self.counts[used] < 1):
            raise ValueError("every used bin of a table must have a count >= 1")
        sums = np.where(used, self.counts, 0).sum(axis=1)
        if np.any(sums > 2**MAX_PRECISION) or np.any(sums & (sums - 1)):
            raise ValueError(f"each table's counts must sum to a power of two <= 2**{MAX_PRECISION}")
        if np.any(self.offsets < -(2**31)) or np.any(self.offsets + self.lengths > 2**31 - 1):
            raise ValueError("table offsets (and offset + length) must fit int32")
        self.k = k
        self.sums = sums
        self.escape = self.lengths - 1
        # exact float64 probabilities -> the same quantized model on every machine
        self.models = [
            _model.Categorical(self.counts[i, : self.lengths[i]] / float(sums[i]), perfect=False)
            if self.lengths[i] >= 2
            else None  # a single (escape) bin needs no bits
            for i in range(k)
        ]

    def index(self, table_index: np.ndarray) -> np.ndarray:
        """``table_index`` as flat int64, checked to lie in 0..K-1."""
        tidx = np.asarray(table_index)
        if tidx.size and not np.issubdtype(tidx.dtype, np.integer):
            raise ValueError(f"table_index must hold integers, got {tidx.dtype}")
        flat = tidx.reshape(-1).astype(np.int64)
        if flat.size and (flat.min() < 0 or flat.max() >= self.k):
            raise ValueError(f"table_index values must be in 0..{self.k - 1}, got {flat.min()}..{flat.max()}")
        return flat


def _flat_values(values: np.ndarray, table_index: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != np.shape(table_index):
        raise ValueError(f"values {values.shape} and table_index {np.shape(table_index)} differ in shape")
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"values must be integers, got {values.dtype}")
    if values.min() <= -ESCAPE_LIMIT or values.max() >= ESCAPE_LIMIT:
        raise ValueError(f"values must satisfy |v| < 2**31, got {values.min()}..{values.max()}")
    return values.reshape(-1).astype(np.int64)


def _bins(values: np.ndarray, tidx: np.ndarray, tables: _Tables) -> tuple[np.ndarray, np.ndarray]:
    """Each symbol's bin and the mask of escaped symbols (flattened order)."""
    bins = values - tables.offsets[tidx]
    escape = tables.escape[tidx]
    escaped = (bins < 0) | (bins >= escape)
    return np.where(escaped, escape, bins), escaped


def _bit_length(u: np.ndarray) -> np.ndarray:
    """Bit length of non-negative integers < 2**53 (exact: frexp of an exactly representable float)."""
    return np.frexp(u.astype(np.float64))[1].astype(np.int64)


def _chunk_bits(nbits: np.ndarray) -> np.ndarray:
    """``[E, 2]`` bits in each chunk of the ``max(n - 1, 0)`` bits below an escape's leading one."""
    below = np.maximum(nbits - 1, 0)
    return np.stack([np.minimum(below, CHUNK_BITS), np.maximum(below - CHUNK_BITS, 0)], axis=1)


def _table_order(tidx: np.ndarray, k: int) -> np.ndarray:
    """Symbol positions grouped by table, ascending, flattened order within a table (stable)."""
    return np.argsort(tidx.astype(np.int16) if k <= 2**15 else tidx, kind="stable")  # int16: radix sort


def _encode(values: np.ndarray, tidx: np.ndarray, tables: _Tables) -> bytes:
    if values.size == 0:
        return b""
    bins, escaped = _bins(values, tidx, tables)
    order = _table_order(tidx, tables.k)
    per_table = np.bincount(tidx, minlength=tables.k)
    sorted_bins = bins[order].astype(np.int32)
    encoder = _queue.RangeEncoder()
    start = 0
    for k in np.flatnonzero(per_table):
        stop = start + int(per_table[k])
        if tables.models[k] is not None:
            encoder.encode(sorted_bins[start:stop], tables.models[k])
        start = stop
    if escaped.any():
        v = values[escaped]
        u = (v << 1) ^ (v >> 63)  # zigzag: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ...
        nbits = _bit_length(u)
        encoder.encode(nbits.astype(np.int32), _model.Uniform(MAX_BITS + 1))
        rest = u - np.where(nbits > 0, np.left_shift(1, np.maximum(nbits - 1, 0)), 0)
        chunk_bits = _chunk_bits(nbits)
        chunks = np.stack([rest & (2**CHUNK_BITS - 1), rest >> CHUNK_BITS], axis=1)
        used = chunk_bits > 0
        if used.any():
            encoder.encode(
                chunks[used].astype(np.int32), _model.Uniform(), np.left_shift(1, chunk_bits[used]).astype(np.int32)
            )
    return encoder.get_compressed().astype("<u4").tobytes()


def encode(
    values: np.ndarray, table_index: np.ndarray, counts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray
) -> bytes:
    """Entropy-code integer ``values``, each with the table given by ``table_index``.

    Args:
        values: integers of any shape, ``|v| < 2**31``.
        table_index: the table of each value, same shape, in ``0..K-1``.
        counts: int32 ``[K, L]`` table counts (see the module docstring).
        lengths: int32 ``[K]`` used bins per table (the last one is the escape).
        offsets: int32 ``[K]`` value of bin 0 per table.

    Returns:
        The compressed bytes (a multiple of 4; empty for no values).

    Raises:
        ValueError: mismatched shapes, non-integer values, values out of range, table indices
            outside ``0..K-1`` or malformed tables.

    Example:
        >>> counts, lengths, offsets = build_tables([np.array([0.9, 0.1])], [0])
        >>> len(encode(np.zeros(100, dtype=np.int32), np.zeros(100, dtype=np.int32), counts, lengths, offsets))
        4
    """
    tables = _Tables(counts, lengths, offsets)
    flat = _flat_values(values, table_index)
    return _encode(flat, tables.index(table_index), tables)


def _panic_safe(call, *args):
    """Run a constriction call; any failure of it (a Rust panic is a BaseException) -> BitstreamError."""
    try:
        return call(*args)
    except Exception as ex:
        raise BitstreamError(f"corrupt entropy-coded data ({str(ex).splitlines()[0] if str(ex) else type(ex).__name__})") from ex
    except BaseException as ex:
        if type(ex).__name__ == "PanicException":
            raise BitstreamError("corrupt entropy-coded data (the decoder gave up)") from ex
        raise


def decode(
    data: bytes, table_index: np.ndarray, counts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """Decode what :func:`encode` wrote: the exact inverse, safe on untrusted data.

    The work is bounded by ``table_index.size`` and ``len(data)`` whatever the bytes hold. The
    decoded values are re-encoded and must give back ``data`` exactly, so truncated streams,
    streams with extra bytes and non-canonical escapes are all rejected.

    Args:
        data: the compressed bytes.
        table_index: the table of each value to decode; its shape is the output's shape.
        counts: int32 ``[K, L]`` table counts, the ones used to encode.
        lengths: int32 ``[K]`` used bins per table.
        offsets: int32 ``[K]`` value of bin 0 per table.

    Returns:
        int32 values of ``table_index``'s shape.

    Raises:
        BitstreamError: the data is truncated, corrupt or was made with other tables.
        ValueError: table indices outside ``0..K-1`` or malformed tables.

    Example:
        >>> counts, lengths, offsets = build_tables([np.array([0.5, 0.3, 0.2])], [5])
        >>> idx = np.zeros(4, dtype=np.int32)
        >>> decode(encode(np.array([5, 6, 5, -9]), idx, counts, lengths, offsets), idx, counts, lengths, offsets)
        array([ 5,  6,  5, -9], dtype=int32)
    """
    tables = _Tables(counts, lengths, offsets)
    tidx = tables.index(table_index)
    shape = np.shape(table_index)
    data = bytes(data)
    if len(data) % 4:
        raise BitstreamError(f"corrupt entropy-coded data: {len(data)} bytes is not a whole number of 32-bit words")
    if tidx.size == 0:
        if data:
            raise BitstreamError(f"corrupt entropy-coded data: {len(data)} bytes where no symbols are expected")
        return np.zeros(shape, dtype=np.int32)
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    decoder = _queue.RangeDecoder(words)
    order = _table_order(tidx, tables.k)
    per_table = np.bincount(tidx, minlength=tables.k)
    sorted_bins = np.empty(tidx.size, dtype=np.int64)
    start = 0
    for k in np.flatnonzero(per_table):
        stop = start + int(per_table[k])
        if tables.models[k] is None:
            sorted_bins[start:stop] = 0
        else:
            sorted_bins[start:stop] = _panic_safe(decoder.decode, tables.models[k], stop - start)
        start = stop
    bins = np.empty_like(sorted_bins)
    bins[order] = sorted_bins
    escape = tables.escape[tidx]
    if np.any(bins < 0) or np.any(bins > escape):  # constriction guarantees this; cheap to make sure
        raise BitstreamError("corrupt entropy-coded data: a decoded bin lies outside its table")
    values = tables.offsets[tidx] + bins
    escaped = bins == escape
    n_escaped = int(escaped.sum())
    if n_escaped:
        nbits = _panic_safe(decoder.decode, _model.Uniform(MAX_BITS + 1), n_escaped).astype(np.int64)
        if np.any(nbits < 0) or np.any(nbits > MAX_BITS):
            raise BitstreamError("corrupt entropy-coded data: an escaped value has an impossible bit length")
        chunk_bits = _chunk_bits(nbits)
        used = chunk_bits > 0
        chunks = np.zeros(chunk_bits.shape, dtype=np.int64)
        if used.any():
            sizes = np.left_shift(1, chunk_bits[used]).astype(np.int32)
            chunks[used] = _panic_safe(decoder.decode, _model.Uniform(), sizes)
            if np.any(chunks[used] < 0) or np.any(chunks[used] >= sizes):
                raise BitstreamError("corrupt entropy-coded data: an escaped value has impossible bits")
        lead = np.where(nbits > 0, np.left_shift(1, np.maximum(nbits - 1, 0)), 0)
        u = lead + chunks[:, 0] + (chunks[:, 1] << CHUNK_BITS)
        v = (u >> 1) ^ -(u & 1)
        if np.any(v <= -ESCAPE_LIMIT) or np.any(v >= ESCAPE_LIMIT):
            raise BitstreamError("corrupt entropy-coded data: an escaped value is out of range (|v| >= 2**31)")
        k_esc = tidx[escaped]
        inside = (v >= tables.offsets[k_esc]) & (v < tables.offsets[k_esc] + tables.escape[k_esc])
        if np.any(inside):
            raise BitstreamError("corrupt entropy-coded data: an escaped value lies inside its table's range")
        values[escaped] = v
    if _encode(values, tidx, tables) != data:
        raise BitstreamError(
            "corrupt entropy-coded data: it does not end where the symbols do (truncated, extended or altered)"
        )
    return values.astype(np.int32).reshape(shape)


def estimate_bits(
    values: np.ndarray, table_index: np.ndarray, counts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray
) -> float:
    """The ideal code length ``-sum(log2 p)`` in bits of what :func:`encode` would write.

    Escaped values add ``log2(33)`` bits for their bit length plus their bits below the leading one.

    Args:
        values: integers of any shape, ``|v| < 2**31``.
        table_index: the table of each value, same shape.
        counts: int32 ``[K, L]`` table counts.
        lengths: int32 ``[K]`` used bins per table.
        offsets: int32 ``[K]`` value of bin 0 per table.

    Returns:
        The code length in bits (a float; the real stream is a little longer: rounding to
        24-bit models and the final words).

    Raises:
        ValueError: as :func:`encode`.

    Example:
        >>> counts, lengths, offsets = build_tables([np.array([0.5, 0.25, 0.25])], [0])
        >>> estimate_bits(np.array([0, 0, 1]), np.zeros(3, dtype=np.int64), counts, lengths, offsets)
        4.0
    """
    tables = _Tables(counts, lengths, offsets)
    flat = _flat_values(values, table_index)
    tidx = tables.index(table_index)
    if flat.size == 0:
        return 0.0
    bins, escaped = _bins(flat, tidx, tables)
    bits = float(np.sum(np.log2(tables.sums[tidx] / tables.counts[tidx, bins])))
    if escaped.any():
        v = flat[escaped]
        nbits = _bit_length((v << 1) ^ (v >> 63))
        bits += float(escaped.sum()) * np.log2(MAX_BITS + 1) + float(np.maximum(nbits - 1, 0).sum())
    return bits
