"""The one pass that scores clips: probabilities, penultimate embeddings and taggrams together.

`score_clips` is the only place a clip's scores are computed from a network. The score stage,
the torch and ONNX taggers and `pipeline.scoring.inference.RunModel` all call it, so the clip
probabilities of predictions.parquet, the embeddings the embed stage projects and the
probabilities ``python -m pipeline tag`` prints are the same numbers. Each clip is cut into
chunks (`pipeline.scoring.chunks.chunk_clip`), every chunk goes once through the network
(``embed`` then the output layer, when the network can give its embedding; ``logits``
otherwise), and the chunks are combined per clip (`pipeline.scoring.chunks.aggregate_chunks`):
probabilities by the mean or the max, embeddings by the mean. Taggrams run the whole clip
(`pipeline.scoring.taggram.compute_taggrams`). Only numpy is imported here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from pipeline.scoring.chunks import Network, aggregate_chunks, check_aggregate, chunk_clip, sigmoid
from pipeline.scoring.taggram import TaggramPlan, compute_taggrams


@runtime_checkable
class EmbeddingNetwork(Network, Protocol):
    """A `Network` that also gives its penultimate layer (torch models of the zoo)."""

    def embed_logits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # -> (N, D), (N, n_tags)
        ...


@dataclass
class ClipScores:
    """What one pass gives for a batch of clips.

    probs : np.ndarray [shape=(n_clips, n_tags), dtype=float32]  aggregated chunk sigmoids
    embeddings : np.ndarray [shape=(n_clips, D), dtype=float32] or None  mean over chunks of
        the penultimate layer (None unless asked for)
    taggrams : list of np.ndarray [shape=(ceil(T_i / hop), n_tags), dtype=float32] or None
    """

    probs: np.ndarray
    embeddings: np.ndarray | None = None
    taggrams: list[np.ndarray] | None = None


def score_clips(net: Network, clips: Sequence[np.ndarray], *, chunk_frames: int,
                normalizer: Callable[[np.ndarray], np.ndarray] | None, aggregate: str = "mean",
                embeddings: bool = False, plan: TaggramPlan | None = None, max_batch: int = 256,
                chunk_tail: str = "cover") -> ClipScores:
    """Score clips' raw features (each (T_i, n_bins)) in one pass (see the module docstring).

    Parameters
    ----------
    embeddings : also return the penultimate embeddings (``net`` must be an `EmbeddingNetwork`)
    plan : also return each clip's taggram, computed with this plan
    max_batch : at most this many chunks (or taggram inputs) go through the network at once
    chunk_tail : what becomes of the frames after a clip's last whole chunk
        (`pipeline.scoring.chunks.TAILS`; the run's checkpoint says which)
    """
    check_aggregate(aggregate)
    if embeddings and not isinstance(net, EmbeddingNetwork):
        raise TypeError(f"{type(net).__name__} gives no embeddings (no embed_logits)")
    chunked = [chunk_clip(f, chunk_frames, normalizer=normalizer, tail=chunk_tail) for f in clips]
    counts = [len(c) for c in chunked]
    chunks = np.concatenate(chunked) if chunked else np.zeros((0, 1, chunk_frames), np.float32)
    logits, embedded = [], []
    for i in range(0, len(chunks), max_batch):
        if embeddings:
            emb, out = net.embed_logits(chunks[i:i + max_batch])  # type: ignore[attr-defined]
            embedded.append(emb)
        else:
            out = net.logits(chunks[i:i + max_batch])
        logits.append(out)
    probs = sigmoid(np.concatenate(logits)) if logits else np.zeros((0, 0), np.float32)
    result = ClipScores(probs=aggregate_chunks(probs, counts, aggregate))
    if embeddings:
        result.embeddings = aggregate_chunks(np.concatenate(embedded) if embedded else np.zeros((0, 0)), counts, "mean")
    if plan is not None:
        result.taggrams = clip_taggrams(net, clips, plan, chunk_frames=chunk_frames, normalizer=normalizer,
                                        max_batch=max_batch)
    return result


def clip_taggrams(net: Network, clips: Sequence[np.ndarray], plan: TaggramPlan, *, chunk_frames: int,
                  normalizer: Callable[[np.ndarray], np.ndarray] | None, max_batch: int = 256) -> list[np.ndarray]:
    """Each clip's taggram (ceil(T_i / hop), n_tags); clips of equal length share forward passes."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, f in enumerate(clips):
        by_length[len(f)].append(i)
    out: list[np.ndarray] = [np.zeros(0)] * len(clips)
    for rows in by_length.values():
        x = np.stack([(normalizer(clips[i]) if normalizer is not None else np.asarray(clips[i], np.float32)).T
                      for i in rows])  # (B, n_bins, T)
        for i, gram in zip(rows, compute_taggrams(net, x, plan, chunk_frames=chunk_frames, max_batch=max_batch)):
            out[i] = gram
    return out
