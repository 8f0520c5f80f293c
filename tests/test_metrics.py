"""Metrics: known answers, agreement with sklearn, undefined tags, thresholds and bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.analysis import metrics
from pipeline.errors import ParameterError


def _random_case(n: int = 200, k: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < np.linspace(0.05, 0.5, k)).astype(int)
    y[0] = 1  # every tag has a positive
    y[1] = 0  # and a negative
    s = np.clip(y * 0.3 + rng.random((n, k)), 0, 1)
    s = np.round(s, 2)  # ties, to check they count half as in sklearn
    return y, s


def test_perfect_and_reversed_ranking():
    y = np.array([[0, 1], [0, 1], [1, 0], [1, 0]])
    s = np.array([[0.1, 0.9], [0.2, 0.8], [0.8, 0.3], [0.9, 0.1]])
    assert metrics.roc_auc_per_tag(y, s) == pytest.approx([1.0, 1.0])
    assert metrics.pr_auc_per_tag(y, s) == pytest.approx([1.0, 1.0])
    assert metrics.roc_auc_per_tag(y, 1 - s) == pytest.approx([0.0, 0.0])
    scores = metrics.auc_scores(y, s)
    assert scores["roc_auc_macro"] == pytest.approx(1.0)
    assert scores["roc_auc_micro"] == pytest.approx(1.0)
    assert metrics.auc_scores(y, 1 - s)["roc_auc_macro"] == pytest.approx(0.0)


def test_ties_count_half():
    y = np.array([[0], [1]])
    assert metrics.roc_auc_per_tag(y, np.array([[0.5], [0.5]]))[0] == pytest.approx(0.5)


def test_agrees_with_sklearn():
    y, s = _random_case()
    assert metrics.roc_auc_per_tag(y, s) == pytest.approx([roc_auc_score(y[:, j], s[:, j]) for j in range(y.shape[1])])
    assert metrics.pr_auc_per_tag(y, s) == pytest.approx(
        [average_precision_score(y[:, j], s[:, j]) for j in range(y.shape[1])])
    scores = metrics.auc_scores(y, s)
    for avg in metrics.AVERAGES:
        assert scores[f"roc_auc_{avg}"] == pytest.approx(roc_auc_score(y, s, average=avg))
        assert scores[f"pr_auc_{avg}"] == pytest.approx(average_precision_score(y, s, average=avg))


def test_weighted_vs_macro_hand_example():
    # tag a: 3 positives, perfectly ranked (AUC 1); tag b: 1 positive, ranked last (AUC 0).
    y = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 0]])
    s = np.array([[0.9, 0.9], [0.8, 0.8], [0.7, 0.7], [0.1, 0.0], [0.2, 0.6]])
    scores = metrics.auc_scores(y, s)
    assert scores["roc_auc_macro"] == pytest.approx(0.5)
    assert scores["roc_auc_weighted"] == pytest.approx((3 * 1.0 + 1 * 0.0) / 4)


def test_wauc_weights_each_tag_by_its_positives():
    # tag 0: 3 positives, ranked perfectly (AUC 1); tag 1: 1 positive, ranked last (AUC 0);
    # tag 2: no positive (undefined, left out). WAUC = (3 * 1 + 1 * 0) / 4; the macro mean is 0.5.
    y = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]])
    s = np.array([[.9, .1, .3], [.8, .5, .2], [.7, .6, .9], [.1, .7, .4], [.2, .8, .5]])
    assert metrics.wauc(y, s) == pytest.approx(0.75)
    assert metrics.auc_scores(y, s)["roc_auc_macro"] == pytest.approx(0.5)
    assert metrics.wauc(y, s) == pytest.approx(roc_auc_score(y[:, :2], s[:, :2], average="weighted"))
    assert np.isnan(metrics.wauc(np.zeros((3, 2)), np.ones((3, 2))))


def test_tag_without_positives_is_nan_and_listed(caplog):
    y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])
    s = np.array([[0.9, 0.1, 0.5], [0.1, 0.2, 0.4], [0.8, 0.3, 0.6], [0.2, 0.4, 0.1]])
    ev = metrics.evaluate_scores(y, s, ["a", "never", "always"], n_bootstrap=50)
    assert ev.undefined_tags == ["never", "always"]
    row = ev.per_tag.set_index("tag")
    assert np.isnan(row.loc["never", "roc_auc"]) and np.isnan(row.loc["always", "roc_auc"])
    assert np.isnan(row.loc["never", "pr_auc"])
    assert row.loc["a", "roc_auc"] == pytest.approx(1.0)
    assert ev.headline["roc_auc_macro"] == pytest.approx(1.0)  # averages skip undefined tags
    assert ev.to_dict()["undefined_tags"] == ["never", "always"]
    assert "never" in metrics.format_summary(ev)


def test_all_tags_undefined_does_not_crash():
    y = np.zeros((3, 2), dtype=int)
    ev = metrics.evaluate_scores(y, np.full((3, 2), 0.3), ["a", "b"], n_bootstrap=10)
    assert np.isnan(ev.headline["roc_auc_macro"])
    assert ev.to_dict()["headline"]["roc_auc_macro"] is None


def test_bootstrap_interval_contains_point_and_is_seeded():
    y, s = _random_case(n=300)
    point = metrics.auc_scores(y, s)
    ci = metrics.bootstrap_ci(y, s, n_resamples=300, seed=3)
    for key in metrics.HEADLINE_AUCS:
        lo, hi = ci[key]
        assert lo < point[key] < hi, key
        assert hi - lo < 0.3
    assert ci == metrics.bootstrap_ci(y, s, n_resamples=300, seed=3)
    assert ci != metrics.bootstrap_ci(y, s, n_resamples=300, seed=4)


def _explicit_resample(y: np.ndarray, s: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clips ``idx`` drawn with replacement, the copies of a clip whose score no other clip of its
    tag shares ranked one after another (scores lowered by 1e-9 per earlier copy)."""
    seen = np.zeros(len(y), dtype=int)
    copy_number = np.empty(len(idx), dtype=int)
    for pos, clip in enumerate(idx):
        copy_number[pos] = seen[clip]
        seen[clip] += 1
    out = s[idx].astype(float)
    for j in range(s.shape[1]):
        values, first, n_same = np.unique(s[:, j], return_index=True, return_counts=True)
        unique_clip = np.zeros(len(y), dtype=bool)
        unique_clip[first[n_same == 1]] = True
        out[:, j] -= np.where(unique_clip[idx], 1e-9 * copy_number, 0.0)
    return y[idx], out


@pytest.mark.parametrize("rounded", [False, True])
def test_bootstrap_matches_explicit_resampling(rounded: bool):
    # The weighted-count shortcut must equal drawing clips with replacement, with the copies of
    # one clip ranked one after another (ties between different clips count half, as sklearn).
    y, s = _random_case(n=60, k=3, seed=1)
    if not rounded:
        s = s + np.random.default_rng(2).random(s.shape) * 1e-3  # no ties between different clips
    rng = np.random.default_rng(7)
    idx = rng.integers(0, len(y), len(y))
    counts = np.bincount(idx, minlength=len(y)).astype(float)[None, :]
    got = metrics._all_headline(y.astype(bool), s, counts)
    want = metrics.auc_scores(*_explicit_resample(y, s, idx))
    # Pooled over tags, a clip's score may tie another tag's, which the jitter would break: the
    # micro figures are checked without ties.
    keys = [k for k in metrics.HEADLINE_AUCS if not (rounded and k.endswith("_micro"))]
    for key in keys:
        assert got[key][0] == pytest.approx(want[key]), key
    tied = metrics.auc_scores(y[idx], s[idx])  # copies tied: the resampling artefact, no longer used
    assert tied["pr_auc_macro"] != pytest.approx(got["pr_auc_macro"][0])
    assert tied["roc_auc_macro"] == pytest.approx(got["roc_auc_macro"][0])  # ROC-AUC never sees it


def test_thresholds_maximise_f1():
    y = np.array([[1], [1], [0], [1], [0], [0]])
    s = np.array([[0.9], [0.8], [0.7], [0.35], [0.3], [0.1]])
    th = metrics.tune_thresholds(y, s)
    # keeps all three positives plus one negative (F1 = 6/7): halfway between 0.35 and 0.3
    assert th[0] == pytest.approx(0.325)
    p, r, f = metrics.precision_recall_f1(y, s, th)
    assert (p[0], r[0]) == pytest.approx((0.75, 1.0))
    assert f[0] == pytest.approx(6 / 7)
    p5, r5, f5 = metrics.precision_recall_f1(y, s, 0.5)
    assert (p5[0], r5[0], f5[0]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    # A tag without positives keeps the default threshold.
    assert metrics.tune_thresholds(np.zeros((3, 1)), np.array([[0.2], [0.4], [0.6]]))[0] == 0.5


def test_per_tag_columns_and_tuned_f1_not_worse_on_same_split():
    y, s = _random_case()
    th = metrics.tune_thresholds(y, s)
    ev = metrics.evaluate_scores(y, s, [f"t{i}" for i in range(y.shape[1])], thresholds=th, n_bootstrap=0)
    assert tuple(ev.per_tag.columns) == metrics.PER_TAG_COLUMNS
    assert (ev.per_tag["f1_tuned"] >= ev.per_tag["f1"] - 1e-12).all()
    assert (ev.per_tag["support"] == y.sum(axis=0)).all()


@pytest.mark.parametrize("y, s, match", [
    (np.zeros((3, 2)), np.zeros((3, 3)), "same"),
    (np.full((2, 1), 2), np.zeros((2, 1)), "only 0 and 1"),
    (np.zeros((2, 1)), np.array([[np.nan], [0.1]]), "non-finite"),
])
def test_bad_inputs(y, s, match):
    with pytest.raises(ParameterError, match=match):
        metrics.auc_scores(y, s)


def test_bad_options():
    y, s = _random_case(n=20, k=2)
    with pytest.raises(ParameterError, match="n_resamples"):
        metrics.bootstrap_ci(y, s, n_resamples=0)
    with pytest.raises(ParameterError, match="tag names"):
        metrics.evaluate_scores(y, s, ["only_one"])
    with pytest.raises(ParameterError, match="thresholds"):
        metrics.evaluate_scores(y, s, ["a", "b"], thresholds=np.ones(3))


# -- BCa intervals ----------------------------------------------------------------------------

def _second_place_case(k: int = 20, extra: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """k tags, each with one positive ranked second under one negative (AP 0.5 each): resamples
    that drop that negative lift the tag's AP to 1, those that drop the positive leave it out, so
    nearly every resampled macro PR-AUC lies above the point estimate."""
    n = 2 * k + extra
    rng = np.random.default_rng(0)
    y = np.zeros((n, k), dtype=int)
    s = rng.uniform(0.1, 0.5, (n, k))
    for j in range(k):
        s[2 * j, j] = 0.95  # a negative on top
        y[2 * j + 1, j], s[2 * j + 1, j] = 1, 0.9  # the tag's one positive
    return y, s


def test_bca_contains_the_point_where_the_percentile_interval_does_not(caplog: pytest.LogCaptureFixture):
    y, s = _second_place_case()
    point = metrics.auc_scores(y, s)
    assert point["pr_auc_macro"] == pytest.approx(0.5)
    percentile = metrics.bootstrap_ci(y, s, n_resamples=500, seed=0, method="percentile")
    assert percentile["pr_auc_macro"][0] > point["pr_auc_macro"]  # the old interval misses it
    with caplog.at_level("WARNING", logger="pipeline.analysis.metrics"):
        ci = metrics.bootstrap_ci(y, s, n_resamples=500, seed=0)
    for key in metrics.HEADLINE_AUCS:
        lo, hi = ci[key]
        assert lo <= point[key] <= hi, key
    # BCa corrects downwards (the resampled values sit above); so far that the point is an end,
    # and the warning names the figure
    assert ci["pr_auc_macro"][1] == point["pr_auc_macro"] and ci["pr_auc_macro"][0] < percentile["pr_auc_macro"][0]
    assert "pr_auc_macro" in caplog.text and "widened" in caplog.text


def test_bca_moves_a_skewed_interval_without_widening(caplog: pytest.LogCaptureFixture):
    y, s = _second_place_case(k=10)  # the same, milder: the percentile interval just holds the point
    point = metrics.auc_scores(y, s)["pr_auc_macro"]
    lo_p, hi_p = metrics.bootstrap_ci(y, s, n_resamples=500, seed=0, method="percentile")["pr_auc_macro"]
    with caplog.at_level("WARNING", logger="pipeline.analysis.metrics"):
        lo, hi = metrics.bootstrap_ci(y, s, n_resamples=500, seed=0)["pr_auc_macro"]
    assert lo < point < hi and "widened" not in caplog.text
    assert point - lo_p < 0.15 * (hi_p - lo_p)  # the percentile interval sits almost wholly above the point
    assert lo < lo_p and hi < hi_p  # BCa shifts it down around the point


def test_bca_formula_matches_scipy():
    from scipy import stats

    data = np.random.default_rng(0).exponential(size=40)  # skewed: z0 and the acceleration both matter
    res = stats.bootstrap((data,), np.mean, n_resamples=2000, method="BCa", random_state=1)
    jackknife = np.array([np.delete(data, i).mean() for i in range(len(data))])
    lo, hi = metrics._bca(res.bootstrap_distribution, float(data.mean()), jackknife, 0.025)
    assert (lo, hi) == pytest.approx((res.confidence_interval.low, res.confidence_interval.high), rel=1e-9)


def test_bca_degenerate_resamples():
    # one positive: a third of the resamples lack it (that tag's AUCs undefined there); every
    # figure still gets a finite interval around its point estimate
    y, s = _random_case(n=80, k=3, seed=5)
    y[:, 0] = 0
    y[7, 0] = 1
    point = metrics.auc_scores(y, s)
    ci = metrics.bootstrap_ci(y, s, n_resamples=200, seed=0)
    for key in metrics.HEADLINE_AUCS:
        assert np.isfinite(ci[key]).all() and ci[key][0] <= point[key] <= ci[key][1], key
    # a perfect ranking: every resample scores 1, the interval is the point
    perfect = metrics.bootstrap_ci(np.array([[0], [0], [1], [1]]), np.array([[0.1], [0.2], [0.8], [0.9]]),
                                   n_resamples=50)
    assert perfect["roc_auc_macro"] == (1.0, 1.0) and perfect["pr_auc_macro"] == (1.0, 1.0)
    # no tag defined: NaN intervals, no error
    none = metrics.bootstrap_ci(np.zeros((5, 2), dtype=int), np.random.default_rng(0).random((5, 2)), n_resamples=20)
    assert all(np.isnan(v).all() for v in none.values())
    with pytest.raises(ParameterError, match="method"):
        metrics.bootstrap_ci(y, s, method="basic")


def test_jackknife_groups_beyond_the_exact_size():
    w = metrics._jackknife_weights(10, np.random.default_rng(0))
    np.testing.assert_array_equal(w, 1 - np.eye(10))  # leave-one-out
    n = metrics._JACKKNIFE_GROUPS * 3 + 7
    w = metrics._jackknife_weights(n, np.random.default_rng(0))
    assert w.shape == (metrics._JACKKNIFE_GROUPS, n)
    assert (w.sum(axis=0) == metrics._JACKKNIFE_GROUPS - 1).all()  # each clip left out exactly once
    assert set((n - w.sum(axis=1)).tolist()) <= {3, 4}  # groups of equal size, give or take one
