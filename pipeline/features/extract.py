"""Features: log-mel spectrograms, MFCCs and raw waveforms, and their normalisation.

`compute_features` is the one source of truth: training (through the feature cache), the
``tag`` command and the dashboard all call it, so a clip is always seen the same way.

Choices, and why
----------------
- **96 mel bands by default.** With the defaults (16 kHz, ``n_fft`` 512, so FFT bins
  31.25 Hz apart) 96 slaney-scale bands sit 31.1 Hz apart below 1 kHz, about one FFT bin,
  so nearly every band averages two or more bins (one band of 96 rests on a single bin);
  it is the input of Choi et al.'s FCN and of musicnn. The short-chunk ResNet of Won et
  al. (2020) uses 128 bands on the same STFT: set ``n_mels=128`` for it. Its low bands are
  then 23.4 Hz apart, narrower than an FFT bin, and 25 of them rest on a single bin, so
  they add rows without adding low-frequency resolution (that needs a longer ``n_fft``).
- **Log compression ``log10(1 + 10000 * mel_power)``**, as in musicnn. Silence maps to 0
  and no per-clip reference is used, so absolute loudness survives: tags such as *loud*,
  *quiet* and *soft* stay learnable (``power_to_db(ref=np.max)`` would erase them), and the
  values (0 to about 6) sit well inside float16's range for the cache.
- **MFCC** = DCT-II (orthonormal) of the mel power in decibels (``10 log10``, floor
  1e-10, no per-clip ``top_db`` clipping), i.e. ``librosa.feature.mfcc`` without its
  per-clip floor.
- **STFT**: periodic Hann window, centred frames with zero padding (librosa's defaults), so
  frame ``t`` is centred on sample ``t * hop_length`` and a clip of ``n`` samples has
  ``1 + n // hop_length`` frames. The slaney mel filterbank is computed here in numpy
  (identical to ``librosa.filters.mel``, which a test checks) because importing
  ``librosa.filters`` costs over a second per process (it pulls in scipy.signal).
- **Compiled loops** (`pipeline.features.kernels`, built by ``make install``) window the
  frames, square the spectrum and apply each band over only its own bins, one pass per block;
  without them numpy does the same in whole-array passes, applying the filterbank in a few
  groups of adjacent bands, each a dense product over only the FFT bins those bands touch
  (the bands are narrow triangles: this skips over 80% of a full product's multiply-adds).
  The two agree to float32 rounding (tests/test_kernels.py).
- **FFT backend**: ducc0 (the successor of the pocketfft inside numpy and scipy, by its
  author) runs the batched 512-point float32 transforms 1.3x faster than scipy's pocketfft
  and 4x faster than numpy's, and imports in 5 ms (``scipy.fft`` takes 0.4 s), so one
  backend serves a batch build and a one-off ``python -m pipeline tag`` process alike. Where
  ducc0 is not installed numpy's FFT is used; the two differ by float rounding (about 1e-6
  relative), far below the cache's float16 steps (a test).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import pipeline.features.kernels as kernels
from pipeline.errors import ParameterError

KINDS: tuple[str, ...] = ("logmel", "mfcc", "waveform")
# Bump when compute_features changes its output for the same config: it is part of every
# cache key, so old caches are not reused. 2: the log-mel's log10 as ln(x) / ln(10) (faster),
# which moves about 1 float16 value in 60,000 by one step. 3: the cache's log-mel is the exactly
# rounded float16 (pipeline.features.float16.log_mel_float16), which moves about 1 value in 350.
FEATURE_VERSION = 3
LOG_SCALE = 10000.0  # log10(1 + LOG_SCALE * mel_power), musicnn's compression
# Frames per FFT block. Small blocks keep the work in the CPU's L2 cache and bound memory for
# audio of any length: 64-128 frames ran 3-5x faster than one block for a whole 30 s clip, in
# the feature cache's decode-then-compute loop here (measured); 128 halves the calls of 64.
_FRAME_BLOCK = 128
_MEL_BLOCK = 256  # frames per filterbank product: fewer, larger products (input 256 x 257 float32)
_MEL_GROUPS = 6  # band groups of the filterbank product (see _mel_groups); 4-8 measured alike


@dataclass(frozen=True)
class FeatureConfig:
    """What features to compute and how; every field is part of the cache key."""

    kind: str = "logmel"  # "logmel" | "mfcc" | "waveform"
    sample_rate: int = 16000  # Hz; MagnaTagATune is 16 kHz, and most taggers use it
    n_fft: int = 512  # STFT window (32 ms at 16 kHz)
    hop_length: int = 256  # 16 ms hop: 62.5 frames a second
    n_mels: int = 96  # Choi FCN / musicnn; 128 for the short-chunk ResNet (see module doc)
    n_mfcc: int = 20  # MFCC coefficients kept (kind "mfcc")
    fmin: float = 0.0  # lowest mel band edge, Hz
    fmax: float | None = None  # highest mel band edge, Hz; None = sample_rate / 2

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ParameterError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "n_mfcc"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(f"{name} must be a positive integer, got {value!r}")
        if self.n_mfcc > self.n_mels:
            raise ParameterError(f"n_mfcc must be <= n_mels ({self.n_mels}), got {self.n_mfcc}")
        nyquist = self.sample_rate / 2
        if not 0 <= self.fmin < self.fmax_hz:
            raise ParameterError(f"fmin must be in [0, fmax={self.fmax_hz}), got {self.fmin}")
        if self.fmax is not None and not 0 < self.fmax <= nyquist:
            raise ParameterError(f"fmax must be in (0, sample_rate / 2 = {nyquist}], got {self.fmax}")

    @property
    def fmax_hz(self) -> float:
        """The highest mel band edge in Hz (``fmax`` or the Nyquist frequency)."""
        return float(self.sample_rate / 2 if self.fmax is None else self.fmax)

    @property
    def n_bins(self) -> int:
        """Feature values per frame: ``n_mels``, ``n_mfcc`` or 1 (waveform)."""
        return {"logmel": self.n_mels, "mfcc": self.n_mfcc, "waveform": 1}[self.kind]

    @property
    def frames_per_second(self) -> float:
        """Frames a second of audio yields (``sample_rate`` for the waveform)."""
        return self.sample_rate if self.kind == "waveform" else self.sample_rate / self.hop_length

    def n_frames(self, n_samples: int) -> int:
        """Frames `compute_features` returns for ``n_samples`` samples."""
        return n_samples if self.kind == "waveform" else 1 + n_samples // self.hop_length

    def key(self) -> str:
        """A stable name for this configuration, e.g. ``"logmel-96mel-1a2b3c4d"``.

        The hash covers every field and `FEATURE_VERSION`, so any change gives a new key.
        """
        payload = json.dumps({**self.to_dict(), "version": FEATURE_VERSION}, sort_keys=True)
        digest = hashlib.sha1(payload.encode()).hexdigest()[:8]
        label = {"logmel": f"{self.n_mels}mel", "mfcc": f"{self.n_mfcc}mfcc",
                 "waveform": f"{self.sample_rate}hz"}[self.kind]
        return f"{self.kind}-{label}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (ints, floats, str, None)."""
        d = asdict(self)
        d["fmin"] = float(d["fmin"])
        d["fmax"] = None if d["fmax"] is None else float(d["fmax"])
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "n_mfcc"):
            d[name] = int(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureConfig:
        """Inverse of `to_dict`; an unknown field is an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ParameterError(f"unknown feature config field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


def compute_features(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Features of one clip.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]  mono audio at ``config.sample_rate`` (see `pipeline.features.audio.load_audio`)
    config : what to compute

    Returns
    -------
    np.ndarray [shape=(T, config.n_bins), dtype=float32]
        ``T = 1 + n // hop_length`` frames for log-mel and MFCC; the samples as ``(n, 1)`` for
        the waveform.

    Examples
    --------
    >>> sr = FeatureConfig().sample_rate
    >>> y = np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    >>> compute_features(y, FeatureConfig()).shape
    (63, 96)
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ParameterError(f"audio must be mono with shape (n,), got shape {y.shape}")
    if y.size == 0:
        raise ParameterError("audio is empty (0 samples)")
    y = y.astype(np.float32, copy=False)
    if config.kind == "waveform":
        return y.reshape(-1, 1).copy()
    mel = mel_power(y, config)
    if config.kind == "logmel":
        mel *= np.float32(LOG_SCALE)  # in place: mel is ours
        mel += np.float32(1)
        np.log(mel, out=mel)  # numpy's float32 log runs 2x faster than its log10 (measured)
        mel *= np.float32(1 / np.log(10))
        return mel
    import scipy.fft

    db = np.float32(10) * np.log10(np.maximum(mel, np.float32(1e-10)))
    return scipy.fft.dct(db, type=2, norm="ortho", axis=1)[:, : config.n_mfcc].astype(np.float32)


def mel_power(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Mel-band power spectrogram (what ``librosa.feature.melspectrogram`` returns, transposed).

    Returns np.ndarray [shape=(1 + n // hop_length, n_mels), dtype=float32].
    """
    y = np.ascontiguousarray(y, dtype=np.float32)
    compiled = kernels.load()
    if compiled is None:
        return _mel_power_numpy(y, config)
    bands = mel_bands(config)
    out = np.empty((1 + len(y) // config.hop_length, config.n_mels), dtype=np.float32)
    scratch = np.empty(bands.n_bins + bands.n_mels, dtype=np.float32)
    for start, spec in stft_blocks(y, config, compiled):
        compiled.mel_from_spectrum(spec, bands, scratch, out[start:start + len(spec)])
    return out


def stft_blocks(y: np.ndarray, config: FeatureConfig,
                compiled: kernels.Kernels) -> Iterator[tuple[int, np.ndarray]]:
    """The STFT of float32 ``y`` by the compiled kernels, a block of frames at a time.

    Yields ``(first frame, spectrum [shape=(frames, n_fft // 2 + 1), complex64])``; the
    spectrum's buffer is reused by the next block.
    """
    n_fft, hop = config.n_fft, config.hop_length
    window = _hann(n_fft)
    n_frames = 1 + len(y) // hop
    block = np.empty((min(n_frames, _FRAME_BLOCK), n_fft), dtype=np.float32)
    spec = np.empty((len(block), n_fft // 2 + 1), dtype=np.complex64)
    rfft = _rfft_backend()
    for start in range(0, n_frames, _FRAME_BLOCK):
        n = min(_FRAME_BLOCK, n_frames - start)
        compiled.window_frames(y, start, window, hop, block[:n])
        rfft(block[:n], spec[:n])
        yield start, spec[:n]


def _mel_power_numpy(y: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """`mel_power` by numpy alone, where the compiled kernels are not built."""
    n_fft, hop = config.n_fft, config.hop_length
    window = _hann(n_fft)
    groups = _mel_groups(config.sample_rate, n_fft, config.n_mels, float(config.fmin), config.fmax_hz)
    rfft = _rfft_backend()
    n_frames = 1 + len(y) // hop
    n_bins = n_fft // 2 + 1
    covered = sum(hi - lo for lo, hi, *_ in groups) == config.n_mels
    out = (np.empty if covered else np.zeros)((n_frames, config.n_mels), dtype=np.float32)  # empty bands: 0
    inner, first_inner = _inner_frames(y, n_fft, hop)
    # Buffers reused by every block: the FFT runs on blocks that stay in the CPU's cache, the
    # filterbank product on larger ones (fewer calls).
    block = np.empty((min(n_frames, _FRAME_BLOCK), n_fft), dtype=np.float32)
    spec = np.empty((len(block), n_bins), dtype=np.complex64)
    power = np.empty((min(n_frames, _MEL_BLOCK), n_bins), dtype=np.float32)
    for mel_start in range(0, n_frames, _MEL_BLOCK):
        m = min(_MEL_BLOCK, n_frames - mel_start)
        for start in range(mel_start, mel_start + m, _FRAME_BLOCK):
            n = min(_FRAME_BLOCK, mel_start + m - start)
            lo = start - first_inner
            if lo >= 0 and lo + n <= len(inner):  # a slice of one strided view: no copy, no call
                frames = inner[lo:lo + n]
            else:
                frames = _edge_frames(y, start, n, n_fft, hop)
            np.multiply(frames, window, out=block[:n])  # (n, n_fft)
            # |X|^2 on the spectrum seen as (re, im) pairs: squared in place, then each pair
            # summed (as fast as re^2 + im^2, without its scratch buffer).
            rfft(block[:n], spec[:n])  # (n, n_bins)
            pairs = spec[:n].view(np.float32)  # (n, 2 * n_bins)
            np.square(pairs, out=pairs)
            np.add(pairs[:, 0::2], pairs[:, 1::2], out=power[start - mel_start:start - mel_start + n])
        for band_lo, band_hi, bin_lo, bin_hi, weights in groups:  # (m, bands of the group)
            np.matmul(power[:m, bin_lo:bin_hi], weights, out=out[mel_start:mel_start + m, band_lo:band_hi])
    return out


def _inner_frames(y: np.ndarray, n_fft: int, hop: int) -> tuple[np.ndarray, int]:
    """The frames of the centred STFT that lie wholly inside ``y``, as one strided view, and the first one's index.

    Frame ``t`` is centred on sample ``t * hop``, so it starts at ``t * hop - n_fft // 2``.
    Building the view once per clip, then slicing it per block, costs less than a view per block
    (``sliding_window_view`` takes microseconds a call).
    """
    first = -(-(n_fft // 2) // hop)  # the first frame that starts at or after sample 0
    last = (len(y) - n_fft + n_fft // 2) // hop  # the last that ends inside (below first if none does)
    count = max(0, last - first + 1)
    if count == 0:
        return np.zeros((0, n_fft), dtype=np.float32), first
    base = y[first * hop - n_fft // 2:]
    view = np.lib.stride_tricks.as_strided(base, (count, n_fft), (hop * base.strides[0], base.strides[0]),
                                           writeable=False)
    return view, first


def _edge_frames(y: np.ndarray, start: int, n: int, n_fft: int, hop: int) -> np.ndarray:
    """Frames ``start`` to ``start + n`` of the centred STFT, reaching past an end of ``y`` [shape=(n, n_fft)].

    Only these blocks are copied and zero-padded (padding the whole signal would copy all of it).
    """
    first = start * hop - n_fft // 2  # frame t is centred on sample t * hop
    stop = first + (n - 1) * hop + n_fft
    segment = np.zeros(stop - first, dtype=np.float32)
    lo, hi = max(first, 0), min(stop, len(y))
    if hi > lo:
        segment[lo - first:hi - first] = y[lo:hi]
    return np.lib.stride_tricks.as_strided(segment, (n, n_fft), (hop * segment.strides[0], segment.strides[0]),
                                           writeable=False)


def _rfft_backend():
    """``rfft(frames, out)``: the real FFT of float32 ``frames`` over their last axis into complex64
    ``out``; ducc0's when it is installed, else numpy's (module doc)."""
    try:
        import ducc0
    except ImportError:
        return _numpy_rfft
    r2c = ducc0.fft.r2c
    return lambda frames, out: r2c(frames, axes=(-1,), out=out)


def _numpy_rfft(frames: np.ndarray, out: np.ndarray) -> None:
    np.copyto(out, np.fft.rfft(frames.astype(np.float64), axis=-1))  # numpy's FFT is fastest in float64


@functools.lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (scipy.signal.get_window('hann', n), librosa's default)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, log above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep,
                    hz / f_sp)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_band_centers(config: FeatureConfig) -> np.ndarray:
    """Centre frequency in Hz of each mel band [shape=(n_mels,)]."""
    edges = mel_to_hz(np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax_hz), config.n_mels + 2))
    return edges[1:-1]


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-normalised triangular mel filterbank, equal to ``librosa.filters.mel`` defaults.

    Returns np.ndarray [shape=(n_mels, 1 + n_fft // 2), dtype=float32] (read-only, cached).
    """
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def mel_bands(config: FeatureConfig) -> kernels.MelBands:
    """`mel_filterbank` of ``config`` as the compiled kernels read it (cached)."""
    return _mel_bands(config.sample_rate, config.n_fft, config.n_mels, float(config.fmin), config.fmax_hz)


@functools.lru_cache(maxsize=16)
def _mel_bands(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> kernels.MelBands:
    return kernels.MelBands(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax))


@functools.lru_cache(maxsize=16)
def _mel_groups(sample_rate: int, n_fft: int, n_mels: int, fmin: float,
                fmax: float) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The filterbank in groups of adjacent bands, each with the span of FFT bins it touches.

    Returns ``(band_lo, band_hi, bin_lo, bin_hi, weights [shape=(bin_hi - bin_lo, band_hi -
    band_lo)])`` per group; groups whose bands touch no bin are left out (their output is 0).
    """
    basis = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).T  # (bins, bands)
    edges = np.linspace(0, n_mels, min(_MEL_GROUPS, n_mels) + 1).round().astype(int)
    groups = []
    for band_lo, band_hi in zip(edges[:-1], edges[1:]):
        bins = np.flatnonzero(basis[:, band_lo:band_hi].any(axis=1))
        if bins.size:
            bin_lo, bin_hi = int(bins[0]), int(bins[-1]) + 1
            weights = np.ascontiguousarray(basis[bin_lo:bin_hi, band_lo:band_hi])
            weights.setflags(write=False)
            groups.append((int(band_lo), int(band_hi), bin_lo, bin_hi, weights))
    return tuple(groups)


NORMALIZER_MODES: tuple[str, ...] = ("none", "global", "per_bin", "per_spec")


class FrameSource(Protocol):
    """What `Normalizer.fit` reads features from (the feature cache is one; this module does not
    import it, so the cache can import this one)."""

    config: FeatureConfig
    directory: Path

    def __contains__(self, clip_id: object) -> bool: ...

    def read(self, clip_id: str) -> np.ndarray: ...  # (T, n_bins)
_STD_FLOOR = 1e-6  # a (near-)constant bin or clip is centred, not blown up


class Normalizer:
    """Feature standardisation, the variants compared in the literature.

    Modes
    -----
    ``"none"``: unchanged. ``"global"``: one mean and std over the training set.
    ``"per_bin"``: a mean and std per mel bin (or coefficient) over the training set.
    ``"per_spec"``: each spectrogram standardised by its own mean and std (no fitting).

    Statistics are plain floats / lists in `to_dict`, so they travel inside checkpoints
    loaded with ``torch.load(weights_only=True)``.
    """

    def __init__(self, mode: str = "per_bin", mean: Any = None, std: Any = None) -> None:
        if mode not in NORMALIZER_MODES:
            raise ParameterError(f"normalization mode must be one of {NORMALIZER_MODES}, got {mode!r}")
        if (mean is None) != (std is None):
            raise ParameterError("give both mean and std, or neither")
        self.mode = mode
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        if self.mean is not None and mode in ("none", "per_spec"):
            raise ParameterError(f"normalization mode {mode!r} takes no mean / std")

    @property
    def needs_fit(self) -> bool:
        return self.mode in ("global", "per_bin") and self.mean is None

    def fit(self, cache: FrameSource, clip_ids: Sequence[str], max_clips: int = 512, seed: int = 0) -> Normalizer:
        """Estimate the statistics from (a seeded sample of at most ``max_clips`` of) ``clip_ids``.

        Clips absent from the cache (failed to decode) are skipped. Modes without
        statistics return at once.
        """
        if self.mode in ("none", "per_spec"):
            return self
        ids = [c for c in clip_ids if c in cache]
        if not ids:
            raise ParameterError(f"none of the {len(clip_ids)} clips to fit the normalizer on is in {cache.directory}")
        if len(ids) > max_clips:
            pick = np.random.default_rng(seed).choice(len(ids), size=max_clips, replace=False)
            ids = [ids[i] for i in np.sort(pick)]
        n_bins = cache.config.n_bins
        total, total_sq, count = np.zeros(n_bins), np.zeros(n_bins), 0
        for clip_id in ids:
            x = np.asarray(cache.read(clip_id), dtype=np.float64)  # (T, n_bins)
            total += x.sum(axis=0)
            total_sq += np.square(x).sum(axis=0)
            count += x.shape[0]
        if self.mode == "global":
            total, total_sq, count = total.sum(keepdims=True), total_sq.sum(keepdims=True), count * n_bins
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        std = np.where(std < _STD_FLOOR, 1.0, std)
        if self.mode == "global":
            mean, std = mean[0], std[0]  # scalars
        self.mean, self.std = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
        return self

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Normalise ``x`` [shape=(..., T, n_bins)]; returns float32 of the same shape."""
        x = np.asarray(x, dtype=np.float32)
        if self.mode == "none":
            return x
        if self.mode == "per_spec":
            mean = x.mean(axis=(-2, -1), keepdims=True)
            std = x.std(axis=(-2, -1), keepdims=True)
            return (x - mean) / np.where(std < _STD_FLOOR, np.float32(1), std)
        if self.mean is None or self.std is None:
            raise ParameterError(f"Normalizer(mode={self.mode!r}) is not fitted: call fit() or pass mean and std")
        if self.mean.ndim == 1 and self.mean.shape[0] != x.shape[-1]:
            raise ParameterError(f"normalizer has {self.mean.shape[0]} bins, features have {x.shape[-1]}")
        return (x - self.mean) / self.std

    def to_dict(self) -> dict[str, Any]:
        """``{"mode", "mean", "std"}`` as plain floats / lists / None."""
        def plain(a: np.ndarray | None) -> Any:
            return None if a is None else a.tolist()
        return {"mode": self.mode, "mean": plain(self.mean), "std": plain(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        """Inverse of `to_dict`."""
        return cls(d.get("mode", "per_bin"), d.get("mean"), d.get("std"))

    def __repr__(self) -> str:
        fitted = "" if self.mode in ("none", "per_spec") else (", fitted" if self.mean is not None else ", not fitted")
        return f"Normalizer(mode={self.mode!r}{fitted})"
