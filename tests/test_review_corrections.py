"""Verdicts to corrected labels: the CSV, the consensus, corrected annotations that reload, train / evaluate."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import DataFormatError, ParameterError, RunDirError
from pipeline.paths import REVIEWS_ENV
from pipeline.review.corrections import (
    EXPORT_COLUMNS,
    VERDICTS_FILE,
    VerdictRow,
    apply_corrections,
    consensus,
    correct_labels,
    export_verdicts,
    read_verdicts_csv,
    write_corrected_annotations,
    write_verdicts_csv,
)
from pipeline.review.store import VerdictStore
from pipeline.run.rundir import METRICS, RunDir
from pipeline.sources.corpus import LabelConfig
from pipeline.sources.folder import TAGS_FILE
from pipeline.sources.loader import load_corpus
from pipeline.sources.mtt_format import ANNOTATIONS_FILE, DEMO_MANIFEST_FILE, write_annotations

T0 = "2026-12-01T10:00:0{}.000Z"


def row(clip: str, tag: str, verdict: str, reviewer: str = "alice", second: int = 0, note: str = "") -> VerdictRow:
    return VerdictRow(clip, tag, verdict, reviewer, T0.format(second), note)


@pytest.fixture()
def reviews(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A verdict-database folder of the test's own."""
    folder = tmp_path / "reviews"
    monkeypatch.setenv(REVIEWS_ENV, str(folder))
    return folder


# ----------------------------------------------------------------------------- consensus, applying


def test_consensus_of_two_reviewers() -> None:
    rows = [
        row("1", "piano", "present", "alice", 0), row("1", "piano", "absent", "bob", 1),  # disagree
        row("2", "piano", "absent", "alice", 0), row("2", "piano", "present", "alice", 3),  # changed her mind
        row("2", "piano", "unsure", "bob", 1),  # unsure is ignored
        row("3", "rock", "unsure", "alice", 0), row("3", "rock", "unsure", "bob", 0),  # nothing decided
        row("4", "rock", "absent", "alice", 0), row("4", "rock", "absent", "bob", 2),  # agree
        row("5", "rock", "present", "bob", 5), row("5", "rock", "absent", "bob", 4),  # the later time counts, not order
    ]
    labels, disagreements, unsure = consensus(rows)
    assert labels == {("2", "piano"): 1, ("4", "rock"): 0, ("5", "rock"): 1}
    assert disagreements == [("1", "piano", {"alice": "present", "bob": "absent"})]
    assert unsure == 1
    # a reviewer who changes their mind to agree resolves the disagreement
    assert consensus([*rows, row("1", "piano", "present", "bob", 9)]).labels[("1", "piano")] == 1


def test_apply_corrections_counts_and_copies() -> None:
    labels = np.array([[1, 0], [0, 0]], dtype=np.uint8)
    corrections = {("a", "rock"): 0, ("a", "piano"): 0, ("b", "piano"): 1, ("b", "rock"): 0,
                   ("zz", "rock"): 1, ("a", "drum"): 1, ("yy", "flute"): 0}
    out, report = apply_corrections(["a", "b"], ["rock", "piano"], labels, corrections)
    assert out.tolist() == [[0, 0], [0, 1]] and out.dtype == np.uint8
    assert labels.tolist() == [[1, 0], [0, 0]]  # the input is left as it was
    assert (report.applied, report.changed, report.added, report.removed) == (4, 2, 1, 1)
    assert report.unknown_clips == ("yy", "zz") and report.unknown_tags == ("drum", "flute")
    assert report.counts() == {"applied": 4, "changed": 2, "unknown_clips": 2, "unknown_tags": 2}
    with pytest.raises(ParameterError, match="shape"):
        apply_corrections(["a"], ["rock", "piano"], labels, corrections)


# ----------------------------------------------------------------------------- the verdicts CSV


def test_store_export_read_back_gives_the_same_consensus(reviews: Path, tmp_path: Path) -> None:
    store = VerdictStore.for_corpus(tmp_path / "corpus")
    store.record("1", "piano", "absent", "alice", note='said "no", then, yes')
    store.record("1", "piano", "present", "alice")  # the current answer
    store.record("1", "piano", "absent", "bob")
    store.record("2", "female", "present", "bob")
    store.record("2", "female", "absent", "bob")
    store.undo_last("bob")  # undone: "present" is bob's current answer again
    store.record("3", "rock", "unsure", "alice", note="quiet\nintro")
    expected = consensus(store.current())
    assert expected.labels == {("2", "female"): 1} and len(expected.disagreements) == 1

    for history in (False, True):
        path = tmp_path / f"verdicts-{history}.csv"
        written = export_verdicts(store, path, history=history)
        back = read_verdicts_csv(path)
        assert back == written
        assert consensus(back) == expected
    assert len(read_verdicts_csv(tmp_path / "verdicts-True.csv")) == 5  # every live answer, the undone one left out
    current = read_verdicts_csv(tmp_path / "verdicts-False.csv")
    assert len(current) == 4 and {r.note for r in current} >= {"quiet\nintro"}
    assert [r.reviewer for r in export_verdicts(store, tmp_path / "bob.csv", reviewer="bob")] == ["bob", "bob"]
    assert (tmp_path / "bob.csv").read_text().splitlines()[0] == ",".join(EXPORT_COLUMNS)


@pytest.mark.parametrize("text, match", [
    ("", r"line 1: empty file"),
    ("clip_id,tag,verdict,reviewer,time\n", r"line 1: missing column\(s\) note"),
    ("clip_id,tag,verdict,reviewer,time,note,tag\n", r"line 1, column 'tag': column given twice"),
    ("clip_id,tag,verdict,reviewer,time,note\n1,piano,present,a,2026-12-01T10:00:00Z,\n2,piano,maybe,a,"
     "2026-12-01T10:00:00Z,\n", r"line 3, column 'verdict': expected one of present, absent, unsure, got 'maybe'"),
    ("clip_id,tag,verdict,reviewer,time,note\n\n1, ,present,a,2026-12-01T10:00:00Z,\n",
     r"line 3, column 'tag': empty value"),
    ("clip_id,tag,verdict,reviewer,time,note\n1,piano,present,,2026-12-01T10:00:00Z,\n",
     r"line 2, column 'reviewer': empty value"),
    ("clip_id,tag,verdict,reviewer,time,note\n1,piano,present,a,yesterday,\n",
     r"line 2, column 'time': expected an ISO 8601 time"),
    ("clip_id,tag,verdict,reviewer,time,note\n1,piano,present,a\n", r"line 2: 4 fields, but the header has 6"),
])
def test_malformed_verdicts_csv_names_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=re.escape(f"{path}, ") + match):
        read_verdicts_csv(path)


def test_missing_and_undecodable_verdicts_files(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no such verdicts file"):
        read_verdicts_csv(tmp_path / "none.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataFormatError, match="bin.csv: cannot read verdicts CSV"):
        read_verdicts_csv(tmp_path / "bin.csv")


# ----------------------------------------------------------------------------- corrected annotations round trips


def swapped_copy(root: Path, corrected: Path, tmp_path: Path, name: str) -> Path:
    """A copy of corpus ``root`` (a new folder) with the corrected annotation file in place of its own."""
    copy = tmp_path / name
    shutil.copytree(root, copy)
    shutil.copy(corrected, copy / corrected.name)
    return copy


def as_pairs(corpus) -> dict[tuple[str, str], int]:
    return {(c, t): int(corpus.labels[i, j]) for i, c in enumerate(corpus.clip_ids) for j, t in enumerate(corpus.tags)}


def check_round_trip(root: Path, corrections: dict, tmp_path: Path, labels: LabelConfig | None = None,
                     tag_file: str = ANNOTATIONS_FILE) -> tuple[dict, dict]:
    """Reloading the corrected copy gives apply_corrections's labels; returns (reloaded, expected) pairs."""
    corpus = load_corpus(root, labels)
    expected, report = apply_corrections(corpus.clip_ids, corpus.tags, corpus.labels, corrections)
    written, file_report = write_corrected_annotations(root, corrections, tmp_path / "out", labels=labels)
    assert written.name == tag_file and file_report == report
    again = load_corpus(swapped_copy(root, written, tmp_path, "copy"), labels)
    assert again.clip_ids == corpus.clip_ids and sorted(again.tags) == sorted(corpus.tags)
    order = [again.tags.index(t) for t in corpus.tags]
    assert np.array_equal(again.labels[:, order], expected)
    return as_pairs(again), report


def tiny_mtt(root: Path, *, demo: bool) -> Path:
    tags = ["female", "woman", "female voice", "piano", "rock", "guitar"]
    labels = np.array([[1, 0, 0, 0, 1, 0], [0, 1, 1, 1, 0, 0], [0, 0, 0, 1, 0, 1], [0, 0, 0, 0, 1, 1],
                       [1, 1, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0]])
    root.mkdir()
    write_annotations(root / ANNOTATIONS_FILE, [str(i) for i in range(6)], tags, labels,
                      [f"{'0cd'[i % 3]}/{i}.mp3" for i in range(6)])
    if demo:  # the demo's marker: synonyms merged by default
        (root / DEMO_MANIFEST_FILE).write_text("{}")
    return root


def test_mtt_round_trip_with_merged_synonyms(tmp_path: Path) -> None:
    root = tiny_mtt(tmp_path / "demo", demo=True)
    assert load_corpus(root).tags[:1] == ["female"]  # "woman" and "female voice" folded into it
    corrections = {("1", "female"): 0, ("2", "female"): 1, ("3", "rock"): 0, ("0", "piano"): 1,
                   ("9", "piano"): 1, ("0", "woman"): 1}
    pairs, report = check_round_trip(root, corrections, tmp_path)
    assert pairs[("1", "female")] == 0 and pairs[("2", "female")] == 1
    assert report.unknown_clips == ("9",) and report.unknown_tags == ("woman",)  # merged away: not a tag here
    raw = (tmp_path / "out" / ANNOTATIONS_FILE).read_text().splitlines()
    assert raw[0].split("\t")[:4] == ['"clip_id"', '"female"', '"woman"', '"female voice"']  # the raw columns
    assert raw[2].split("\t")[1:4] == ['"0"', '"0"', '"0"']  # clip 1's whole group cleared


def test_mtt_round_trip_unmerged(tmp_path: Path) -> None:
    root = tiny_mtt(tmp_path / "mtt", demo=False)
    labels = LabelConfig(drop_untagged=False)
    corrections = {("1", "woman"): 0, ("0", "female voice"): 1, ("2", "female"): 1}
    pairs, report = check_round_trip(root, corrections, tmp_path, labels)
    assert report.changed == 3
    assert pairs[("1", "female voice")] == 1  # a synonym is only cleared where synonyms are merged


def test_demo_corpus_round_trip(demo_corpus_48: Path, tmp_path: Path) -> None:
    """The real demo files (188 raw columns, merged heads): the dropped tags the truth keeps, restored."""
    from pipeline.analysis.label_issues import load_truth

    labels = LabelConfig(top_n=None)  # no cut-off for the corrected counts to move a tag across
    corpus = load_corpus(demo_corpus_48, labels)
    truth = load_truth(demo_corpus_48, corpus.clip_ids, corpus.tags)
    rows, cols = np.nonzero(truth != corpus.labels)
    assert len(rows) > 5
    corrections = {(corpus.clip_ids[i], corpus.tags[j]): int(truth[i, j]) for i, j in zip(rows, cols)}
    pairs, report = check_round_trip(demo_corpus_48, corrections, tmp_path, labels)
    assert report.changed == len(corrections)
    assert all(pairs[p] == v for p, v in corrections.items())


def folder_corpus(root: Path, tags_csv: str | None) -> Path:
    for rel in ("a.wav", "sub/b.mp3", "c.flac", "d.ogg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")  # never decoded: the corpus is only read, not featurised
    if tags_csv is not None:
        (root / TAGS_FILE).write_text(tags_csv)
    return root


@pytest.mark.parametrize("style", ["list", "columns"])
def test_folder_round_trip_in_the_files_own_style(tmp_path: Path, style: str) -> None:
    # c keeps a guitar: a path,tags file has no column for a tag no clip holds, so it would vanish on reload
    text = ('path,tags,title\na.wav,rock;guitar,First\nsub/b,"piano,slow",\nc.flac,rock;guitar,\n' if style == "list"
            else "path,rock,guitar,piano,slow\na.wav,1,1,0,0\nsub/b,0,0,1,1\nc.flac,1,1,0,0\n")
    root = folder_corpus(tmp_path / "music", text)
    corrections = {("a", "guitar"): 0, ("sub/b", "rock"): 1, ("d", "piano"): 1,  # d: not listed in the CSV
                   ("c", "rock"): 1, ("nope", "rock"): 1, ("a", "jazz"): 1}
    pairs, report = check_round_trip(root, corrections, tmp_path, tag_file=TAGS_FILE)
    assert (report.applied, report.changed) == (4, 3)
    assert report.unknown_clips == ("nope",) and report.unknown_tags == ("jazz",)
    assert pairs[("d", "piano")] == 1 and pairs[("a", "guitar")] == 0
    lines = (tmp_path / "out" / TAGS_FILE).read_text().splitlines()
    assert lines[0] == text.splitlines()[0]  # the same columns
    if style == "list":
        assert lines[1] == "a.wav,rock,First" and "d.ogg,piano," in lines  # metadata kept; a row added
        assert load_corpus(swapped_copy(root, tmp_path / "out" / TAGS_FILE, tmp_path, "again")).metadata["title"][0] \
            == "First"
    else:
        assert lines[1] == "a.wav,1,0,0,0" and "d.ogg,0,0,1,0" in lines


def test_folder_without_tags_gets_a_new_tags_file(tmp_path: Path) -> None:
    root = folder_corpus(tmp_path / "music", None)
    corrections = {("a", "rock"): 1, ("c", "rock"): 1, ("c", "piano"): 1, ("d", "jazz"): 0}
    written, report = write_corrected_annotations(root, corrections, tmp_path / "out")
    assert written.read_text().splitlines() == ["path,tags", "a.wav,rock", "c.flac,piano;rock"]
    assert (report.applied, report.changed) == (4, 3)
    again = load_corpus(swapped_copy(root, written, tmp_path, "copy"))
    assert again.tags == ["piano", "rock"]  # "jazz" was only ever absent
    assert {p: v for p, v in as_pairs(again).items() if v} == {("a", "rock"): 1, ("c", "piano"): 1, ("c", "rock"): 1}


# ----------------------------------------------------------------------------- the run contract


def test_corrections_record_is_validated(tmp_path: Path) -> None:
    from pipeline.run.manifest import Manifest
    from pipeline.run.metrics import HEADLINE_AUCS, Metrics

    rows = [row("1", "piano", "present"), row("2", "piano", "absent", "bob")]
    write_verdicts_csv(tmp_path / "v.csv", rows)
    _, record = correct_labels(["1", "2"], ["piano"], np.array([[0], [0]]), tmp_path / "v.csv")
    assert record["rows"] == 2 and record["changed"] == 1 and record["reviewers"] == ["alice", "bob"]
    manifest = Manifest(name="r", corrections=record)
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    with pytest.raises(RunDirError, match=r"corrections.changed should be int"):
        Manifest.from_dict({**manifest.to_dict(), "corrections": {**record, "changed": "3"}})
    metrics = Metrics(split="test", headline=dict.fromkeys(HEADLINE_AUCS, 0.5),
                      ci95=dict.fromkeys(HEADLINE_AUCS, (0.4, 0.6)), corrections=record)
    assert Metrics.from_dict(metrics.to_dict()) == metrics
    assert "corrections" not in Metrics(split="test", headline={}, ci95={}).to_dict()  # absent: the file as before
    with pytest.raises(RunDirError, match=r"corrections.reviewers should be a list of names"):
        Metrics.from_dict({**metrics.to_dict(), "corrections": {**record, "reviewers": [1]}})
    with pytest.raises(ParameterError, match="changed since the run started"):
        correct_labels(["1"], ["piano"], np.array([[0]]), tmp_path / "v.csv", expected_sha256="0" * 64)


# ----------------------------------------------------------------------------- train, evaluate, the CLI


def oracle_verdicts(corpus_dir: Path, path: Path, *, n: int, store: VerdictStore | None = None) -> dict:
    """Verdicts restoring ``n`` dropped tags (truth.csv as the reviewer), written to ``path``; returns them."""
    from pipeline.analysis.label_issues import load_truth

    corpus = load_corpus(corpus_dir)
    truth = load_truth(corpus_dir, corpus.clip_ids, corpus.tags)
    rows, cols = np.nonzero((truth == 1) & (corpus.labels == 0))
    picked = {(corpus.clip_ids[i], corpus.tags[j]): 1 for i, j in list(zip(rows, cols))[:n]}
    verdicts = [row(c, t, "present") for c, t in picked]
    if store is not None:
        for v in verdicts:
            store.record(v.clip_id, v.tag, v.verdict, v.reviewer)
    write_verdicts_csv(path, verdicts)
    return picked


@pytest.fixture(scope="module")
def corrected_run(demo_corpus_48: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A one-epoch network trained with ``--corrections`` on the 48-clip demo corpus, scored."""
    import torch

    from pipeline.cli.train import build_parser, config_from_args
    from pipeline.scoring.score import score_run
    from pipeline.training.train import train

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("corrected")
    picked = oracle_verdicts(demo_corpus_48, base / "verdicts.csv", n=12)
    args = build_parser().parse_args(["--corpus", str(demo_corpus_48), "--model", "fcn", "--model-arg", "width=0.25",
                                      "--n-mels", "32", "--chunk-seconds", "1", "--epochs", "1", "--batch-size", "8",
                                      "--workers", "0", "--corrections", str(base / "verdicts.csv")])
    config = config_from_args(args)
    run = train(config, demo_corpus_48, base / "run", progress=False)
    score_run(run, progress=False)
    return {"run": run, "verdicts": base / "verdicts.csv", "picked": picked, "config": config}


@pytest.mark.slow
def test_train_with_corrections_records_them_and_trains_on_them(corrected_run: dict, demo_corpus_48: Path) -> None:
    from pipeline.training.config import TrainConfig
    from pipeline.training.train import training_corpus

    run, verdicts, picked = corrected_run["run"], corrected_run["verdicts"], corrected_run["picked"]
    manifest = RunDir(run).read_manifest()
    record = manifest.corrections
    assert record is not None and record["file"] == str(verdicts.resolve()) and record["rows"] == len(picked)
    assert record["applied"] == record["changed"] == len(picked) and record["reviewers"] == ["alice"]
    # the saved config names the file, so a resumed run corrects its labels the same way
    saved = TrainConfig.from_dict(manifest.config)
    assert saved.corrections == str(verdicts.resolve())
    corpus, again = training_corpus(saved, demo_corpus_48, recorded=record)
    plain = load_corpus(demo_corpus_48, saved.labels)
    assert again == record and corpus.tags == plain.tags == manifest.tags
    differ = {(corpus.clip_ids[i], corpus.tags[j]) for i, j in zip(*np.nonzero(corpus.labels != plain.labels))}
    assert differ == set(picked)
    # the training split's positives, which set the loss's per-tag weights, are the corrected ones
    train = corpus.indices("train")
    in_train = sum(corpus.split[corpus.clip_ids.index(c)] == "train" for c, _ in picked)
    assert in_train and corpus.labels[train].sum() == plain.labels[train].sum() + in_train


@pytest.mark.slow
def test_resume_refuses_a_changed_corrections_file(corrected_run: dict, demo_corpus_48: Path, tmp_path: Path) -> None:
    from pipeline.training.train import training_corpus

    verdicts = tmp_path / "v.csv"
    shutil.copy(corrected_run["verdicts"], verdicts)
    config = corrected_run["config"]
    import dataclasses

    config = dataclasses.replace(config, corrections=str(verdicts))
    _, record = training_corpus(config, demo_corpus_48)
    verdicts.write_text(verdicts.read_text() + "0,rock,absent,bob,2026-12-01T10:00:00Z,\n")
    with pytest.raises(ParameterError, match="changed since the run started"):
        training_corpus(config, demo_corpus_48, recorded=record)


@pytest.mark.slow
def test_evaluate_with_corrections_scores_against_them(corrected_run: dict, tmp_path: Path) -> None:
    from pipeline.analysis.evaluate import evaluate_run
    from pipeline.scoring.results import read_predictions

    run = tmp_path / "run"
    shutil.copytree(corrected_run["run"], run)
    plain = evaluate_run(run, n_bootstrap=0, progress=False)
    assert "corrections" not in json.loads((run / METRICS).read_text())
    # verdicts flipping half the test clips' annotations: the metrics must move
    scores = read_predictions(RunDir(run))
    test = np.flatnonzero(scores.split == "test")
    flips = [row(scores.clip_ids[i], t, "absent" if scores.truth[i, j] else "present")
             for i in test[: len(test) // 2 + 1] for j, t in enumerate(scores.tags)]
    write_verdicts_csv(tmp_path / "flip.csv", flips)
    corrected = evaluate_run(run, n_bootstrap=0, progress=False, corrections=tmp_path / "flip.csv")
    assert corrected.headline["roc_auc_micro"] != pytest.approx(plain.headline["roc_auc_micro"])
    metrics = json.loads((run / METRICS).read_text())
    assert metrics["corrections"]["changed"] == len(flips) and metrics["corrections"]["file"].endswith("flip.csv")
    manifest = RunDir(run).read_manifest()
    assert manifest.stage("evaluate").info["corrections"] == metrics["corrections"]
    assert manifest.metrics.corrections == metrics["corrections"]
    # and without them again, nothing of the corrections is left
    evaluate_run(run, n_bootstrap=0, progress=False)
    assert "corrections" not in json.loads((run / METRICS).read_text())
    assert "corrections" not in RunDir(run).read_manifest().stage("evaluate").info


@pytest.mark.slow
def test_cli_export_and_status_through_the_real_store(corrected_run: dict, demo_corpus_48: Path, reviews: Path,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipeline.cli.main import main

    run = corrected_run["run"]
    assert main(["review", "export", "--run", str(run)]) == 2
    assert "no verdicts for corpus" in capsys.readouterr().err
    store = VerdictStore.for_corpus(demo_corpus_48)
    picked = oracle_verdicts(demo_corpus_48, tmp_path / "unused.csv", n=6, store=store)
    clip, tag = next(iter(picked))
    store.record(clip, tag, "absent", "bob")  # a disagreement: left as annotated
    store.record(clip, "piano", "unsure", "bob")

    assert main(["review", "status", "--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert "8 current verdicts by 2 reviewer(s)" in out and f"{clip}  {tag}  alice: present, bob: absent" in out

    assert main(["review", "export", "--run", str(run), "--out", str(tmp_path / "export")]) == 0
    out = capsys.readouterr().out
    assert "8 verdicts by 2 reviewer(s)" in out and "5 labels changed" in out and "1 disagreement(s) skipped" in out
    rows = read_verdicts_csv(tmp_path / "export" / VERDICTS_FILE)
    assert consensus(rows) == consensus(store.current())
    again = load_corpus(swapped_copy(demo_corpus_48, tmp_path / "export" / ANNOTATIONS_FILE, tmp_path, "copy"),
                        LabelConfig(top_n=None))
    original = as_pairs(load_corpus(demo_corpus_48, LabelConfig(top_n=None)))
    reloaded = as_pairs(again)
    assert {p for p in original if original[p] != reloaded[p]} == set(picked) - {(clip, tag)}

    # the default folder is a new one under the reviews root; one reviewer's export
    assert main(["review", "export", "--corpus", str(demo_corpus_48), "--reviewer", "bob"]) == 0
    out = capsys.readouterr().out
    (folder,) = (reviews / "exports").iterdir()
    assert folder.name.startswith(demo_corpus_48.name + "-") and "2 verdicts by 1 reviewer(s) (bob)" in out
    assert main(["review", "export", "--corpus", str(demo_corpus_48), "--reviewer", "carol"]) == 2
    assert "no verdicts by 'carol'" in capsys.readouterr().err


def test_train_cli_refuses_a_missing_corrections_file(demo_corpus_48: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    from pipeline.cli.main import main

    assert main(["train", "--corpus", str(demo_corpus_48), "--corrections", str(tmp_path / "none.csv")]) == 2
    assert f"--corrections: no such file: {tmp_path / 'none.csv'}" in capsys.readouterr().err


def test_cli_on_a_corpus_folder_with_history(tmp_path: Path, reviews: Path, capsys: pytest.CaptureFixture) -> None:
    from pipeline.cli.main import main

    root = tiny_mtt(tmp_path / "demo", demo=True)
    assert main(["review", "status", "--corpus", str(root)]) == 2
    assert "no verdicts for corpus demo" in capsys.readouterr().err
    assert not reviews.exists()  # asking creates no database
    store = VerdictStore.for_corpus(root)
    store.record("1", "female", "present", "alice")
    store.record("1", "female", "absent", "alice")  # her current answer
    store.record("2", "piano", "present", "alice")
    store.undo_last("alice")  # withdrawn: not exported
    assert main(["review", "export", "--corpus", str(root), "--history", "--out", str(tmp_path / "out")]) == 0
    assert "2 verdicts by 1 reviewer(s)" in capsys.readouterr().out
    rows = read_verdicts_csv(tmp_path / "out" / VERDICTS_FILE)
    assert [r.verdict for r in rows] == ["present", "absent"]
    assert consensus(rows).labels == {("1", "female"): 0}
    again = load_corpus(swapped_copy(root, tmp_path / "out" / ANNOTATIONS_FILE, tmp_path, "copy"))
    assert again.labels[again.clip_ids.index("1"), again.tags.index("female")] == 0
    assert main(["review", "export", "--corpus", str(tmp_path / "nowhere")]) == 2
    assert "--corpus: no such folder" in capsys.readouterr().err
