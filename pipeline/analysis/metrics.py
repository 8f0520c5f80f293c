"""Tagging metrics the way the literature reports them (numpy only: the dashboard imports this).

ROC-AUC and PR-AUC (average precision) per tag and averaged three ways:

- ``macro``: the plain mean over tags (the figure papers report for MagnaTagATune top-50);
- ``micro``: every (clip, tag) pair pooled into one ranking;
- ``weighted``: the mean over tags weighted by each tag's number of positive clips
  (the RWTH thesis's WAUC; sklearn's ``average="weighted"``).

Precision, recall and F1 per tag at a global threshold (0.5) and at per-tag thresholds tuned
on the validation split (the threshold that maximises the tag's F1 there), and bootstrap
confidence intervals over clips for the headline figures (bias-corrected and accelerated).

A tag without a positive or without a negative clip in the evaluated split has no ROC-AUC:
it gets NaN, is left out of the averages and is listed in ``undefined_tags``; it never raises.

The AUCs are computed from sorted scores with clip weights, so that one sort per tag serves
the point estimate and every bootstrap resample (a resample is a vector of clip counts drawn
from a multinomial, which is the same as drawing clips with replacement). Ties count half,
exactly as ``sklearn.metrics.roc_auc_score`` and ``average_precision_score`` treat them.
One kind of tie is the resampling's own: the copies of a clip drawn more than once. Average
precision would give every copy of a positive the precision below its last copy, as if the
copies were different clips that the model could not tell apart, which no real split has and
which lifts the resampled PR-AUC above the point estimate (about half of its bias on an
800-clip, 50-tag split). So the copies of one clip are ranked one after another, as
infinitesimally jittered scores would be (a smoothed bootstrap); ties between different
clips count as above. ROC-AUC is unaffected (a positive never meets its own copies as a
negative). The intervals are BCa (`bootstrap_ci`).
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import ParameterError
from pipeline.run.files import PER_TAG, TABLES
from pipeline.run.metrics import AVERAGES, HEADLINE_AUCS

log = logging.getLogger(__name__)

GLOBAL_THRESHOLD = 0.5
# Columns of per_tag.csv, in order: declared by the run-directory contract.
PER_TAG_COLUMNS: tuple[str, ...] = TABLES[PER_TAG].column_names
# Largest (resamples x samples) block handled at once, to bound memory (~8 bytes each, a few copies).
_BLOCK_ELEMENTS = 4_000_000


def _check(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim == 1:
        y_true, y_score = y_true[:, None], y_score.reshape(-1, 1)
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise ParameterError(f"y_true and y_score must have the same (n_clips, n_tags) shape, "
                             f"got {y_true.shape} and {y_score.shape}")
    if y_true.size and not np.isin(y_true, (0, 1)).all():
        raise ParameterError("y_true must hold only 0 and 1")
    if not np.isfinite(y_score).all():
        raise ParameterError(f"y_score holds {int((~np.isfinite(y_score)).sum())} non-finite values")
    return y_true.astype(bool), y_score


def _ranked_groups(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort one tag's clips by descending score and mark tie groups.

    Returns ``order`` (clip indices, best first), ``pos`` (bool in that order) and ``starts``
    (index where each group of equal scores begins), for `np.add.reduceat`.
    """
    order = np.argsort(-s, kind="stable")
    sorted_s = s[order]
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    return order, y[order], starts


def _weighted_aucs(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUC and average precision of one ranking under clip weights.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=bool]
    s : np.ndarray [shape=(n,)]
    weights : np.ndarray [shape=(B, n)]  clip weights: whole counts of B resamples; ones for the point estimate

    Returns
    -------
    roc, ap : np.ndarray [shape=(B,)]  NaN where a resample has no positive or no negative weight

    Ties between different clips count as in sklearn (the point estimate). The ``c`` copies of
    one clip that a resample draws are ranked one after another instead (module docstring).
    """
    order, pos, starts = _ranked_groups(y, s)
    w = weights[:, order]
    wp = np.add.reduceat(np.where(pos, w, 0.0), starts, axis=1)  # (B, G) positive weight per tie group
    wn = np.add.reduceat(np.where(pos, 0.0, w), starts, axis=1)  # (B, G) negative weight per tie group
    tp = np.cumsum(wp, axis=1)  # positives scored >= this group's score
    fp = np.cumsum(wn, axis=1)
    total_p, total_n = tp[:, -1], fp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        # Groups in descending order: a positive beats every negative in later groups and ties half.
        neg_below = total_n[:, None] - fp
        roc = (wp * (neg_below + 0.5 * wn)).sum(axis=1) / (total_p * total_n)
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
        gains = wp * precision  # each positive of a group at the precision of the whole group
        if weights.max(initial=0) > 1:  # a resample: groups of one positive clip rank its copies in turn
            one = np.flatnonzero((np.diff(np.r_[starts, len(y)]) == 1) & pos[starts])
            fp_above = fp[:, one]  # such a group holds no negative
            gains[:, one] = _copies_gain(wp[:, one], fp_above, tp[:, one] - wp[:, one] + fp_above)
        ap = gains.sum(axis=1) / total_p
    undefined = (total_p <= 0) | (total_n <= 0)
    roc[undefined] = np.nan
    ap[undefined] = np.nan  # reported alongside ROC-AUC; a tag that is always positive has a trivial AP
    return roc, ap


def _copies_gain(copies: np.ndarray, fp_before: np.ndarray, ranked_before: np.ndarray) -> np.ndarray:
    """Summed precision of ``copies`` positives ranked one after another below ``ranked_before`` clips.

    The j-th copy has precision ``(tp + j) / (k + j)`` (``tp``, ``k``: positives and clips above
    it), so the sum is ``c - fp * (H(k + c) - H(k))`` with harmonic numbers ``H``; the weights are
    whole counts. Arrays of one shape; no copies give 0.
    """
    k = ranked_before.astype(np.int64)  # sums of whole counts: exact in float64
    c = copies.astype(np.int64)
    harmonic = np.r_[0.0, np.cumsum(1.0 / np.arange(1, int((k + c).max(initial=0)) + 1))]  # H(0..max)
    return copies - fp_before * (harmonic[k + c] - harmonic[k])


def _per_tag_weighted(y_true: np.ndarray, y_score: np.ndarray,
                      weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, k) ROC-AUC and AP per tag under (B, n) clip weights."""
    k = y_true.shape[1]
    roc = np.empty((weights.shape[0], k))
    ap = np.empty((weights.shape[0], k))
    for j in range(k):
        roc[:, j], ap[:, j] = _weighted_aucs(y_true[:, j], y_score[:, j], weights)
    return roc, ap


def _averages(roc: np.ndarray, ap: np.ndarray, support: np.ndarray) -> dict[str, np.ndarray]:
    """Macro and support-weighted means over tags of (B, k) per-tag figures, ignoring NaN tags."""
    out: dict[str, np.ndarray] = {}
    for name, values in (("roc_auc", roc), ("pr_auc", ap)):
        defined = np.isfinite(values)
        count = defined.sum(axis=1)
        filled = np.where(defined, values, 0.0)
        w = np.where(defined, support, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"{name}_macro"] = np.where(count > 0, filled.sum(axis=1) / np.maximum(count, 1), np.nan)
            wsum = w.sum(axis=1)
            out[f"{name}_weighted"] = np.where(wsum > 0, (filled * w).sum(axis=1) / np.where(wsum > 0, wsum, 1), np.nan)
    return out


def _micro(y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B,) micro ROC-AUC and AP: all (clip, tag) pairs pooled, each pair carrying its clip's weight."""
    k = y_true.shape[1]
    flat_y, flat_s = y_true.ravel(), y_score.ravel()  # row-major: pair (i, j) at i * k + j
    rocs, aps = [], []
    step = max(1, _BLOCK_ELEMENTS // max(flat_y.size, 1))
    for b in range(0, weights.shape[0], step):
        roc, ap = _weighted_aucs(flat_y, flat_s, np.repeat(weights[b:b + step], k, axis=1))
        rocs.append(roc)
        aps.append(ap)
    return np.concatenate(rocs), np.concatenate(aps)


def _all_headline(y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Every headline AUC (macro / micro / weighted ROC-AUC and PR-AUC) for each row of ``weights``."""
    roc, ap = _per_tag_weighted(y_true, y_score, weights)
    support = weights @ y_true.astype(np.float64)  # (B, k) weighted positives per tag
    out = _averages(roc, ap, support)
    out["roc_auc_micro"], out["pr_auc_micro"] = _micro(y_true, y_score, weights)
    return out


def roc_auc_per_tag(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """ROC-AUC of each tag.

    Parameters
    ----------
    y_true : np.ndarray [shape=(n_clips, n_tags)]  0/1 ground truth
    y_score : np.ndarray [shape=(n_clips, n_tags)]  scores (probabilities or logits)

    Returns
    -------
    np.ndarray [shape=(n_tags,)]  NaN for a tag with no positive or no negative clip

    Examples
    --------
    >>> roc_auc_per_tag(np.array([[0], [1]]), np.array([[0.2], [0.9]]))
    array([1.])
    """
    y, s = _check(y_true, y_score)
    return _per_tag_weighted(y, s, np.ones((1, len(y))))[0][0]


def pr_auc_per_tag(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Average precision (PR-AUC) of each tag, shape (n_tags,); NaN where ROC-AUC is undefined."""
    y, s = _check(y_true, y_score)
    return _per_tag_weighted(y, s, np.ones((1, len(y))))[1][0]


def aucs_per_tag(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUC and PR-AUC of each tag from one sort per tag (`roc_auc_per_tag`, `pr_auc_per_tag` together).

    Returns two arrays of shape (n_tags,), NaN for a tag with no positive or no negative clip.
    """
    y, s = _check(y_true, y_score)
    roc, ap = _per_tag_weighted(y, s, np.ones((1, len(y))))
    return roc[0], ap[0]


def auc_scores(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
    """Headline ROC-AUC and PR-AUC, macro / micro / weighted, as plain floats (NaN if undefined).

    Keys are `HEADLINE_AUCS` (``roc_auc_macro``, ``roc_auc_micro``, ..., ``pr_auc_weighted``).
    """
    y, s = _check(y_true, y_score)
    return {k: float(v[0]) for k, v in _all_headline(y, s, np.ones((1, len(y)))).items()}


def wauc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """The RWTH thesis's WAUC: per-tag ROC-AUC weighted by each tag's number of positive clips.

    The same figure as `auc_scores`' ``roc_auc_weighted`` (and sklearn's ``average="weighted"``);
    tags without a positive or a negative clip are left out. NaN when no tag is defined.

    Examples
    --------
    >>> y = np.array([[1, 1], [1, 0], [1, 0], [0, 0], [0, 0]])
    >>> s = np.array([[.9, .1], [.8, .5], [.7, .6], [.1, .7], [.2, .8]])
    >>> float(round(wauc(y, s), 6))  # tag 0: AUC 1 over 3 positives, tag 1: AUC 0 over 1
    0.75
    """
    y, s = _check(y_true, y_score)
    ones = np.ones((1, len(y)))
    roc, ap = _per_tag_weighted(y, s, ones)
    return float(_averages(roc, ap, ones @ y.astype(np.float64))["roc_auc_weighted"][0])


BOOTSTRAP_METHODS: tuple[str, ...] = ("BCa", "percentile")
_JACKKNIFE_GROUPS = 200  # leave-one-group-out estimates of the BCa acceleration (exact jackknife up to this many clips)


def bootstrap_ci(y_true: np.ndarray, y_score: np.ndarray, *, n_resamples: int = 1000, level: float = 0.95,
                 seed: int = 0, method: str = "BCa") -> dict[str, tuple[float, float]]:
    """Bootstrap confidence intervals of the headline AUCs, resampling clips.

    Parameters
    ----------
    n_resamples : number of resamples (clips drawn with replacement)
    level : coverage of the interval (0.95: the 2.5th and 97.5th percentiles, before BCa's correction)
    seed : seed of the resampling (and of the jackknife's groups); the same seed gives the same intervals
    method : ``"BCa"`` (bias-corrected and accelerated, Efron 1987; the default) or ``"percentile"``

    Returns
    -------
    dict  ``{name: (low, high)}`` for every name in `HEADLINE_AUCS`; NaN where no resample defines it

    Notes
    -----
    A BCa interval takes the percentiles ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`` of the
    resampled values for ``z = Phi^-1(alpha)`` and ``Phi^-1(1 - alpha)``, where the bias
    correction ``z0`` says how many resampled values lie below the point estimate (ties count
    half, as in scipy.stats.bootstrap) and the acceleration ``a`` is the skewness of the
    jackknife values: leave-one-clip-out up to `_JACKKNIFE_GROUPS` clips, beyond that
    leave-one-group-out over that many seeded groups of clips (an estimate of ``a`` whose
    expectation is the same, at a fraction of the cost: a jackknife over every one of 4,000
    test clips would cost four times the resampling itself). PR-AUC's resampled values sit
    mostly above its point estimate on small or imbalanced splits, which can push the
    percentile interval past it; BCa moves the interval back. A resample in which a tag has
    only one class leaves that tag out of its averages, as the point estimate does for such a
    tag; values no resample defines are left out. Where even BCa's interval misses the point
    estimate (nearly every resampled value on one side of it, so ``z0`` is beyond ``z``),
    the interval is widened to reach it and a warning names the figure.
    """
    if n_resamples < 1:
        raise ParameterError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ParameterError(f"level must be in (0, 1), got {level}")
    if method not in BOOTSTRAP_METHODS:
        raise ParameterError(f"method must be one of {BOOTSTRAP_METHODS}, got {method!r}")
    y, s = _check(y_true, y_score)
    n = len(y)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)  # (B, n)
    resampled = _headline_rows(y, s, counts)
    alpha = (1 - level) / 2
    if method == "percentile":
        return {k: _quantiles(v, (alpha, 1 - alpha)) for k, v in resampled.items()}
    point = _all_headline(y, s, np.ones((1, n)))
    jackknife = _headline_rows(y, s, _jackknife_weights(n, rng))
    out, missed = {}, []
    for k, values in resampled.items():
        theta = float(point[k][0])
        lo, hi = _bca(values[np.isfinite(values)], theta, jackknife[k][np.isfinite(jackknife[k])], alpha)
        if np.isfinite(theta) and np.isfinite(lo) and not lo <= theta <= hi:
            missed.append(k)
            lo, hi = min(lo, theta), max(hi, theta)
        out[k] = (lo, hi)
    if missed:
        log.warning("the bootstrap puts nearly every resampled value of %s on one side of the point estimate; "
                    "their intervals are widened to reach it (too few clips or positives for a reliable interval)",
                    ", ".join(missed))
    return out


def _headline_rows(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """`_all_headline` for many weight rows, in blocks that bound memory: ``{name: (B,)}``."""
    values: dict[str, list[np.ndarray]] = {k: [] for k in HEADLINE_AUCS}
    step = max(1, _BLOCK_ELEMENTS // max(y.shape[0], 1))
    for b in range(0, weights.shape[0], step):
        for k, v in _all_headline(y, s, weights[b:b + step]).items():
            values[k].append(v)
    return {k: np.concatenate(v) for k, v in values.items()}


def _jackknife_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    """(G, n) clip weights that each leave out one clip, or one of G seeded groups of clips when n > G."""
    if n <= _JACKKNIFE_GROUPS:
        return 1.0 - np.eye(n)
    group = rng.permutation(n) % _JACKKNIFE_GROUPS  # groups of n // G or n // G + 1 clips
    return (group[None, :] != np.arange(_JACKKNIFE_GROUPS)[:, None]).astype(np.float64)


def _quantiles(values: np.ndarray, q: tuple[float, float]) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    return (float(np.quantile(v, q[0])), float(np.quantile(v, q[1]))) if v.size else (np.nan, np.nan)


def _bca(values: np.ndarray, theta: float, jackknife: np.ndarray, alpha: float) -> tuple[float, float]:
    """BCa interval (see `bootstrap_ci`) from finite resampled values, the point estimate and jackknife values."""
    if values.size == 0 or not np.isfinite(theta):
        return _quantiles(values, (alpha, 1 - alpha))
    normal = statistics.NormalDist()
    below = (np.count_nonzero(values < theta) + np.count_nonzero(values <= theta)) / (2 * values.size)
    # All resampled values on one side make z0 infinite: keep it at the most that B values can say.
    below = min(max(below, 0.5 / values.size), 1 - 0.5 / values.size)
    z0 = normal.inv_cdf(below)
    accel = 0.0
    if jackknife.size >= 3:
        d = jackknife.mean() - jackknife
        spread = float(np.sum(d**2))
        if spread > 0:
            accel = float(np.sum(d**3)) / (6 * spread**1.5)
    ends = []
    for z in (normal.inv_cdf(alpha), normal.inv_cdf(1 - alpha)):
        shifted = z0 + z
        denom = 1 - accel * shifted
        q = normal.cdf(z0 + shifted / denom) if denom > 0 else (0.0 if z < 0 else 1.0)
        ends.append(float(np.quantile(values, q)))
    return ends[0], ends[1]


def tune_thresholds(y_true: np.ndarray, y_score: np.ndarray, *, default: float = GLOBAL_THRESHOLD) -> np.ndarray:
    """Per-tag thresholds that maximise each tag's F1 on the given (validation) clips.

    A clip is predicted positive when its score is >= the threshold. The threshold sits
    halfway between the lowest score kept and the next lower one (so the validation clips get
    the same predictions, and a test clip scored a little under a validation positive is not
    lost to the chance of where exactly that positive fell). A tag without positives gets
    ``default``. Returns shape (n_tags,).
    """
    y, s = _check(y_true, y_score)
    thresholds = np.full(y.shape[1], float(default))
    for j in range(y.shape[1]):
        order, pos, starts = _ranked_groups(y[:, j], s[:, j])
        total_p = int(pos.sum())
        if total_p == 0:
            continue
        tp = np.cumsum(np.add.reduceat(pos.astype(np.int64), starts))  # predicted positive down to each group
        predicted = np.r_[starts[1:], len(pos)]  # clips with score >= the group's score
        f1 = 2 * tp / (predicted + total_p)
        best = int(np.argmax(f1))
        kept = s[order[starts[best]], j]
        below = s[order[starts[best + 1]], j] if best + 1 < len(starts) else kept
        thresholds[j] = float((kept + below) / 2)
    return thresholds


def precision_recall_f1(y_true: np.ndarray, y_score: np.ndarray,
                        thresholds: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-tag precision, recall and F1 when ``score >= threshold`` predicts the tag.

    A tag never predicted has precision 0 (sklearn's ``zero_division=0``); a tag without
    positives has recall NaN; F1 is 0 when precision and recall are both 0.
    """
    y, s = _check(y_true, y_score)
    predicted = s >= np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (y.shape[1],))
    tp = (predicted & y).sum(axis=0).astype(np.float64)
    n_pred = predicted.sum(axis=0)
    n_pos = y.sum(axis=0)
    precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)
    recall = np.where(n_pos > 0, tp / np.maximum(n_pos, 1), np.nan)
    with np.errstate(invalid="ignore"):
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    f1 = np.where(np.isnan(recall), np.nan, f1)
    return precision, recall, f1


@dataclass
class Evaluation:
    """Everything evaluation reports for one split.

    Attributes
    ----------
    headline : dict[str, float]  `HEADLINE_AUCS` plus ``f1_macro`` / ``f1_micro`` at 0.5 and
        ``f1_macro_tuned`` / ``f1_micro_tuned`` at the tuned thresholds
    ci : dict[str, tuple[float, float]]  bootstrap interval of each of `HEADLINE_AUCS`
    per_tag : pd.DataFrame  columns `PER_TAG_COLUMNS`, one row per tag
    undefined_tags : list[str]  tags without a positive or without a negative clip (NaN AUCs)
    n_clips : int
    """

    headline: dict[str, float]
    ci: dict[str, tuple[float, float]]
    per_tag: pd.DataFrame
    undefined_tags: list[str] = field(default_factory=list)
    n_clips: int = 0
    n_bootstrap: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (NaN becomes None)."""
        def clean(x: float) -> float | None:
            return None if x is None or not np.isfinite(x) else float(x)

        return {
            "n_clips": self.n_clips,
            "n_tags": len(self.per_tag),
            "n_bootstrap": self.n_bootstrap,
            "headline": {k: clean(v) for k, v in self.headline.items()},
            "ci95": {k: [clean(lo), clean(hi)] for k, (lo, hi) in self.ci.items()},
            "undefined_tags": list(self.undefined_tags),
        }


def _micro_f1(y: np.ndarray, s: np.ndarray, thresholds: np.ndarray) -> float:
    predicted = s >= thresholds[None, :]
    tp = float((predicted & y).sum())
    denom = float(predicted.sum() + y.sum())
    return 2 * tp / denom if denom else float("nan")


def evaluate_scores(y_true: np.ndarray, y_score: np.ndarray, tags: Sequence[str], *,
                    thresholds: np.ndarray | None = None, n_bootstrap: int = 1000, level: float = 0.95,
                    seed: int = 0) -> Evaluation:
    """Evaluate tag scores against ground truth.

    Parameters
    ----------
    y_true : np.ndarray [shape=(n_clips, n_tags)]  0/1
    y_score : np.ndarray [shape=(n_clips, n_tags)]  probabilities
    tags : tag names, one per column
    thresholds : np.ndarray [shape=(n_tags,)]  per-tag thresholds tuned on validation
        (`tune_thresholds`); None tunes nothing and reports the global 0.5 in their place
    n_bootstrap : resamples for the confidence intervals; 0 skips them (NaN intervals)
    """
    y, s = _check(y_true, y_score)
    if len(tags) != y.shape[1]:
        raise ParameterError(f"got {len(tags)} tag names for {y.shape[1]} score columns")
    if len(y) == 0:
        raise ParameterError("cannot evaluate zero clips")
    ones = np.ones((1, len(y)))
    roc, ap = _per_tag_weighted(y, s, ones)
    headline = {k: float(v[0]) for k, v in _all_headline(y, s, ones).items()}
    tuned = np.full(y.shape[1], GLOBAL_THRESHOLD) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    if tuned.shape != (y.shape[1],):
        raise ParameterError(f"thresholds must have shape ({y.shape[1]},), got {tuned.shape}")
    p05, r05, f05 = precision_recall_f1(y, s, GLOBAL_THRESHOLD)
    pt, rt, ft = precision_recall_f1(y, s, tuned)
    per_tag = pd.DataFrame({
        "tag": list(tags), "support": y.sum(axis=0).astype(int), "roc_auc": roc[0], "pr_auc": ap[0],
        "precision": p05, "recall": r05, "f1": f05, "threshold": tuned,
        "precision_tuned": pt, "recall_tuned": rt, "f1_tuned": ft,
    }, columns=list(PER_TAG_COLUMNS))
    with np.errstate(invalid="ignore"):
        headline["f1_macro"] = float(np.nanmean(f05)) if np.isfinite(f05).any() else float("nan")
        headline["f1_macro_tuned"] = float(np.nanmean(ft)) if np.isfinite(ft).any() else float("nan")
    headline["f1_micro"] = _micro_f1(y, s, np.full(y.shape[1], GLOBAL_THRESHOLD))
    headline["f1_micro_tuned"] = _micro_f1(y, s, tuned)
    undefined = [t for t, v in zip(tags, roc[0]) if not np.isfinite(v)]
    if undefined:
        log.warning("%d tag(s) have no positive or no negative clip in this split (NaN AUC): %s",
                    len(undefined), ", ".join(undefined))
    if n_bootstrap > 0:
        ci = bootstrap_ci(y, s, n_resamples=n_bootstrap, level=level, seed=seed)
    else:
        ci = {k: (float("nan"), float("nan")) for k in HEADLINE_AUCS}
    return Evaluation(headline=headline, ci=ci, per_tag=per_tag, undefined_tags=undefined,
                      n_clips=len(y), n_bootstrap=n_bootstrap)


def format_summary(evaluation: Evaluation, *, title: str = "") -> str:
    """A readable table of the headline figures with their intervals."""
    lines = [title] if title else []
    lines.append(f"{'metric':<10} {'macro':>22} {'micro':>22} {'weighted':>22}")
    for metric in ("roc_auc", "pr_auc"):
        cells = []
        for avg in AVERAGES:
            key = f"{metric}_{avg}"
            value = evaluation.headline.get(key, float("nan"))
            lo, hi = evaluation.ci.get(key, (float("nan"), float("nan")))
            cells.append(f"{value:.4f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else f"{value:.4f}")
        lines.append(f"{metric:<10} " + " ".join(f"{c:>22}" for c in cells))
    h = evaluation.headline
    lines.append(f"F1 macro {h['f1_macro']:.4f} at 0.5, {h['f1_macro_tuned']:.4f} at tuned thresholds; "
                 f"micro {h['f1_micro']:.4f} / {h['f1_micro_tuned']:.4f}")
    lines.append(f"{evaluation.n_clips} clips, {len(evaluation.per_tag)} tags"
                 + (f", {evaluation.n_bootstrap} bootstrap resamples" if evaluation.n_bootstrap else ""))
    if evaluation.undefined_tags:
        lines.append(f"undefined (no positive or no negative clip): {', '.join(evaluation.undefined_tags)}")
    return "\n".join(lines)
