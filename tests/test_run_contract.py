"""The run contract as code: round trips through `RunDir`'s writers and readers, and one test per
validation failure (each names the file and the field, what was expected and what was found)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import math
import os
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import RunDirError
from pipeline.run import files, locate
from pipeline.run import rundir as rd
from pipeline.run.manifest import Manifest
from pipeline.run.metrics import HEADLINE_AUCS, Metrics

TAGS = ["rock", "NA", "1990s"]  # "NA" and "1990s" must stay names, not become NaN or numbers


@pytest.fixture
def run(tmp_path: Path) -> rd.RunDir:
    """A run with a corpus recorded (the audio files need not exist for the contract)."""
    corpus = tmp_path / "corpus"
    (corpus / "0").mkdir(parents=True)
    run = rd.RunDir(tmp_path / "run")
    run.update_manifest(tags=TAGS, corpus={"name": "c", "root": str(corpus), "source": "folder",
                                           "labels": {"merge_synonyms": False, "ratios": (0.8, 0.1, 0.1)},
                                           "n_clips": 4, "split_sizes": {"train": 2, "valid": 1, "test": 1}})
    return run


def predictions(root: Path | None = None, n: int = 4) -> pd.DataFrame:
    prefix = f"{root}/" if root else ""
    frame = pd.DataFrame({"clip_id": [f"c{i}" for i in range(n)], "split": ["train", "train", "valid", "test"][:n],
                          "audio_path": [f"{prefix}0/c{i}.mp3" for i in range(n)]})
    rng = np.random.default_rng(0)
    for tag in TAGS:
        frame[rd.prob_column(tag)] = rng.random(n).astype(np.float32)
    for tag in TAGS:
        frame[rd.true_column(tag)] = rng.integers(0, 2, n).astype(np.uint8)
    return frame


def metrics_dict() -> dict:
    return {"split": "test", "n_clips": 4, "n_tags": 3, "n_bootstrap": 10,
            "headline": {**{k: 0.5 + i / 100 for i, k in enumerate(HEADLINE_AUCS)}, "f1_macro": None},
            "ci95": {k: [0.4, 0.6] for k in HEADLINE_AUCS}, "undefined_tags": ["NA"]}


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------
def test_predictions_round_trip_with_paths_made_relative_to_the_corpus(run: rd.RunDir) -> None:
    root = run.corpus_root()
    frame = predictions(root)  # absolute paths under the corpus, as a scoring pass knows them
    run.write_table(rd.PREDICTIONS, frame)
    back = run.read_table(rd.PREDICTIONS)
    assert back["audio_path"].tolist() == [f"0/c{i}.mp3" for i in range(4)]
    pd.testing.assert_frame_equal(back.drop(columns="audio_path"), frame.drop(columns="audio_path"))
    assert run.audio_file(back["audio_path"][0]) == root / "0" / "c0.mp3"


def test_per_tag_round_trip_keeps_tag_names_as_text(run: rd.RunDir) -> None:
    frame = pd.DataFrame({c: [0.5, math.nan, 0.25] for c in files.PER_TAG_SPEC.column_names})
    frame["tag"], frame["support"] = TAGS, [3, 0, 1]
    run.write_table(rd.PER_TAG, frame, float_format="%.6g")
    back = run.read_table(rd.PER_TAG)
    assert back["tag"].tolist() == TAGS and back["support"].tolist() == [3, 0, 1]
    assert back["threshold"].tolist()[0] == 0.5 and math.isnan(back["threshold"][1])


def test_per_tag_columns_match_what_evaluation_writes() -> None:
    from pipeline.analysis.metrics import AVERAGES, PER_TAG_COLUMNS
    from pipeline.analysis.metrics import HEADLINE_AUCS as EVALUATED

    assert files.PER_TAG_SPEC.column_names == PER_TAG_COLUMNS
    assert HEADLINE_AUCS == EVALUATED and AVERAGES == ("macro", "micro", "weighted")


def test_metrics_round_trip(run: rd.RunDir) -> None:
    written = run.write_metrics(metrics_dict())
    back = run.read_metrics()
    assert back == written and back.value("roc_auc_macro") == 0.5 and math.isnan(back.value("f1_macro"))
    assert back.interval("pr_auc_weighted") == (0.4, 0.6)
    assert json.loads((run / rd.METRICS).read_text())["headline"]["f1_macro"] is None  # NaN stored as null


def test_metrics_from_an_evaluation() -> None:
    from pipeline.analysis.metrics import evaluate_scores

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, (40, 3))
    evaluation = evaluate_scores(truth, np.clip(truth * 0.5 + rng.random((40, 3)) * 0.5, 0, 1), TAGS, n_bootstrap=5)
    metrics = Metrics.from_evaluation(evaluation, split="test", aggregate="mean")
    assert metrics.value("roc_auc_macro") == pytest.approx(evaluation.headline["roc_auc_macro"])
    assert [r["average"] for r in metrics.headline_rows()] == ["macro", "micro", "weighted"] * 2


def test_arrays_and_json_round_trip(run: rd.RunDir) -> None:
    taggrams = np.arange(12, dtype=np.float16).reshape(4, 3)
    run.write_array(rd.TAGGRAMS, taggrams)
    np.testing.assert_array_equal(run.read_array(rd.TAGGRAMS, mmap=True), taggrams)
    with run.open_array(rd.CLIP_EMBEDDINGS, (4, 2)) as out:
        out[:] = 1.5
    assert run.read_array(rd.CLIP_EMBEDDINGS).sum() == 12.0
    run.write_json(rd.TAG_VIEWS, {"views": {}, "seed": 0})
    assert run.read_json(rd.TAG_VIEWS) == {"views": {}, "seed": 0}


def test_manifest_round_trip_and_stage_state(run: rd.RunDir) -> None:
    run.write_table(rd.PREDICTIONS, predictions())
    run.mark_stage(rd.SCORE_STAGE, (rd.PREDICTIONS,), taggram={"fps": 4.0}, n_clips=4)
    manifest = run.read_manifest()
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert manifest.corpus.labels["ratios"] == [0.8, 0.1, 0.1] and manifest.tags == TAGS
    state = manifest.stage(rd.SCORE_STAGE)
    assert state.files == [rd.PREDICTIONS] and state.info == {"taggram": {"fps": 4.0}, "n_clips": 4}
    assert manifest.taggram_fps() == 4.0 and run.stage_done(rd.SCORE_STAGE)
    assert run.manifest()["stages"][rd.SCORE_STAGE]["n_clips"] == 4  # the flat on-disk entry
    run.clear_stage(rd.SCORE_STAGE)
    assert not run.stage_done(rd.SCORE_STAGE) and run.missing_stages() == list(rd.STAGE_FILES)


def test_a_skipped_stage_is_done_with_no_files_and_says_why(run: rd.RunDir) -> None:
    assert run.read_manifest().stage("evaluate") is None
    run.mark_stage("evaluate", (), **{files.SKIPPED: "no ground truth"})
    state = run.read_manifest().stage("evaluate")
    assert state.files == [] and state.skipped == "no ground truth" and run.stage_done("evaluate")
    run.mark_stage("evaluate", (), **{files.SKIPPED: ""})  # an empty reason is not a skip
    assert run.read_manifest().stage("evaluate").skipped is None


def test_stages_in_data_flow_order_with_one_scoring_pass() -> None:
    assert list(rd.STAGE_FILES) == ["train", "score", "evaluate", "embed"]
    assert {rd.PREDICTIONS, rd.TAGGRAMS, rd.CLIP_EMBEDDINGS, rd.ONNX_MODEL} <= set(rd.STAGE_FILES[rd.SCORE_STAGE])
    declared = [*files.TABLES, *files.ARRAYS, *files.JSONS]
    assert all(files.stage_of(name) == spec.stage for specs in (files.TABLES, files.ARRAYS, files.JSONS)
               for name, spec in specs.items()), "each file's spec names the stage that writes it"
    assert set(declared) <= {f for fs in rd.STAGE_FILES.values() for f in fs}


# ---------------------------------------------------------------------------------------------
# writers refuse what does not match, naming the file and the column
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.drop(columns="split"), r"predictions.parquet: expected column 'split' \(str\)"),
    (lambda f: f.drop(columns=[c for c in f if c.startswith("prob:")]), r"expected 'prob:<tag>' columns"),
    (lambda f: f.assign(**{"prob:rock": ["high"] * 4}), r"column 'prob:rock' should be prob, found dtype (object|str)"),
    (lambda f: f.assign(**{"prob:rock": [0.1, 1.5, 0.2, 0.3]}), r"'prob:rock' should be prob, found values outside"),
    (lambda f: f.assign(**{"true:NA": [0, 2, 1, 0]}), r"'true:NA' should be binary, found values \[2\]"),
    (lambda f: f.assign(clip_id=[1, 2, 3, 4]), r"column 'clip_id' should be str, found dtype int64"),
    (lambda f: f.assign(clip_id=["a", "a", "b", "c"]), r"clip_id should be unique, found 'a' twice"),
    (lambda f: f.assign(**{"true:zydeco": [0, 1, 1, 0]}), r"true:<tag> columns should be prob:<tag> tags"),
    (lambda f: f.assign(audio_path="/etc/passwd"), r"audio path '/etc/passwd' is outside the corpus root"),
    (lambda f: f.assign(audio_path="../x.mp3"), r"audio path '../x.mp3' leaves the corpus root"),
])
def test_write_table_refuses_a_bad_predictions_frame(run: rd.RunDir, change, message: str) -> None:
    with pytest.raises(RunDirError, match=message):
        run.write_table(rd.PREDICTIONS, change(predictions()))
    assert not (run / rd.PREDICTIONS).exists()


def test_a_corpus_labelling_some_of_the_models_tags_is_a_valid_predictions_frame(run: rd.RunDir) -> None:
    """A run scored on another corpus has true:<tag> only for the tags that corpus labels."""
    run.write_table(rd.PREDICTIONS, predictions().drop(columns="true:rock"))
    stored = run.read_table(rd.PREDICTIONS)
    assert "true:rock" not in stored and "prob:rock" in stored and "true:NA" in stored


def test_write_table_refuses_per_tag_without_its_threshold_column(run: rd.RunDir) -> None:
    frame = pd.DataFrame({c: [0.5] for c in files.PER_TAG_SPEC.column_names}).assign(tag="rock", support=1)
    with pytest.raises(RunDirError, match=r"per_tag.csv: expected column 'threshold' \(float\)"):
        run.write_table(rd.PER_TAG, frame.rename(columns={"threshold": "tuned_threshold"}))


def test_write_array_refuses_the_wrong_dtype(run: rd.RunDir) -> None:
    with pytest.raises(RunDirError, match=r"taggrams.npy: expected a 2-D float16 array, found a 2-D float64"):
        run.write_array(rd.TAGGRAMS, np.zeros((2, 3)))


def test_write_arrays_refuses_object_arrays(run: rd.RunDir) -> None:
    with pytest.raises(RunDirError, match=r"tag_embeddings.npz: array 'x:tags' should be numeric or text"):
        run.write_arrays(rd.TAG_EMBEDDINGS, **{"x:tags": np.array(["a", None], dtype=object)})


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: [], r"metrics.json: expected a JSON object, found list"),
    (lambda m: {**m, "split": 3}, r"split should be a string, found 3"),
    (lambda m: {**m, "headline": {"roc_auc_macro": 0.9}}, r"headline lacks roc_auc_micro"),
    (lambda m: {**m, "headline": {**m["headline"], "pr_auc_micro": "0.4"}}, r"headline.pr_auc_micro should be a number"),
    (lambda m: {**m, "ci95": {**m["ci95"], "roc_auc_macro": 0.5}}, r"ci95.roc_auc_macro should be \[low, high\]"),
    (lambda m: {**m, "roc_auc": {"macro": 0.9}}, r"unknown key\(s\) roc_auc"),
    (lambda m: {**m, "n_clips": "4"}, r"n_clips should be int"),
])
def test_metrics_validation_names_the_key(run: rd.RunDir, change, message: str) -> None:
    with pytest.raises(RunDirError, match=message):
        run.write_metrics(change(metrics_dict()))
    (run / rd.METRICS).write_text(json.dumps(change(metrics_dict())))
    with pytest.raises(RunDirError, match=message):
        run.read_metrics()


# ---------------------------------------------------------------------------------------------
# readers refuse what a hand-made or hostile file holds
# ---------------------------------------------------------------------------------------------
def test_read_table_names_file_and_column(run: rd.RunDir) -> None:
    predictions().drop(columns="audio_path").to_parquet(run / rd.PREDICTIONS)
    with pytest.raises(RunDirError, match=r"run/predictions.parquet: expected column 'audio_path' \(str\), found "
                                          r"columns \[clip_id, split, prob:rock"):
        run.read_table(rd.PREDICTIONS)
    (run / rd.CLIP_NEIGHBORS).write_bytes(b"not parquet")
    with pytest.raises(RunDirError, match="clip_neighbors.parquet: unreadable Parquet file"):
        run.read_table(rd.CLIP_NEIGHBORS)


def test_read_array_never_unpickles(run: rd.RunDir) -> None:
    np.save(run / rd.TAGGRAMS, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RunDirError, match="taggrams.npy: unreadable array"):
        run.read_array(rd.TAGGRAMS)


@pytest.mark.parametrize(("manifest", "message"), [
    ([], r"manifest.json: expected a JSON object, found a list"),
    ("text", r"expected a JSON object, found a string"),
    ({"schema_version": 1, "name": "x"}, r"schema version 1, this toolkit reads 2"),
    ({"name": "x"}, r"schema version None"),
    ({"schema_version": 2, "name": "x", "stages": []}, r"stages should be an object, found a list \[\]"),
    ({"schema_version": 2, "name": 5}, r"name should be a string, found an integer 5"),
    ({"schema_version": 2, "name": "x", "tags": "rock"}, r"tags should be a list"),
    ({"schema_version": 2, "name": "x", "tags": ["rock", 3]}, r"tags should be a list of strings, found an integer 3"),
    ({"schema_version": 2, "name": "x", "corpus": []}, r"corpus should be an object"),
    ({"schema_version": 2, "name": "x", "corpus": {"name": "c"}}, r"corpus.root should be a string, found null"),
    ({"schema_version": 2, "name": "x", "corpus": {"name": "c", "root": "r", "split_sizes": {"train": "1"}}},
     r"corpus.split_sizes.train should be an integer"),
    ({"schema_version": 2, "name": "x", "model": {"name": "m", "kwargs": []}}, r"model.kwargs should be an object"),
    ({"schema_version": 2, "name": "x", "stages": {"score": []}}, r"stages.score should be an object"),
    ({"schema_version": 2, "name": "x", "stages": {"score": {"files": []}}}, r"stages.score.finished should be"),
    ({"schema_version": 2, "name": "x", "stages": {"score": {"finished": "t", "files": ["/etc/passwd"]}}},
     r"stages.score.files should name files of the run folder, found '/etc/passwd'"),
    ({"schema_version": 2, "name": "x", "metrics": {"split": "test"}}, r"manifest.json: metrics: headline should be"),
    ({"schema_version": 2, "name": "x", "synthetic": "yes"}, r"synthetic should be a boolean"),
])
def test_manifest_validation_names_the_field(tmp_path: Path, manifest: object, message: str) -> None:
    (tmp_path / rd.MANIFEST).write_text(json.dumps(manifest))
    run = rd.RunDir(tmp_path)
    with pytest.raises(RunDirError, match=message):
        run.read_manifest()
    assert not run.stage_done("train") and run.missing_stages() == list(rd.STAGE_FILES)  # never raises


def test_update_manifest_writes_nothing_invalid(run: rd.RunDir) -> None:
    before = (run / rd.MANIFEST).read_text()
    with pytest.raises(RunDirError, match="stages should be an object"):
        run.update_manifest(stages=[])
    with pytest.raises(RunDirError, match="corpus.labels.merge_synonyms should be a boolean"):
        run.update_manifest(corpus={"name": "c", "root": "r", "labels": {"merge_synonyms": "auto"}})
    assert (run / rd.MANIFEST).read_text() == before


@pytest.mark.parametrize("text", ["{not json", "[" * 100_000 + "]" * 100_000, "\xff\xfe"])
def test_unreadable_manifest_json(tmp_path: Path, text: str) -> None:
    (tmp_path / rd.MANIFEST).write_text(text, encoding="latin-1")
    with pytest.raises(RunDirError, match="manifest.json: unreadable manifest"):
        rd.RunDir(tmp_path).manifest()


def test_any_wrong_shape_anywhere_is_a_run_dir_error(run: rd.RunDir) -> None:
    """Every field of a real manifest, replaced by every JSON shape: valid, or a RunDirError, never another error."""
    run.write_table(rd.PREDICTIONS, predictions())
    run.mark_stage(rd.SCORE_STAGE, (rd.PREDICTIONS,), taggram={"fps": 4.0})
    run.update_manifest(metrics=metrics_dict(), model={"name": "m", "kwargs": {}})
    good = run.manifest()
    shapes = [[], {}, "s", 1, -1.5, None, True, [1, "a"], {"x": []}]

    def paths(obj: object, prefix: tuple = ()) -> list[tuple]:
        if isinstance(obj, dict):
            return [prefix] + [p for k, v in obj.items() for p in paths(v, (*prefix, k))]
        return [prefix]

    tried = 0
    for path in paths(good)[1:]:
        for shape in shapes:
            bad = json.loads(json.dumps(good))
            node = bad
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = shape
            with contextlib.suppress(RunDirError):
                Manifest.from_dict(bad)
            tried += 1
    assert tried > 300


# ---------------------------------------------------------------------------------------------
# corpus roots and audio paths
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stored", ["/etc/passwd", "../../x.mp3", "0/../../x.mp3", "", "."])
def test_audio_paths_outside_the_corpus_are_refused(tmp_path: Path, stored: str) -> None:
    with pytest.raises(RunDirError):
        locate.confined_audio_path(stored, tmp_path)


def test_a_symlink_out_of_the_corpus_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.mp3").symlink_to("/etc/passwd")
    with pytest.raises(RunDirError, match="outside the corpus root"):
        locate.confined_audio_path("a.mp3", tmp_path)
    (tmp_path / "b.mp3").write_bytes(b"x")
    assert locate.confined_audio_path("b.mp3", tmp_path) == (tmp_path / "b.mp3").resolve()
    assert locate.confined_audio_path(str(tmp_path / "b.mp3"), tmp_path) == (tmp_path / "b.mp3").resolve()


def test_corpus_root_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(locate.CORPUS_ROOT_ENV, raising=False)
    monkeypatch.setenv("MUSICTAG_DATA", str(tmp_path / "data"))
    assert locate.corpus_root("c", "corpora/c") == (tmp_path / "data" / "corpora" / "c").resolve()
    assert locate.portable_root(tmp_path / "data" / "corpora" / "c") == "corpora/c"
    assert locate.portable_root(tmp_path / "elsewhere") == str((tmp_path / "elsewhere").resolve())
    monkeypatch.setenv(locate.CORPUS_ROOT_ENV, f"other={tmp_path / 'o'}{os.pathsep}c={tmp_path / 'new'}")
    assert locate.corpus_root("c", "/old") == (tmp_path / "new").resolve()
    assert locate.corpus_root("d", "/old") == Path("/old")  # no entry for d: its own root
    monkeypatch.setenv(locate.CORPUS_ROOT_ENV, str(tmp_path / "all"))
    assert locate.corpus_root("d", "/old") == (tmp_path / "all").resolve()
    assert locate.corpus_root("d", "/old", override=f"d={tmp_path / 'opt'}") == (tmp_path / "opt").resolve()


def test_a_malformed_override_is_a_clear_error() -> None:
    with pytest.raises(Exception, match=r"MUSICTAG_CORPUS_ROOT: entry '=x' should be NAME=DIR or DIR"):
        locate.parse_override("=x")


# ---------------------------------------------------------------------------------------------
# hints print commands that run
# ---------------------------------------------------------------------------------------------
def test_require_hints_a_real_command(run: rd.RunDir) -> None:
    with pytest.raises(RunDirError) as err:
        run.require("train")
    assert f"'python -m pipeline train --corpus {run.corpus_root()} --out {run.path} --force'" in str(err.value)
    with pytest.raises(RunDirError, match=rf"'python -m pipeline evaluate {run.path}'"):
        run.require("evaluate")


@pytest.mark.parametrize("stage", list(rd.STAGE_FILES))
def test_every_rebuild_command_parses(run: rd.RunDir, stage: str) -> None:
    from pipeline.cli.main import COMMANDS

    words = shlex.split(run.rebuild_command(stage))
    assert words[:3] == ["python", "-m", "pipeline"]
    if words[3] not in COMMANDS or importlib.util.find_spec(f"pipeline.cli.{words[3]}") is None:
        pytest.skip(f"'{words[3]}' is not a command of this checkout yet")
    importlib.import_module(f"pipeline.cli.{words[3]}").build_parser().parse_args(words[4:])
