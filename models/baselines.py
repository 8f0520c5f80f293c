"""Classical baselines for the CNN taggers: pooled mel statistics and MFCC bag-of-frames.

- ``rf``: random forest on pooled mel statistics, and ``knn``: k-nearest neighbours on the same
  statistics standardised (the baselines of the NYU tagging project);
- ``bof_lr``: MFCC bag-of-frames, a k-means codebook over MFCC frames, a histogram of codewords
  per clip and one logistic regression per tag (the baseline of the RWTH thesis).

Every baseline takes a list of per-clip feature matrices of shape (T, n_bins), frames first
(a log-mel spectrogram; ``bof_lr`` also accepts MFCCs), and a binary label matrix (n, k).
A tag with a single class in the training labels gets that class as a constant prediction.

A fitted baseline is saved as arrays and JSON in one ``.npz`` (`Baseline.save`, `load_baseline`),
never pickled: a run folder may come from anyone, and unpickling it would run its code. Each
baseline predicts from those arrays alone (a forest's trees as node arrays, k-NN's standardised
training matrix, the codebook and the regressions' coefficients), so a reloaded baseline
predicts exactly what the fitted one did, and `load_baseline` validates every array first.

>>> model = get_baseline("rf", n_estimators=100).fit(train_feats, train_labels)
>>> proba = model.predict_proba(test_feats)  # (n_test, k)
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.fft import dct
from scipy.special import expit
from sklearn.cluster import MiniBatchKMeans
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from models.baseline_arrays import ForestArrays, SavedArrays
from pipeline.errors import DataFormatError, ParameterError, RunDirError
from pipeline.io import save_npz

logger = logging.getLogger(__name__)

FORMAT = "musictag-baseline"  # the "format" field of a saved baseline's JSON
FORMAT_VERSION = 1  # bumped when the saved arrays change meaning


def _check_features(features: Sequence[np.ndarray], n_bins: int | None = None) -> int:
    """Validate a list of (T, n_bins) matrices; return n_bins."""
    if len(features) == 0:
        raise ParameterError("features: expected at least one clip, got an empty list")
    for i, f in enumerate(features):
        shape = np.shape(f)
        if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
            raise ParameterError(f"features[{i}]: expected a (T, n_bins) matrix with T, n_bins >= 1, got shape {shape}")
        if n_bins is None:
            n_bins = shape[1]
        elif shape[1] != n_bins:
            raise ParameterError(f"features[{i}]: expected {n_bins} bins like the other clips, got shape {shape}")
    assert n_bins is not None
    return n_bins


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 2 or y.shape[0] != n:
        raise ParameterError(f"labels: expected shape ({n}, n_tags), one row per clip, got {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ParameterError(f"labels: expected 0/1 values, got {np.unique(y)[:10].tolist()}")
    return y.astype(np.int8)


def _progress(features: Sequence[np.ndarray], desc: str) -> Any:
    # a bar only for collections big enough to take a noticeable time
    return tqdm(features, desc=desc, leave=False, disable=len(features) < 500)


def pooled_statistics(features: Sequence[np.ndarray]) -> np.ndarray:
    """Per-bin mean and std of each clip's frames and of their first differences.

    Parameters
    ----------
    features : list of np.ndarray [shape=(T, n_bins)]

    Returns
    -------
    np.ndarray [shape=(n_clips, 4 * n_bins)]: mean, std, delta mean, delta std
    """
    _check_features(features)
    rows = []
    for f in _progress(features, "pooled statistics"):
        x = np.asarray(f, dtype=np.float64)
        d = np.diff(x, axis=0) if len(x) > 1 else np.zeros_like(x)
        rows.append(np.concatenate([x.mean(0), x.std(0), d.mean(0), d.std(0)]))
    return np.stack(rows).astype(np.float32)


def mfcc_from_logmel(logmel: np.ndarray, n_mfcc: int = 20) -> np.ndarray:
    """MFCCs as the orthonormal DCT-II of log-mel frames (what ``librosa.feature.mfcc`` computes).

    logmel : (T, n_mels) -> (T, min(n_mfcc, n_mels))
    """
    return dct(np.asarray(logmel, dtype=np.float64), type=2, norm="ortho", axis=1)[:, :n_mfcc]


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and scale of ``x`` (scikit-learn's: a constant column gets scale 1)."""
    scaler = StandardScaler().fit(x)
    return scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64)


def _standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (np.asarray(x, dtype=np.float64) - mean) / scale


class Baseline:
    """Common interface: ``fit(features, labels) -> self`` and ``predict_proba(features) -> (n, k)``.

    Subclasses turn clips into fixed-size vectors (`_fit_transform`, `_transform`), fit one
    model on the tags that have both classes (`_fit_model`, `_predict_model`) and hand that
    model over as plain arrays (`_arrays`, `_restore`); this class validates inputs, fills the
    tags with a single class with that class, and saves and loads.
    """

    name = ""

    def __init__(self, **options: Any) -> None:
        self.options = options  # the resolved options, for the run's manifest
        self.n_bins_: int | None = None
        self.n_tags_ = 0
        self.varying_ = np.zeros(0, dtype=int)
        self.constant_: dict[int, float] = {}

    def fit(self, features: Sequence[np.ndarray], labels: np.ndarray) -> Baseline:
        """Fit on clips ``features`` (list of (T, n_bins)) with labels (n, k) of 0/1."""
        self.n_bins_ = _check_features(features)
        y = _check_labels(labels, len(features))
        self.n_tags_ = y.shape[1]
        single = y.min(axis=0) == y.max(axis=0)
        self.constant_ = {int(j): float(y[0, j]) for j in np.flatnonzero(single)}
        self.varying_ = np.flatnonzero(~single)
        if self.constant_:
            logger.info(
                "%s: %d tag(s) have one class in training; predicted as constants", self.name, len(self.constant_)
            )
        if len(self.varying_):
            x = self._fit_transform(features)
            self._fit_model(x, y[:, self.varying_])
        return self

    def predict_proba(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Probability of each tag for each clip: (n, k)."""
        if self.n_bins_ is None:
            raise ParameterError(f"baseline {self.name!r} is not fitted; call fit first")
        _check_features(features, self.n_bins_)
        out = np.empty((len(features), self.n_tags_), dtype=np.float64)
        for j, value in self.constant_.items():
            out[:, j] = value
        if len(self.varying_):
            out[:, self.varying_] = self._predict_model(self._transform(features))
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the fitted baseline to ``path`` (``.npz``: its arrays and a JSON record, atomically)."""
        if self.n_bins_ is None:
            raise ParameterError(f"baseline {self.name!r} is not fitted; call fit first")
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "name": self.name, "options": self.options,
                "n_bins": self.n_bins_, "n_tags": self.n_tags_, "varying": [int(j) for j in self.varying_],
                "constant": {str(j): v for j, v in self.constant_.items()}}
        arrays = self._arrays() if len(self.varying_) else {}
        save_npz(path, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8), **arrays)

    # the parts a subclass provides
    def _fit_transform(self, features: Sequence[np.ndarray]) -> np.ndarray:
        return self._transform(features)

    def _transform(self, features: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict_model(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as named arrays (called only when some tag varies)."""
        raise NotImplementedError

    def _restore(self, saved: SavedArrays) -> None:
        """Take the fitted state back from validated arrays (``n_bins_`` and ``varying_`` are set)."""
        raise NotImplementedError


class _PooledStatsBaseline(Baseline):
    """A multi-output classifier on `pooled_statistics`."""

    def _transform(self, features: Sequence[np.ndarray]) -> np.ndarray:
        return pooled_statistics(features)

    @property
    def _dim(self) -> int:
        assert self.n_bins_ is not None
        return 4 * self.n_bins_


class RandomForestBaseline(_PooledStatsBaseline):
    """Random forest on pooled mel statistics (one multi-output forest for all tags).

    Parameters
    ----------
    n_estimators : trees in the forest
    min_samples_leaf : smallest leaf; larger values smooth the probabilities
    max_features : features tried per split (scikit-learn's meaning)
    n_jobs : parallel jobs (1 keeps a shared machine usable)
    seed : random state
    """

    name = "rf"

    def __init__(
        self,
        *,
        n_estimators: int = 300,
        min_samples_leaf: int = 1,
        max_features: str | float = "sqrt",
        n_jobs: int = 1,
        seed: int = 0,
    ) -> None:
        if n_estimators < 1:
            raise ParameterError(f"rf n_estimators must be >= 1, got {n_estimators}")
        super().__init__(
            n_estimators=n_estimators,
            min_samples_leaf=min_samples_leaf,
            max_features=max_features,
            n_jobs=n_jobs,
            seed=seed,
        )

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        o = self.options
        forest = RandomForestClassifier(
            n_estimators=o["n_estimators"],
            min_samples_leaf=o["min_samples_leaf"],
            max_features=o["max_features"],
            n_jobs=o["n_jobs"],
            random_state=o["seed"],
        )
        # scikit-learn wants a 1-D target when a single tag varies (its trees still hold one output)
        self.forest_ = ForestArrays.from_sklearn(forest.fit(x, y[:, 0] if y.shape[1] == 1 else y))

    def _predict_model(self, x: np.ndarray) -> np.ndarray:
        return self.forest_.predict(x)

    def _arrays(self) -> dict[str, np.ndarray]:
        return self.forest_.arrays()

    def _restore(self, saved: SavedArrays) -> None:
        self.forest_ = ForestArrays.load(saved, self._dim, len(self.varying_))


class KNNBaseline(_PooledStatsBaseline):
    """k-nearest neighbours on standardised pooled mel statistics.

    Parameters
    ----------
    n_neighbors : neighbours voting (clamped to the number of training clips)
    weights : ``"distance"`` (closer neighbours count more, finer probabilities) or ``"uniform"``
    """

    name = "knn"

    def __init__(self, *, n_neighbors: int = 20, weights: str = "distance") -> None:
        if n_neighbors < 1:
            raise ParameterError(f"knn n_neighbors must be >= 1, got {n_neighbors}")
        if weights not in ("distance", "uniform"):
            raise ParameterError(f"knn weights must be 'distance' or 'uniform', got {weights!r}")
        super().__init__(n_neighbors=n_neighbors, weights=weights)

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        self.mean_, self.scale_ = _standardiser(x)
        self._index(_standardise(x, self.mean_, self.scale_), y)

    def _index(self, train_x: np.ndarray, train_y: np.ndarray) -> None:
        """Index the standardised training matrix; fitting k-NN only stores it, so a reload is exact."""
        self.train_x_, self.train_y_ = train_x, train_y.astype(np.int8)
        k = min(self.options["n_neighbors"], len(train_x))
        target = train_y[:, 0] if train_y.shape[1] == 1 else train_y  # 1-D for a single tag, as scikit-learn wants
        self.estimator_ = KNeighborsClassifier(n_neighbors=k, weights=self.options["weights"]).fit(train_x, target)

    def _predict_model(self, x: np.ndarray) -> np.ndarray:
        proba = self.estimator_.predict_proba(_standardise(x, self.mean_, self.scale_))
        proba = proba if isinstance(proba, list) else [proba]  # one output gives one array
        # every fitted tag has both classes, so column 1 is the positive class
        return np.stack([p[:, 1] for p in proba], axis=1)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"stats_mean": self.mean_, "stats_scale": self.scale_, "train_x": self.train_x_,
                "train_y": self.train_y_}

    def _restore(self, saved: SavedArrays) -> None:
        self.mean_, self.scale_ = saved.standardiser("stats", self._dim)
        train_x = saved.get("train_x", (None, self._dim))
        train_y = saved.get("train_y", (len(train_x), len(self.varying_)), "i")
        if len(train_x) < 2 or not np.isin(train_y, (0, 1)).all() or (train_y.min(0) == train_y.max(0)).any():
            raise saved.fail("'train_y' must hold 0/1 labels with both classes for every fitted tag")
        self._index(train_x, train_y)


class BagOfFramesBaseline(Baseline):
    """MFCC bag-of-frames: k-means codebook, codeword histogram per clip, logistic regression per tag.

    Frames are MFCCs (the DCT of log-mel frames, or the input itself when ``input_kind="mfcc"``)
    with their first differences, standardised. Histograms are normalised per clip, square-rooted
    (the Hellinger map, which suits a linear classifier) and standardised.

    Parameters
    ----------
    input_kind : ``"logmel"`` (MFCCs are computed) or ``"mfcc"`` (the features are MFCCs)
    n_mfcc : coefficients kept from the log-mel DCT
    deltas : append first-order differences of the coefficients
    n_codewords : k-means codebook size (clamped to the number of sampled frames)
    max_frames : frames sampled at random to fit the codebook
    C : inverse regularisation strength of each logistic regression
    seed : random state for sampling, k-means and the regressions
    """

    name = "bof_lr"

    def __init__(
        self,
        *,
        input_kind: str = "logmel",
        n_mfcc: int = 20,
        deltas: bool = True,
        n_codewords: int = 256,
        max_frames: int = 200_000,
        C: float = 1.0,
        seed: int = 0,
    ) -> None:
        if input_kind not in ("logmel", "mfcc"):
            raise ParameterError(f"bof_lr input_kind must be 'logmel' or 'mfcc', got {input_kind!r}")
        for key, value in (("n_mfcc", n_mfcc), ("n_codewords", n_codewords), ("max_frames", max_frames)):
            if value < 1:
                raise ParameterError(f"bof_lr {key} must be >= 1, got {value}")
        if C <= 0:
            raise ParameterError(f"bof_lr C must be > 0, got {C}")
        super().__init__(
            input_kind=input_kind,
            n_mfcc=n_mfcc,
            deltas=deltas,
            n_codewords=n_codewords,
            max_frames=max_frames,
            C=C,
            seed=seed,
        )

    @property
    def _frame_dim(self) -> int:
        o = self.options
        assert self.n_bins_ is not None
        coefficients = min(o["n_mfcc"], self.n_bins_) if o["input_kind"] == "logmel" else self.n_bins_
        return coefficients * (2 if o["deltas"] else 1)

    def _frames(self, clip: np.ndarray) -> np.ndarray:  # (T, n_bins) -> (T, D)
        o = self.options
        x = np.asarray(clip, dtype=np.float64)
        x = mfcc_from_logmel(x, o["n_mfcc"]) if o["input_kind"] == "logmel" else x
        if o["deltas"]:
            d = np.diff(x, axis=0, prepend=x[:1])  # first frame's delta is 0
            x = np.concatenate([x, d], axis=1)
        return x.astype(np.float32)

    def _fit_transform(self, features: Sequence[np.ndarray]) -> np.ndarray:
        o = self.options
        rng = np.random.default_rng(o["seed"])
        # sample frames uniformly over the whole training set, clip by clip, so that memory holds
        # the sample and never every frame of the corpus
        lengths = np.array([len(f) for f in features])
        starts = np.concatenate([[0], np.cumsum(lengths)])
        total = int(starts[-1])
        pick = np.sort(rng.choice(total, size=min(total, o["max_frames"]), replace=False))
        bounds = np.searchsorted(pick, starts)
        parts = [
            self._frames(f)[pick[bounds[i] : bounds[i + 1]] - starts[i]]
            for i, f in enumerate(_progress(features, "bof_lr frame sample"))
            if bounds[i + 1] > bounds[i]
        ]
        sample = np.concatenate(parts)
        self.frame_mean_, self.frame_scale_ = _standardiser(sample)
        k = min(o["n_codewords"], len(sample))
        logger.info("bof_lr: fitting a %d-word codebook on %d of %d frames", k, len(sample), total)
        kmeans = MiniBatchKMeans(n_clusters=k, random_state=o["seed"], n_init=3, batch_size=4096)
        self.codebook_ = kmeans.fit(self._scaled_frames(sample)).cluster_centers_.astype(np.float64)
        hist = self._histograms(features)
        self.hist_mean_, self.hist_scale_ = _standardiser(hist)
        return _standardise(hist, self.hist_mean_, self.hist_scale_)

    def _scaled_frames(self, frames: np.ndarray) -> np.ndarray:
        return _standardise(frames, self.frame_mean_, self.frame_scale_).astype(np.float32)

    def _histograms(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Square-rooted codeword frequencies per clip: (n, n_codewords)."""
        k = len(self.codebook_)
        half_norms = 0.5 * (self.codebook_**2).sum(axis=1)  # (k,)
        rows = []
        for f in _progress(features, "bof_lr histograms"):
            # the nearest codeword minimises |c|^2 / 2 - x.c (|x|^2 is the same for every codeword)
            words = np.argmin(half_norms - self._scaled_frames(self._frames(f)) @ self.codebook_.T, axis=1)
            rows.append(np.sqrt(np.bincount(words, minlength=k) / len(words)))
        return np.stack(rows)

    def _transform(self, features: Sequence[np.ndarray]) -> np.ndarray:
        return _standardise(self._histograms(features), self.hist_mean_, self.hist_scale_)

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        o = self.options
        regressions = [
            LogisticRegression(C=o["C"], max_iter=1000, random_state=o["seed"]).fit(x, y[:, j])
            for j in range(y.shape[1])
        ]
        self.coef_ = np.stack([r.coef_[0] for r in regressions]).astype(np.float64)  # (n_varying, k)
        self.intercept_ = np.array([r.intercept_[0] for r in regressions], dtype=np.float64)

    def _predict_model(self, x: np.ndarray) -> np.ndarray:
        return expit(x @ self.coef_.T + self.intercept_)

    def _arrays(self) -> dict[str, np.ndarray]:
        return {"frame_mean": self.frame_mean_, "frame_scale": self.frame_scale_, "codebook": self.codebook_,
                "hist_mean": self.hist_mean_, "hist_scale": self.hist_scale_, "coef": self.coef_,
                "intercept": self.intercept_}

    def _restore(self, saved: SavedArrays) -> None:
        dim = self._frame_dim
        self.frame_mean_, self.frame_scale_ = saved.standardiser("frame", dim)
        self.codebook_ = saved.get("codebook", (None, dim))
        k = len(self.codebook_)
        if not 1 <= k <= self.options["n_codewords"]:
            raise saved.fail(f"the codebook has {k} words, expected 1 to n_codewords={self.options['n_codewords']}")
        self.hist_mean_, self.hist_scale_ = saved.standardiser("hist", k)
        self.coef_ = saved.get("coef", (len(self.varying_), k))
        self.intercept_ = saved.get("intercept", (len(self.varying_),))


BASELINES: dict[str, type[Baseline]] = {
    "rf": RandomForestBaseline,
    "knn": KNNBaseline,
    "bof_lr": BagOfFramesBaseline,
}


def get_baseline(name: str, **options: Any) -> Baseline:
    """Build the baseline registered as ``name`` with keyword ``options``."""
    if name not in BASELINES:
        raise ParameterError(f"unknown baseline {name!r}; known baselines: {', '.join(sorted(BASELINES))}")
    try:
        return BASELINES[name](**options)
    except TypeError as err:  # an option the baseline does not take, or of the wrong type
        raise ParameterError(f"baseline {name!r}: {err}") from err


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_meta(saved: SavedArrays) -> dict[str, Any]:
    """The JSON record of a saved baseline, checked field by field."""
    raw = saved.get("meta", (None,), "i")
    try:
        meta = json.loads(raw.astype(np.uint8).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise saved.fail(f"its 'meta' record is not JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise saved.fail(f"its 'meta' record is not a {FORMAT!r} record")
    if meta.get("version") != FORMAT_VERSION:
        raise RunDirError(f"{saved.path}: saved baseline format version {meta.get('version')!r}; this toolkit "
                          f"reads version {FORMAT_VERSION} (retrain the run)")
    n_bins, n_tags, varying, constant = (meta.get(k) for k in ("n_bins", "n_tags", "varying", "constant"))
    if not (_is_int(n_bins) and n_bins >= 1 and _is_int(n_tags) and n_tags >= 1):
        raise saved.fail(f"n_bins {n_bins!r} and n_tags {n_tags!r} must be integers >= 1")
    if not isinstance(varying, list) or not all(_is_int(j) for j in varying) or not isinstance(constant, dict):
        raise saved.fail("'varying' must be a list of tag indices and 'constant' a mapping")
    if not all(isinstance(v, (int, float)) and v in (0, 1) for v in constant.values()):
        raise saved.fail("'constant' predictions must be 0 or 1")
    try:
        fixed = sorted(int(j) for j in constant)
    except ValueError as exc:
        raise saved.fail(f"'constant' keys must be tag indices ({exc})") from exc
    if sorted([*varying, *fixed]) != list(range(n_tags)):
        raise saved.fail(f"'varying' and 'constant' must split the {n_tags} tags between them")
    if not isinstance(meta.get("options"), dict) or meta.get("name") not in BASELINES:
        raise saved.fail(f"unknown baseline {meta.get('name')!r} or options {meta.get('options')!r}")
    return meta


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Load a baseline saved with `Baseline.save`, validating every array (nothing is unpickled).

    Raises `RunDirError` when there is no file (naming an old pickled ``.joblib`` found beside
    it, which is never loaded) and `DataFormatError` for anything that is not a saved baseline.
    """
    path = Path(path)
    if not path.is_file():
        legacy = path.with_suffix(".joblib")
        if legacy.is_file():
            raise RunDirError(f"{legacy}: a pickled baseline of an older version, never loaded (a pickle can run "
                              f"code); retrain the run to save {path.name}")
        raise RunDirError(f"no saved baseline at {path}")
    try:
        # allow_pickle=False: numpy refuses object arrays and pickled files instead of running them
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError(f"a single array of shape {np.shape(npz)}")
        with npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFormatError(f"{path}: not a saved baseline (arrays + JSON): {exc}; retrain the run") from exc
    saved = SavedArrays(arrays, path)
    meta = _read_meta(saved)
    try:
        baseline = get_baseline(meta["name"], **meta["options"])
    except ParameterError as exc:
        raise saved.fail(f"bad options: {exc}") from exc
    baseline.n_bins_, baseline.n_tags_ = meta["n_bins"], meta["n_tags"]
    baseline.varying_ = np.array(sorted(meta["varying"]), dtype=int)
    baseline.constant_ = {int(j): float(v) for j, v in meta["constant"].items()}
    if len(baseline.varying_):
        baseline._restore(saved)
    return baseline
