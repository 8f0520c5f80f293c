"""A channel made audible: the clip filtered by what the channel responds to (numpy only).

For a spectrogram model the clip's STFT is multiplied by a mask, the channel's activation map
brought onto the STFT's time-frequency grid (`mask_grid`: a time-only mask where the layer has
no frequency axis), and inverted with the original phase (`resynthesize`). The STFT is the
features' own (`pipeline.features.extract`: periodic Hann, ``n_fft`` 512, hop 256, centred
frames), so STFT frame ``t`` is feature frame ``t``; the inverse is a weighted overlap-add
that divides by the summed squared window, which makes a mask of ones give back the original
within float error and a mask of zeros silence. For the sample-level waveform model the map
itself is a signal at a lower rate (`map_signal`: upsampled, its mean removed), as the
Edinburgh project proposed. Either result is scaled to the original's RMS loudness
(`match_loudness`) so that the two play at a comparable level, and encoded as 16-bit WAV
(`wav_bytes`) so the player does not rescale it.
"""

from __future__ import annotations

import io
import wave

import numpy as np

PEAK = 0.99  # the loudness-matched signal is limited to this peak (no clipping in the WAV)
SILENT_RMS = 1e-7  # below this RMS a result is silence, and stays silence


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window, the features' (`pipeline.features.extract`)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def stft(y: np.ndarray, n_fft: int = 512, hop: int = 256) -> np.ndarray:
    """Centred, zero-padded STFT of a mono signal: complex [shape=(1 + len(y) // hop, n_fft // 2 + 1)].

    Frame ``t`` is centred on sample ``t * hop``, as the features' frames are.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or len(y) < 1:
        raise ValueError(f"y must be a mono signal of at least one sample, got shape {y.shape}")
    n_frames = 1 + len(y) // hop
    padded = np.zeros((n_frames - 1) * hop + n_fft, dtype=np.float64)
    seg = y[: len(padded) - n_fft // 2]
    padded[n_fft // 2:n_fft // 2 + len(seg)] = seg
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    return np.fft.rfft(frames * _hann(n_fft), axis=-1)


def istft(spec: np.ndarray, length: int, n_fft: int = 512, hop: int = 256) -> np.ndarray:
    """Inverse of `stft`: weighted overlap-add divided by the summed squared window, ``length`` samples."""
    window = _hann(n_fft)
    frames = np.fft.irfft(spec, n=n_fft, axis=-1) * window  # (n_frames, n_fft)
    total = (len(spec) - 1) * hop + n_fft
    out = np.zeros(total)
    norm = np.zeros(total)
    for t in range(len(spec)):  # a few thousand frames: a loop of vector adds is fast enough
        out[t * hop:t * hop + n_fft] += frames[t]
        norm[t * hop:t * hop + n_fft] += window ** 2
    out = np.divide(out, norm, out=np.zeros_like(out), where=norm > 1e-10)
    y = out[n_fft // 2:n_fft // 2 + length]
    return np.pad(y, (0, length - len(y))) if len(y) < length else y


def normalised(values: np.ndarray) -> np.ndarray:
    """A map scaled to [0, 1]: ``(a - lo) / (max - lo)``, ``lo = min(0, min a)``; all zeros where it is flat.

    After a ReLU the floor is 0, so an inactive region stays 0; a layer whose output is
    batch-normalised after its ReLU (musicnn, vgg) has a negative floor, which maps to 0.
    """
    a = np.asarray(values, dtype=np.float64)
    lo = min(0.0, float(a.min())) if a.size else 0.0
    hi = float(a.max()) if a.size else 0.0
    if not hi > lo:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def mask_grid(channel_map: np.ndarray, n_frames: int, *, steps_per_frame: float,
              bin_rows: np.ndarray | None = None) -> np.ndarray:
    """A channel's map on the STFT grid: mask [shape=(n_frames, n_bins)] in [0, 1].

    Parameters
    ----------
    channel_map : np.ndarray [shape=(T',) or (F', T')]  one channel's activation over the clip
    n_frames : STFT (= feature) frames of the clip
    steps_per_frame : map steps per input frame (``chunk_steps / chunk_frames``)
    bin_rows : np.ndarray [shape=(n_bins,), dtype=int]  the map row of each STFT bin
        (`bin_rows_for`); needed for a map with a frequency axis. A time-only map gives the
        same mask in every bin (``n_bins`` is then 1, broadcast by `resynthesize`).
    """
    values = normalised(channel_map)
    steps = np.minimum((np.arange(n_frames) * steps_per_frame).astype(np.int64), values.shape[-1] - 1)
    if values.ndim == 1:
        return values[steps][:, None]
    if bin_rows is None:
        raise ValueError("a map with a frequency axis needs bin_rows (the map row of each STFT bin)")
    return values[:, steps][bin_rows].T  # (n_frames, n_bins)


def bin_rows_for(freq_rows: int, *, sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                 fmax: float | None = None) -> np.ndarray:
    """The map row (of ``freq_rows`` spread evenly over the mel bands) covering each STFT bin.

    Each bin's frequency is placed among the mel bands' centres (fractional band index, clamped
    to the first and last band), and row ``i`` covers bands ``[i n / F', (i + 1) n / F')``.
    """
    from pipeline.features.extract import hz_to_mel, mel_to_hz

    top = fmax if fmax is not None else sample_rate / 2
    centers = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(top), n_mels + 2))[1:-1]
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = np.interp(hz_to_mel(freqs), hz_to_mel(centers), np.arange(n_mels))
    return np.minimum(((band + 0.5) * freq_rows / n_mels).astype(np.int64), freq_rows - 1)


def resynthesize(y: np.ndarray, mask: np.ndarray, *, n_fft: int = 512, hop: int = 256) -> np.ndarray:
    """``y`` through its STFT times ``mask`` ((n_frames, n_bins) or (n_frames, 1)), original phase kept."""
    spec = stft(y, n_fft, hop)
    if mask.shape[0] != spec.shape[0] or mask.shape[1] not in (1, spec.shape[1]):
        raise ValueError(f"mask of shape {mask.shape} does not fit the STFT's {spec.shape}")
    return istft(spec * mask, len(y), n_fft, hop)


def map_signal(channel_map: np.ndarray, n_samples: int) -> np.ndarray:
    """A 1-D map (T',) heard as a signal: linearly upsampled to ``n_samples``, its mean removed."""
    a = np.asarray(channel_map, dtype=np.float64)
    if a.ndim != 1 or len(a) < 1:
        raise ValueError(f"a waveform map must be 1-D, got shape {a.shape}")
    positions = (np.arange(n_samples) + 0.5) * len(a) / n_samples - 0.5
    signal = np.interp(positions, np.arange(len(a)), a)
    return signal - signal.mean()


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0


def match_loudness(y: np.ndarray, reference: np.ndarray, *, peak: float = PEAK) -> tuple[np.ndarray, float | None]:
    """``y`` scaled to the RMS of ``reference`` (peaks limited to ``peak``); returns it and the gain in dB.

    Silence (RMS below `SILENT_RMS`) stays silence, with gain None.
    """
    level = rms(y)
    if level < SILENT_RMS:
        return np.zeros(len(y), dtype=np.float32), None
    gain = rms(reference) / level
    top = float(np.max(np.abs(y))) * gain
    if top > peak:
        gain *= peak / top
    return (y * gain).astype(np.float32), float(20 * np.log10(gain)) if gain > 0 else None


def wav_bytes(y: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM mono WAV of ``y`` (values in [-1, 1], clipped), as the player gets it: not rescaled."""
    pcm = (np.clip(np.asarray(y, dtype=np.float64), -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()
