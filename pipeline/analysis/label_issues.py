"""Likely label issues: clip / tag pairs where the model confidently disagrees with the annotation.

Each tag is treated as its own binary problem (cleanlab's one-vs-rest view of multi-label
data). For every (clip, tag) pair:

- ``score`` = 1 - cleanlab's label quality of the annotated value
  (`cleanlab.rank.get_label_quality_scores` on ``pred_probs = [1 - p, p]``), so a high
  score means the model gives little probability to what the annotator wrote;
- ``flagged`` = cleanlab's confident-learning filter
  (`cleanlab.multilabel_classification.filter.find_multilabel_issues_per_class`), which
  estimates per tag how many annotations are wrong and flags that many;
- ``kind`` = ``"missing"`` (annotated 0, the model hears the tag: a tag the annotator left
  out) or ``"wrong"`` (annotated 1, the model does not hear it).

Methods (``method=``): ``"self_confidence"`` (cleanlab's default quality: the probability
of the annotated value) and ``"adjusted"`` (the default: the same after cleanlab's per-class
threshold adjustment, ``adjust_pred_probs=True``, which shifts each tag's probabilities by the
tag's mean self-confidence). Without the adjustment, the tags the model is shy of (rare
instruments it gives 0.02 even where they play) fill the top of the ranking with "wrong"
annotations that are right; on the demo runs the adjustment lifts precision@50 from 0.00 to
0.92-1.00 (docs/benchmarks.md, ``python -m benchmarks label_issues RUN``).

Probabilities should be out-of-sample: predictions on the train split come from the
model that was fitted to those very annotations and agree with them too readily, so by
default only the valid and test clips are scored.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import DataFormatError, ParameterError
from pipeline.run.rundir import LABEL_ISSUES, TABLES, RunDir, prob_column, true_column

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("self_confidence", "adjusted")
DEFAULT_METHOD = "adjusted"  # see the module docstring and docs/benchmarks.md
DEFAULT_SPLITS: tuple[str, ...] = ("valid", "test")  # out-of-sample predictions only
MAX_ISSUES = 5000  # rows kept in label_issues.parquet (highest scores first)
ISSUE_COLUMNS = TABLES[LABEL_ISSUES].column_names  # declared by the run contract


def _check_pair_arrays(annotated: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    annotated = np.asarray(annotated)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if annotated.shape != probabilities.shape or annotated.ndim != 2:
        raise ParameterError(f"annotated {annotated.shape} and probabilities {probabilities.shape} "
                             "must be matching (n_clips, n_tags) arrays")
    if not np.isin(annotated, (0, 1)).all():
        raise ParameterError("annotated labels must be 0 or 1")
    if not np.isfinite(probabilities).all() or probabilities.min() < 0 or probabilities.max() > 1:
        raise ParameterError("probabilities must be finite and within [0, 1]")
    return annotated.astype(np.int64), probabilities


def pair_scores(annotated: np.ndarray, probabilities: np.ndarray, method: str = DEFAULT_METHOD) -> np.ndarray:
    """Per (clip, tag) issue score in [0, 1]: 1 - cleanlab's quality of the annotated value.

    Parameters
    ----------
    annotated : np.ndarray [shape=(n, k)]  0/1 annotations
    probabilities : np.ndarray [shape=(n, k)]  predicted probabilities
    method : one of `METHODS`

    Returns
    -------
    np.ndarray [shape=(n, k), dtype=float64]  higher = more likely an annotation error
    """
    from cleanlab.rank import get_label_quality_scores

    if method not in METHODS:
        raise ParameterError(f"method must be one of {METHODS}, got {method!r}")
    annotated, probabilities = _check_pair_arrays(annotated, probabilities)
    scores = np.zeros(annotated.shape)
    for j in range(annotated.shape[1]):
        p = probabilities[:, j]
        binary = np.column_stack([1.0 - p, p])
        both = 0 < annotated[:, j].sum() < len(p)  # the adjustment needs both classes present
        quality = get_label_quality_scores(annotated[:, j], binary, method="self_confidence",
                                           adjust_pred_probs=method == "adjusted" and both)
        scores[:, j] = 1.0 - quality
    return scores


def confident_flags(annotated: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """cleanlab's confident-learning flags per (clip, tag) (tags lacking either class are never flagged).

    Returns
    -------
    np.ndarray [shape=(n, k), dtype=bool]
    """
    from cleanlab.multilabel_classification.filter import find_multilabel_issues_per_class

    annotated, probabilities = _check_pair_arrays(annotated, probabilities)
    flags = np.zeros(annotated.shape, dtype=bool)
    positives = annotated.sum(axis=0)
    usable = np.flatnonzero((positives > 0) & (positives < len(annotated)))
    if len(usable) == 0 or len(annotated) < 2:
        return flags
    sub = annotated[:, usable]
    labels = [list(np.flatnonzero(row)) for row in sub]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "too few examples in class": expected for rare tags
        flags[:, usable] = np.asarray(find_multilabel_issues_per_class(labels, probabilities[:, usable]), dtype=bool)
    return flags


def find_label_issues(clip_ids: Sequence[str], split: Sequence[str], tags: Sequence[str], annotated: np.ndarray,
                      probabilities: np.ndarray, *, splits: Sequence[str] | None = DEFAULT_SPLITS,
                      method: str = DEFAULT_METHOD, max_issues: int | None = MAX_ISSUES,
                      flag: bool = True) -> pd.DataFrame:
    """Rank every (clip, tag) pair of the chosen splits by how likely its annotation is wrong.

    Parameters
    ----------
    clip_ids, split : [len n]  clip ids and their split names
    tags : [len k]
    annotated : np.ndarray [shape=(n, k)]  0/1 annotations
    probabilities : np.ndarray [shape=(n, k)]
    splits : splits to score (default valid and test: out-of-sample); None scores every clip.
        When none of the chosen splits has clips, every clip is scored and a warning is logged.
    method : one of `METHODS`
    max_issues : keep this many highest-scoring pairs (None keeps every pair)
    flag : also run cleanlab's confident-learning filter (the ``flagged`` column); False leaves
        the column out, for a ranking wanted at once (the filter costs seconds where the scores
        cost milliseconds)

    Returns
    -------
    pd.DataFrame with `ISSUE_COLUMNS` (without ``flagged`` when ``flag`` is False), highest score
    first, ``rank`` from 1
    """
    annotated, probabilities = _check_pair_arrays(annotated, probabilities)
    clip_ids = np.asarray(clip_ids, dtype=object)
    split = np.asarray(split, dtype=object)
    if len(clip_ids) != len(annotated) or len(split) != len(annotated) or len(tags) != annotated.shape[1]:
        raise ParameterError(f"{len(clip_ids)} clip ids, {len(split)} splits and {len(tags)} tags do not match "
                             f"labels of shape {annotated.shape}")
    rows = np.arange(len(clip_ids)) if splits is None else np.flatnonzero(np.isin(split, list(splits)))
    if len(rows) == 0:
        log.warning("no clips in splits %s; scoring every clip (train-split predictions are in-sample and "
                    "hide label issues)", list(splits or []))
        rows = np.arange(len(clip_ids))
    ann, prob = annotated[rows], probabilities[rows]
    scores = pair_scores(ann, prob, method)
    r, c = np.divmod(np.arange(ann.size), ann.shape[1])
    frame = pd.DataFrame({
        "clip_id": clip_ids[rows][r].astype(str), "split": split[rows][r].astype(str),
        "tag": np.asarray(tags, dtype=object)[c].astype(str), "annotated": ann.ravel().astype(np.int8),
        "probability": prob.ravel().astype(np.float32), "score": scores.ravel(),
        "kind": np.where(ann.ravel() == 1, "wrong", "missing"),
    })
    if flag:
        frame["flagged"] = confident_flags(ann, prob).ravel()
    # Ties (e.g. saturated probabilities) broken by clip and tag so the ranking is reproducible.
    frame = frame.sort_values(["score", "clip_id", "tag"], ascending=[False, True, True], kind="mergesort")
    if max_issues is not None:
        frame = frame.head(max_issues)
    frame = frame.reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1, dtype=np.int64)
    return frame[[c for c in ISSUE_COLUMNS if c in frame]]


def issues_from_predictions(predictions: pd.DataFrame, tags: Sequence[str], **kwargs: Any) -> pd.DataFrame:
    """`find_label_issues` on a predictions.parquet frame (``prob:<tag>`` and ``true:<tag>`` columns)."""
    missing = [c for t in tags for c in (prob_column(t), true_column(t)) if c not in predictions.columns]
    if missing:
        raise DataFormatError(f"predictions lack columns {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    probs = predictions[[prob_column(t) for t in tags]].to_numpy(dtype=np.float64)
    truth = predictions[[true_column(t) for t in tags]].to_numpy().astype(np.int64)
    return find_label_issues(predictions["clip_id"].astype(str).tolist(), predictions["split"].astype(str).tolist(),
                             list(tags), truth, probs, **kwargs)


def score_against_truth(issues: pd.DataFrame, truth_labels: np.ndarray, annotated_labels: np.ndarray,
                        clip_ids: Sequence[str], tags: Sequence[str], ks: Sequence[int] = (50, 200)) -> dict[str, Any]:
    """How well a ranking of issues finds the real annotation errors.

    An issue is correct when it names a real error: ``missing`` with truth 1 and annotation 0,
    ``wrong`` with truth 0 and annotation 1.

    Parameters
    ----------
    issues : label issues (columns clip_id, tag, kind, rank)
    truth_labels, annotated_labels : np.ndarray [shape=(n, k)]  aligned with ``clip_ids`` and ``tags``
    clip_ids : the clips that were scored [len n]
    ks : cut-offs of precision@k and recall@k

    Returns
    -------
    dict with ``precision@k`` (share of the top k issues that are real errors), ``recall@k``
    (share of the real errors in those clips found in the top k), ``n_errors``, ``n_issues``
    and ``base_rate`` (share of annotated-0 pairs that truly hold the tag: the precision of a
    random guess among missing tags). ``precision@k`` uses all issues when fewer than k exist.
    """
    truth = np.asarray(truth_labels).astype(np.int64)
    ann = np.asarray(annotated_labels).astype(np.int64)
    if truth.shape != ann.shape or truth.shape != (len(clip_ids), len(tags)):
        raise ParameterError(f"truth {truth.shape} and annotations {ann.shape} must both be "
                             f"({len(clip_ids)} clips, {len(tags)} tags)")
    row = {c: i for i, c in enumerate(clip_ids)}
    col = {t: j for j, t in enumerate(tags)}
    ordered = issues.sort_values("rank") if "rank" in issues.columns else issues
    known = [(row.get(c), col.get(t), k) for c, t, k in zip(ordered["clip_id"], ordered["tag"], ordered["kind"])]
    correct = np.array([
        i is not None and j is not None and (
            (kind == "missing" and truth[i, j] == 1 and ann[i, j] == 0)
            or (kind == "wrong" and truth[i, j] == 0 and ann[i, j] == 1))
        for i, j, kind in known], dtype=bool)
    n_errors = int((truth != ann).sum())
    negatives = ann == 0
    result: dict[str, Any] = {
        "n_issues": len(correct), "n_errors": n_errors,
        "n_missing": int(((truth == 1) & (ann == 0)).sum()), "n_wrong": int(((truth == 0) & (ann == 1)).sum()),
        "base_rate": float(truth[negatives].mean()) if negatives.any() else 0.0,
    }
    for k in ks:
        top = correct[:k]
        result[f"precision@{k}"] = float(top.mean()) if len(top) else 0.0
        result[f"recall@{k}"] = float(top.sum() / n_errors) if n_errors else 0.0
    return result


def load_truth(corpus_root: str | Path, clip_ids: Sequence[str], tags: Sequence[str], *,
               merge: bool = True) -> np.ndarray | None:
    """The demo corpus's full truth (``truth.csv``) aligned with ``clip_ids`` and ``tags``; None when absent.

    Parameters
    ----------
    merge : fold synonym columns like the corpus's label processing did (on for MTT-format corpora)

    Returns
    -------
    np.ndarray [shape=(len(clip_ids), len(tags)), dtype=uint8] or None
    """
    from pipeline.sources.labels import merge_synonyms
    from pipeline.sources.mtt_format import TRUTH_FILE, read_annotations

    path = Path(corpus_root) / TRUTH_FILE
    if not path.is_file():
        return None
    truth_ids, truth_tags, labels, _ = read_annotations(path)
    if merge:
        truth_tags, labels = merge_synonyms(truth_tags, labels)
    rows = {c: i for i, c in enumerate(truth_ids)}
    cols = {t: j for j, t in enumerate(truth_tags)}
    lacking = [t for t in tags if t not in cols] + [c for c in clip_ids if c not in rows][:5]
    if lacking:
        raise DataFormatError(f"{path}: lacks tags or clips of the run: {lacking}")
    return labels[np.ix_([rows[c] for c in clip_ids], [cols[t] for t in tags])].astype(np.uint8)


def run_truth(run: RunDir, clip_ids: Sequence[str], tags: Sequence[str]) -> np.ndarray | None:
    """`load_truth` for a run: its corpus folder (as re-pointed), synonyms folded as its labels were.

    None when the run records no corpus or the corpus has no truth.csv.
    """
    root = run.corpus_root()
    if root is None:
        return None
    record = run.manifest().get("corpus", {})
    merge = record.get("labels", {}).get("merge_synonyms")
    merge = record.get("source") == "mtt" if merge is None else bool(merge)
    # A model scored on a corpus of other tag names: each model tag's truth is the corpus tag it maps onto.
    tag_map = (run.manifest().get("stages", {}).get("score") or {}).get("tag_map") or {}
    return load_truth(root, clip_ids, [tag_map.get(t, t) for t in tags], merge=merge)
