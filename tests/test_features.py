"""Features with known answers: a sine's mel bin, librosa equivalence, shapes, config keys, normalisers."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pipeline.errors import ParameterError
from pipeline.features.cache import build_cache
from pipeline.features.extract import (
    FeatureConfig,
    Normalizer,
    compute_features,
    mel_band_centers,
    mel_filterbank,
)
from pipeline.sources.corpus import Corpus

SR = 16000


def sine(freq: float, seconds: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# -- log-mel ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("freq", "n_mels"), [(440.0, 96), (440.0, 128), (2000.0, 96), (5000.0, 64)])
def test_sine_lands_in_the_expected_mel_bin(freq: float, n_mels: int) -> None:
    config = FeatureConfig(n_mels=n_mels)
    centers = librosa.mel_frequencies(n_mels=n_mels + 2, fmin=0.0, fmax=SR / 2)[1:-1]  # band centres
    expected = int(np.argmin(np.abs(centers - freq)))
    x = compute_features(sine(freq), config)
    assert x.shape == (1 + SR // config.hop_length, n_mels) and x.dtype == np.float32
    assert int(np.argmax(x[2:-2].mean(axis=0))) == expected  # edge frames are half padding
    np.testing.assert_allclose(mel_band_centers(config), centers, rtol=1e-6)


def test_louder_sine_gives_larger_log_mel() -> None:
    config = FeatureConfig()
    quiet, loud = compute_features(sine(440, amp=0.05), config), compute_features(sine(440, amp=0.5), config)
    assert loud.max() > quiet.max() + 1.0  # no per-clip reference: loudness survives


def test_silence_maps_to_zero() -> None:
    x = compute_features(np.zeros(SR, dtype=np.float32), FeatureConfig())
    assert np.all(x == 0)


@pytest.mark.parametrize("kwargs", [{}, {"n_mels": 128}, {"fmin": 50.0, "fmax": 6000.0},
                                    {"sample_rate": 22050, "n_fft": 1024, "hop_length": 512}])
def test_filterbank_and_log_mel_match_librosa(kwargs: dict, feature_path: str) -> None:
    config = FeatureConfig(**kwargs)
    ref_fb = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                 fmin=config.fmin, fmax=config.fmax_hz)
    fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax_hz)
    np.testing.assert_allclose(fb, ref_fb, atol=1e-7)
    y = np.random.default_rng(0).standard_normal(config.sample_rate * 2).astype(np.float32) * 0.1
    y += sine(330, 2.0, config.sample_rate)
    mel = librosa.feature.melspectrogram(y=y, sr=config.sample_rate, n_fft=config.n_fft,
                                         hop_length=config.hop_length, n_mels=config.n_mels,
                                         fmin=config.fmin, fmax=config.fmax_hz)
    np.testing.assert_allclose(compute_features(y, config), np.log10(1 + 10000 * mel.T), atol=1e-4)


def test_any_length_including_shorter_than_a_window(feature_path: str) -> None:
    config = FeatureConfig()
    for n in (1, 100, config.n_fft, 12345, 5 * SR + 7):  # 5 s + 7 needs more than one STFT block
        y = np.random.default_rng(n).standard_normal(n).astype(np.float32)
        x = compute_features(y, config)
        assert x.shape == (config.n_frames(n), 96) == (1 + n // config.hop_length, 96)
        assert np.isfinite(x).all()


def test_numpy_and_ducc0_fft_backends_agree(monkeypatch: pytest.MonkeyPatch, feature_path: str) -> None:
    import pipeline.features.extract as features

    config = FeatureConfig()
    y = np.random.default_rng(3).standard_normal(3 * SR).astype(np.float32) * 0.2
    assert features._rfft_backend() is not features._numpy_rfft  # ducc0 is a requirement
    with_ducc0 = compute_features(y, config)
    monkeypatch.setattr(features, "_rfft_backend", lambda: features._numpy_rfft)
    np.testing.assert_allclose(compute_features(y, config), with_ducc0, rtol=1e-5, atol=1e-5)


def test_log_mel_alone_imports_no_scipy() -> None:
    """A one-off process (the tag command) must not pay scipy's import time for its features."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from pipeline.features.extract import FeatureConfig, compute_features; "
            "x = compute_features(np.ones(16000, np.float32), FeatureConfig()); "
            "print(x.shape, any(m == 'scipy' or m.startswith('scipy.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.strip() == "(63, 96) False"


# -- MFCC and waveform ------------------------------------------------------------------------

def test_mfcc_shape_and_librosa_equivalence() -> None:
    config = FeatureConfig(kind="mfcc", n_mfcc=13)
    y = sine(440) + 0.05 * np.random.default_rng(1).standard_normal(SR).astype(np.float32)
    x = compute_features(y, config)
    assert x.shape == (1 + SR // 256, 13) and x.dtype == np.float32
    assert config.n_bins == 13
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=256, n_mels=96)
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=13)
    np.testing.assert_allclose(x, ref.T, rtol=1e-3, atol=1e-2)


def test_waveform_shape() -> None:
    config = FeatureConfig(kind="waveform")
    y = sine(440, 0.25)
    x = compute_features(y, config)
    assert x.shape == (len(y), 1) and config.n_bins == 1
    np.testing.assert_array_equal(x[:, 0], y)
    assert config.frames_per_second == SR and config.n_frames(len(y)) == len(y)


def test_frames_per_second() -> None:
    assert FeatureConfig().frames_per_second == 62.5
    assert FeatureConfig(hop_length=160).frames_per_second == 100


@pytest.mark.parametrize("y", [np.zeros((2, 100), np.float32), np.zeros(0, np.float32)])
def test_bad_audio_shape_is_rejected(y: np.ndarray) -> None:
    with pytest.raises(ParameterError, match="audio"):
        compute_features(y, FeatureConfig())


# -- FeatureConfig ----------------------------------------------------------------------------

def test_key_is_stable_readable_and_changes_with_every_field() -> None:
    config = FeatureConfig()
    assert re.fullmatch(r"logmel-96mel-[0-9a-f]{8}", config.key())
    assert FeatureConfig().key() == config.key()
    assert FeatureConfig(kind="mfcc").key().startswith("mfcc-20mfcc-")
    assert FeatureConfig(kind="waveform").key().startswith("waveform-16000hz-")
    changes = {"kind": "mfcc", "sample_rate": 22050, "n_fft": 1024, "hop_length": 128, "n_mels": 128,
               "n_mfcc": 13, "fmin": 20.0, "fmax": 7000.0}
    keys = {replace(config, **{k: v}).key() for k, v in changes.items()}
    assert len(keys) == len(changes) and config.key() not in keys


def test_config_round_trip_and_unknown_field() -> None:
    config = FeatureConfig(kind="mfcc", n_mels=64, fmax=7000)
    d = json.loads(json.dumps(config.to_dict()))
    assert FeatureConfig.from_dict(d) == config and FeatureConfig.from_dict(d).key() == config.key()
    with pytest.raises(ParameterError, match="n_melz"):
        FeatureConfig.from_dict({**d, "n_melz": 3})


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"kind": "cqt"}, "kind"), ({"n_mels": 0}, "n_mels"), ({"hop_length": -1}, "hop_length"),
    ({"sample_rate": 16000.5}, "sample_rate"), ({"n_mfcc": 200}, "n_mfcc"), ({"fmax": 9000.0}, "fmax"),
    ({"fmin": 8000.0}, "fmin"),
])
def test_config_validation_names_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ParameterError, match=name):
        FeatureConfig(**kwargs)


# -- Normalizer (on a real, tiny cache) -------------------------------------------------------

@pytest.fixture(scope="module")
def small_cache(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    ids, rels = [], []
    for i in range(6):
        y = sine(200 * (i + 1), 0.5 + 0.1 * i, amp=0.1 * (i + 1)) + 0.01 * rng.standard_normal(
            int(SR * (0.5 + 0.1 * i))).astype(np.float32)
        sf.write(root / f"{i}.wav", y, SR)
        ids.append(str(i))
        rels.append(f"{i}.wav")
    corpus = Corpus(name="tiny", root=root, source="folder", clip_ids=ids, rel_paths=rels, tags=[],
                    labels=np.zeros((6, 0), np.uint8), split=np.array(["train"] * 6, dtype=object),
                    metadata=pd.DataFrame(index=range(6)))
    return build_cache(corpus, FeatureConfig(n_mels=32), workers=1, progress=False)


def _stacked(cache, normalizer: Normalizer) -> np.ndarray:
    return np.concatenate([normalizer(cache.read(c)) for c in cache.clip_ids])


def test_per_bin_normalizer(small_cache) -> None:
    norm = Normalizer("per_bin").fit(small_cache, small_cache.clip_ids)
    assert norm.mean.shape == (32,) and norm.std.shape == (32,)
    z = _stacked(small_cache, norm)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-3)


def test_global_normalizer(small_cache) -> None:
    norm = Normalizer("global").fit(small_cache, small_cache.clip_ids)
    assert np.ndim(norm.mean) == 0
    z = _stacked(small_cache, norm)
    assert abs(z.mean()) < 1e-3 and abs(z.std() - 1) < 1e-3
    assert np.abs(z.mean(axis=0)).max() > 0.1  # bins keep their differences, unlike per_bin


def test_per_spec_and_none_normalizers(small_cache) -> None:
    x = np.asarray(small_cache.read(small_cache.clip_ids[2]), dtype=np.float32)
    z = Normalizer("per_spec")(x)
    assert abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-3
    batch = np.stack([x, 3 * x + 1])  # each spectrogram of a batch on its own
    np.testing.assert_allclose(Normalizer("per_spec")(batch)[1], z, atol=1e-4)
    np.testing.assert_array_equal(Normalizer("none")(x), x)
    assert Normalizer("per_spec").fit(small_cache, []).mean is None  # nothing to fit


def test_normalizer_fit_samples_with_a_seed(small_cache) -> None:
    a = Normalizer("per_bin").fit(small_cache, small_cache.clip_ids, max_clips=3, seed=1)
    b = Normalizer("per_bin").fit(small_cache, small_cache.clip_ids, max_clips=3, seed=1)
    c = Normalizer("per_bin").fit(small_cache, small_cache.clip_ids, max_clips=3, seed=2)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert not np.array_equal(a.mean, c.mean)
    with pytest.raises(ParameterError, match="none of the"):
        Normalizer("per_bin").fit(small_cache, ["no-such-clip"])


@pytest.mark.parametrize("mode", ["none", "global", "per_bin", "per_spec"])
def test_normalizer_to_dict_round_trip(small_cache, mode: str, tmp_path: Path) -> None:
    import torch

    norm = Normalizer(mode).fit(small_cache, small_cache.clip_ids)
    d = norm.to_dict()
    json.dumps(d)  # plain values only
    torch.save({"normalizer": d}, tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)["normalizer"]
    again = Normalizer.from_dict(loaded)
    x = small_cache.read(small_cache.clip_ids[0])
    np.testing.assert_array_equal(again(x), norm(x))
    assert again.mode == mode


def test_normalizer_errors() -> None:
    with pytest.raises(ParameterError, match="mode"):
        Normalizer("per_song")
    with pytest.raises(ParameterError, match="not fitted"):
        Normalizer("per_bin")(np.zeros((4, 3), np.float32))
    with pytest.raises(ParameterError, match="bins"):
        Normalizer("per_bin", mean=[0, 0], std=[1, 1])(np.zeros((4, 3), np.float32))


def test_extract_imports_no_other_feature_module() -> None:
    """extract is the leaf of pipeline.features: the cache imports it, never the other way round.

    Its one import from the package is the compiled kernels' loader, itself a leaf."""
    import ast
    from pathlib import Path

    import pipeline.features.extract as extract
    import pipeline.features.kernels as kernels

    def imports(module: object) -> set[str]:
        tree = ast.parse(Path(module.__file__).read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        return {m for m in names | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
                if m.startswith("pipeline.")}

    assert imports(extract) == {"pipeline.errors", "pipeline.features.kernels"}
    assert imports(kernels) == set()
