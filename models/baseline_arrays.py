"""A fitted baseline as plain arrays: read back checked, never unpickled.

`SavedArrays` checks each array of a saved baseline (dtype, shape, finiteness) as it is read;
`ForestArrays` holds a random forest's trees as node arrays and predicts exactly as
scikit-learn does, so a run folder from elsewhere never needs pickle to be scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import DataFormatError, ParameterError


class SavedArrays:
    """The arrays of a saved baseline, each checked for dtype, shape and finiteness when read."""

    def __init__(self, arrays: Mapping[str, np.ndarray], path: Path) -> None:
        self.arrays = arrays
        self.path = path

    def fail(self, what: str) -> DataFormatError:
        return DataFormatError(f"{self.path}: {what}; not a baseline this toolkit saved (retrain the run)")

    def get(self, key: str, shape: tuple[int | None, ...], kind: str = "f") -> np.ndarray:
        """Array ``key`` of ``shape`` (None: any length) and dtype kind ``"f"`` (finite floats) or ``"i"``."""
        if key not in self.arrays:
            raise self.fail(f"no '{key}' array")
        a = self.arrays[key]
        kinds = "f" if kind == "f" else "iu"
        if a.dtype.kind not in kinds:
            raise self.fail(f"'{key}' has dtype {a.dtype}, expected {'floats' if kind == 'f' else 'integers'}")
        if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
            raise self.fail(f"'{key}' has shape {a.shape}, expected {tuple('n' if s is None else s for s in shape)}")
        if kind == "f" and not np.isfinite(a).all():
            raise self.fail(f"'{key}' holds NaN or infinite values")
        return a.astype(np.float64) if kind == "f" else a.astype(np.int64)

    def standardiser(self, prefix: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
        mean, scale = self.get(f"{prefix}_mean", (dim,)), self.get(f"{prefix}_scale", (dim,))
        if (scale <= 0).any():
            raise self.fail(f"'{prefix}_scale' holds values <= 0")
        return mean, scale


class ForestArrays:
    """A fitted multi-output random forest as node arrays, predicting as scikit-learn's does.

    Node ``i`` of tree ``t`` is row ``offsets[t] + i``; ``left`` / ``right`` hold the children's
    indices within the tree (-1 at a leaf), ``value`` the class weights of every output (two
    classes each). A sample goes left where ``x[feature] <= threshold``; the forest averages the
    trees' leaf class frequencies, in the same order of operations as scikit-learn, so the
    probabilities are the same to the last bit.
    """

    KEYS = ("offsets", "left", "right", "feature", "threshold", "value")

    def __init__(self, offsets: np.ndarray, left: np.ndarray, right: np.ndarray, feature: np.ndarray,
                 threshold: np.ndarray, value: np.ndarray) -> None:
        self.offsets, self.left, self.right = offsets, left, right
        self.feature, self.threshold, self.value = feature, threshold, value

    @classmethod
    def from_sklearn(cls, forest: Any) -> ForestArrays:
        """From a fitted ``sklearn.ensemble.RandomForestClassifier``."""
        trees = [e.tree_ for e in forest.estimators_]
        sizes = [t.node_count for t in trees]
        return cls(
            offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            left=np.concatenate([t.children_left for t in trees]).astype(np.int64),
            right=np.concatenate([t.children_right for t in trees]).astype(np.int64),
            feature=np.concatenate([t.feature for t in trees]).astype(np.int64),
            threshold=np.concatenate([t.threshold for t in trees]).astype(np.float64),
            value=np.concatenate([t.value for t in trees]).astype(np.float64),
        )

    @classmethod
    def load(cls, saved: SavedArrays, n_features: int, n_outputs: int) -> ForestArrays:
        """Read and check the arrays: every path from a root must end at a leaf inside its tree."""
        offsets = saved.get("offsets", (None,), "i")
        if len(offsets) < 2 or offsets[0] != 0 or (np.diff(offsets) < 1).any():
            raise saved.fail("'offsets' must start at 0 and increase")
        n = int(offsets[-1])
        left, right = saved.get("left", (n,), "i"), saved.get("right", (n,), "i")
        feature, threshold = saved.get("feature", (n,), "i"), saved.get("threshold", (n,))
        value = saved.get("value", (n, n_outputs, 2))
        tree = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        local, size = np.arange(n) - offsets[tree], np.diff(offsets)[tree]
        leaf = left == -1
        # children after their parent (as scikit-learn builds trees) bound every walk by the tree's size
        inner_ok = (left > local) & (left < size) & (right > local) & (right < size)
        inner_ok &= (feature >= 0) & (feature < n_features)
        if not np.where(leaf, right == -1, inner_ok).all():
            raise saved.fail("the forest's node arrays do not form trees over "
                             f"{n_features} features (children must follow their parent within the tree)")
        if (value < 0).any():
            raise saved.fail("'value' holds negative class weights")
        return cls(offsets, left, right, feature, threshold, value)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.KEYS}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class of each output: (n, n_outputs)."""
        x = np.asarray(x, dtype=np.float32)  # scikit-learn's trees compare float32 features
        if not np.isfinite(x).all():
            raise ParameterError("rf: the pooled statistics hold NaN or infinite values")
        total = np.zeros((len(x), self.value.shape[1], 2))
        for lo, hi in zip(self.offsets[:-1], self.offsets[1:]):
            left, right = self.left[lo:hi], self.right[lo:hi]
            feature, threshold = self.feature[lo:hi], self.threshold[lo:hi]
            node = np.zeros(len(x), dtype=np.int64)
            inner = np.flatnonzero(left[node] != -1)
            while len(inner):
                at = node[inner]
                go_left = x[inner, feature[at]] <= threshold[at]
                node[inner] = np.where(go_left, left[at], right[at])
                inner = inner[left[node[inner]] != -1]
            proba = self.value[lo + node]  # (n, n_outputs, 2), a copy
            norm = proba.sum(axis=2, keepdims=True)
            norm[norm == 0.0] = 1.0
            proba /= norm
            total += proba
        total /= len(self.offsets) - 1
        return total[:, :, 1]
