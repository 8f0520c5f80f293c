"""Compiled loops of the log-mel features (``_kernels.c``), built by ``make install``, loaded with ctypes.

Why: around ducc0's FFT, numpy computes the windowed frames, the power spectrum, the mel
filterbank and the float16 table each in one or more whole-array passes, with scratch arrays
and a few dozen Python calls per clip in between. The compiled loops window a block of frames
in one pass and take its spectrum to the cache's float16 values in another, on data that stays
in the CPU's cache: a 10 s clip's cached features cost 1.7-1.8 ms instead of 2.3-2.5 (the FFT's
0.6 ms included; docs/benchmarks.md, "Features").

Results: the windowed frames and the table's float16 values are numpy's bit for bit; the mel
power is within float32 rounding of it (the sums run in another order), which moves about one
cached float16 value in 60,000 by one step (tests/test_kernels.py).

The library is named after the SHA-1 of the source it is built from, so a build from another
version of ``_kernels.c`` is never loaded. Where no C compiler is found there is no library:
`load` returns None and numpy does the work, a little slower.

``python -m pipeline.features.kernels`` builds it (``make install`` runs this).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_kernels.c")
NUMPY_ENV = "MUSICTAG_NUMPY_FEATURES"  # set to 1 to compute the features by numpy alone (comparisons)
_FLAGS = ("-O3", "-std=c99", "-shared", "-fPIC")  # the baseline instruction set: runs on any CPU of the architecture
_VOID_P, _I64 = ctypes.c_void_p, ctypes.c_int64


def library_path() -> Path:
    """Where the library built from the current ``_kernels.c`` lives (it may not exist)."""
    digest = hashlib.sha1(SOURCE.read_bytes()).hexdigest()[:16]
    return SOURCE.with_name(f"_kernels-{digest}.so")


def build(compiler: str | None = None) -> Path:
    """Compile ``_kernels.c`` (unless built already) and return the library's path.

    ``compiler``: the C compiler command; default ``$CC``, else the one Python was built with, else ``cc``.
    Raises RuntimeError with the compiler's first error line when it fails.
    """
    target = library_path()
    if target.is_file():
        return target
    command = shlex.split(compiler or os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        done = subprocess.run([*command, *_FLAGS, "-o", str(tmp), str(SOURCE)], capture_output=True, text=True)
    except OSError as exc:
        raise RuntimeError(f"no C compiler ({command[0]}: {exc.strerror})") from None
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        first = next((line for line in lines if "error" in line), lines[0])[:300]
        raise RuntimeError(f"{command[0]} could not compile {SOURCE.name}: {first}")
    os.replace(tmp, target)
    for old in SOURCE.parent.glob("_kernels-*.so"):  # builds of earlier sources
        if old != target:
            old.unlink(missing_ok=True)
    return target


class Kernels:
    """The loaded library: thin wrappers that check what they pass to C."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        lib.window_frames.argtypes = [_VOID_P, _I64, _I64, _I64, _I64, _I64, _VOID_P, _VOID_P]
        lib.window_frames.restype = None
        lib.mel_from_spectrum.argtypes = [_VOID_P, _I64, _I64, _I64, _VOID_P, _VOID_P, _VOID_P, _VOID_P, _VOID_P,
                                          _VOID_P]
        lib.mel_from_spectrum.restype = None
        lib.log_mel_from_spectrum.argtypes = [_VOID_P, _I64, _I64, _I64, _VOID_P, _VOID_P, _VOID_P, _VOID_P,
                                              _VOID_P, _VOID_P, _VOID_P, ctypes.c_uint32, ctypes.c_int32,
                                              ctypes.c_uint16, _VOID_P]
        lib.log_mel_from_spectrum.restype = ctypes.c_int
        lib.log_mel_f16.argtypes = [_VOID_P, _I64, _VOID_P, _VOID_P, ctypes.c_uint32, ctypes.c_int32,
                                    ctypes.c_uint16, _VOID_P]
        lib.log_mel_f16.restype = ctypes.c_int
        self._lib = lib

    def window_frames(self, y: np.ndarray, start: int, window: np.ndarray, hop: int, out: np.ndarray) -> None:
        """Frames ``start`` to ``start + len(out)`` of the centred STFT of ``y``, windowed, into ``out``."""
        _check(y, np.float32), _check(window, np.float32), _check(out, np.float32)
        _require(out.ndim == 2 and out.shape[1] == window.size and hop >= 1, "frames of the window's length")
        self._lib.window_frames(y.ctypes.data, y.size, start, out.shape[0], window.size, hop, window.ctypes.data,
                                out.ctypes.data)

    def mel_from_spectrum(self, spec: np.ndarray, bands: MelBands, scratch: np.ndarray, out: np.ndarray) -> None:
        """Mel power of the frames of ``spec`` [shape=(n, n_bins), complex64] into ``out`` [shape=(n, n_mels)].

        ``scratch``: float32, at least ``n_bins + n_mels`` values."""
        n = _check_spectrum(spec, bands, scratch, out, np.float32)
        self._lib.mel_from_spectrum(spec.ctypes.data, n, bands.n_bins, bands.n_mels, *bands.pointers,
                                    scratch.ctypes.data, out.ctypes.data)

    def log_mel_from_spectrum(self, spec: np.ndarray, bands: MelBands, scratch: np.ndarray, table: LogMelTable,
                              out: np.ndarray) -> bool:
        """The float16 log-mel of the frames of ``spec`` into ``out`` [shape=(n, n_mels), float16], by ``table``.

        False, with ``out`` unfinished, where a value is out of the table (see ``_kernels.c``)."""
        n = _check_spectrum(spec, bands, scratch, out, np.float16)
        return not self._lib.log_mel_from_spectrum(spec.ctypes.data, n, bands.n_bins, bands.n_mels, *bands.pointers,
                                                   scratch.ctypes.data, *table.arguments, out.ctypes.data)

    def log_mel_f16(self, power: np.ndarray, table: LogMelTable) -> np.ndarray | None:
        """float16 of ``power`` (float32) by the log-mel table; None if a value is out of it."""
        _check(power, np.float32)
        out = np.empty(power.shape, dtype=np.float16)
        missed = self._lib.log_mel_f16(power.ctypes.data, power.size, *table.arguments, out.ctypes.data)
        return None if missed else out


class MelBands:
    """A mel filterbank as the kernels read it: per band, its non-zero stretch of bins."""

    def __init__(self, filterbank: np.ndarray) -> None:
        self.n_mels, self.n_bins = filterbank.shape
        lo, length, rows = [], [], []
        for row in filterbank:
            nonzero = np.flatnonzero(row)
            first, stop = (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (0, 0)
            lo.append(first), length.append(stop - first), rows.append(row[first:stop])
        self.lo = np.array(lo, dtype=np.int32)
        self.length = np.array(length, dtype=np.int32)
        self.at = np.concatenate([[0], np.cumsum(self.length)[:-1]]).astype(np.int32)
        self.weights = np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)
        # The arrays' addresses, passed on every call (looking them up costs microseconds each).
        self.pointers = tuple(a.ctypes.data for a in (self.lo, self.length, self.at, self.weights))


class LogMelTable:
    """`pipeline.features.float16`'s log-mel table as the kernels read it (see ``_kernels.c``)."""

    def __init__(self, start: np.ndarray, step_at: np.ndarray, top: int, shift: int, flushed: int) -> None:
        _check(start, np.uint16), _check(step_at, np.uint16)
        _require(start.shape == step_at.shape == (top >> shift,), "a table cell for every value below its top")
        self._keep = (start, step_at)  # the addresses below stay valid while this object lives
        self.arguments = (start.ctypes.data, step_at.ctypes.data, top, shift, flushed)


def _check_spectrum(spec: np.ndarray, bands: MelBands, scratch: np.ndarray, out: np.ndarray, dtype: type) -> int:
    _check(spec, np.complex64), _check(scratch, np.float32), _check(out, dtype)
    n = spec.shape[0]
    _require(spec.shape == (n, bands.n_bins) and out.shape == (n, bands.n_mels), "spectrum and output of the bands")
    _require(scratch.size >= bands.n_bins + bands.n_mels, "scratch of n_bins + n_mels values")
    return n


def _require(ok: bool, what: str) -> None:
    """Checks that guard the C code's memory: not asserts, which ``python -O`` removes."""
    if not ok:
        raise ValueError(f"kernels need {what}")


def _check(a: np.ndarray, dtype: type) -> None:
    if a.dtype != dtype or not a.flags.c_contiguous:
        raise TypeError(f"kernels need C-contiguous {np.dtype(dtype)}, got {a.dtype} "
                        f"{'contiguous' if a.flags.c_contiguous else 'strided'}")


@functools.lru_cache(maxsize=1)
def load() -> Kernels | None:
    """The compiled kernels, or None where they are not built (or ``MUSICTAG_NUMPY_FEATURES=1`` asks for numpy)."""
    if os.environ.get(NUMPY_ENV) == "1":
        return None
    try:
        path = library_path()
    except OSError:  # no source beside this module
        return None
    if not path.is_file():
        return None
    try:
        return Kernels(ctypes.CDLL(str(path)))
    except (OSError, AttributeError) as exc:  # not a library for this machine, or one without the kernels
        log.warning("%s could not be loaded (%s); features are computed by numpy. Run `make install`.", path, exc)
        return None


def main() -> int:
    try:
        path = build()
    except RuntimeError as exc:
        print(f"warning: feature kernels not built ({exc}); features will be computed by numpy, a little slower")
        return 1
    print(f"feature kernels ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
