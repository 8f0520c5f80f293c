"""Robust audio decoding: any mp3 / wav / flac / ogg file to float32 mono at one sample rate.

Decoding goes through soundfile (its bundled libsndfile 1.2 reads all four formats, mp3
included) and falls back to audioread only when soundfile cannot open a file at all.
Resampling uses soxr (the library behind librosa's default ``soxr_hq``), which is fast
from its first call. Every file that cannot serve as training audio raises an
`AudioFileError` (an `AudioDecodeError`) whose message names the file and the reason; the
reasons are short strings that start with one of `FAILURE_KINDS`:

- ``missing`` / ``unreadable``: the file is absent or cannot be read (permissions, ...)
- ``empty``: 0 bytes, or a valid header with no samples
- ``not audio``: no known audio signature and no decoder accepts it
- ``truncated``: decoding breaks off mid-stream, or the file holds far fewer samples than
  its header declares (WAV data chunk, FLAC / Ogg stream length, an mp3's Xing / Info /
  VBRI frame count). A constant-bitrate mp3 without such a header declares no length, so
  one cut cleanly between frames just reads as a shorter clip (real MagnaTagATune clips end
  inside a frame, so a partial last frame is not taken as a sign of truncation).
- ``silent``: the peak amplitude is below `SILENCE_PEAK`
- ``corrupt``: the decoder returns non-finite samples
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from pipeline.errors import AudioDecodeError, ParameterError
from pipeline.features.extract import FeatureConfig
from pipeline.sources import AUDIO_EXTENSIONS

log = logging.getLogger(__name__)

SILENCE_PEAK = 1e-4  # peak |sample| below this (about -80 dBFS) counts as a silent file
# A file holding less than this share of the samples its header declares is truncated; the
# slack absorbs encoder delay and padding (an mp3 frame is 1152 samples, ~0.07 s at 16 kHz).
TRUNCATION_SHARE = 0.95
TRUNCATION_SLACK_S = 0.1
FAILURE_KINDS: tuple[str, ...] = ("missing", "unreadable", "empty", "not audio", "truncated", "silent", "corrupt")


class AudioFileError(AudioDecodeError):
    """An audio file that cannot be used, with a machine-readable ``kind`` (one of `FAILURE_KINDS`).

    ``str(error)`` is ``"<name>: <kind>: <detail>"``; ``error.reason`` is ``"<kind>: <detail>"``.
    """

    def __init__(self, name: str, kind: str, detail: str) -> None:
        assert kind in FAILURE_KINDS, kind
        self.name, self.kind, self.detail = name, kind, detail
        super().__init__(f"{name}: {kind}: {detail}")

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}"


def load_audio(path: Path | str, sample_rate: int = FeatureConfig.sample_rate) -> np.ndarray:
    """Decode an audio file to mono float32 at ``sample_rate``.

    Parameters
    ----------
    path : an mp3, wav, flac or ogg file (anything libsndfile, or failing that audioread, reads)
    sample_rate : target rate in Hz; the file is resampled with soxr (HQ) when it differs

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]  channels averaged

    Raises
    ------
    AudioFileError (an AudioDecodeError) naming the file, for a missing, unreadable, empty,
    non-audio, truncated, silent or corrupt file.
    """
    path = Path(path)
    if path.is_dir():
        raise AudioFileError(str(path), "unreadable", "a folder, not a file")
    if path.exists() and not path.is_file():  # a FIFO or a device would block or never end
        raise AudioFileError(str(path), "unreadable", "not a regular file")
    if path.is_symlink() and not path.exists():
        raise AudioFileError(str(path), "missing", f"broken symlink to {os.readlink(path)}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AudioFileError(str(path), "missing", "file not found") from None
    except OSError as exc:
        raise AudioFileError(str(path), "unreadable", exc.strerror or str(exc)) from None
    return load_audio_bytes(data, sample_rate, name=str(path))


def load_audio_bytes(data: bytes, sample_rate: int = FeatureConfig.sample_rate, name: str = "upload") -> np.ndarray:
    """Decode an audio file held in memory (an upload); see `load_audio`.

    ``name`` is used in error messages and, by the fallback decoder, for its extension.
    """
    if sample_rate <= 0:
        raise ParameterError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    if not data:
        raise AudioFileError(name, "empty", "0 bytes")
    y, sr = _decode(data, name)
    y = _check_samples(y, name)
    if sr != sample_rate:
        import soxr  # imported here: only files at another rate need it

        y = soxr.resample(y, sr, sample_rate, quality="HQ").astype(np.float32, copy=False)
    return y


def _decode(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode to mono float32 at the file's own rate; check the length against the header."""
    import soundfile as sf

    try:
        sound = sf.SoundFile(io.BytesIO(data))
    except (RuntimeError, ValueError, TypeError) as exc:  # sf.LibsndfileError is a RuntimeError
        return _decode_fallback(data, name, _sf_message(exc))
    with sound:
        declared, sr, fmt = sound.frames, sound.samplerate, sound.format
        try:
            y = sound.read(dtype="float32", always_2d=True)  # (n, channels)
        except (RuntimeError, ValueError) as exc:
            raise AudioFileError(name, "truncated", f"decoding failed mid-stream ({_sf_message(exc)})") from None
    if fmt == "OGG" and not _ogg_has_end(data):
        raise AudioFileError(name, "truncated", "the Ogg stream lacks its end-of-stream page")
    if fmt in ("WAV", "WAVEX"):
        # libsndfile trusts the file size over a WAV header, so read the declared length here.
        declared = _wav_declared_frames(data) or declared
    elif fmt == "MP3" and not _has_vbr_header(data):
        declared = 0  # its frame count is an estimate from the file size, not a declaration
    _check_length(y.shape[0], declared, sr, name)
    return _to_mono(y), sr


def _decode_fallback(data: bytes, name: str, sf_error: str) -> tuple[np.ndarray, int]:
    """audioread (ffmpeg, GStreamer or Core Audio where present) for what soundfile cannot open."""
    decoded = _audioread_decode(data, name)
    if decoded is not None:
        return decoded
    signature = _audio_signature(data)
    if signature is None:
        raise AudioFileError(name, "not audio", "no audio format recognised")
    raise AudioFileError(name, "truncated", f"{signature} data that cannot be decoded ({sf_error})")


def _audioread_decode(data: bytes, name: str) -> tuple[np.ndarray, int] | None:
    try:
        import audioread
    except ImportError:
        return None
    suffix = Path(name).suffix if Path(name).suffix.lower() in AUDIO_EXTENSIONS else ""
    fd, tmp = tempfile.mkstemp(suffix=suffix)  # audioread decodes files, not bytes
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # Its stdlib backend imports aifc / audioop: deprecated in Python 3.11, gone in 3.13
        # (hence the ImportError below, which leaves the other backends usable).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with audioread.audio_open(tmp) as f:
                sr, channels = f.samplerate, f.channels
                pcm = b"".join(f)
    except (audioread.DecodeError, ImportError, OSError, EOFError, ValueError) as exc:
        log.debug("audioread could not decode %s either: %s", name, exc)
        return None
    finally:
        os.unlink(tmp)
    if not pcm:
        return None
    y = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return _to_mono(y.reshape(-1, channels)), sr


def _sf_message(exc: Exception) -> str:
    """libsndfile's own words, without soundfile's 'Error opening <BytesIO ...>:' prefix."""
    return str(getattr(exc, "error_string", "") or exc).strip().rstrip(".")


def _to_mono(y: np.ndarray) -> np.ndarray:
    """(n, channels) -> (n,) float32 by averaging channels."""
    return np.ascontiguousarray(y[:, 0] if y.shape[1] == 1 else y.mean(axis=1), dtype=np.float32)


def _check_length(n: int, declared: int, sr: int, name: str) -> None:
    if n == 0:
        if declared > 0:
            raise AudioFileError(name, "truncated", f"no samples decoded; the header declares {declared / sr:.2f} s")
        raise AudioFileError(name, "empty", "no audio samples")
    if declared > 0 and n < TRUNCATION_SHARE * declared - TRUNCATION_SLACK_S * sr:
        raise AudioFileError(name, "truncated", f"holds {n / sr:.2f} s of the {declared / sr:.2f} s its header declares")


def _check_samples(y: np.ndarray, name: str) -> np.ndarray:
    peak = float(np.max(np.abs(y)))  # one pass finds NaN / inf too: they propagate into the max
    if not np.isfinite(peak):
        raise AudioFileError(name, "corrupt", "non-finite samples")
    if peak < SILENCE_PEAK:
        raise AudioFileError(name, "silent", f"peak amplitude {peak:.1e} is below {SILENCE_PEAK:.0e}")
    return y


def _audio_signature(data: bytes) -> str | None:
    """The audio format a file's first bytes announce, or None."""
    if data[:3] == b"ID3" or (len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    if data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    return None


def _id3_size(data: bytes) -> int:
    """Length of a leading ID3v2 tag (0 when there is none)."""
    if data[:3] != b"ID3" or len(data) < 10:
        return 0
    s = data[6:10]  # "synchsafe" integer: 7 bits a byte
    footer = 10 if data[5] & 0x10 else 0
    return 10 + ((s[0] & 0x7F) << 21 | (s[1] & 0x7F) << 14 | (s[2] & 0x7F) << 7 | (s[3] & 0x7F)) + footer


def _has_vbr_header(data: bytes) -> bool:
    """Whether an mp3 carries a Xing / Info / VBRI header, i.e. declares its frame count."""
    start = _id3_size(data)
    first_frame = data[start:start + 2048]  # the header sits inside the first frame
    return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))


def _ogg_has_end(data: bytes) -> bool:
    """Whether an Ogg file's last page carries the end-of-stream flag (a cut file's does not)."""
    last = data.rfind(b"OggS", max(0, len(data) - 65536))  # a page is at most 65,307 bytes
    return last >= 0 and last + 5 < len(data) and bool(data[last + 5] & 0x04)


def _wav_declared_frames(data: bytes) -> int:
    """Frames a RIFF/WAVE header's data chunk declares (0 when unknown, e.g. a streamed file)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 0
    pos, block_align = 12, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk == b"fmt " and pos + 22 <= len(data):
            block_align = int.from_bytes(data[pos + 20:pos + 22], "little")  # bytes per frame
        if chunk == b"data":
            if size in (0, 0xFFFFFFFF) or block_align <= 0:
                return 0
            return size // block_align
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    return 0


def save_mp3(path: Path | str, y: np.ndarray, sample_rate: int, *, bitrate: int = 32, quality: int = 2) -> None:
    """Encode mono float audio in [-1, 1] as an mp3 with lameenc (written atomically).

    The defaults match MagnaTagATune's clips (32 kbit/s); used by tests and benchmarks.
    """
    import lameenc

    from pipeline.io import write_bytes

    pcm = (np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2")
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate)
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_channels(1)
    encoder.set_quality(quality)  # 2 = high quality, 7 = fastest
    write_bytes(path, bytes(encoder.encode(pcm.tobytes()) + encoder.flush()))
