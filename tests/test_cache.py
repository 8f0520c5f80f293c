"""The feature cache: layout, bad files in a batch, keying, reuse, updates, kill and resume, reads."""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import pipeline.features.cache as cache_module
import pipeline.workers as worker_module
from pipeline.errors import ParameterError
from pipeline.features.audio import load_audio, save_mp3
from pipeline.features.cache import (
    COMPLETE,
    DATA,
    FAILURES,
    INDEX,
    PARTS,
    FeatureCache,
    FeatureCacheError,
    build_cache,
    cache_dir,
    default_cache_root,
)
from pipeline.features.extract import FeatureConfig, compute_features
from pipeline.features.float16 import cache_features, to_float16
from pipeline.paths import corpus_key
from pipeline.sources.loader import load_corpus
from pipeline.sources.mtt_format import ANNOTATIONS_FILE, write_annotations

SR = 16000
REPO = Path(__file__).resolve().parents[1]
CONFIG = FeatureConfig(n_mels=32)
GOOD = ["0", "1", "2", "3", "4", "5"]  # clip ids that decode
BAD = {"6": "not audio", "7": "empty", "8": "silent", "9": "truncated"}


def _tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_corpus(root: Path) -> Path:
    """An MTT-format corpus: six good clips (mp3, wav, flac; 0.4-1.4 s) and four bad files."""
    rels = []
    for i in range(6):
        rel = f"{i % 3}/clip{i}." + ("mp3", "wav", "flac")[i % 3]
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        y = _tone(0.4 + 0.2 * i, 220.0 * (i + 1))
        save_mp3(root / rel, y, SR) if rel.endswith(".mp3") else sf.write(root / rel, y, SR)
        rels.append(rel)
    (root / "c").mkdir(exist_ok=True)
    (root / "c/corrupt.mp3").write_text("<html>404 not found</html>\n")
    (root / "c/empty.mp3").write_bytes(b"")
    sf.write(root / "c/silent.wav", np.zeros(SR // 2, np.float32), SR)
    sf.write(root / "c/full.wav", _tone(1.0, 330.0), SR)
    full = (root / "c/full.wav").read_bytes()
    (root / "c/cut.wav").write_bytes(full[: len(full) // 3])  # its header still declares 1 s
    (root / "c/full.wav").unlink()
    rels += ["c/corrupt.mp3", "c/empty.mp3", "c/silent.wav", "c/cut.wav"]
    ids = [str(i) for i in range(len(rels))]
    write_annotations(root / ANNOTATIONS_FILE, ids, ["tone"], np.ones((len(ids), 1), np.uint8), rels)
    return root


@pytest.fixture
def corpus(tmp_path: Path):
    return load_corpus(make_corpus(tmp_path / "corpus"))


def expected_features(corpus, clip_id: str, config: FeatureConfig = CONFIG) -> np.ndarray:
    i = corpus.clip_ids.index(clip_id)
    return cache_features(load_audio(corpus.audio_path(i), config.sample_rate), config)


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every file the (in-process, workers=1) build decodes."""
    calls: list[Path] = []

    def counting(path, sample_rate=16000):
        calls.append(Path(path))
        return load_audio(path, sample_rate)

    monkeypatch.setattr(cache_module, "load_audio", counting)
    return calls


def assert_same_cache(a: FeatureCache, b: FeatureCache) -> None:
    assert a.clip_ids == b.clip_ids
    pd.testing.assert_frame_equal(a.index, b.index)
    pd.testing.assert_frame_equal(a.failures, b.failures)
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))


# -- a batch with bad files -------------------------------------------------------------------

def test_batch_with_bad_files_caches_the_good_ones(corpus) -> None:
    cache = build_cache(corpus, CONFIG, workers=2, progress=False)  # the parallel path
    assert cache.directory == default_cache_root() / corpus_key(corpus.root) / CONFIG.key()
    assert cache.clip_ids == GOOD  # corpus order
    for clip_id in GOOD:
        x = cache.read(clip_id)
        assert x.dtype == np.float16 and x.shape == (cache.n_frames(clip_id), 32)
        np.testing.assert_array_equal(x, expected_features(corpus, clip_id))
    report = pd.read_csv(cache.directory / FAILURES, dtype=str)
    assert list(report.columns[:3]) == ["clip_id", "path", "reason"]
    assert dict(zip(report["clip_id"], report["reason"].str.split(":").str[0])) == BAD
    assert report.loc[report["clip_id"] == "6", "path"].item() == "c/corrupt.mp3"
    assert set(cache.failures["clip_id"]) == set(BAD) and all(c not in cache for c in BAD)


def test_layout_is_one_stacked_array_with_an_index(corpus) -> None:
    cache = build_cache(corpus, CONFIG, workers=1, progress=False)
    d = cache.directory
    assert {p.name for p in d.iterdir()} == {DATA, INDEX, FAILURES, "config.json", COMPLETE}  # parts/ removed
    data = np.load(d / DATA, mmap_mode="r")
    index = pd.read_parquet(d / INDEX)
    assert list(index.columns[:4]) == ["clip_id", "path", "offset", "n_frames"]
    assert data.dtype == np.float16 and data.shape == (index["n_frames"].sum(), 32)
    np.testing.assert_array_equal(index["offset"], np.concatenate([[0], np.cumsum(index["n_frames"])[:-1]]))
    durations = [0.4 + 0.2 * i for i in range(6)]
    for (_, row), seconds in zip(index.iterrows(), durations):
        assert abs(row["n_frames"] / CONFIG.frames_per_second - seconds) < 0.15
    assert isinstance(cache.read("0"), np.memmap)


@pytest.mark.parametrize("kind", ["mfcc", "waveform"])
def test_other_kinds(corpus, kind: str) -> None:
    config = FeatureConfig(kind=kind)
    cache = build_cache(corpus, config, workers=1, progress=False)
    assert cache.clip_ids == GOOD and cache.directory.name.startswith(kind)
    x = cache.read("1")
    assert x.shape[1] == config.n_bins
    if kind == "waveform":
        assert x.shape[0] == len(load_audio(corpus.audio_path(1)))
    np.testing.assert_array_equal(x, expected_features(corpus, "1", config))


def test_a_corpus_of_only_bad_files_gives_an_empty_cache(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    (root / "0").mkdir(parents=True)
    (root / "0/a.mp3").write_text("not audio")
    (root / "0/b.wav").write_bytes(b"")
    write_annotations(root / ANNOTATIONS_FILE, ["a", "b"], ["x"], np.ones((2, 1), np.uint8), ["0/a.mp3", "0/b.wav"])
    cache = build_cache(load_corpus(root), CONFIG, workers=1, progress=False)
    assert len(cache) == 0 and cache.clip_ids == [] and len(cache.failures) == 2
    assert np.load(cache.directory / DATA).shape == (0, 32)
    assert FeatureCache.open(cache.directory).data.shape == (0, 32)


# -- keyed by parameters, reused, updated -----------------------------------------------------

def test_keyed_by_parameters_and_reused_without_recompute(corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_cache(corpus, CONFIG, workers=1, progress=False)
    stamp = (first.directory / DATA).stat().st_mtime_ns

    def no_work(*args, **kwargs):
        raise AssertionError("a complete cache must be reused, not recomputed")

    monkeypatch.setattr(cache_module, "_run", no_work)
    again = build_cache(corpus, FeatureConfig(n_mels=32), workers=1, progress=False)
    assert again.directory == first.directory and (again.directory / DATA).stat().st_mtime_ns == stamp
    monkeypatch.undo()
    other = build_cache(corpus, FeatureConfig(n_mels=40), workers=1, progress=False)
    assert other.directory != first.directory and other.directory.parent == first.directory.parent
    assert other.read("0").shape[1] == 40
    assert (first.directory / COMPLETE).exists()  # the old cache is untouched


def test_changed_or_new_audio_updates_only_those_clips(corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_cache(corpus, CONFIG, workers=1, progress=False)
    before, other = np.array(first.read("1")), np.array(first.read("2"))
    sf.write(corpus.audio_path(1), _tone(0.6, 3000.0), SR)  # clip "1" re-rendered
    calls = count_decodes(monkeypatch)
    updated = build_cache(corpus, CONFIG, workers=1, progress=False)
    assert calls == [corpus.audio_path(1)]  # the others come from the old cache
    assert not np.array_equal(np.asarray(updated.read("1")), before)
    np.testing.assert_array_equal(updated.read("1"), expected_features(corpus, "1"))
    np.testing.assert_array_equal(updated.read("2"), other)
    assert updated.clip_ids == GOOD and set(updated.failures["clip_id"]) == set(BAD)


def test_subset_of_a_cached_corpus_reuses_it(corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.features import _subset

    full = build_cache(corpus, CONFIG, workers=1, progress=False)
    calls = count_decodes(monkeypatch)
    part = build_cache(_subset(corpus, 3), CONFIG, workers=1, progress=False)
    assert calls == [] and part.directory == full.directory and part.clip_ids == GOOD


def test_cache_root(corpus, tmp_path: Path) -> None:
    root = tmp_path / "caches"
    assert cache_dir(corpus, CONFIG, root) == root / corpus_key(corpus.root) / CONFIG.key()
    cache = build_cache(corpus, CONFIG, cache_root=root, workers=1, progress=False)
    assert cache.directory == root / corpus_key(corpus.root) / CONFIG.key()
    assert not (corpus.root / "features").exists()


def slow_decoding(seconds: float) -> str:
    """Python source that makes the feature cache's decoding sleep ``seconds`` a clip (``c``: the module)."""
    return textwrap.dedent(f"""
        import time
        import pipeline.features.cache as c
        slow = c.load_audio
        def load_slowly(path, sample_rate=16000):
            time.sleep({seconds})
            return slow(path, sample_rate)
        c.load_audio = load_slowly
        """)


# -- killed and resumed -----------------------------------------------------------------------

def test_killed_build_resumes_to_the_same_result(corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = cache_dir(corpus, CONFIG)
    parts = directory / PARTS
    script = slow_decoding(0.4) + textwrap.dedent(f"""
        from pipeline.sources.loader import load_corpus
        from pipeline.features.extract import FeatureConfig
        c.SHARD_CLIPS = 1  # one part file a clip
        c.build_cache(load_corpus({str(corpus.root)!r}), FeatureConfig(n_mels=32), workers=1, progress=False)
        """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if parts.is_dir() and len([p for p in parts.glob("*.json") if not p.name.startswith(".")]) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the build finished before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = [p for p in parts.glob("*.json") if not p.name.startswith(".")]
    assert 3 <= len(done) < len(corpus)
    assert not (directory / COMPLETE).exists()
    with pytest.raises(FeatureCacheError, match="unfinished"):
        FeatureCache.open(directory)

    calls = count_decodes(monkeypatch)
    resumed = build_cache(corpus, CONFIG, workers=1, progress=False)
    assert len(calls) == len(corpus) - len(done)  # finished parts are not recomputed
    monkeypatch.undo()
    clean = build_cache(corpus, CONFIG, cache_root=tmp_path / "clean", workers=2, progress=False)
    assert_same_cache(resumed, clean)


# -- reading ----------------------------------------------------------------------------------

def test_read_and_read_crop(corpus) -> None:
    cache = build_cache(corpus, CONFIG, workers=1, progress=False)
    full = np.asarray(cache.read("3"))
    n = cache.n_frames("3")
    assert full.shape == (n, 32) and cache.seconds("3") == pytest.approx(n / 62.5)
    np.testing.assert_array_equal(cache.read_crop("3", 5, 10), full[5:15])
    np.testing.assert_array_equal(cache.read_crop("3", 0, n), full)
    padded = cache.read_crop("3", n - 4, 10)
    assert padded.shape == (10, 32) and padded.dtype == np.float16
    np.testing.assert_array_equal(padded[:4], full[-4:])
    assert not padded[4:].any()
    longer = cache.read_crop("0", 0, 3 * cache.n_frames("0"))  # a clip shorter than the crop
    np.testing.assert_array_equal(longer[: cache.n_frames("0")], cache.read("0"))
    assert not longer[cache.n_frames("0"):].any()
    for start, length in ((-1, 5), (n, 5), (0, 0)):
        with pytest.raises(ParameterError):
            cache.read_crop("3", start, length)


def test_missing_clip_errors_say_why(corpus) -> None:
    cache = build_cache(corpus, CONFIG, workers=1, progress=False)
    with pytest.raises(FeatureCacheError, match=r"'6'.*failed to decode \(not audio"):
        cache.read("6")
    with pytest.raises(FeatureCacheError, match="not in the corpus"):
        cache.n_frames("no-such-clip")


def test_open_errors(tmp_path: Path, corpus) -> None:
    with pytest.raises(FeatureCacheError, match="no feature cache"):
        FeatureCache.open(tmp_path / "nothing")
    cache = build_cache(corpus, CONFIG, workers=1, progress=False)
    (cache.directory / INDEX).unlink()
    with pytest.raises(FeatureCacheError, match=INDEX):
        FeatureCache.open(cache.directory)
    rebuilt = build_cache(corpus, CONFIG, workers=1, progress=False)  # an unreadable cache is rebuilt
    assert rebuilt.clip_ids == GOOD


def test_pickled_cache_does_not_carry_the_data(corpus) -> None:
    cache = build_cache(corpus, CONFIG, workers=1, progress=False)
    cache.read("0")  # maps the data
    blob = pickle.dumps(cache)
    again = pickle.loads(blob)
    assert again._data is None and len(blob) < cache.data.nbytes  # each process maps data.npy itself
    np.testing.assert_array_equal(again.read("5"), cache.read("5"))


def test_float16_flushes_subnormals() -> None:
    x = np.array([[1e-7, -1e-6, 6.2e-5, 1.0, -3.5]], dtype=np.float32)
    np.testing.assert_array_equal(to_float16(x), np.array([[0, 0, 6.2e-5, 1.0, -3.5]], dtype=np.float16))



def test_float16_on_bit_patterns_equals_numpys_cast() -> None:
    from pipeline.features.float16 import nonnegative_to_float16

    rng = np.random.default_rng(0)
    bits = rng.integers(0, 0x477FE000, size=2_000_000, dtype=np.uint32)  # every float32 in [0, 65504)
    ties = (np.arange(0x38800000 >> 13, 0x477FE000 >> 13, 97, dtype=np.uint32) << 13) | 0x1000  # half-way
    edges = np.array([0, 0x387FFFFF, 0x38800000, 0x38800FFF, 0x38801000, 0x477FEFFF], dtype=np.uint32)
    x = np.concatenate([bits, ties, edges]).view(np.float32)
    np.testing.assert_array_equal(nonnegative_to_float16(x.copy()).view(np.uint16), to_float16(x).view(np.uint16))


def test_log_mel_by_table_is_the_exactly_rounded_value(feature_path: str) -> None:
    """Every float32 mel power, from 0 past the table's top: float64 log, rounded once, < 2**-14 as 0."""
    from pipeline.features.float16 import log_mel_float16

    rng = np.random.default_rng(1)
    powers = rng.integers(0, 0x47800000, size=3_000_000, dtype=np.uint32).view(np.float32)  # [0, 2**16)
    exact = np.log1p(10000 * powers.astype(np.float64)) / np.log(10)
    want = np.where(exact < 2.0**-14, 0, exact).astype(np.float16)
    np.testing.assert_array_equal(log_mel_float16(powers.copy()).view(np.uint16), want.view(np.uint16))
    # where the output steps: the smallest power reaching 2**-14 and those either side of a rounding edge
    edge = np.float32((10 ** 2.0**-14 - 1) / 10000)
    near = np.array([np.nextafter(edge, np.float32(0)), edge, np.nextafter(edge, np.float32(1))])
    exact = np.log1p(10000 * near.astype(np.float64)) / np.log(10)
    np.testing.assert_array_equal(log_mel_float16(near.copy()), np.where(exact < 2.0**-14, 0, exact).astype(np.float16))
    # beyond the table, and not finite: computed in float64 instead
    odd = np.array([[0.0, 1e5, 3e38], [np.inf, 1.0, -0.0]], dtype=np.float32)
    got = log_mel_float16(odd.copy())
    assert got.shape == (2, 3) and got.dtype == np.float16
    np.testing.assert_array_equal(got, np.float16([[0, np.log10(1 + 1e9), np.log10(1 + 3e42)], [np.inf, np.log10(10001), 0]]))


def test_cached_features_are_the_float16_of_compute_features(feature_path: str) -> None:
    y = np.random.default_rng(2).standard_normal(3 * CONFIG.sample_rate).astype(np.float32) * 0.3
    for config in (CONFIG, FeatureConfig(kind="mfcc"), FeatureConfig(kind="waveform")):
        got = cache_features(y, config).view(np.uint16).astype(np.int32)
        want = to_float16(compute_features(y, config)).view(np.uint16).astype(np.int32)
        assert got.shape == want.shape
        if config.kind == "logmel":  # exactly rounded: the float32 log's rounding moves a few by one step
            assert np.mean(got != want) < 0.01 and np.abs(got - want)[want > 0x0400].max() <= 1
        else:
            np.testing.assert_array_equal(got, want)


def test_cached_log_mel_equals_librosa(corpus) -> None:
    import librosa

    cache = build_cache(corpus, CONFIG, workers=1, progress=False)
    for clip_id in cache.clip_ids[:4]:
        y = load_audio(corpus.audio_path(corpus.clip_ids.index(clip_id)), CONFIG.sample_rate)
        mel = librosa.feature.melspectrogram(y=y, sr=CONFIG.sample_rate, n_fft=CONFIG.n_fft,
                                             hop_length=CONFIG.hop_length, n_mels=CONFIG.n_mels)
        want = np.log10(1 + 10000 * mel.T)
        got = np.asarray(cache.read(clip_id), dtype=np.float32)
        # float16 keeps 11 significant bits; values under 2**-14 are flushed to 0
        np.testing.assert_allclose(got, np.where(want < 2.0**-14, 0, want), rtol=2.0**-11, atol=1e-4)


def test_a_cache_of_another_feature_version_is_not_reused(corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.features.extract as extract

    monkeypatch.setattr(extract, "FEATURE_VERSION", extract.FEATURE_VERSION - 1)
    older = build_cache(corpus, CONFIG, workers=1, progress=False)
    monkeypatch.undo()
    calls = count_decodes(monkeypatch)
    now = build_cache(corpus, CONFIG, workers=1, progress=False)
    assert now.directory != older.directory and len(calls) == len(corpus)  # computed afresh, not reused


def test_gathering_without_copy_file_range(corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = build_cache(corpus, CONFIG, workers=1, progress=False)

    def refuse(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refuse, raising=False)
    fallback = build_cache(corpus, CONFIG, cache_root=tmp_path / "other", workers=1, progress=False)
    assert_same_cache(reference, fallback)



def test_parts_are_deleted_in_the_background_and_leftovers_by_the_next_build(corpus) -> None:
    from pipeline.features.cache import DISCARD_PREFIX, wait_for_discards

    cache = build_cache(corpus, CONFIG, workers=1, progress=False)
    assert not (cache.directory / PARTS).exists()  # moved aside at once
    wait_for_discards(timeout=30)
    corpus_caches = cache.directory.parent
    assert not list(corpus_caches.glob(f"{DISCARD_PREFIX}*"))
    # a process killed while deleting leaves its folder; the next build of this corpus removes it,
    # not one that a live process is still deleting
    dead = corpus_caches / f"{DISCARD_PREFIX}{cache.directory.name}-999999999-0"
    live = corpus_caches / f"{DISCARD_PREFIX}{cache.directory.name}-{os.getppid()}-0"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "0123.npy").write_bytes(b"frames")
    build_cache(corpus, FeatureConfig(n_mels=24), workers=1, progress=False)
    assert not dead.exists() and live.exists()


# -- command line -----------------------------------------------------------------------------

def test_features_help_documents_every_option(capsys: pytest.CaptureFixture) -> None:
    from pipeline.cli.features import build_parser, main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    options = [a.option_strings[-1] for a in build_parser()._actions if a.option_strings]
    assert len(options) >= 12
    for option in options:
        assert option in text
    for action in build_parser()._actions:
        assert action.help, f"{action.dest} has no help"


def test_features_command(corpus, capsys: pytest.CaptureFixture) -> None:
    from pipeline.cli.main import main

    assert main(["features", str(corpus.root), "--n-mels", "32", "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    directory = cache_dir(corpus, CONFIG)
    assert str(directory) in out and "6 of 10 clips cached, 4 failed" in out
    assert str(directory / FAILURES) in out
    assert main(["features", str(corpus.root), "--n-mels", "0"]) == 2  # a clear error, no traceback
    assert "n_mels" in capsys.readouterr().err


def test_bench_corpus_and_help(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from benchmarks.features import main, make_synthetic_corpus

    corpus = load_corpus(make_synthetic_corpus(tmp_path / "bench", n_clips=3, seconds=0.5, sample_rate=22050))
    assert len(corpus) == 3 and corpus.rel_paths[1] == "1/synthetic-00001.mp3"
    assert len(load_audio(corpus.audio_path(2))) / SR == pytest.approx(0.5, abs=0.1)
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "librosa.load" in capsys.readouterr().out


# -- where caches live ------------------------------------------------------------------------

def _folder_corpus(root: Path, freq: float) -> Path:
    root.mkdir(parents=True)
    sf.write(root / "a.wav", _tone(0.5, freq), SR)
    sf.write(root / "b.wav", _tone(0.7, freq * 2), SR)
    return root


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_two_folders_of_the_same_name_get_their_own_caches(tmp_path: Path) -> None:
    first = load_corpus(_folder_corpus(tmp_path / "alice" / "Music", 220.0))
    second = load_corpus(_folder_corpus(tmp_path / "bob" / "Music", 330.0))
    a = build_cache(first, CONFIG, workers=1, progress=False)
    b = build_cache(second, CONFIG, workers=1, progress=False)
    assert a.directory != b.directory
    assert a.directory.parent.name.startswith("Music-") and b.directory.parent.name.startswith("Music-")
    for cache, corpus in ((a, first), (b, second)):
        assert cache.directory.is_relative_to(default_cache_root())
        np.testing.assert_array_equal(np.asarray(cache.read("a")), expected_features(corpus, "a"))
    # the same folder reached through another path (a symlink) is the same corpus
    (tmp_path / "link").symlink_to(tmp_path / "alice")
    assert cache_dir(load_corpus(tmp_path / "link" / "Music"), CONFIG) == a.directory
    shared = tmp_path / "shared-caches"  # one explicit root keeps them apart too
    assert cache_dir(first, CONFIG, shared) != cache_dir(second, CONFIG, shared)


def test_a_read_only_music_folder_is_never_written(tmp_path: Path) -> None:
    root = _folder_corpus(tmp_path / "Music", 440.0)
    (root / "album").mkdir()
    sf.write(root / "album" / "c.flac", _tone(0.6, 550.0), SR, format="FLAC")
    before = _tree(root)
    modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")]}
    for p in sorted(modes, key=lambda p: -len(p.parts)):  # read-only, as a shared or mounted library is
        p.chmod(modes[p] & ~0o222)
    try:
        corpus = load_corpus(root)
        cache = build_cache(corpus, CONFIG, workers=2, progress=False)
        assert cache.clip_ids == ["a", "album/c", "b"] and len(cache.failures) == 0
        assert build_cache(corpus, CONFIG, workers=1, progress=False).directory == cache.directory  # reused
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert _tree(root) == before
    assert not cache.directory.is_relative_to(root)


def test_corpus_inside_the_data_root_keeps_its_cache_when_the_root_moves(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICTAG_DATA", str(tmp_path / "data"))
    corpus_root = _folder_corpus(tmp_path / "data" / "mine", 220.0)
    name = corpus_key(corpus_root)
    (tmp_path / "data").rename(tmp_path / "moved")
    monkeypatch.setenv("MUSICTAG_DATA", str(tmp_path / "moved"))
    assert corpus_key(tmp_path / "moved" / "mine") == name
    assert corpus_key(tmp_path / "elsewhere" / "mine") != name


def test_a_data_root_that_is_a_file_is_a_clear_error(corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.write_text("")
    monkeypatch.setenv("MUSICTAG_DATA", str(data))
    with pytest.raises(ParameterError, match=rf"\(\$MUSICTAG_DATA\): {data} is a file, not a folder"):
        build_cache(corpus, CONFIG, workers=1, progress=False)
    with pytest.raises(ParameterError, match=rf"^cache_root: {data} is a file"):
        build_cache(corpus, CONFIG, cache_root=data / "caches", workers=1, progress=False)


def test_a_build_removes_the_temps_of_a_killed_build(corpus) -> None:
    directory = cache_dir(corpus, CONFIG)
    (directory / PARTS).mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with cache_module.atomic_path(directory / DATA) as tmp:
        host = tmp.name.split(".")[2].rsplit("-", 1)[0]  # ".data.<host>-<pid>.<random>.tmp.npy"
    owner = f"{host}-{gone.pid}"
    leftovers = [directory / f".data.{owner}.abcd1234.tmp.npy", directory / PARTS / f".0123.{owner}.efgh5678.tmp.npy"]
    for path in leftovers:
        path.write_bytes(b"\0" * 4096)  # a killed consolidation or shard write
    build_cache(corpus, CONFIG, workers=1, progress=False)
    assert not any(p.exists() for p in leftovers)
    assert not [p for p in directory.iterdir() if ".tmp" in p.name]


# -- workers die with their parent ------------------------------------------------------------

def _children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(map(_alive, pids)):
        time.sleep(0.05)
    return {p for p in pids if _alive(p)}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_kill_9_of_the_features_command_takes_its_workers_down(corpus, tmp_path: Path) -> None:
    # The real command; each clip's decoding is slowed down so that the kill lands mid-run.
    script = slow_decoding(30) + textwrap.dedent(f"""
        import runpy, sys
        sys.argv = ["pipeline", "features", {str(corpus.root)!r}, "--n-mels", "32", "--workers", "2", "--no-progress"]
        runpy.run_module("pipeline", run_name="__main__")
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)},
                            cwd=tmp_path, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
            workers = _children(proc.pid)
            time.sleep(0.05)
        assert len(workers) == 2, "the features command did not start its two workers"
        time.sleep(0.5)  # the workers are now in their first (slow) clip
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        left = _wait_gone(workers, 5.0)
        assert not left, f"workers {left} outlived their parent"
    finally:
        proc.kill()
        proc.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_parent_watch_fallback_without_prctl(tmp_path: Path) -> None:
    """Where prctl is unavailable (macOS, ...), the polling thread ends an orphaned worker."""
    script = textwrap.dedent("""
        import multiprocessing, os, sys, time
        import pipeline.workers as w

        def worker(parent):
            sys.platform = "darwin"  # no prctl: the portable path
            w.die_with_parent(parent)
            time.sleep(60)

        child = multiprocessing.get_context("fork").Process(target=worker, args=(os.getpid(),))
        child.start()
        print(child.pid, flush=True)
        time.sleep(60)
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    try:
        time.sleep(0.3)
        assert _alive(child)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not _wait_gone({child}, 3 * worker_module.PARENT_POLL_S + 2), "the orphaned worker kept running"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
