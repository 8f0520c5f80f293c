"""The compiled feature kernels (pipeline/features/_kernels.c) against numpy's path, and their build."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import pipeline.features.kernels as kernels
from pipeline.features import extract
from pipeline.features.extract import FeatureConfig, compute_features
from pipeline.features.float16 import _TABLE_TOP, _log_mel_kernel_table, cache_features

NOT_BUILT = "the compiled feature kernels are not built: run `make install` (or `python -m pipeline.features.kernels`)"


@pytest.fixture(scope="module")
def compiled() -> kernels.Kernels:
    loaded = kernels.load()
    if loaded is None:
        pytest.skip(NOT_BUILT)
    return loaded


def numpy_frames(y: np.ndarray, start: int, n: int, n_fft: int, hop: int) -> np.ndarray:
    """What numpy's path windows: frames of the centred, zero-padded signal."""
    padded = np.concatenate([np.zeros(n_fft, np.float32), y, np.zeros(n_fft + n * hop, np.float32)])
    first = start * hop - n_fft // 2 + n_fft  # frame t starts at t * hop - n_fft // 2 of y
    rows = np.stack([padded[first + t * hop:first + t * hop + n_fft] for t in range(n)])
    return rows * extract._hann(n_fft)


@pytest.mark.parametrize("n", [1, 100, 511, 512, 5000, 16007])
def test_windowed_frames_are_numpys_bit_for_bit(compiled: kernels.Kernels, n: int) -> None:
    y = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    n_frames = 1 + n // 256
    for start, count in ((0, n_frames), (n_frames // 2, n_frames - n_frames // 2), (n_frames - 1, 1)):
        out = np.full((count, 512), np.nan, dtype=np.float32)
        compiled.window_frames(y, start, extract._hann(512), 256, out)
        np.testing.assert_array_equal(out, numpy_frames(y, start, count, 512, 256))


@pytest.mark.parametrize("kwargs", [{}, {"n_mels": 128}, {"n_mels": 256}, {"fmin": 300.0, "fmax": 5000.0},
                                    {"sample_rate": 22050, "n_fft": 1024, "hop_length": 512}])
def test_mel_power_is_numpys_to_float_rounding(compiled: kernels.Kernels, kwargs: dict,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the float64 product, and the numpy path: 256 bands leave some with no FFT bin (0 there)."""
    config = FeatureConfig(**kwargs)
    y = np.random.default_rng(7).standard_normal(3 * config.sample_rate).astype(np.float32) * 0.2
    got = extract.mel_power(y, config)
    monkeypatch.setattr(kernels, "load", lambda: None)
    by_numpy = extract.mel_power(y, config)
    spectrum = np.abs(np.fft.rfft(numpy_frames(y, 0, len(got), config.n_fft, config.hop_length).astype(np.float64)))
    fb = extract.mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax_hz)
    want = spectrum**2 @ fb.T.astype(np.float64)
    assert got.shape == by_numpy.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-12)
    np.testing.assert_allclose(got, by_numpy, rtol=2e-5, atol=1e-12)
    assert np.array_equal(got == 0, want == 0)  # bands without a bin stay exactly 0


def test_log_mel_table_lookup_is_numpys_bit_for_bit(compiled: kernels.Kernels,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.features.float16 import log_mel_float16

    powers = np.random.default_rng(3).integers(0, _TABLE_TOP, size=500_000, dtype=np.uint32).view(np.float32)
    got = compiled.log_mel_f16(powers.reshape(1000, 500), _log_mel_kernel_table())
    monkeypatch.setattr(kernels, "load", lambda: None)
    assert got is not None and got.shape == (1000, 500)
    np.testing.assert_array_equal(got.view(np.uint16), log_mel_float16(powers.reshape(1000, 500)).view(np.uint16))
    for odd in (np.float32(1e5), np.float32(np.nan), np.float32(-0.0)):  # out of the table: the caller's to do
        assert compiled.log_mel_f16(np.append(powers[:10], odd), _log_mel_kernel_table()) is None


def test_spectrum_straight_to_float16_is_the_table_of_the_mel_power(compiled: kernels.Kernels) -> None:
    config = FeatureConfig()
    y = np.random.default_rng(4).standard_normal(2 * config.sample_rate).astype(np.float32) * 0.3
    bands, table = extract.mel_bands(config), _log_mel_kernel_table()
    scratch = np.empty(bands.n_bins + bands.n_mels, dtype=np.float32)
    for _, spec in extract.stft_blocks(y, config, compiled):
        mel, fused = np.empty((len(spec), 96), np.float32), np.empty((len(spec), 96), np.float16)
        compiled.mel_from_spectrum(spec, bands, scratch, mel)
        assert compiled.log_mel_from_spectrum(spec, bands, scratch, table, fused)
        np.testing.assert_array_equal(fused.view(np.uint16), compiled.log_mel_f16(mel, table).view(np.uint16))
        assert compiled.log_mel_from_spectrum(spec * np.complex64(1e4), bands, scratch, table, fused) is False


def test_audio_too_loud_for_the_table_is_computed_exactly(compiled: kernels.Kernels,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Mel powers past 2**16 (audio far beyond full scale) leave the table: float64, then float16."""
    config = FeatureConfig()
    y = np.random.default_rng(6).standard_normal(config.sample_rate).astype(np.float32) * 300
    got = cache_features(y, config)
    power = extract._mel_power_numpy(y, config).astype(np.float64)
    want = (np.log1p(10000 * power) / np.log(10)).astype(np.float16)
    assert power.max() > 2**16 and got.dtype == np.float16
    assert np.abs(got.astype(np.float64) - want).max() <= np.spacing(want.max().astype(np.float16))


def test_cached_features_agree_with_numpys_path(compiled: kernels.Kernels, monkeypatch: pytest.MonkeyPatch) -> None:
    """The float16 cache may differ by one step where the mel power's rounding crosses an edge: rarely."""
    config = FeatureConfig()
    y = np.random.default_rng(5).standard_normal(10 * config.sample_rate).astype(np.float32) * 0.3
    got = cache_features(y, config).view(np.uint16).astype(np.int32)
    monkeypatch.setattr(kernels, "load", lambda: None)
    want = cache_features(y, config).view(np.uint16).astype(np.int32)
    assert got.shape == want.shape == (config.n_frames(len(y)), 96)
    assert np.mean(got != want) < 1e-3 and np.abs(got - want).max() <= 1


def test_kernels_check_what_they_are_given(compiled: kernels.Kernels) -> None:
    out = np.empty((2, 512), dtype=np.float32)
    with pytest.raises(TypeError, match="C-contiguous float32, got float64"):
        compiled.window_frames(np.zeros(1000), 0, extract._hann(512), 256, out)
    with pytest.raises(TypeError, match="strided"):
        compiled.window_frames(np.zeros(2000, np.float32)[::2], 0, extract._hann(512), 256, out)
    with pytest.raises(ValueError, match="window's length"):
        compiled.window_frames(np.zeros(1000, np.float32), 0, extract._hann(256), 256, out)
    bands = extract.mel_bands(FeatureConfig())
    spec = np.zeros((2, 257), np.complex64)
    with pytest.raises(ValueError, match="spectrum and output"):
        compiled.mel_from_spectrum(spec, bands, np.zeros(400, np.float32), np.zeros((3, 96), np.float32))
    with pytest.raises(ValueError, match="scratch"):
        compiled.mel_from_spectrum(spec, bands, np.zeros(257, np.float32), np.zeros((2, 96), np.float32))


def test_short_and_silent_audio_through_the_kernels(compiled: kernels.Kernels) -> None:
    config = FeatureConfig()
    for n in (1, 300, 512):
        assert compute_features(np.ones(n, np.float32), config).shape == (1 + n // 256, 96)
    assert not cache_features(np.zeros(16000, np.float32), config).any()


# -- the build ----------------------------------------------------------------------------------

@pytest.fixture
def source_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine")
    copy = tmp_path / "_kernels.c"
    shutil.copy(kernels.SOURCE, copy)
    monkeypatch.setattr(kernels, "SOURCE", copy)
    return copy


def test_the_library_is_named_after_its_source(source_copy: Path) -> None:
    built = kernels.build()
    assert built == kernels.library_path() and built.parent == source_copy.parent and built.is_file()
    assert kernels.Kernels(__import__("ctypes").CDLL(str(built)))  # loads, with every kernel
    assert kernels.build() == built  # built once
    source_copy.write_text(source_copy.read_text() + "\n/* another version */\n")
    rebuilt = kernels.build()
    assert rebuilt != built and rebuilt.is_file() and not built.exists()  # a stale build is never loaded
    assert not list(source_copy.parent.glob(".*tmp"))


def test_a_failed_build_says_why_in_one_line(source_copy: Path) -> None:
    source_copy.write_text("int broken(void) { return }\n")
    with pytest.raises(RuntimeError, match=r"could not compile _kernels\.c: .*error") as failed:
        kernels.build()
    assert "\n" not in str(failed.value) and not list(source_copy.parent.glob("*.so"))
    with pytest.raises(RuntimeError, match="no C compiler"):
        kernels.build("/nonexistent/cc")
