"""Classical baselines for the CNN taggers: pooled mel statistics and MFCC bag-of-frames.

- ``rf``: random forest on pooled mel statistics, and ``knn``: k-nearest neighbours on the same
  statistics standardised (the baselines of the NYU tagging project);
- ``bof_lr``: MFCC bag-of-frames, a k-means codebook over MFCC frames, a histogram of codewords
  per clip and one logistic regression per tag (the baseline of the RWTH thesis).

Every baseline takes a list of per-clip feature matrices of shape (T, n_bins), frames first
(a log-mel spectrogram; ``bof_lr`` also accepts MFCCs), and a binary label matrix (n, k).
A tag with a single class in the training labels gets that class as a constant prediction.
A fitted baseline pickles with joblib (`Baseline.save`, `load_baseline`).

>>> model = get_baseline("rf", n_estimators=100).fit(train_feats, train_labels)
>>> proba = model.predict_proba(test_feats)  # (n_test, k)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import joblib
import numpy as np
from scipy.fft import dct
from sklearn.cluster import MiniBatchKMeans
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from pipeline.errors import DataFormatError, ParameterError, RunDirError
from pipeline.io import atomic_path

logger = logging.getLogger(__name__)


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


class Baseline:
    """Common interface: ``fit(features, labels) -> self`` and ``predict_proba(features) -> (n, k)``.

    Subclasses turn clips into fixed-size vectors (`_fit_transform`, `_transform`) and fit one
    model on the tags that have both classes (`_fit_model`, `_predict_model`); this class
    validates inputs and fills the tags with a single class with that class.
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
        x = self._fit_transform(features)
        if len(self.varying_):
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
        """Pickle the fitted baseline to ``path`` with joblib (atomically)."""
        with atomic_path(path) as tmp:
            joblib.dump(self, tmp)

    # the parts a subclass provides
    def _fit_transform(self, features: Sequence[np.ndarray]) -> np.ndarray:
        return self._transform(features)

    def _transform(self, features: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict_model(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _PooledStatsBaseline(Baseline):
    """A multi-output scikit-learn classifier on `pooled_statistics`."""

    def _make_estimator(self, n_clips: int) -> Any:
        raise NotImplementedError

    def _transform(self, features: Sequence[np.ndarray]) -> np.ndarray:
        return pooled_statistics(features)

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        # scikit-learn wants a 1-D target when a single tag varies
        self.estimator_ = self._make_estimator(len(x)).fit(x, y[:, 0] if y.shape[1] == 1 else y)

    def _predict_model(self, x: np.ndarray) -> np.ndarray:
        proba = self.estimator_.predict_proba(x)
        proba = proba if isinstance(proba, list) else [proba]  # one output gives one array
        # every fitted tag has both classes, so column 1 is the positive class
        return np.stack([p[:, 1] for p in proba], axis=1)


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

    def _make_estimator(self, n_clips: int) -> Any:
        o = self.options
        return RandomForestClassifier(
            n_estimators=o["n_estimators"],
            min_samples_leaf=o["min_samples_leaf"],
            max_features=o["max_features"],
            n_jobs=o["n_jobs"],
            random_state=o["seed"],
        )


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

    def _make_estimator(self, n_clips: int) -> Any:
        k = min(self.options["n_neighbors"], n_clips)
        return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k, weights=self.options["weights"]))


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
        self.frame_scaler_ = StandardScaler().fit(sample)
        k = min(o["n_codewords"], len(sample))
        logger.info("bof_lr: fitting a %d-word codebook on %d of %d frames", k, len(sample), total)
        self.codebook_ = MiniBatchKMeans(n_clusters=k, random_state=o["seed"], n_init=3, batch_size=4096).fit(
            self.frame_scaler_.transform(sample)
        )
        hist = self._histograms(features)
        self.hist_scaler_ = StandardScaler().fit(hist)
        return self.hist_scaler_.transform(hist)

    def _histograms(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Square-rooted codeword frequencies per clip: (n, n_codewords)."""
        k = self.codebook_.n_clusters
        rows = []
        for f in _progress(features, "bof_lr histograms"):
            words = self.codebook_.predict(self.frame_scaler_.transform(self._frames(f)))
            rows.append(np.sqrt(np.bincount(words, minlength=k) / len(words)))
        return np.stack(rows)

    def _transform(self, features: Sequence[np.ndarray]) -> np.ndarray:
        return self.hist_scaler_.transform(self._histograms(features))

    def _fit_model(self, x: np.ndarray, y: np.ndarray) -> None:
        o = self.options
        self.regressions_ = [
            LogisticRegression(C=o["C"], max_iter=1000, random_state=o["seed"]).fit(x, y[:, j])
            for j in range(y.shape[1])
        ]

    def _predict_model(self, x: np.ndarray) -> np.ndarray:
        return np.stack([r.predict_proba(x)[:, 1] for r in self.regressions_], axis=1)


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
    except TypeError as err:  # an option the baseline does not take
        raise ParameterError(f"baseline {name!r}: {err}") from err


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Load a baseline saved with `Baseline.save`."""
    if not os.path.isfile(path):
        raise RunDirError(f"no saved baseline at {path}")
    obj = joblib.load(path)
    if not isinstance(obj, Baseline):
        raise DataFormatError(f"{path}: expected a saved baseline, found a {type(obj).__name__}")
    return obj
