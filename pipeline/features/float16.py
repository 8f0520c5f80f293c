"""The feature cache's float16 values: what `pipeline.features.cache` stores for a clip.

`cache_features` is the cache's one entry point. Log-mel features go straight from the mel
power to float16 by table lookup (`log_mel_float16`: the correctly rounded float16 of
``log10(1 + LOG_SCALE * power)``, without computing a logarithm; with the compiled kernels,
from each block's spectrum in one pass, `pipeline.features.kernels`); other kinds are computed
by `compute_features` and cast by `to_float16` (numpy's rounding, on float32 bit patterns
where it can be). Both flush values below 2**-14 to 0.
"""

from __future__ import annotations

import functools

import numpy as np

import pipeline.features.kernels as kernels
from pipeline.features.extract import LOG_SCALE, FeatureConfig, compute_features, mel_bands, mel_power, stft_blocks


def to_float16(x: np.ndarray) -> np.ndarray:
    """Cast features to float16 for the cache, flushing magnitudes below 2**-14 (about 6e-5) to 0.

    Those would be float16 subnormals, which numpy converts about 50x slower than normal
    numbers (and which matter to no feature: log-mel 6e-5 is a mel power of 1e-9).
    """
    return to_float16_inplace(np.array(x, dtype=np.float32))


def to_float16_inplace(x: np.ndarray) -> np.ndarray:
    """`to_float16` for a float32 array of our own (it may be modified)."""
    if x.size and x.min() >= 0 and x.max() < _FLOAT16_MAX:
        return nonnegative_to_float16(x)
    x[np.abs(x) < np.float32(2.0**-14)] = 0
    return x.astype(np.float16)


def cache_features(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The cache's float16 features of one clip of mono audio ``y`` [shape=(T, config.n_bins)]."""
    if config.kind != "logmel":
        return to_float16_inplace(compute_features(y, config))
    y = np.ascontiguousarray(y, dtype=np.float32)
    compiled = kernels.load()
    if compiled is not None:  # spectrum to float16 in one compiled pass a block, no float32 mel in between
        bands = mel_bands(config)
        out = np.empty((1 + len(y) // config.hop_length, config.n_mels), dtype=np.float16)
        scratch = np.empty(bands.n_bins + bands.n_mels, dtype=np.float32)
        table = _log_mel_kernel_table()
        if all(compiled.log_mel_from_spectrum(spec, bands, scratch, table, out[start:start + len(spec)])
               for start, spec in stft_blocks(y, config, compiled)):
            return out
        return _log_mel_float16_exact(mel_power(y, config))  # a value is out of the table: no lookup again
    return log_mel_float16(mel_power(y, config))


_FLOAT16_MAX = np.float32(65504)  # the largest finite float16
_FLOAT16_SMALLEST_NORMAL = 0x38800000  # the float32 bit pattern of 2**-14
_EXPONENT_REBIAS = (127 - 15) << 10  # float32 minus float16 exponent bias, at the float16 exponent's place


def nonnegative_to_float16(x: np.ndarray) -> np.ndarray:
    """`to_float16` of float32 values in [0, 65504), computed on their bit patterns.

    Equal to `to_float16` bit for bit (a test checks), and about 3x faster: numpy converts
    to float16 with scalar code (0.3 ms a 10 s clip here, as much as its mel filterbank),
    while these are a few whole-array integer operations. Round to nearest, ties to even:
    add 0xFFF plus the lowest kept bit, then drop the 13 low mantissa bits (a mantissa that
    overflows carries into the exponent, as it should); then move the exponent to float16's
    bias. Values below 2**-14 are flushed to 0, as `to_float16` does.
    """
    bits = x.view(np.uint32)
    rounded = np.right_shift(bits, 13)
    rounded &= 1  # the lowest mantissa bit kept: a tie goes to even
    rounded += bits
    rounded += 0xFFF
    rounded >>= 13
    rounded -= _EXPONENT_REBIAS  # wraps around for the values below 2**-14, which are zeroed next
    np.copyto(rounded, 0, where=bits < _FLOAT16_SMALLEST_NORMAL)
    return rounded.astype(np.uint16).view(np.float16)


# -- log-mel by table lookup --------------------------------------------------------------------
#
# float16 keeps 11 significant bits, so log10(1 + LOG_SCALE * x) rounded to float16 is a step
# function of the float32 x with a few thousand steps. Cut the float32 bit patterns of x into
# cells of 2**_CELL_SHIFT consecutive patterns (1 / 2048 of an octave): inside one cell the
# function rises by less than one float16 step (checked when the table is built), so each cell needs its
# float16 value at the cell's start and the position inside the cell where the next value
# begins, if it does. Looking both up costs less than numpy's float32 log alone, which is
# scalar code on AVX2 CPUs (0.28 ms a 10 s clip here), and the result is the exactly rounded
# value, where the float32 log and cast are off by one step in about 0.3% of values.
_CELL_SHIFT = 12
_TABLE_TOP = 0x47800000  # float32 bits of 2**16: mel powers reach about 4e3; above, or NaN: computed exactly
_FLUSHED = 0x03FF  # the largest float16 subnormal: a cell value meaning "below 2**-14", set to 0 at the end


def log_mel_float16(power: np.ndarray) -> np.ndarray:
    """float16 of ``log10(1 + LOG_SCALE * power)``, exactly rounded, values below 2**-14 as 0.

    ``power``: float32 mel power, never negative (`mel_power`); not modified.
    """
    power = np.ascontiguousarray(power, dtype=np.float32)
    bits = power.view(np.uint32)
    if not bits.size:
        return np.zeros(power.shape, dtype=np.float16)
    compiled = kernels.load()
    if compiled is not None:  # the same lookup in one compiled pass, which stops at a value out of the table
        out = compiled.log_mel_f16(power, _log_mel_kernel_table())
        return _log_mel_float16_exact(power) if out is None else out
    start, step_at = _log_mel_table()
    if bits.max() >= _TABLE_TOP:  # out of the table (or NaN, or a negative zero): the slow exact way
        return _log_mel_float16_exact(power)
    cell = (bits >> _CELL_SHIFT).astype(np.intp)  # take() converts any other index type on every call
    offset = (bits & ((1 << _CELL_SHIFT) - 1)).astype(np.uint16)
    out = start.take(cell)
    out += offset >= step_at.take(cell)
    np.copyto(out, 0, where=out == _FLUSHED)
    return out.view(np.float16)


def _log_mel_float64(power: np.ndarray) -> np.ndarray:
    """``log10(1 + LOG_SCALE * power)`` in float64: the value the table rounds."""
    return np.log1p(LOG_SCALE * power.astype(np.float64)) / np.log(10)


def _log_mel_float16_exact(power: np.ndarray) -> np.ndarray:
    """`log_mel_float16` in float64 (numpy rounds float64 to float16 directly, once)."""
    value = _log_mel_float64(power)
    out = value.astype(np.float16)
    out[value < 2.0**-14] = 0
    return out


@functools.lru_cache(maxsize=1)
def _log_mel_kernel_table() -> kernels.LogMelTable:
    return kernels.LogMelTable(*_log_mel_table(), _TABLE_TOP, _CELL_SHIFT, _FLUSHED)


@functools.lru_cache(maxsize=1)
def _log_mel_table() -> tuple[np.ndarray, np.ndarray]:
    """Per cell of float32 bit patterns below `_TABLE_TOP`: its float16 bits at the start, and
    where inside it (an offset in bit patterns) the value steps up by one (2**_CELL_SHIFT: never).

    Built in about 20 ms from the float32 inputs at which the rounded output changes: the
    first with a value of at least 2**-14 (below it, 0), then those at each midpoint between
    consecutive float16 values, found in float64 and checked on the float32 grid.
    """
    exact = _log_mel_float64
    top = exact(np.array([2.0**16]))[0]  # the float32 bits of 2**16 are _TABLE_TOP
    values = np.arange(0x0400, int(np.float16(top).view(np.uint16)) + 2, dtype=np.uint16).view(np.float16)
    values = values.astype(np.float64)
    edges = np.concatenate([[2.0**-14], (values[:-1] + values[1:]) / 2])  # output edges, ascending
    x = (np.expm1(edges * np.log(10)) / LOG_SCALE).astype(np.float32)
    for _ in range(4):  # the smallest float32 whose exact value reaches each edge
        low = exact(x) < edges
        x[low] = np.nextafter(x[low], np.float32(np.inf))
        below = np.nextafter(x, np.float32(0))
        high = exact(below) >= edges
        x[high] = below[high]
    assert (exact(x) >= edges).all() and (exact(np.nextafter(x, np.float32(0))) < edges).all()
    rises = x.view(np.uint32).astype(np.int64)  # bit patterns where the output rises by one
    cells = np.arange(_TABLE_TOP >> _CELL_SHIFT, dtype=np.int64) << _CELL_SHIFT
    before = np.searchsorted(rises, cells, side="right")  # rises at or before each cell's start
    inside = np.searchsorted(rises, cells + (1 << _CELL_SHIFT), side="left") - before
    assert inside.max() <= 1, "a cell spans two float16 steps: make _CELL_SHIFT smaller"
    start = (_FLUSHED + before).astype(np.uint16)
    step_at = np.full(len(cells), 1 << _CELL_SHIFT, dtype=np.uint16)
    steps = inside == 1
    step_at[steps] = rises[before[steps]] - cells[steps]
    for table in (start, step_at):
        table.setflags(write=False)
    return start, step_at
