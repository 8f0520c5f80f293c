"""Classical baselines: each learns a toy problem whose tags depend on which mel bins have energy.

A saved baseline is arrays + JSON: it reloads to the same predictions, and a file that is not
one (a pickle, an object array, trees that loop, a record of the wrong shape) is refused unread.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score

from models.baselines import BASELINES, get_baseline, load_baseline, mfcc_from_logmel, pooled_statistics
from pipeline.errors import DataFormatError, ParameterError, RunDirError

N_BINS = 24
LOW, HIGH = slice(2, 6), slice(16, 21)  # tag 0 lights the low bins, tag 1 the high ones
# small but real settings so the suite stays quick
FAST = {"rf": {"n_estimators": 60}, "knn": {"n_neighbors": 10}, "bof_lr": {"n_codewords": 16}}


def _toy(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Clips of 40-80 noisy log-mel frames; a tag adds energy (1.5 noise std) to its bins in a quarter of the frames."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 2)) < 0.5).astype(np.int8)
    clips = []
    for row in labels:
        t = int(rng.integers(40, 81))
        x = rng.normal(-4.0, 1.0, size=(t, N_BINS))
        for tag, bins in zip(row, (LOW, HIGH)):
            if tag:
                active = rng.random(t) < 0.25
                x[active, bins] += 1.5
        clips.append(x.astype(np.float32))
    return clips, labels


@pytest.fixture(scope="module")
def toy() -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray], np.ndarray]:
    train_x, train_y = _toy(120, seed=0)
    test_x, test_y = _toy(80, seed=1)
    return train_x, train_y, test_x, test_y


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_learns_the_toy_problem_and_keeps_constant_tags(name: str, toy, tmp_path: Path) -> None:
    train_x, train_y, test_x, test_y = toy
    # two more tags with a single class in training: never and always present
    n = len(train_y)
    labels = np.column_stack([train_y, np.zeros(n, np.int8), np.ones(n, np.int8)])
    model = get_baseline(name, **FAST[name]).fit(train_x, labels)
    proba = model.predict_proba(test_x)
    assert proba.shape == (len(test_x), 4)
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()
    for tag in (0, 1):
        auc = roc_auc_score(test_y[:, tag], proba[:, tag])
        assert auc > 0.9, f"{name} tag {tag}: ROC-AUC {auc:.3f}"
    assert (proba[:, 2] == 0).all() and (proba[:, 3] == 1).all()

    path = tmp_path / "baseline.npz"
    model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["baseline.npz"]  # no temporary left behind
    with np.load(path, allow_pickle=False) as saved:  # plain arrays only: no object array, no pickle
        assert all(saved[key].dtype.kind in "fiu" for key in saved.files)
    again = load_baseline(path)
    assert type(again) is type(model) and again.options == model.options
    np.testing.assert_array_equal(again.predict_proba(test_x), proba)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_a_single_varying_tag(name: str, toy) -> None:
    train_x, train_y, test_x, test_y = toy
    labels = np.column_stack([train_y[:, :1], np.zeros(len(train_y), np.int8)])
    proba = get_baseline(name, **FAST[name]).fit(train_x, labels).predict_proba(test_x)
    assert proba.shape == (len(test_x), 2)
    assert roc_auc_score(test_y[:, 0], proba[:, 0]) > 0.9


def test_all_tags_constant(toy) -> None:
    train_x, _, test_x, _ = toy
    labels = np.zeros((len(train_x), 3), np.int8)
    proba = get_baseline("bof_lr", **FAST["bof_lr"]).fit(train_x, labels).predict_proba(test_x)
    assert (proba == 0).all()


def test_bof_accepts_mfcc_input(toy) -> None:
    train_x, train_y, test_x, test_y = toy

    def mfcc(clips: list[np.ndarray]) -> list[np.ndarray]:
        return [mfcc_from_logmel(c, 13) for c in clips]

    model = get_baseline("bof_lr", input_kind="mfcc", n_codewords=16).fit(mfcc(train_x), train_y)
    proba = model.predict_proba(mfcc(test_x))
    assert roc_auc_score(test_y[:, 1], proba[:, 1]) > 0.9


def test_pooled_statistics_known_values() -> None:
    clip = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    stats = pooled_statistics([clip])
    # mean, std, delta mean, delta std per bin
    np.testing.assert_allclose(stats[0], [2.0, 1.0, np.sqrt(8 / 3), 0.0, 2.0, 0.0, 0.0, 0.0], rtol=1e-6)
    # a single frame has no difference: deltas are zero, not NaN
    assert np.isfinite(pooled_statistics([clip[:1]])).all()


def test_mfcc_is_the_orthonormal_dct_of_the_log_mel() -> None:
    rng = np.random.default_rng(0)
    logmel = rng.normal(size=(5, 8))
    n = np.arange(8)
    basis = np.array([np.cos(np.pi * k * (2 * n + 1) / 16) for k in range(4)])
    basis *= np.sqrt(2 / 8)
    basis[0] /= np.sqrt(2)
    np.testing.assert_allclose(mfcc_from_logmel(logmel, 4), logmel @ basis.T, atol=1e-12)


def test_unknown_baseline_lists_the_known_ones() -> None:
    with pytest.raises(ParameterError, match="nope") as err:
        get_baseline("nope")
    for name in ("rf", "knn", "bof_lr"):
        assert name in str(err.value)


def test_bad_options_and_inputs_raise(toy, tmp_path: Path) -> None:
    train_x, train_y, test_x, _ = toy
    with pytest.raises(ParameterError, match="n_trees"):
        get_baseline("rf", n_trees=10)
    with pytest.raises(ParameterError, match="n_neighbors"):
        get_baseline("knn", n_neighbors=0)
    with pytest.raises(ParameterError, match="input_kind"):
        get_baseline("bof_lr", input_kind="chroma")
    model = get_baseline("knn")
    with pytest.raises(ParameterError, match="not fitted"):
        model.predict_proba(test_x)
    with pytest.raises(ParameterError, match="labels"):
        model.fit(train_x, train_y[:-1])
    with pytest.raises(ParameterError, match="0/1"):
        model.fit(train_x, train_y * 2)
    with pytest.raises(ParameterError, match="empty"):
        model.fit([], train_y[:0])
    with pytest.raises(ParameterError, match=r"features\[1\]"):
        model.fit([train_x[0], train_x[1][:, :5]], train_y[:2])
    model.fit(train_x, train_y)
    with pytest.raises(ParameterError, match=r"features\[0\].*24 bins"):
        model.predict_proba([x[:, :10] for x in test_x])
    with pytest.raises(RunDirError, match="missing.npz"):
        load_baseline(tmp_path / "missing.npz")
    with pytest.raises(ParameterError, match="not fitted"):
        get_baseline("rf").save(tmp_path / "unfitted.npz")


@pytest.mark.parametrize("n_tags", [1, 2])
def test_forest_arrays_predict_what_scikit_learn_does(toy, n_tags: int) -> None:
    """The random forest predicts from its node arrays: bit for bit what the scikit-learn forest gives."""
    train_x, train_y, test_x, _ = toy
    model = get_baseline("rf", **FAST["rf"]).fit(train_x, train_y[:, :n_tags])
    x, y = pooled_statistics(train_x), train_y[:, :n_tags]
    forest = RandomForestClassifier(n_estimators=60, max_features="sqrt", random_state=0)
    forest.fit(x, y[:, 0] if n_tags == 1 else y)
    expected = forest.predict_proba(pooled_statistics(test_x))
    expected = expected if isinstance(expected, list) else [expected]
    np.testing.assert_array_equal(model.predict_proba(test_x), np.stack([p[:, 1] for p in expected], axis=1))


class _RunsCode:
    """A pickle payload: unpickling it creates ``marker`` (what a crafted baseline file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_pickle_where_a_baseline_belongs_is_never_unpickled(tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "code-ran"
    payload = pickle.dumps(_RunsCode(marker))
    (tmp_path / "baseline.npz").write_bytes(payload)
    with pytest.raises(DataFormatError, match="not a saved baseline"):
        load_baseline(tmp_path / "baseline.npz")
    # an older version's pickle beside the expected file is named, never loaded
    (tmp_path / "old.joblib").write_bytes(payload)
    with pytest.raises(RunDirError, match=r"old\.joblib.*never loaded"):
        load_baseline(tmp_path / "old.npz")
    # an .npz holding a pickled object array
    np.savez(tmp_path / "objects.npz", meta=np.array([_RunsCode(marker)], dtype=object))
    with pytest.raises(DataFormatError, match="pickle"):
        load_baseline(tmp_path / "objects.npz")
    assert not marker.exists(), "a pickle in a run folder ran its code"


def _tamper(path: Path, out: Path, **changes) -> Path:
    """Copy a saved baseline with some arrays replaced (``meta`` may be given as a dict)."""
    with np.load(path, allow_pickle=False) as saved:
        arrays = {key: saved[key] for key in saved.files}
    for key, value in changes.items():
        if key == "meta" and isinstance(value, dict):
            value = np.frombuffer(json.dumps(value).encode(), dtype=np.uint8)
        arrays[key] = value
    np.savez(out, **arrays)
    return out


def test_tampered_baselines_are_refused(toy, tmp_path: Path) -> None:
    train_x, train_y, test_x, _ = toy
    path = tmp_path / "rf.npz"
    get_baseline("rf", n_estimators=3).fit(train_x, train_y).save(path)
    with np.load(path, allow_pickle=False) as saved:
        meta = json.loads(saved["meta"].tobytes())
        left, feature = saved["left"].copy(), saved["feature"].copy()
    assert load_baseline(path).predict_proba(test_x).shape == (len(test_x), 2)
    loop = left.copy()
    loop[0] = 0  # the root's left child is itself: a walk that never ends
    far = feature.copy()
    far[0] = 10_000  # a feature the pooled statistics do not have: reads past the row
    cases = {
        "loop": ({"left": loop}, "do not form trees"),
        "feature": ({"feature": far}, "do not form trees"),
        "shape": ({"value": np.zeros((2, 2))}, "'value' has shape"),
        "nan": ({"threshold": np.full(len(left), np.nan)}, "NaN"),
        "dtype": ({"left": left.astype(np.float64)}, "expected integers"),
        "missing": ({"meta": {**meta, "format": "other"}}, "record"),
        "version": ({"meta": {**meta, "version": 99}}, "version 99"),
        "tags": ({"meta": {**meta, "varying": [0]}}, "split the 2 tags"),
        "name": ({"meta": {**meta, "name": "os.system"}}, "unknown baseline"),
        "options": ({"meta": {**meta, "options": {"n_estimators": "many"}}}, "bad options"),
        "json": ({"meta": np.frombuffer(b"{not json", dtype=np.uint8)}, "not JSON"),
    }
    for name, (changes, message) in cases.items():
        bad = _tamper(path, tmp_path / f"{name}.npz", **changes)
        error = RunDirError if name == "version" else DataFormatError
        with pytest.raises(error, match=message):
            load_baseline(bad)
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(DataFormatError, match="single array"):
        load_baseline(tmp_path / "single.npy")
