"""Mergeable summaries the monitoring aggregates keep per time bucket.

A bucket's count or cost adds up across buckets; its latency percentiles and its number of
distinct users do not. These two summaries do, so an hour is the merge of its minutes and a
month the merge of its hours:

- **latency histogram**: log-spaced bins (each 2% wider than the one before, from 0.1 ms to
  10,000 s), stored sparse. A percentile read from it is within 1% of the exact one (every
  value in a bin is reported as the bin's middle). ``histogram(...)`` / ``quantiles(...)``.
- **user sketch**: the exact set of (hashed, 64-bit) user ids while a bucket has up to 1,024 of
  them, then a HyperLogLog of 4,096 registers (about 1.6% standard error). Unions stay exact
  while every part is exact. ``users_blob(...)`` / ``count_users(...)``.

Blobs are little-endian numpy arrays behind a one-byte tag, so reading hundreds of them is a
few ``frombuffer`` calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

GAMMA = 1.02  # each bin's upper edge is 2% above its lower one
MIN_S = 1e-4  # bin 0 holds everything up to 0.1 ms
MAX_S = 1e4
NBINS = math.ceil(math.log(MAX_S / MIN_S) / math.log(GAMMA)) + 2
_LOG_GAMMA = math.log(GAMMA)

EXACT_MAX = 1024  # user ids kept exactly per bucket; more become a HyperLogLog
HLL_P = 12
HLL_M = 1 << HLL_P


# -- latency ---------------------------------------------------------------------------------------

def latency_bin(seconds: float) -> int:
    """The bin of a latency: 0 up to ``MIN_S``, then one bin per factor ``GAMMA``."""
    if not seconds > MIN_S:  # also NaN
        return 0
    return min(NBINS - 1, math.ceil(math.log(seconds / MIN_S) / _LOG_GAMMA))


def bin_value(index: int | np.ndarray):
    """The value a bin stands for: the middle of its edges (half of ``MIN_S`` for bin 0)."""
    import numpy as np

    index = np.asarray(index)
    upper = MIN_S * np.power(GAMMA, index.astype(float))
    return np.where(index == 0, MIN_S / 2, upper * 2 / (1 + GAMMA))


def encode_histogram(counts: dict[int, int]) -> bytes | None:
    """Sparse bins -> blob (``None`` when empty)."""
    import numpy as np

    if not counts:
        return None
    index = np.fromiter(sorted(counts), dtype="<u2", count=len(counts))
    values = np.fromiter((counts[i] for i in index.tolist()), dtype="<u4", count=len(counts))
    return b"h" + index.tobytes() + values.tobytes()


def _decode_histogram(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    n = (len(blob) - 1) // 6
    return (np.frombuffer(blob, dtype="<u2", count=n, offset=1),
            np.frombuffer(blob, dtype="<u4", count=n, offset=1 + 2 * n))


def merge_histogram(blob: bytes | None, counts: dict[int, int]) -> bytes | None:
    """A stored blob with sparse counts added (the writer's merge: no dense array)."""
    import numpy as np

    if not blob:
        return encode_histogram(counts)
    if not counts:
        return blob
    index, values = _decode_histogram(blob)
    new_index = np.fromiter(counts, dtype=np.int64, count=len(counts))
    new_values = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    merged, inverse = np.unique(np.concatenate([index.astype(np.int64), new_index]),
                                return_inverse=True)
    sums = np.bincount(inverse, weights=np.concatenate([values.astype(np.int64), new_values]))
    return b"h" + merged.astype("<u2").tobytes() + sums.astype("<u4").tobytes()


def add_histogram(dense: np.ndarray, blob: bytes | None) -> None:
    """Add a blob's counts into a dense array of ``NBINS`` counts, in place."""
    import numpy as np

    if not blob:
        return
    index, values = _decode_histogram(blob)
    dense[index.astype(np.intp)] += values  # a blob's bins are distinct


def histogram(blobs: Iterable[bytes | None]) -> np.ndarray:
    """The dense sum of many blobs."""
    import numpy as np

    dense = np.zeros(NBINS, dtype=np.int64)
    for blob in blobs:
        add_histogram(dense, blob)
    return dense


def quantiles(dense: np.ndarray, qs: Iterable[float]) -> list[float]:
    """Percentiles (0-100) of the values a histogram counts, interpolated between neighbouring
    ranks the way ``numpy.percentile`` does; NaN when it is empty."""
    import numpy as np

    total = int(dense.sum())
    if total == 0:
        return [math.nan for _ in qs]
    cumulative = np.cumsum(dense)

    def at_rank(rank: int) -> float:  # the value of the rank-th smallest (0-based)
        return float(bin_value(int(np.searchsorted(cumulative, rank + 1))))

    out = []
    for q in qs:
        position = q / 100 * (total - 1)
        low, high = math.floor(position), math.ceil(position)
        a, b = at_rank(low), at_rank(high)
        out.append(a + (b - a) * (position - low))
    return out


# -- users -----------------------------------------------------------------------------------------

def user_id64(hashed: str) -> int:
    """The 64-bit id a hashed user id (hex, as spans store it) is counted by."""
    return int(hashed[:16], 16)


def users_blob(ids: Iterable[int]) -> bytes | None:
    """A sketch of a set of 64-bit user ids (``None`` when empty)."""
    import numpy as np

    array = np.unique(np.fromiter(ids, dtype=np.uint64))
    if not len(array):
        return None
    if len(array) <= EXACT_MAX:
        return b"s" + array.astype("<u8").tobytes()
    return b"H" + _registers(array).tobytes()


def _registers(ids: np.ndarray) -> np.ndarray:
    """HyperLogLog registers of 64-bit ids: the top ``HLL_P`` bits pick the register, the rank
    of the first 1 bit in the rest is kept (the maximum per register)."""
    import numpy as np

    ids = ids.astype(np.uint64)
    width = 64 - HLL_P
    index = (ids >> np.uint64(width)).astype(np.intp)
    rest = ids & np.uint64((1 << width) - 1)
    # bit_length(rest) from the float exponent, corrected where rounding pushed it one up.
    exponent = np.frexp(rest.astype(np.float64))[1].astype(np.int64)
    shift = np.clip(exponent - 1, 0, 63).astype(np.uint64)
    exponent = np.where((rest > 0) & ((rest >> shift) == 0), exponent - 1, exponent)
    rank = (width - exponent + 1).astype(np.uint8)
    registers = np.zeros(HLL_M, dtype=np.uint8)
    np.maximum.at(registers, index, rank)
    return registers


def add_users(blob: bytes | None, ids: set[int]) -> bytes | None:
    """A stored sketch with more ids added (the writer's merge); the same blob when every id
    is already in an exact set."""
    import numpy as np

    if not ids:
        return blob
    if not blob:
        return users_blob(ids)
    new = np.fromiter(ids, dtype=np.uint64, count=len(ids))
    if blob[:1] == b"s":
        stored = np.frombuffer(blob, dtype="<u8", offset=1)
        at = np.searchsorted(stored, new)
        known = (at < len(stored)) & (stored[np.minimum(at, len(stored) - 1)] == new)
        if known.all():
            return blob
        merged = np.union1d(stored, new[~known])
        if len(merged) <= EXACT_MAX:
            return b"s" + merged.astype("<u8").tobytes()
        return b"H" + _registers(merged).tobytes()
    registers = np.maximum(np.frombuffer(blob, dtype=np.uint8, offset=1), _registers(new))
    return b"H" + registers.tobytes()


def merge_users(blobs: Iterable[bytes | None]) -> bytes | None:
    """The sketch of the union of many sketches."""
    import numpy as np

    exact, registers = [], None
    for blob in blobs:
        if not blob:
            continue
        if blob[:1] == b"s":
            exact.append(np.frombuffer(blob, dtype="<u8", offset=1))
        else:
            these = np.frombuffer(blob, dtype=np.uint8, offset=1)
            registers = these.copy() if registers is None else np.maximum(registers, these)
    ids = np.unique(np.concatenate(exact)) if exact else np.zeros(0, dtype=np.uint64)
    if registers is None:
        return users_blob(ids.tolist()) if len(ids) else None
    if len(ids):
        registers = np.maximum(registers, _registers(ids))
    return b"H" + registers.tobytes()


def count_users(blob: bytes | None) -> int:
    """How many distinct users a sketch holds (exact below ``EXACT_MAX``, estimated above)."""
    import numpy as np

    if not blob:
        return 0
    if blob[:1] == b"s":
        return (len(blob) - 1) // 8
    registers = np.frombuffer(blob, dtype=np.uint8, offset=1).astype(np.float64)
    m = float(HLL_M)
    alpha = 0.7213 / (1 + 1.079 / m)
    estimate = alpha * m * m / float(np.sum(np.power(2.0, -registers)))
    zeros = int(np.count_nonzero(registers == 0))
    if estimate <= 2.5 * m and zeros:  # small range: linear counting is better
        estimate = m * math.log(m / zeros)
    return round(estimate)
