"""Label issues: known flipped annotations are found and ranked first; scoring against the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.label_issues import (
    ISSUE_COLUMNS,
    METHODS,
    confident_flags,
    find_label_issues,
    issues_from_predictions,
    load_truth,
    pair_scores,
    score_against_truth,
)
from pipeline.errors import DataFormatError, ParameterError
from pipeline.run.rundir import prob_column, true_column


def _noisy_case(seed: int = 0, n: int = 300, k: int = 8, drop: float = 0.2, add: float = 0.0):
    """A model that hears the truth (out of sample) and annotations that lost or gained tags."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, k)) < rng.uniform(0.1, 0.4, k)).astype(np.uint8)
    logits = np.where(truth == 1, 2.5, -2.5) + rng.normal(0, 1.2, (n, k))
    probs = 1 / (1 + np.exp(-logits))
    annotated = truth.copy()
    annotated[(truth == 1) & (rng.random((n, k)) < drop)] = 0
    annotated[(truth == 0) & (rng.random((n, k)) < add)] = 1
    ids = [f"clip{i:04d}" for i in range(n)]
    tags = [f"tag{j}" for j in range(k)]
    return ids, tags, truth, annotated, probs


@pytest.mark.parametrize("method", METHODS)
def test_flipped_labels_ranked_first(method: str):
    ids, tags, truth, annotated, probs = _noisy_case(drop=0.2, add=0.02)
    issues = find_label_issues(ids, ["test"] * len(ids), tags, annotated, probs, method=method)
    assert list(issues.columns) == list(ISSUE_COLUMNS)
    assert list(issues["rank"]) == list(range(1, len(issues) + 1))
    assert issues["score"].is_monotonic_decreasing
    result = score_against_truth(issues, truth, annotated, ids, tags)
    assert result["n_errors"] == int((truth != annotated).sum()) and result["n_wrong"] > 0
    assert result["precision@50"] >= 0.9, result
    assert result["precision@200"] >= 0.6, result
    assert result["precision@50"] > 5 * result["base_rate"]
    # Both kinds of error are found: dropped tags as "missing", spurious ones as "wrong".
    top = issues.head(200).merge(pd.DataFrame({"clip_id": ids}), on="clip_id")
    assert {"missing", "wrong"} <= set(top["kind"])


def test_adjusted_method_copes_with_a_tag_the_model_is_shy_of():
    ids, tags, truth, annotated, probs = _noisy_case(seed=2, n=400, drop=0.2)
    # The model hears tag0 (half the clips) but never dares more than ~0.02: plain
    # self-confidence takes every annotated tag0 for a wrong annotation; the per-tag
    # adjustment does not.
    rng = np.random.default_rng(0)
    truth[:, 0] = rng.random(len(ids)) < 0.5
    annotated[:, 0] = truth[:, 0] * (rng.random(len(ids)) >= 0.2)
    probs[:, 0] = np.where(truth[:, 0] == 1, 0.01, 0.001) + rng.uniform(0, 0.01, len(ids))
    plain = find_label_issues(ids, ["test"] * len(ids), tags, annotated, probs, method="self_confidence")
    adjusted = find_label_issues(ids, ["test"] * len(ids), tags, annotated, probs, method="adjusted")
    p_plain = score_against_truth(plain, truth, annotated, ids, tags)["precision@50"]
    p_adjusted = score_against_truth(adjusted, truth, annotated, ids, tags)["precision@50"]
    assert p_plain < 0.3 and p_adjusted >= 0.8, (p_plain, p_adjusted)
    assert (plain.head(50)["tag"] == "tag0").mean() > 0.7


def test_kind_and_score_follow_the_annotation():
    annotated = np.array([[0, 1], [1, 0], [0, 0], [1, 1]])
    probs = np.array([[0.95, 0.02], [0.9, 0.1], [0.1, 0.2], [0.8, 0.7]])
    issues = find_label_issues(["a", "b", "c", "d"], ["valid"] * 4, ["x", "y"], annotated, probs, max_issues=None,
                               method="self_confidence")  # score = 1 - probability of the annotated value
    assert len(issues) == 8
    first = issues.iloc[0]
    assert (first.clip_id, first.tag, first.kind, first.annotated) == ("a", "y", "wrong", 1)
    assert first.score == pytest.approx(0.98)
    second = issues.iloc[1]
    assert (second.clip_id, second.tag, second.kind) == ("a", "x", "missing")
    assert issues["probability"].between(0, 1).all() and issues["score"].between(0, 1).all()
    assert len(find_label_issues(["a", "b", "c", "d"], ["valid"] * 4, ["x", "y"], annotated, probs,
                                 max_issues=3)) == 3


def test_train_split_is_left_out_by_default():
    ids, tags, _, annotated, probs = _noisy_case(n=60)
    split = np.array(["train"] * 40 + ["valid"] * 10 + ["test"] * 10)
    issues = find_label_issues(ids, split, tags, annotated, probs, max_issues=None)
    assert set(issues["split"]) == {"valid", "test"} and len(issues) == 20 * len(tags)
    every = find_label_issues(ids, split, tags, annotated, probs, splits=None, max_issues=None)
    assert len(every) == 60 * len(tags)
    # No clip in the chosen splits: every clip is scored rather than none.
    fallback = find_label_issues(ids, ["train"] * 60, tags, annotated, probs, max_issues=None)
    assert len(fallback) == 60 * len(tags)


def test_a_ranking_without_flags_is_the_same_ranking():
    """`flag=False` (the review queue's live ranking) leaves out cleanlab's filter, nothing else."""
    ids, tags, _, annotated, probs = _noisy_case(seed=2, n=80)
    split = ["train"] * 80
    flagged = find_label_issues(ids, split, tags, annotated, probs, splits=["train"])
    quick = find_label_issues(ids, split, tags, annotated, probs, splits=["train"], flag=False)
    assert "flagged" in flagged and "flagged" not in quick
    pd.testing.assert_frame_equal(quick, flagged.drop(columns="flagged"))


def test_confident_flags_mark_real_errors():
    _, _, truth, annotated, probs = _noisy_case(seed=1, drop=0.25)
    flags = confident_flags(annotated, probs)
    assert flags.shape == annotated.shape and flags.sum() > 0
    assert ((truth != annotated) & flags).sum() / flags.sum() > 0.8
    # A tag nobody annotated has no positive class to learn from: never flagged.
    annotated[:, 0] = 0
    assert not confident_flags(annotated, probs)[:, 0].any()


def test_input_errors():
    with pytest.raises(ParameterError, match="matching"):
        pair_scores(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ParameterError, match="0 or 1"):
        pair_scores(np.full((2, 2), 2), np.zeros((2, 2)))
    with pytest.raises(ParameterError, match="within"):
        pair_scores(np.zeros((2, 2)), np.full((2, 2), 1.5))
    with pytest.raises(ParameterError, match="method"):
        pair_scores(np.zeros((2, 2)), np.zeros((2, 2)), method="magic")


def test_score_against_truth_known_answer():
    truth = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]])
    annotated = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1]])  # errors: (c0, t1) missing, (c1, t2) missing, (c2, t2) wrong
    issues = pd.DataFrame({
        "clip_id": ["c0", "c2", "c1", "c0", "c2"],
        "tag": ["t1", "t1", "t2", "t0", "t2"],
        "kind": ["missing", "missing", "missing", "wrong", "wrong"],
        "rank": [1, 2, 3, 4, 5],
    })
    result = score_against_truth(issues, truth, annotated, ["c0", "c1", "c2"], ["t0", "t1", "t2"], ks=(1, 2, 5, 10))
    assert result["n_errors"] == 3 and result["n_missing"] == 2 and result["n_wrong"] == 1
    assert result["precision@1"] == 1.0
    assert result["precision@2"] == 0.5
    assert result["precision@5"] == pytest.approx(3 / 5)
    assert result["recall@5"] == 1.0 and result["recall@2"] == pytest.approx(1 / 3)
    assert result["precision@10"] == pytest.approx(3 / 5)  # fewer issues than k: over those there are
    assert result["base_rate"] == pytest.approx(2 / 5)
    with pytest.raises(ParameterError):
        score_against_truth(issues, truth[:2], annotated, ["c0", "c1", "c2"], ["t0", "t1", "t2"])


def test_issues_from_predictions_frame():
    ids, tags, _, annotated, probs = _noisy_case(n=40, k=3)
    frame = pd.DataFrame({"clip_id": ids, "split": ["valid"] * 40, "audio_path": "x.mp3"})
    for j, tag in enumerate(tags):
        frame[prob_column(tag)] = probs[:, j]
        frame[true_column(tag)] = annotated[:, j]
    issues = issues_from_predictions(frame, tags)
    assert len(issues) == 40 * 3
    with pytest.raises(DataFormatError, match="prob:other"):
        issues_from_predictions(frame, [*tags, "other"])


def test_load_truth_merges_synonyms(tmp_path):
    from pipeline.sources.mtt_format import TRUTH_FILE, write_annotations

    write_annotations(tmp_path / TRUTH_FILE, ["1", "2"], ["drums", "drum", "piano"],
                      np.array([[0, 1, 1], [1, 0, 0]]), ["0/a.mp3", "0/b.mp3"])
    truth = load_truth(tmp_path, ["2", "1"], ["piano", "drum"])  # "drums" folds into "drum"
    assert truth.tolist() == [[0, 1], [1, 1]]
    assert load_truth(tmp_path / "nowhere", ["1"], ["piano"]) is None
    with pytest.raises(DataFormatError, match="lacks"):
        load_truth(tmp_path, ["1"], ["violin"])
