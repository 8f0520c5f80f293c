"""Evaluate a run the way the literature does, and write metrics.json and per_tag.csv.

Evaluation reads the clip scores the score stage wrote (predictions.parquet; no network runs
here), so its figures are those of every other page. Per-tag thresholds are tuned on the
validation rows and applied to the evaluated split; headline figures get bootstrap 95%
intervals (`pipeline.analysis.metrics`). Only the tags the corpus labels are evaluated (all of
them on the run's own corpus; on another corpus scored with ``score --corpus``, those of its
tags the model shares, `pipeline.sources.vocab.shared_tags`). A corpus that annotates none of them has
no ground truth: the stage is recorded as skipped with its reason (`pipeline.run.files.SKIPPED`) and
writes no metrics, never NaN figures (`skip_without_truth`).

Across vocabularies the evaluated tags are the corpus's: the score stage's ``tag_map`` says which
corpus tag each labelled model tag maps onto, and where several model tags map onto one (an
unmerged MTT model's "female", "woman", "female voice" on the demo's merged "female") a clip's
score for that tag is the maximum of theirs (`pipeline.sources.vocab.combine_columns`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.analysis.metrics import GLOBAL_THRESHOLD, Evaluation, evaluate_scores, format_summary, tune_thresholds
from pipeline.errors import ParameterError
from pipeline.review.corrections import correct_labels
from pipeline.run.files import SKIPPED
from pipeline.run.metrics import Metrics
from pipeline.run.rundir import METRICS, PER_TAG, PREDICTIONS, RunDir
from pipeline.scoring.results import Predictions, read_predictions, score_entry
from pipeline.sources.corpus import SPLITS
from pipeline.sources.vocab import combine_columns

log = logging.getLogger(__name__)


def evaluate_run(run_dir: str | Path, *, split: str | None = "test", n_bootstrap: int = 1000, seed: int = 0,
                 progress: bool = True, write: bool = True,
                 corrections: str | Path | None = None) -> Evaluation | None:
    """Evaluate the scores of the run in ``run_dir`` on ``split``; write metrics.json / per_tag.csv.

    Returns None, and records the stage as skipped with the reason, when the corpus annotates
    none of the model's tags (`skip_without_truth`).

    Parameters
    ----------
    split : the split evaluated (``test``, or ``valid`` / ``train`` for diagnosis); None: the
        first of test, valid, train that has clips (`default_split`)
    n_bootstrap : resamples of the confidence intervals (0: none)
    seed : seed of the bootstrap
    progress : unused (evaluation reads stored scores); kept so every stage takes it
    write : False computes and returns without touching the run directory
    corrections : a verdicts CSV (`pipeline.review.corrections`): score against the annotations it
        corrects; the stage entry and metrics.json record it (``corrections``). None: the annotations
    """
    if split is not None and split not in SPLITS:
        raise ParameterError(f"split must be one of {SPLITS}, got {split!r}")
    if n_bootstrap < 0:
        raise ParameterError(f"bootstrap must be >= 0, got {n_bootstrap}")
    run = RunDir(run_dir)
    run.require("train")
    if write:
        run.start_writing()
    entry = score_entry(run)
    scores = read_predictions(run)
    reason = no_truth_reason(scores)
    if reason is not None:
        if write:
            skip_without_truth(run, reason, score=entry)
        log.info("%s: %s; evaluation skipped", run.path, reason)
        return None
    split = split if split is not None else default_split(scores)
    tags, truth, probs = corpus_tag_scores(scores, entry.get("tag_map") or {})
    record = None
    if corrections is not None:  # verdicts are about the corpus's tags: applied to its names
        truth, record = correct_labels(scores.clip_ids, tags, truth, corrections)
    valid = scores.split == "valid"
    if valid.any():
        thresholds = tune_thresholds(truth[valid], probs[valid])
    else:
        log.warning("no validation clips: per-tag thresholds stay at 0.5")
        thresholds = np.full(len(tags), GLOBAL_THRESHOLD)
    rows = scores.split == split
    if not rows.any():
        raise ParameterError(f"{run.path}: split {split!r} of {PREDICTIONS} has no clips to evaluate")
    evaluation = evaluate_scores(truth[rows], probs[rows], tags, thresholds=thresholds, n_bootstrap=n_bootstrap,
                                 seed=seed)
    if write:
        _write(run, evaluation, split=split, seed=seed, score=entry, n_valid=int(valid.sum()),
               info=truth_coverage(scores), corrections=record)
    return evaluation


def corpus_tag_scores(scores: Predictions, tag_map: dict[str, str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The evaluated tags (the corpus's names), their truth and probabilities [shape=(n, len(tags))].

    ``tag_map`` (model tag -> corpus tag, the score stage's) renames each labelled model tag; model
    tags mapped onto one corpus tag become one column, the maximum of their probabilities (their
    truth columns are the same corpus column). A tag absent from the map keeps its own name.
    """
    cols = np.flatnonzero(scores.labelled)
    targets = [tag_map.get(t, t) for t in scores.labelled_tags]
    probs, truth = scores.probs[:, cols], scores.truth[:, cols]
    if len(set(targets)) == len(targets):
        return targets, truth, probs
    names, probs = combine_columns(targets, probs)
    _, truth = combine_columns(targets, truth)
    merged = {n: [m for m, t in zip(scores.labelled_tags, targets) if t == n] for n in names}
    log.info("%d model tags scored as %d corpus tags; combined by maximum: %s", len(targets), len(names),
             "; ".join(f"{n} <- {', '.join(ms)}" for n, ms in merged.items() if len(ms) > 1))
    return names, truth, probs


# ---------------------------------------------------------------------------------------------
# a corpus without (or with partial) ground truth


def no_truth_reason(scores: Predictions) -> str | None:
    """Why ``scores`` cannot be evaluated (the corpus annotates none of the model's tags), else None."""
    if scores.labelled.any():
        return None
    return (f"the corpus annotates none of the model's {len(scores.tags)} tags, so there is no ground truth "
            "to evaluate against (give the corpus a tags CSV to get metrics)")


def truth_coverage(scores: Predictions) -> dict[str, Any]:
    """The evaluate stage's facts about which of the model's tags have ground truth in the corpus."""
    return {"evaluated_tags": len(scores.labelled_tags),
            "unannotated_tags": [t for t, ok in zip(scores.tags, scores.labelled) if not ok]}


def default_split(scores: Predictions) -> str:
    """The first of test, valid, train that has clips (a scored copy of a small folder may lack a test split)."""
    present = set(scores.split.tolist())
    return next((s for s in ("test", "valid", "train") if s in present), "test")


def skip_without_truth(run: RunDir, reason: str, *, score: dict[str, Any]) -> None:
    """Record the evaluate stage as skipped for ``reason``: no metrics files, no headline in the manifest.

    Files of an earlier evaluation are removed so nothing reads them as this run's figures.
    """
    for name in (METRICS, PER_TAG):
        (run / name).unlink(missing_ok=True)
    run.update_manifest(metrics=None)
    scores_digest = (score.get("checksums") or {}).get(PREDICTIONS, {}).get("sha256")
    run.mark_stage("evaluate", (), **{SKIPPED: reason}, predictions_sha256=scores_digest)


def _write(run: RunDir, evaluation: Evaluation, *, split: str, seed: int, score: dict[str, Any],
           n_valid: int, info: dict[str, Any] | None = None, corrections: dict[str, Any] | None = None) -> None:
    """metrics.json, per_tag.csv and the manifest's headline figures (the stage's only writes).

    ``corrections``: the record of the verdicts the truth was corrected with, kept in all three.
    """
    scores_digest = (score.get("checksums") or {}).get(PREDICTIONS, {}).get("sha256")
    metrics = run.write_metrics(Metrics.from_evaluation(
        evaluation, split=split, aggregate=score.get("aggregate"), bootstrap_seed=seed,
        thresholds_tuned_on="valid" if n_valid else None, checkpoint_epoch=score.get("checkpoint_epoch"),
        model=score.get("model_name"), corrections=corrections))
    run.write_table(PER_TAG, evaluation.per_tag, float_format="%.6g")
    record = metrics.to_dict()
    run.update_manifest(metrics={k: record[k] for k in ("split", "aggregate", "n_clips", "headline", "ci95",
                                                         "undefined_tags", "corrections") if k in record})
    extra = {"corrections": corrections} if corrections is not None else {}
    run.mark_stage("evaluate", predictions_sha256=scores_digest, **(info or {}), **extra)


def summary(evaluation: Evaluation, run_dir: str | Path, split: str) -> str:
    """The summary table the command prints: headline figures, then the best and worst tags."""
    text = format_summary(evaluation, title=f"{Path(run_dir).name}: {split} split")
    table = evaluation.per_tag.dropna(subset=["roc_auc"]).sort_values("roc_auc", ascending=False)
    if len(table):
        def rows(frame: Any) -> str:
            return "\n".join(f"  {r.tag:<20} support {int(r.support):>5}  ROC-AUC {r.roc_auc:.3f}  "
                             f"PR-AUC {r.pr_auc:.3f}  F1 {r.f1:.3f} (tuned {r.f1_tuned:.3f})"
                             for r in frame.itertuples())
        text += f"\nbest tags:\n{rows(table.head(5))}\nworst tags:\n{rows(table.tail(5).iloc[::-1])}"
    return text
