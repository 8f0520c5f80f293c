"""A folder of a user's own music as a run: scored, evaluated where it can be, embedded, shown.

The tiny trained run's model is scored onto a folder of demo mp3s in one command
(``score RUN --corpus FOLDER --out NEW``), once without any tags CSV (no ground truth at all)
and once with a tags CSV that annotates half the model's tags plus one it does not know
(partial ground truth). Every stage after score must work on both, and every dashboard page
must show the unlabeled run without metrics, saying why.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_dashboard_app import app, charts_on, texts  # the one AppTest driver of the dashboard tests

from pipeline.run.files import SKIPPED
from pipeline.run.rundir import (
    CLIP_NEIGHBORS,
    CLIP_PROJECTIONS,
    LABEL_ISSUES,
    METRICS,
    PER_TAG,
    PREDICTIONS,
    TAG_PROJECTIONS,
    TAG_VIEWS,
    TAGGRAMS,
    TRUE_PREFIX,
    RunDir,
    true_column,
)

pytestmark = pytest.mark.slow

N_CLIPS = 16
PAGES = ("overview", "clip_explorer", "tag_metrics", "error_analysis", "tag_map", "tag_a_file", "compare_runs",
         "review")
NO_TRUTH = "This corpus has no annotations: showing the model's predictions only."


@pytest.fixture(scope="module")
def corpus(tiny_run: Path):
    from pipeline.sources.loader import corpus_from_record

    return corpus_from_record(RunDir(tiny_run).manifest()["corpus"])


def copy_clips(corpus, root: Path) -> list[str]:
    """N_CLIPS of the demo corpus's mp3s under ``root/album`` (no tags CSV); their relative paths."""
    (root / "album").mkdir(parents=True)
    paths = []
    for i in range(N_CLIPS):
        rel = f"album/track{i:02d}.mp3"
        shutil.copyfile(corpus.audio_path(i), root / rel)
        paths.append(rel)
    return paths


@pytest.fixture(scope="module")
def runs(tiny_run: Path, corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder holding 'unlabeled' and 'partial', each made by one `score --corpus --out` command."""
    from pipeline.cli.main import main

    base = tmp_path_factory.mktemp("own-music")
    bare = base / "my music"
    copy_clips(corpus, bare)
    tagged = base / "tagged music"
    paths = copy_clips(corpus, tagged)
    known = corpus.tags[: len(corpus.tags) // 2]
    lines = ["path,tags"]
    for i, rel in enumerate(paths):
        tags = [t for t in known if corpus.labels[i, corpus.tags.index(t)]] + (["kazoo"] if i % 3 == 0 else [])
        lines.append(f'{rel},"{";".join(tags)}"')
    (tagged / "tags.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    root = base / "runs"
    for name, folder in (("unlabeled", bare), ("partial", tagged)):
        assert main(["score", str(tiny_run), "--corpus", str(folder), "--out", str(root / name),
                     "--no-progress"]) == 0
    return root


# ---------------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------------
def test_one_command_makes_a_complete_run_without_annotations(runs: Path, corpus) -> None:
    run = RunDir(runs / "unlabeled")
    assert run.missing_stages() == [], "score --out runs evaluate and embed too"
    manifest = run.read_manifest()
    score = manifest.stage("score")
    assert score is not None and score.info["labelled_tags"] == []
    frame = pd.read_parquet(run / PREDICTIONS)
    assert len(frame) == N_CLIPS and not [c for c in frame.columns if c.startswith(TRUE_PREFIX)]
    assert (run / TAGGRAMS).is_file()
    # evaluate: recorded as skipped, with its reason; no metrics files, no NaN headline
    evaluate = manifest.stage("evaluate")
    assert evaluate is not None and evaluate.files == []
    assert evaluate.skipped is not None and "no ground truth" in evaluate.skipped
    assert evaluate.info[SKIPPED] == evaluate.skipped
    assert not (run / METRICS).exists() and not (run / PER_TAG).exists() and manifest.metrics is None
    # embed: the clip map and neighbours come from the embeddings, the tag maps from the predictions
    assert pd.read_parquet(run / CLIP_PROJECTIONS)["clip_id"].tolist() == frame["clip_id"].tolist()
    assert len(pd.read_parquet(run / CLIP_NEIGHBORS)) > 0
    views = run.read_json(TAG_VIEWS)
    assert views["basis"] == "predictions" and "predict" in views["frequency"]
    assert views["views"]["cooccurrence"]["available"]
    assert "co-activation" in views["views"]["cooccurrence"]["source"]
    projections = pd.read_parquet(run / TAG_PROJECTIONS)
    assert {"cooccurrence", "prediction", "acoustic"} <= set(projections["view"])
    probs = frame[[f"prob:{t}" for t in corpus.tags]].to_numpy()
    sizes = projections[projections["view"] == "prediction"].set_index("tag")["frequency"]
    np.testing.assert_array_equal(sizes.loc[corpus.tags].to_numpy(), (probs >= 0.5).sum(axis=0))
    # label issues: skipped with a reason (an empty table, so the stage's files stay those of the contract)
    issues = manifest.stage("embed").info["issues"]
    assert "no annotation to doubt" in issues[SKIPPED]
    assert pd.read_parquet(run / LABEL_ISSUES).empty


def test_the_same_command_on_a_partly_annotated_folder_gives_metrics_for_its_tags(runs: Path, corpus) -> None:
    run = RunDir(runs / "partial")
    assert run.missing_stages() == []
    manifest = run.read_manifest()
    labelled = manifest.stage("score").info["labelled_tags"]
    assert labelled == corpus.tags[: len(corpus.tags) // 2] and "kazoo" not in labelled
    frame = pd.read_parquet(run / PREDICTIONS)
    assert [c for c in frame.columns if c.startswith(TRUE_PREFIX)] == [true_column(t) for t in labelled]
    evaluate = manifest.stage("evaluate")
    assert evaluate.skipped is None and evaluate.info["evaluated_tags"] == len(labelled)
    assert evaluate.info["unannotated_tags"] == [t for t in corpus.tags if t not in labelled]
    per_tag = pd.read_csv(run / PER_TAG)
    assert per_tag["tag"].tolist() == labelled
    assert run.read_metrics().split in ("test", "valid", "train")
    # the co-occurrence view learns from the annotations, so it places only annotated tags
    views = run.read_json(TAG_VIEWS)
    assert views["basis"] == "annotations" and views["annotated_tags"] == labelled
    placed = set(pd.read_parquet(run / TAG_PROJECTIONS).query("view == 'cooccurrence'")["tag"])
    assert placed <= set(labelled)
    issues = pd.read_parquet(run / LABEL_ISSUES)
    assert set(issues["tag"]) <= set(labelled)
    assert SKIPPED not in manifest.stage("embed").info["issues"]


def test_evaluate_command_on_a_run_without_annotations(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    assert main(["evaluate", str(runs / "unlabeled")]) == 0
    assert "evaluation skipped: the corpus annotates none of the model's" in capsys.readouterr().out


def test_score_only_stops_after_the_scores(tiny_run: Path, runs: Path, corpus, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    folder = tmp_path / "more music"
    copy_clips(corpus, folder)
    out = tmp_path / "scored-only"
    assert main(["score", str(tiny_run), "--corpus", str(folder), "--out", str(out), "--score-only",
                 "--no-progress"]) == 0
    assert "next: python -m pipeline evaluate" in capsys.readouterr().out
    assert RunDir(out).missing_stages() == ["evaluate", "embed"]


# ---------------------------------------------------------------------------------------------
# the dashboard on the unlabeled run
# ---------------------------------------------------------------------------------------------
METRIC_WORDS = ("ROC-AUC", "PR-AUC", "F1", "True positives", "False positives", "False negatives", "Precision")


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_the_unlabeled_run_without_metrics(runs: Path, monkeypatch: pytest.MonkeyPatch,
                                                            page: str) -> None:
    at = app(runs, monkeypatch, page, run="unlabeled", vs="partial")
    assert at.title and not at.error, [e.value for e in at.error]
    shown = texts(at)
    assert NO_TRUTH in shown, f"{page}: the no-annotation sentence"
    labels = [m.label for m in at.metric]
    assert not [m for m in labels if any(w in m for w in METRIC_WORDS)], f"{page}: metric tiles {labels}"
    for frame in at.dataframe:
        columns = " ".join(map(str, frame.value.columns))
        assert not any(w.lower() in columns.lower() for w in ("roc_auc", "pr_auc", "ROC-AUC", "f1")), (page, columns)
    # no TP / FP / FN colouring anywhere: nothing is called a true or false positive
    assert "false positive" not in shown.lower() and "true positive" not in shown.lower(), page
    if page in ("tag_metrics", "error_analysis"):
        assert "tags CSV" in shown and "python -m pipeline score" in shown, f"{page}: what to supply"


def test_clip_explorer_shows_predictions_taggram_and_similar_clips(runs: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "clip_explorer", run="unlabeled")
    assert len(charts_on(at)) >= 2, "tag probabilities and the taggram"
    assert "Similar clips" in texts(at) and "similarity" in texts(at)


def test_tag_map_says_its_maps_come_from_predictions(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "tag_map", run="unlabeled")
    assert len(charts_on(at)) >= 2, "tag maps and the clip map"
    shown = texts(at)
    assert "co-activation" in shown and "predicts the tag" in shown
    modes = at.get("button_group")
    assert all("outcome" not in str(getattr(m, "options", "")) for m in modes)


def test_partial_annotations_show_metrics_for_the_annotated_tags_only(runs: Path, corpus,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    labelled = corpus.tags[: len(corpus.tags) // 2]
    at = app(runs, monkeypatch, "tag_metrics", run="partial", split="all")
    assert not at.error, [e.value for e in at.error]
    table = next(f.value for f in at.dataframe if "roc_auc" in f.value.columns)
    assert table["tag"].tolist() == labelled
    assert f"{len(labelled)} of the model's {len(corpus.tags)} tags" in texts(at)
    at = app(runs, monkeypatch, "tag_map", run="partial")
    assert not at.error and f"This corpus annotates {len(labelled)} of the model's tags" in texts(at)
    at = app(runs, monkeypatch, "overview", run="partial")
    assert any(m.label == "ROC-AUC (macro)" for m in at.metric)
    assert f"{len(labelled)} of the model's {len(corpus.tags)} tags" in texts(at)
