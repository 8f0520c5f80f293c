"""The synthesized demo corpus and the ``data`` command.

A small corpus (32 clips of 3 s) is built once per module; checks that need no audio run on
plans alone (cheap), and the audible claims (loud vs quiet, fast vs slow) are measured on
rendered audio with forced plans.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import pipeline.sources.demo.recipes as R
from pipeline.cli import data as data_cmd
from pipeline.errors import ParameterError
from pipeline.io import read_json, write_json
from pipeline.sources.corpus import SPLITS
from pipeline.sources.demo.annotate import label_matrix, sample_annotations
from pipeline.sources.demo.build import MANIFEST_FILE, build_demo_corpus
from pipeline.sources.demo.midi import clip_midi
from pipeline.sources.demo.plan import ClipPlan, plan_clip, plan_corpus
from pipeline.sources.demo.render import encode_mp3, render_clip, wav_to_mono
from pipeline.sources.loader import load_corpus
from pipeline.sources.mtt_format import (
    ANNOTATIONS_FILE,
    AUDIO_FOLDERS,
    CLIP_INFO_COLUMNS,
    CLIP_INFO_FILE,
    SAMPLE_RATE,
    TRUTH_FILE,
)
from pipeline.sources.mtt_tags import MTT_TAGS, SYNONYMS, TOP50_TAGS

CLIPS, SECONDS, SEED = 32, 3.0, 7
MP3_NAME = re.compile(r"^[0-9a-f]/[a-z0-9_]+-[a-z0-9_]+-\d\d-[a-z0-9_]+-\d+-\d+\.mp3$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "corpus"
    return build_demo_corpus(out, clips=CLIPS, seconds=SECONDS, seed=SEED, workers=2, progress=False)


@pytest.fixture(scope="module")
def plans() -> list[ClipPlan]:
    """A larger dry run: plans only, no audio."""
    return plan_corpus(1500, 10.0, seed=3)


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh, delimiter="\t", quotechar='"'))


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))


# ----------------------------------------------------------------------------- file format

@pytest.mark.slow
@pytest.mark.parametrize("name", [ANNOTATIONS_FILE, TRUTH_FILE])
def test_annotation_files_have_mtt_format(corpus, name):
    lines = (corpus / name).read_text(encoding="utf-8").splitlines()
    assert len(lines) == CLIPS + 1
    for line in lines:  # tab-separated, every field double-quoted
        fields = line.split("\t")
        assert all(f.startswith('"') and f.endswith('"') and len(f) >= 2 for f in fields), line[:80]
    rows = _rows(corpus / name)
    assert rows[0] == ["clip_id", *MTT_TAGS, "mp3_path"]
    body = rows[1:]
    assert [r[0] for r in body] == [str(i + 1) for i in range(CLIPS)]  # integer ids as strings
    assert all(v in ("0", "1") for r in body for v in r[1:-1])
    for r in body:
        assert MP3_NAME.match(r[-1]), r[-1]
        assert (corpus / r[-1]).is_file()


@pytest.mark.slow
def test_clip_info_has_mtt_columns(corpus):
    rows = _rows(corpus / CLIP_INFO_FILE)
    assert tuple(rows[0]) == CLIP_INFO_COLUMNS
    annotations = _rows(corpus / ANNOTATIONS_FILE)
    assert [r[0] for r in rows[1:]] == [r[0] for r in annotations[1:]]
    assert [r[-1] for r in rows[1:]] == [r[-1] for r in annotations[1:]]
    for r in rows[1:]:
        info = dict(zip(rows[0], r))
        assert int(info["segmentEnd"]) - int(info["segmentStart"]) == round(SECONDS)
        assert info["title"] and info["artist"] and info["album"]


@pytest.mark.slow
def test_mp3s_decode_at_16k_mono_with_the_right_duration(corpus):
    paths = sorted(corpus.glob("[0-9a-f]/*.mp3"))
    assert len(paths) == CLIPS
    for path in paths:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        assert rate == SAMPLE_RATE and audio.shape[1] == 1
        # mp3 adds encoder delay and frame padding (about 0.1 s), never more
        assert SECONDS <= len(audio) / rate <= SECONDS + 0.15, (path, len(audio) / rate)
        assert _rms(audio) > 1e-4, f"{path} is silent"


@pytest.mark.slow
def test_folders_follow_mtt_split(corpus):
    folders = {p.parent.name for p in corpus.glob("*/*.mp3")}
    assert folders <= set(AUDIO_FOLDERS)
    assert len(folders) == 16  # 32 clips: every folder twice


# ----------------------------------------------------------------------------- labels

@pytest.mark.slow
def test_annotations_are_a_subset_of_truth(corpus):
    ann = np.array([r[1:-1] for r in _rows(corpus / ANNOTATIONS_FILE)[1:]], dtype=int)
    truth = np.array([r[1:-1] for r in _rows(corpus / TRUTH_FILE)[1:]], dtype=int)
    assert (ann <= truth).all()
    assert truth.sum(axis=1).min() >= 3  # every clip has a genre, an instrument and more
    assert 0 < ann.sum() < truth.sum()


def test_label_dropout_rate_and_monotonicity(plans):
    truth = label_matrix(plans)
    for p in (0.0, 0.2, 0.5):
        ann = sample_annotations(plans, p)
        dropped = 1 - ann.sum() / truth.sum()
        assert abs(dropped - p) < 0.02, (p, dropped)
    low, high = sample_annotations(plans, 0.2), sample_annotations(plans, 0.5)
    assert (high <= low).all()  # a higher dropout drops a superset


@pytest.mark.slow
def test_load_corpus_merges_synonyms_and_splits(corpus):
    loaded = load_corpus(corpus)
    assert len(loaded) == CLIPS
    applied = loaded.label_config  # the MTT format's defaults, resolved
    assert applied is not None and (applied.merge_synonyms, applied.split) == (True, "folder")
    sizes = loaded.split_sizes()
    assert all(sizes.get(s, 0) > 0 for s in SPLITS), sizes
    for head, *others in SYNONYMS:
        assert not set(others) & set(loaded.tags), (head, set(others) & set(loaded.tags))
    # the merged "drum" column is the OR of the annotated "drum" and "drums" columns
    rows = _rows(corpus / ANNOTATIONS_FILE)
    header = rows[0]
    raw = {t: np.array([int(r[header.index(t)]) for r in rows[1:]]) for t in ("drum", "drums")}
    if "drum" in loaded.tags:
        np.testing.assert_array_equal(loaded.labels[:, loaded.tag_index("drum")], raw["drum"] | raw["drums"])


def test_synonym_spellings_all_occur(plans):
    used = {t for p in plans for t in p.tags}
    for concept in ("drums", "classical", "no vocals", "electronic", "beat", "female", "male", "choir"):
        spellings = {t for t, _ in R.SPELLINGS[concept]}
        assert len(spellings & used) >= 2, concept


def test_top50_coverage_and_every_genre_in_every_split(plans):
    used = {t for p in plans for t in p.tags}
    assert len(set(TOP50_TAGS) & used) >= 30
    for split in SPLITS:
        recipes = {p.recipe for p in plans if p.split == split}
        assert recipes == {r.name for r in R.RECIPES}, split
    shares = np.array([sum(p.split == s for p in plans) for s in SPLITS]) / len(plans)
    np.testing.assert_allclose(shares, [12 / 16, 1 / 16, 3 / 16], atol=0.01)


def test_tags_follow_what_is_played(plans):
    pianos = {0, 1, 2, 4, 5}
    for plan in plans[:400]:
        concepts = set(plan.concepts)
        programs = {p.program for p in plan.parts}
        voiced = any(p.role in ("vocal", "choir") for p in plan.parts)
        assert ("no drums" in concepts) == (plan.drums is None)
        assert ("no vocals" in concepts) == (not voiced)
        assert ("fast" in concepts) == (plan.bpm >= R.TEMPO_CLASSES["fast"][0])
        assert ("slow" in concepts) == (plan.bpm <= R.TEMPO_CLASSES["slow"][1])
        assert ("loud" in concepts) == (plan.dynamics == "loud")
        assert ("quiet" in concepts) == (plan.dynamics == "quiet")
        assert ("piano" in concepts) == bool(programs & pianos)
        assert ("sitar" in concepts) == (104 in programs)
        assert ("violin" in concepts) == bool(programs & {40, 110})
        assert ("beat" in concepts) <= (plan.drums in ("four_floor", "house", "trance", "hiphop"))
        if "solo" in concepts:
            assert len(programs) == 1 and plan.drums is None
        if "male" in concepts and "vocal" in concepts:
            assert any(p.voice == "male" for p in plan.parts)
        midi = clip_midi(plan) if plan.index < 60 else None
        if midi is not None:
            kit = [i for i in midi.instruments if i.is_drum]
            assert bool(kit and kit[0].notes) == (plan.drums is not None)


def test_plans_are_deterministic_and_seed_dependent():
    a = plan_corpus(50, 10.0, seed=1)
    assert a == plan_corpus(50, 10.0, seed=1)
    assert [p.tags for p in a] != [p.tags for p in plan_corpus(50, 10.0, seed=2)]
    # prefix-stable: a bigger corpus begins with the smaller one
    assert plan_corpus(80, 10.0, seed=1)[:50] == a


# ----------------------------------------------------------------------------- audio is true to the tags

def test_loud_clips_are_louder_than_quiet_ones():
    for recipe in ("orchestral", "piano_solo", "string_quartet"):
        for index in range(2):
            loud = render_clip(plan_clip(11, index, 3.0, recipe=recipe, dynamics="loud"))
            quiet = render_clip(plan_clip(11, index, 3.0, recipe=recipe, dynamics="quiet"))
            assert _rms(loud) > 3 * _rms(quiet), (recipe, index, _rms(loud), _rms(quiet))


def test_fast_clips_have_more_onsets_than_slow_ones():
    import librosa

    def onset_rate(plan: ClipPlan) -> float:
        audio = render_clip(plan)
        return len(librosa.onset.onset_detect(y=audio, sr=SAMPLE_RATE, units="time")) / plan.seconds

    for recipe in ("string_quartet", "classical_guitar", "indian"):
        fast = np.mean([onset_rate(plan_clip(5, i, 4.0, recipe=recipe, tempo="fast")) for i in range(2)])
        slow = np.mean([onset_rate(plan_clip(5, i, 4.0, recipe=recipe, tempo="slow")) for i in range(2)])
        assert fast > 1.4 * slow, (recipe, fast, slow)


def test_drums_are_audible_in_the_render():
    """A clip with a drum kit has more percussive (broadband onset) energy than the same clip without."""
    import librosa

    def percussive_share(audio: np.ndarray) -> float:
        harmonic, percussive = librosa.effects.hpss(audio)
        return _rms(percussive) / (_rms(harmonic) + 1e-9)

    with_kit = plan_clip(2, 0, 3.0, recipe="rock")
    without = ClipPlan(**{**with_kit.__dict__, "drums": None})
    assert percussive_share(render_clip(with_kit)) > 1.5 * percussive_share(render_clip(without))


def test_render_is_deterministic():
    plan = plan_clip(4, 9, 2.0)
    first = render_clip(plan)
    assert first.dtype == np.float32 and first.shape == (2 * SAMPLE_RATE,)
    np.testing.assert_array_equal(first, render_clip(plan))
    assert encode_mp3(first) == encode_mp3(render_clip(plan))


# ----------------------------------------------------------------------------- build: determinism, resume

# What a small build (16 clips x 2 s, seed 3: every folder once) wrote before demo.py became the
# package pipeline/sources/demo/ (recorded from the single-module code). The CSVs follow from
# numpy's seeded generators alone; the MIDI and mp3 bytes also depend on the rendering stack.
GOLDEN_BUILD = {"clips": 16, "seconds": 2.0, "seed": 3}
GOLDEN_CSVS = {
    ANNOTATIONS_FILE: "1ec595339f8bab719c7197ff5da8007a722bb3d9f20cecc553ecc0f522d42b37",
    TRUTH_FILE: "c59b447edc9cc12a3031ee65e0cff37f12180cb494b49042efac629e51a6f069",
    CLIP_INFO_FILE: "d9834c75c11a682924f4295227942830a874c67d08e2bc9ffeefe31c122b3408",
}
GOLDEN_MIDI = "4e8b0c0d2ccf5c437b63b855be7ae4aa2867de2018a129e71f0f03f95d7dd94f"  # digest of the 16 scores
GOLDEN_MP3S = "2eadb04d1d58e64305f4bcd07d66f989fec91465b9b4fc048d53b76f355c6ea9"  # digest of the 16 mp3s
GOLDEN_STACK = {"pretty_midi": "0.2.11.post0", "mido": "1.3.3", "midirenderer": "0.1.3", "scipy": "1.17.1",
                "lameenc": "1.9.0"}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest(named: dict[str, bytes]) -> str:
    """One sha256 over the sorted ``name:sha256`` lines of several files."""
    return _sha256("".join(f"{name}:{_sha256(data)}\n" for name, data in sorted(named.items())).encode())


@pytest.fixture(scope="module")
def golden_build(tmp_path_factory) -> Path:
    return build_demo_corpus(tmp_path_factory.mktemp("golden") / "corpus", workers=2, progress=False, **GOLDEN_BUILD)


@pytest.mark.slow
def test_small_build_writes_the_recorded_csvs(golden_build):
    for name, expected in GOLDEN_CSVS.items():
        assert _sha256((golden_build / name).read_bytes()) == expected, name


@pytest.mark.slow
def test_small_build_writes_the_recorded_midi_and_mp3s(golden_build):
    import importlib.metadata

    installed = {name: importlib.metadata.version(name) for name in GOLDEN_STACK}
    if installed != GOLDEN_STACK:
        pytest.skip(f"MIDI and mp3 bytes were recorded with {GOLDEN_STACK}; installed: {installed}")
    scores = {}
    for index in range(GOLDEN_BUILD["clips"]):
        buffer = io.BytesIO()
        clip_midi(plan_clip(GOLDEN_BUILD["seed"], index, GOLDEN_BUILD["seconds"])).write(buffer)
        scores[f"midi/{index}"] = buffer.getvalue()
    assert _digest(scores) == GOLDEN_MIDI
    mp3s = {p.relative_to(golden_build).as_posix(): p.read_bytes() for p in golden_build.glob("*/*.mp3")}
    assert len(mp3s) == GOLDEN_BUILD["clips"]
    assert _digest(mp3s) == GOLDEN_MP3S


@pytest.mark.slow
def test_same_seed_gives_identical_corpus(corpus, tmp_path):
    again = build_demo_corpus(tmp_path / "again", clips=CLIPS, seconds=SECONDS, seed=SEED, workers=1,
                                   progress=False)
    for name in (ANNOTATIONS_FILE, TRUTH_FILE, CLIP_INFO_FILE):
        assert (again / name).read_bytes() == (corpus / name).read_bytes(), name
    for path in sorted(corpus.glob("*/*.mp3")):
        assert (again / path.relative_to(corpus)).read_bytes() == path.read_bytes(), path


@pytest.mark.slow
def test_rerun_reuses_and_resume_renders_only_what_is_missing(corpus, tmp_path):
    work = tmp_path / "copy"
    shutil.copytree(corpus, work)
    mp3s = sorted(work.glob("*/*.mp3"))
    csv_before = {n: (work / n).read_bytes() for n in (ANNOTATIONS_FILE, TRUTH_FILE, CLIP_INFO_FILE)}
    mtimes = {p: p.stat().st_mtime_ns for p in mp3s}

    build_demo_corpus(work, clips=CLIPS, seconds=SECONDS, seed=SEED, workers=1, progress=False)
    assert read_json(work / MANIFEST_FILE)["status"] == "complete"
    assert all(p.stat().st_mtime_ns == mtimes[p] for p in mp3s)

    # a killed build: still marked as building, two clips missing, one corrupt, CSVs not yet written
    record = read_json(work / MANIFEST_FILE)
    write_json(work / MANIFEST_FILE, {**record, "status": "building"})
    mp3s[0].unlink()
    mp3s[5].unlink()
    mp3s[9].write_bytes(b"not an mp3 at all")
    for name in csv_before:
        (work / name).unlink()
    build_demo_corpus(work, clips=CLIPS, seconds=SECONDS, seed=SEED, workers=2, progress=False)
    stats = read_json(work / MANIFEST_FILE)["stats"]
    assert stats["rendered"] == 3
    assert mp3s[9].read_bytes() == (corpus / mp3s[9].relative_to(work)).read_bytes()
    assert all(p.stat().st_mtime_ns == mtimes[p] for i, p in enumerate(mp3s) if i not in (0, 5, 9))
    for name, content in csv_before.items():
        assert (work / name).read_bytes() == content
    assert not list(work.rglob("*.tmp*")) and not list(work.glob(".*.new"))


@pytest.mark.slow
def test_changing_only_label_dropout_reuses_audio(corpus, tmp_path):
    work = tmp_path / "dropout"
    shutil.copytree(corpus, work)
    build_demo_corpus(work, clips=CLIPS, seconds=SECONDS, seed=SEED, label_dropout=0.0, workers=1,
                           progress=False)
    assert read_json(work / MANIFEST_FILE)["stats"]["rendered"] == 0
    assert (work / ANNOTATIONS_FILE).read_bytes() == (work / TRUTH_FILE).read_bytes()


@pytest.mark.slow
def test_other_seed_in_same_folder_is_refused(corpus):
    with pytest.raises(ParameterError, match="seed=7"):
        build_demo_corpus(corpus, clips=CLIPS, seconds=SECONDS, seed=SEED + 1, progress=False)
    with pytest.raises(ParameterError, match="seconds"):
        build_demo_corpus(corpus, clips=CLIPS, seconds=SECONDS + 1, seed=SEED, progress=False)


# ----------------------------------------------------------------------------- parameters and CLI

@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"clips": 0}, "clips"),
    ({"clips": 2.5}, "clips"),
    ({"seconds": 0.5}, "seconds"),
    ({"seconds": float("nan")}, "seconds"),
    ({"seed": -1}, "seed"),
    ({"label_dropout": 1.0}, "label_dropout"),
    ({"label_dropout": -0.1}, "label_dropout"),
    ({"workers": 0}, "workers"),
])
def test_bad_parameters_are_named(tmp_path, kwargs, needle):
    with pytest.raises(ParameterError, match=needle) as info:
        build_demo_corpus(tmp_path / "x", progress=False, **kwargs)
    assert str(list(kwargs.values())[0]) in str(info.value)
    assert not (tmp_path / "x").exists()


def test_out_must_not_be_a_file_or_a_foreign_corpus(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ParameterError, match="file"):
        build_demo_corpus(a_file, clips=1, seconds=1, progress=False)
    foreign = tmp_path / "mtt"
    foreign.mkdir()
    (foreign / ANNOTATIONS_FILE).write_text("x")
    with pytest.raises(ParameterError, match="not a demo corpus"):
        build_demo_corpus(foreign, clips=1, seconds=1, progress=False)


def test_plan_overrides_are_validated():
    with pytest.raises(ParameterError, match="recipe"):
        plan_clip(0, 0, 1.0, recipe="polka")
    with pytest.raises(ParameterError, match="tempo"):
        plan_clip(0, 0, 1.0, tempo="brisk")
    with pytest.raises(ParameterError, match="dynamics"):
        plan_clip(0, 0, 1.0, dynamics="deafening")


@pytest.mark.parametrize(("argv", "needles"), [
    (["--help"], ["demo", "mtt"]),
    (["demo", "--help"], ["--clips", "--seconds", "--seed", "--label-dropout", "--workers", "--out"]),
    (["mtt", "--help"], ["--out", "--base-url", "--force"]),
])
def test_cli_help(capsys, argv, needles):
    with pytest.raises(SystemExit) as info:
        data_cmd.main(argv)
    assert info.value.code == 0
    text = capsys.readouterr().out
    for needle in needles:
        assert needle in text


def test_cli_builds_a_tiny_corpus(tmp_path):
    out = tmp_path / "tiny"
    assert data_cmd.main(["demo", "--out", str(out), "--clips", "2", "--seconds", "1", "--workers", "1",
                          "--no-progress"]) == 0
    assert len(_rows(out / ANNOTATIONS_FILE)) == 3
    assert len(list(out.glob("*/*.mp3"))) == 2


def test_cli_mtt_calls_download_mtt(tmp_path, monkeypatch):
    calls = []

    def fake_download(out, *, base_url="default", force=False):
        calls.append((out, base_url, force))
        return out

    monkeypatch.setitem(sys.modules, "pipeline.sources.mtt", types.SimpleNamespace(download_mtt=fake_download))
    assert data_cmd.main(["mtt", "--out", str(tmp_path), "--base-url", "http://127.0.0.1:1/mtt/", "--force"]) == 0
    assert data_cmd.main(["mtt", "--out", str(tmp_path)]) == 0
    assert calls == [(tmp_path, "http://127.0.0.1:1/mtt/", True), (tmp_path, "default", False)]


def test_wav_parsing_matches_libsndfile():
    """The fast in-place WAV parser and its libsndfile fallback (for other layouts) agree."""
    rng = np.random.default_rng(0)
    stereo = rng.uniform(-0.5, 0.5, size=(4800, 2)).astype(np.float32)
    pcm16, floats = io.BytesIO(), io.BytesIO()
    sf.write(pcm16, stereo, 48_000, format="WAV", subtype="PCM_16")
    sf.write(floats, stereo, 48_000, format="WAV", subtype="FLOAT")
    fast = wav_to_mono(pcm16.getvalue())  # parsed in place
    slow = wav_to_mono(floats.getvalue())  # 32-bit float: the libsndfile fallback
    assert fast.shape == slow.shape == (4800,)
    np.testing.assert_allclose(fast, stereo.mean(axis=1), atol=1 / 32768)
    np.testing.assert_allclose(slow, stereo.mean(axis=1), atol=1e-6)
