"""What a channel likes across the corpus: correlations with tags, which channels to keep, top clips (numpy only)."""

from __future__ import annotations

import numpy as np

MAX_CHANNELS = 16  # channels per layer whose corpus statistics the score stage keeps
TOP_CLIPS = 10  # top-activating clips listed per channel


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of ``x`` (n, k) with every column of ``y`` (n, m): (k, m), float32.

    NaN where either column is constant, where ``y``'s column holds a NaN (a tag the corpus does
    not annotate) or with fewer than two rows: a correlation without variation is undefined, not 0.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x and y must be 2-D with the same rows, got {x.shape} and {y.shape}")
    out = np.full((x.shape[1], y.shape[1]), np.nan)
    cols = np.flatnonzero(np.isfinite(y).all(axis=0))
    if len(x) < 2 or not len(cols):
        return out.astype(np.float32)
    xs = x - x.mean(axis=0)
    ys = y[:, cols] - y[:, cols].mean(axis=0)
    sx, sy = np.sqrt((xs ** 2).sum(axis=0)), np.sqrt((ys ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xs.T @ ys) / np.outer(sx, sy)
    r[(sx < 1e-12)[:, None] | (sy < 1e-12)[None, :]] = np.nan
    out[:, cols] = np.clip(r, -1.0, 1.0)
    return out.astype(np.float32)


def select_channels(clip_means: np.ndarray, k: int = MAX_CHANNELS) -> np.ndarray:
    """The at most ``k`` channels whose clip means vary most across the corpus (largest standard deviation).

    A channel that is the same on every clip (dead, or always on) can say nothing about what
    distinguishes clips, so it is never kept; ties keep channel order. Returns channel indices,
    in channel order.
    """
    clip_means = np.asarray(clip_means, dtype=np.float64)
    spread = clip_means.std(axis=0) if len(clip_means) else np.zeros(clip_means.shape[1])
    order = np.argsort(-spread, kind="stable")
    kept = [int(c) for c in order[:k] if spread[c] > 1e-12]
    return np.array(sorted(kept), dtype=np.int64)


def top_clips(values: np.ndarray, k: int = TOP_CLIPS) -> np.ndarray:
    """Rows of the ``k`` largest finite values, largest first (ties in row order)."""
    values = np.asarray(values, dtype=np.float64)
    rows = np.flatnonzero(np.isfinite(values))
    order = rows[np.argsort(-values[rows], kind="stable")]
    return order[:k]


def top_tags(correlations: np.ndarray, tags: list[str], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` tags most positively correlated with one channel (its row of channel_tags.npy)."""
    r = np.asarray(correlations, dtype=np.float64)
    rows = np.flatnonzero(np.isfinite(r))
    order = rows[np.argsort(-r[rows], kind="stable")][:k]
    return [(tags[i], float(r[i])) for i in order]
