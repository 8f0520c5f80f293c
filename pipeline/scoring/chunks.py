"""Chunks of a clip and their aggregation: the one chunking and the one aggregation of the project.

A clip of any length is cut into chunks of the model's input length (by default the last
chunk aligned to the clip's end, so the whole clip is seen; with ``tail="drop"`` the frames
after the last whole chunk are left out, as musicnn does; a clip shorter than one chunk is
zero-padded after normalisation), each chunk
is scored, and the chunk outputs are combined per clip by their mean or their max, as in the
RWTH thesis and in Won et al. 2020. Training's validation, the score stage and both taggers
call these functions, so every clip score of the project is cut and combined the same way.
Only numpy is imported: the torch-free tagger uses this module too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from pipeline.errors import ParameterError

AGGREGATES: tuple[str, ...] = ("mean", "max")
# What happens to a clip's frames after its last whole chunk: "cover" adds a chunk aligned to
# the clip's end (every frame is seen); "drop" leaves them out (musicnn's own batching, which
# its published models are verified against).
TAILS: tuple[str, ...] = ("cover", "drop")


class Network(Protocol):
    """What chunk and taggram scoring need from a model, whatever runs it (torch or ONNX Runtime)."""

    def logits(self, x: np.ndarray) -> np.ndarray:  # (N, n_bins, T) -> (N, n_tags)
        ...

    def frame_logits(self, x: np.ndarray) -> np.ndarray:  # (N, n_bins, T) -> (N, T', n_tags)
        ...


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, float32, without overflow warnings for large negative logits."""
    x = np.asarray(x, dtype=np.float32)
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


def check_aggregate(aggregate: str) -> str:
    """``aggregate`` itself, or a `ParameterError` naming the accepted values."""
    if aggregate not in AGGREGATES:
        raise ParameterError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    return aggregate


def check_tail(tail: str) -> str:
    """``tail`` itself, or a `ParameterError` naming the accepted values."""
    if tail not in TAILS:
        raise ParameterError(f"chunk tail must be one of {TAILS}, got {tail!r}")
    return tail


def chunk_starts(n_frames: int, chunk_frames: int, hop: int | None = None, tail: str = "cover") -> list[int]:
    """Start frames of a clip's chunks: ``hop`` apart; with ``tail="cover"`` the last is aligned to the clip's end."""
    hop = chunk_frames if hop is None else hop
    starts = list(range(0, max(n_frames - chunk_frames, 0) + 1, hop))
    if check_tail(tail) == "cover" and n_frames > chunk_frames and starts[-1] + chunk_frames < n_frames:
        starts.append(n_frames - chunk_frames)
    return starts


def chunk_clip(features: np.ndarray, chunk_frames: int, hop: int | None = None, *,
               normalizer: Callable[[np.ndarray], np.ndarray] | None = None, tail: str = "cover") -> np.ndarray:
    """Cut one clip's features into model inputs.

    Parameters
    ----------
    features : np.ndarray [shape=(T, n_bins)]  one clip (any T >= 1)
    chunk_frames : frames per chunk (the model's input length)
    hop : frames between chunk starts (default ``chunk_frames``: no overlap)
    normalizer : applied to each chunk before padding (so padding is the normalised mean, zero)
    tail : ``"cover"``: a last chunk aligned to the clip's end, so the whole clip is covered
        without padding; ``"drop"``: the frames after the last whole chunk are left out

    Returns
    -------
    np.ndarray [shape=(n_chunks, n_bins, chunk_frames), dtype=float32]  a clip shorter than
        ``chunk_frames`` gives one chunk, zero-padded at the end

    Examples
    --------
    >>> chunk_clip(np.ones((10, 2)), 4).shape
    (3, 2, 4)
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] < 1:
        raise ParameterError(f"features must have shape (T >= 1, n_bins), got {features.shape}")
    if chunk_frames < 1:
        raise ParameterError(f"chunk_frames must be >= 1, got {chunk_frames}")
    if hop is not None and hop < 1:
        raise ParameterError(f"hop must be >= 1, got {hop}")
    n_frames, n_bins = features.shape
    starts = chunk_starts(n_frames, chunk_frames, hop, tail)
    out = np.zeros((len(starts), n_bins, chunk_frames), dtype=np.float32)
    for i, start in enumerate(starts):
        chunk = features[start:start + chunk_frames]
        chunk = normalizer(chunk) if normalizer is not None else chunk.astype(np.float32)
        out[i, :, :len(chunk)] = chunk.T
    return out


def aggregate_chunks(values: np.ndarray, counts: Sequence[int], aggregate: str = "mean") -> np.ndarray:
    """Combine per-chunk rows (sum(counts), d) into per-clip rows (len(counts), d), float32.

    ``counts[i]`` consecutive rows belong to clip ``i``; ``aggregate`` is ``mean`` or ``max``.
    Probabilities and penultimate embeddings both go through here.
    """
    check_aggregate(aggregate)
    values = np.asarray(values)
    if int(np.sum(counts)) != len(values):
        raise ParameterError(f"counts sum to {int(np.sum(counts))} chunks, got {len(values)} rows")
    if not len(counts):
        return np.zeros((0, *values.shape[1:]), dtype=np.float32)
    bounds = np.cumsum([0, *counts])
    reduce = np.mean if aggregate == "mean" else np.max
    return np.stack([reduce(values[a:b], axis=0) for a, b in zip(bounds[:-1], bounds[1:])]).astype(np.float32)
