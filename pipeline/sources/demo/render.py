"""Rendering a demo clip: its MIDI through a General MIDI SoundFont, then an mp3 like MTT's.

The score (`pipeline.sources.demo.midi.clip_midi`) is rendered with ``midirenderer`` through
``TimGM6mb.sf2`` (shipped with pretty_midi), mixed to mono, resampled to MagnaTagATune's
16 kHz with one fixed gain per genre, and encoded as a 32 kbit/s constant-bit-rate mp3.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np

import pipeline.sources.demo.recipes as R
from pipeline.errors import PipelineError
from pipeline.sources.demo.midi import clip_midi
from pipeline.sources.demo.plan import ClipPlan
from pipeline.sources.mtt_format import MP3_KBPS, SAMPLE_RATE

_RENDER_RATE = 48_000  # midirenderer's fixed output rate
_GAIN = 2.5  # one fixed gain for every clip (never per-clip normalisation: loud / quiet must stay audible)


@functools.lru_cache(maxsize=1)
def soundfont() -> bytes:
    """The General MIDI SoundFont shipped with pretty_midi (read once per process)."""
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise PipelineError(f"SoundFont not found: {path} (reinstall pretty_midi: pip install pretty_midi)")
    return path.read_bytes()


def wav_to_mono(wav: bytes) -> np.ndarray:
    """Mono float32 from midirenderer's WAV bytes (16-bit PCM stereo at 48 kHz, parsed in place)."""
    import struct

    if wav[:4] == b"RIFF" and wav[8:12] == b"WAVE":
        pos, fmt = 12, None
        while pos + 8 <= len(wav):
            chunk, size = wav[pos:pos + 4], struct.unpack("<I", wav[pos + 4:pos + 8])[0]
            if chunk == b"fmt ":
                fmt = struct.unpack("<HHIIHH", wav[pos + 8:pos + 24])
            elif chunk == b"data" and fmt is not None and fmt[0] == 1 and fmt[5] == 16:
                assert fmt[2] == _RENDER_RATE, fmt
                frames = np.frombuffer(wav, dtype="<i2", count=size // 2, offset=pos + 8).reshape(-1, fmt[1])
                mono = frames[:, 0].astype(np.float32)  # column sums: 15x faster than mean(axis=1)
                for channel in range(1, fmt[1]):
                    mono += frames[:, channel]
                return mono * np.float32(1 / (32768.0 * fmt[1]))
            pos += 8 + size + (size & 1)
    import soundfile as sf  # any other layout: let libsndfile read it

    stereo, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    assert rate == _RENDER_RATE, rate
    return stereo.mean(axis=1)


def render_clip(plan: ClipPlan) -> np.ndarray:
    """Render the clip to audio.

    Returns
    -------
    np.ndarray [shape=(plan.n_samples,), dtype=float32]  mono at `SAMPLE_RATE`, in [-1, 1]
    """
    import midirenderer
    from scipy.signal import resample_poly

    buffer = io.BytesIO()
    clip_midi(plan).write(buffer)
    mono = wav_to_mono(midirenderer.render_wave_from(soundfont(), buffer.getvalue()))
    audio = resample_poly(mono, SAMPLE_RATE, _RENDER_RATE).astype(np.float32)
    gain = _GAIN * 10 ** (R.BY_NAME[plan.recipe].gain_db / 20)
    audio = np.tanh(gain * audio)  # fixed gain per genre, soft limit: loud and quiet clips stay so
    out = np.zeros(plan.n_samples, dtype=np.float32)
    n = min(len(audio), plan.n_samples)
    out[:n] = audio[:n]
    return out


def encode_mp3(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, kbps: int = MP3_KBPS) -> bytes:
    """Encode mono float audio in [-1, 1] as a constant-bit-rate mp3 (MagnaTagATune's 32 kbit/s)."""
    import lameenc

    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_channels(1)
    encoder.set_quality(7)  # LAME's fastest good setting; at 32 kbit/s mono the quality difference is nil
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    return bytes(encoder.encode(pcm) + encoder.flush())


def mp3_ok(path: Path, n_samples: int) -> bool:
    """Whether ``path`` decodes to about ``n_samples`` samples at `SAMPLE_RATE` (mono)."""
    import soundfile as sf

    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError):  # soundfile's LibsndfileError is a RuntimeError
        return False
    return rate == SAMPLE_RATE and audio.shape[1] == 1 and abs(len(audio) - n_samples) < 0.02 * n_samples + 2048


def preload() -> None:
    """Import the rendering stack and read the SoundFont once, before forking workers
    (otherwise every worker pays about a second of imports on its first clip)."""
    import lameenc  # noqa: F401
    import midirenderer  # noqa: F401
    import pretty_midi  # noqa: F401
    import scipy.signal  # noqa: F401
    import soundfile  # noqa: F401

    soundfont()
