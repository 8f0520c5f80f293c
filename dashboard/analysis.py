"""Pure transforms behind the pages: outcomes at thresholds, per-tag counts, errors, contradictions.

No Streamlit here, so every function can be tested and timed on its own. Threshold-dependent
precision / recall / F1 are computed here from the prediction matrix because the slider moves
them interactively; threshold-free metrics (ROC-AUC, PR-AUC) use scikit-learn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dashboard.theme import FN, FP, PRED, TN, TP, UNPRED

# Tag pairs that cannot both be true of one clip; each side is a group of synonyms. Tags of the
# form "no X" also contradict "X" (see `contradiction_pairs`), so only the less obvious
# opposites are listed here.
CONTRADICTIONS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("vocal", "vocals", "voice", "voices", "singing", "singer", "male vocal", "female vocal", "male voice",
      "female voice", "male vocals", "female vocals", "man singing", "woman singing", "choir", "choral", "opera"),
     ("no vocal", "no vocals", "no voice", "no voices", "no singing", "no singer", "instrumental")),
    (("drums", "drum", "beat", "beats"), ("no drums", "no drum", "no beat", "no beats")),
    (("fast",), ("slow",)),
    (("loud",), ("quiet", "soft")),
    (("solo",), ("choir", "choral")),
)


def contradiction_pairs(tags: list[str]) -> list[tuple[str, str]]:
    """Pairs of tags of this vocabulary that contradict each other (each pair once, in vocabulary order)."""
    present = set(tags)
    pairs: set[tuple[str, str]] = set()
    for left, right in CONTRADICTIONS:
        for a in left:
            for b in right:
                if a in present and b in present and a != b:
                    pairs.add((a, b))
    for tag in tags:
        match = re.fullmatch(r"no[ _-]+(.+)", tag)
        if match and match.group(1) in present:
            pairs.add((match.group(1), tag))
    order = {t: i for i, t in enumerate(tags)}
    return sorted(pairs, key=lambda p: (order[p[0]], order[p[1]]))


def outcomes(truth: np.ndarray | None, probs: np.ndarray, thresholds: float | np.ndarray,
             labelled: np.ndarray | None = None) -> np.ndarray:
    """Outcome codes ``TP`` / ``FP`` / ``FN`` / ``TN`` of each (clip, tag) pair.

    Parameters
    ----------
    truth : np.ndarray [shape=(..., k)] 0/1 annotations, or None when there are none
    probs : np.ndarray [shape=(..., k)] predicted probabilities
    thresholds : float or np.ndarray [shape=(k,)] a tag is predicted when its probability >= threshold
    labelled : np.ndarray [shape=(k,), dtype=bool] the tags with ground truth (default: all, or none
        when ``truth`` is None); the other tags' pairs are ``PRED`` / ``UNPRED`` (predicted or not),
        never true or false

    Returns
    -------
    np.ndarray [shape=(..., k), dtype=object]
    """
    pred = probs >= thresholds
    if labelled is None:
        labelled = np.full(pred.shape[-1], truth is not None, dtype=bool)
    true = truth.astype(bool) if truth is not None else np.zeros(pred.shape, dtype=bool)
    known = np.broadcast_to(np.asarray(labelled, dtype=bool), pred.shape)
    out = np.full(pred.shape, TN, dtype=object)
    out[pred & true] = TP
    out[pred & ~true] = FP
    out[~pred & true] = FN
    out[~known & pred] = PRED
    out[~known & ~pred] = UNPRED
    return out


def confusion_counts(truth: np.ndarray, probs: np.ndarray, thresholds: float | np.ndarray) -> pd.DataFrame:
    """Per-tag TP / FP / FN / TN counts with precision, recall and F1 (`pipeline.analysis.metrics` conventions).

    Parameters
    ----------
    truth, probs : np.ndarray [shape=(n, k)]
    thresholds : float or np.ndarray [shape=(k,)]

    Returns
    -------
    pd.DataFrame [k rows] columns tp, fp, fn, tn, precision, recall, f1
    """
    from pipeline.analysis.metrics import precision_recall_f1

    pred = probs >= thresholds
    true = truth.astype(bool)
    tp = (pred & true).sum(axis=0)
    fp = (pred & ~true).sum(axis=0)
    fn = (~pred & true).sum(axis=0)
    tn = len(truth) - tp - fp - fn
    precision, recall, f1 = precision_recall_f1(true, probs, thresholds) if len(truth) else (np.nan,) * 3
    return pd.DataFrame({"tp": tp, "fp": fp, "fn": fn, "tn": tn,
                         "precision": precision, "recall": recall, "f1": f1})


def auc_per_tag(truth: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """Support, ROC-AUC and PR-AUC per tag (`pipeline.analysis.metrics`); NaN for a tag without both classes.

    Returns
    -------
    pd.DataFrame [k rows] columns support, roc_auc, pr_auc
    """
    from pipeline.analysis.metrics import aucs_per_tag

    support = truth.sum(axis=0).astype(int)
    if len(truth) == 0:
        nan = np.full(truth.shape[1], np.nan)
        return pd.DataFrame({"support": support, "roc_auc": nan, "pr_auc": nan})
    roc, ap = aucs_per_tag(truth, probs)
    return pd.DataFrame({"support": support, "roc_auc": roc, "pr_auc": ap})


def curves(truth: np.ndarray, probs: np.ndarray, *, max_points: int = 1500) -> dict[str, np.ndarray]:
    """ROC and precision-recall curves of one tag (``truth``, ``probs`` of shape (n,)).

    One point per distinct score (thinned to about ``max_points`` for drawing). Returns fpr,
    tpr, roc_thresholds, precision, recall, pr_thresholds; empty arrays when the tag lacks
    positives or negatives.
    """
    y = truth.astype(bool)
    if y.all() or not y.any():
        empty = np.array([])
        return {k: empty for k in ("fpr", "tpr", "roc_thresholds", "precision", "recall", "pr_thresholds")}
    order = np.argsort(-probs, kind="stable")
    s, y = probs[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each group of equal scores
    if len(last) > max_points:  # thin evenly, keeping the ends
        last = np.unique(np.r_[last[:: int(np.ceil(len(last) / max_points))], last[-1]])
    tps = np.cumsum(y)[last].astype(np.float64)
    fps = (last + 1) - tps
    thr = s[last].astype(np.float64)
    return {"fpr": np.r_[0.0, fps / fps[-1]], "tpr": np.r_[0.0, tps / tps[-1]], "roc_thresholds": np.r_[np.inf, thr],
            "precision": np.r_[1.0, tps / (tps + fps)], "recall": np.r_[0.0, tps / tps[-1]],
            "pr_thresholds": np.r_[np.inf, thr]}


def operating_point(truth: np.ndarray, probs: np.ndarray, threshold: float) -> dict[str, float]:
    """False-positive rate, recall and precision of one tag at ``threshold``."""
    pred = probs >= threshold
    true = truth.astype(bool)
    tp = float((pred & true).sum())
    fp = float((pred & ~true).sum())
    positives = float(true.sum())
    negatives = float(len(true) - positives)
    return {"fpr": fp / negatives if negatives else np.nan,
            "recall": tp / positives if positives else np.nan,
            "precision": tp / (tp + fp) if tp + fp else np.nan}


def cooccurrence(matrix: np.ndarray) -> np.ndarray:
    """Conditional co-occurrence P(column tag | row tag) of a 0/1 matrix [n, k] -> [k, k]."""
    m = matrix.astype(np.float32)
    counts = m.T @ m
    diag = np.diag(counts).copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = counts / diag[:, None]
    cond[diag == 0] = np.nan
    return cond


def top_errors(truth: np.ndarray, probs: np.ndarray, threshold: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the most confident false positives and the most clearly missed false negatives.

    Parameters
    ----------
    truth, probs : np.ndarray [shape=(n_clips,)] one tag's annotations and probabilities
    threshold : decision threshold of the tag
    n : at most this many of each

    Returns
    -------
    (false_positives, false_negatives) : row indices, most confident first
    """
    true = truth.astype(bool)
    fp = np.flatnonzero(~true & (probs >= threshold))
    fn = np.flatnonzero(true & (probs < threshold))
    fp = fp[np.argsort(-probs[fp], kind="stable")[:n]]
    fn = fn[np.argsort(probs[fn], kind="stable")[:n]]
    return fp, fn


@dataclass(frozen=True)
class Contradiction:
    left: str
    right: str
    predicted: int  # clips where both tags are predicted
    annotated: int  # clips where both tags are annotated


def contradictions(tags: list[str], truth: np.ndarray | None, probs: np.ndarray,
                   thresholds: float | np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Contradictory tag pairs predicted (and annotated) together.

    Returns
    -------
    summary : pd.DataFrame one row per pair: left, right, predicted, annotated
    flagged : np.ndarray [shape=(n,), dtype=object] for each clip, the pairs predicted together
        ("vocal + no vocals; ..."), "" where none
    """
    pairs = contradiction_pairs(tags)
    index = {t: i for i, t in enumerate(tags)}
    pred = probs >= thresholds
    flagged = np.full(len(probs), "", dtype=object)
    rows = []
    for a, b in pairs:
        both = pred[:, index[a]] & pred[:, index[b]]
        annotated = int((truth[:, index[a]].astype(bool) & truth[:, index[b]].astype(bool)).sum()) \
            if truth is not None else 0
        rows.append({"left": a, "right": b, "predicted": int(both.sum()), "annotated": annotated})
        for i in np.flatnonzero(both):
            flagged[i] = f"{flagged[i]}; {a} + {b}" if flagged[i] else f"{a} + {b}"
    summary = pd.DataFrame(rows, columns=["left", "right", "predicted", "annotated"])
    return summary, flagged


def search_clips(frame: pd.DataFrame, text: str, columns: list[str]) -> np.ndarray:
    """Boolean mask of rows whose ``columns`` contain ``text`` (case-insensitive, literal)."""
    mask = np.zeros(len(frame), dtype=bool)
    text = text.strip()
    if not text:
        return ~mask
    for col in columns:
        if col in frame:
            mask |= frame[col].astype(str).str.contains(text, case=False, regex=False).to_numpy()
    return mask
