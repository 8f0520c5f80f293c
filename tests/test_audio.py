"""Audio decoding: real mp3s, every format, resampling, mono, and one test per failure reason."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline.errors import AudioDecodeError, ParameterError
from pipeline.features.audio import (
    AUDIO_EXTENSIONS,
    SILENCE_PEAK,
    AudioFileError,
    load_audio,
    load_audio_bytes,
    save_mp3,
)

SR = 16000


def tone(seconds: float = 1.0, freq: float = 440.0, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spectrum)])


def assert_fails(path: Path, kind: str) -> AudioFileError:
    with pytest.raises(AudioDecodeError) as info:
        load_audio(path)
    err = info.value
    assert isinstance(err, AudioFileError)
    assert err.kind == kind, str(err)
    assert str(path) in str(err), "the message names the file"
    assert str(err) == f"{path}: {err.reason}" and err.reason.startswith(f"{kind}: ")
    return err


# -- real recordings --------------------------------------------------------------------------

def test_real_mtt_clip_decodes_at_16k(real_audio: dict[str, Path]) -> None:
    y = load_audio(real_audio["mtt"])
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) / SR == pytest.approx(29.1, abs=0.2)  # MagnaTagATune clips are 29.1 s
    assert 0.1 < np.abs(y).max() <= 1.0


def test_real_msd_preview_is_resampled_to_16k(real_audio: dict[str, Path]) -> None:
    info = sf.info(str(real_audio["msd"]))
    assert info.samplerate == 22050 and info.channels == 2  # the premise: stereo at 22.05 kHz
    y = load_audio(real_audio["msd"], 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) / 16000 == pytest.approx(info.duration, abs=0.05)  # about 30 s
    y8 = load_audio(real_audio["msd"], 8000)
    assert len(y8) == pytest.approx(len(y) / 2, abs=2)


def test_bytes_and_path_decode_identically(real_audio: dict[str, Path]) -> None:
    path = real_audio["mtt"]
    np.testing.assert_array_equal(load_audio_bytes(path.read_bytes()), load_audio(path))


# -- formats, mono, resampling ----------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_lossless_and_ogg_formats(tmp_path: Path, fmt: str) -> None:
    assert f".{fmt}" in AUDIO_EXTENSIONS
    y = tone(1.0, 440.0)
    path = tmp_path / f"a.{fmt}"
    sf.write(path, y, SR)
    out = load_audio(path)
    assert out.shape == y.shape and out.dtype == np.float32
    assert dominant_hz(out, SR) == pytest.approx(440, abs=2)
    if fmt != "ogg":  # lossless
        np.testing.assert_allclose(out, y, atol=1e-4)


def test_mp3_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.mp3"
    save_mp3(path, tone(2.0, 660.0), SR)
    y = load_audio(path)
    assert len(y) / SR == pytest.approx(2.0, abs=0.15)  # encoder delay and padding
    assert dominant_hz(y, SR) == pytest.approx(660, abs=3)


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    left, right = tone(0.5, 440, amp=0.5), tone(0.5, 440, amp=0.1)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SR)
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-4)


def test_resampling_keeps_pitch_and_duration(tmp_path: Path) -> None:
    path = tmp_path / "cd.wav"
    sf.write(path, tone(1.5, 1000.0, sr=44100), 44100)
    y = load_audio(path, 16000)
    assert len(y) == 24000
    assert dominant_hz(y, 16000) == pytest.approx(1000, abs=2)


def test_bad_sample_rate_is_a_parameter_error(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="sample_rate"):
        load_audio_bytes(b"whatever", 0)


# -- one test per failure reason --------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    assert_fails(tmp_path / "nowhere.mp3", "missing")


def test_broken_symlink_is_missing(tmp_path: Path) -> None:
    link = tmp_path / "gone.wav"
    link.symlink_to(tmp_path / "deleted.wav")
    assert f"broken symlink to {tmp_path / 'deleted.wav'}" in assert_fails(link, "missing").detail


def test_folder_named_like_audio_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "album.mp3").mkdir()
    assert assert_fails(tmp_path / "album.mp3", "unreadable").detail == "a folder, not a file"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)  # reading it would block until a writer appears
    assert assert_fails(fifo, "unreadable").detail == "not a regular file"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    assert_fails(path, "empty")


def test_text_file_named_mp3_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp3"
    path.write_text("this is not an mp3, just some text\n" * 20)
    assert_fails(path, "not audio")


def test_random_bytes_are_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    assert_fails(path, "not audio")


def test_silent_wav(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(SR, dtype=np.float32), SR)
    err = assert_fails(path, "silent")
    assert f"{SILENCE_PEAK:.0e}" in err.reason


def test_nearly_silent_wav_is_silent_but_quiet_music_is_not(tmp_path: Path) -> None:
    sf.write(tmp_path / "hiss.wav", tone(0.5, amp=SILENCE_PEAK / 4), SR)
    assert_fails(tmp_path / "hiss.wav", "silent")
    sf.write(tmp_path / "quiet.wav", tone(0.5, amp=SILENCE_PEAK * 20), SR)
    assert load_audio(tmp_path / "quiet.wav").size == SR // 2


def test_real_mp3_cut_to_a_few_bytes_is_truncated(tmp_path: Path, real_audio: dict[str, Path]) -> None:
    path = tmp_path / "cut.mp3"
    path.write_bytes(real_audio["mtt"].read_bytes()[:300])  # inside its ID3 tag
    assert_fails(path, "truncated")


def test_real_mp3_cut_in_half_is_truncated(tmp_path: Path, real_audio: dict[str, Path]) -> None:
    data = real_audio["msd"].read_bytes()  # its Xing header declares the full length
    path = tmp_path / "half.mp3"
    path.write_bytes(data[: len(data) // 2])
    err = assert_fails(path, "truncated")
    assert "header declares" in err.reason


def test_mp3_corrupted_mid_stream_is_truncated(tmp_path: Path) -> None:
    good = tmp_path / "good.mp3"
    save_mp3(good, tone(3.0), SR)
    data = bytearray(good.read_bytes())
    third = len(data) // 3
    data[third:third + 3000] = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    path = tmp_path / "garbled.mp3"
    path.write_bytes(bytes(data))
    assert_fails(path, "truncated")


def test_truncated_wav(tmp_path: Path) -> None:
    full = tmp_path / "full.wav"
    sf.write(full, tone(2.0), SR, subtype="PCM_16")
    path = tmp_path / "cut.wav"
    path.write_bytes(full.read_bytes()[:20000])  # the header still declares 2 s
    err = assert_fails(path, "truncated")
    assert "2.00 s" in err.reason


@pytest.mark.parametrize("fmt", ["flac", "ogg"])
def test_truncated_flac_and_ogg(tmp_path: Path, fmt: str) -> None:
    full = tmp_path / f"full.{fmt}"
    sf.write(full, tone(3.0) + 0.01 * np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32), SR)
    path = tmp_path / f"cut.{fmt}"
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_fails(path, "truncated")


def test_non_finite_samples_are_corrupt(tmp_path: Path) -> None:
    y = tone(0.5)
    y[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    assert_fails(path, "corrupt")


def test_upload_errors_name_the_upload() -> None:
    with pytest.raises(AudioDecodeError, match=r"^song\.mp3: not audio: "):
        load_audio_bytes(b"<html>not found</html>", name="song.mp3")
    with pytest.raises(AudioDecodeError, match=r"^upload: empty: "):
        load_audio_bytes(b"")
