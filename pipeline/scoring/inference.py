"""Predicting tags with a trained run: load its model, chunk features, aggregate over a clip.

A clip of any length is cut into chunks of the model's input length (the last chunk aligned
to the clip's end, a clip shorter than one chunk zero-padded after normalisation), each chunk
is scored, and the chunk probabilities are aggregated by their mean or their max, as in the
RWTH thesis and in Won et al. 2020. Evaluation, the predict / tag stages and the dashboard's
"tag a file" all go through this module, so they agree with what validation measured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.errors import ParameterError, RunDirError
from pipeline.run.rundir import CHECKPOINT, RunDir
from pipeline.scoring.tagger import AGGREGATES, chunk_clip

log = logging.getLogger(__name__)

BASELINE_FILE = "baseline.npz"  # a classical baseline's fitted arrays + JSON (never a pickle), beside checkpoint.pt


def chunk_frames_of(features: np.ndarray, chunk_frames: int, hop: int | None = None, *,
                    normalizer: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Cut a clip's features into model inputs.

    Parameters
    ----------
    features : np.ndarray [shape=(T, n_bins)]  one clip (any T >= 1)
    chunk_frames : frames per chunk (the model's input length)
    hop : frames between chunk starts (default ``chunk_frames``: no overlap); the last chunk is
        aligned to the clip's end so the whole clip is covered without padding
    normalizer : applied to each chunk before padding (so padding is the normalised mean, zero)

    Returns
    -------
    np.ndarray [shape=(n_chunks, n_bins, chunk_frames), dtype=float32]  a clip shorter than
        ``chunk_frames`` gives one chunk, zero-padded at the end

    Examples
    --------
    >>> chunk_frames_of(np.ones((10, 2)), 4).shape
    (3, 2, 4)
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] < 1:
        raise ParameterError(f"features must have shape (T >= 1, n_bins), got {features.shape}")
    if chunk_frames < 1:
        raise ParameterError(f"chunk_frames must be >= 1, got {chunk_frames}")
    hop = chunk_frames if hop is None else hop
    if hop < 1:
        raise ParameterError(f"hop must be >= 1, got {hop}")
    return chunk_clip(features, chunk_frames, hop=hop, normalizer=normalizer)


def aggregate_chunks(probs: np.ndarray, counts: Sequence[int], aggregate: str = "mean") -> np.ndarray:
    """Aggregate per-chunk probabilities (n_chunks_total, k) into per-clip ones (n_clips, k)."""
    if aggregate not in AGGREGATES:
        raise ParameterError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    bounds = np.cumsum([0, *counts])
    reduce = np.mean if aggregate == "mean" else np.max
    return np.stack([reduce(probs[a:b], axis=0) for a, b in zip(bounds[:-1], bounds[1:])]) if len(counts) else \
        np.zeros((0, probs.shape[1]), dtype=np.float32)


def _batches_of_chunks(chunked: Iterator[np.ndarray], batch_size: int) -> Iterator[tuple[np.ndarray, list[int]]]:
    """Group clips' chunk stacks into batches of about ``batch_size`` chunks (whole clips only)."""
    pending: list[np.ndarray] = []
    size = 0
    for chunks in chunked:
        pending.append(chunks)
        size += len(chunks)
        if size >= batch_size:
            yield np.concatenate(pending), [len(c) for c in pending]
            pending, size = [], 0
    if pending:
        yield np.concatenate(pending), [len(c) for c in pending]


@torch.no_grad()
def chunk_probabilities(model: torch.nn.Module, chunks: np.ndarray, device: torch.device | str,
                        *, autocast: Any = None) -> np.ndarray:
    """Sigmoid outputs of ``model`` for a stack of chunks (N, n_bins, chunk_frames) -> (N, n_tags)."""
    x = torch.from_numpy(np.ascontiguousarray(chunks)).to(device, non_blocking=True)
    if autocast is not None:
        with autocast():
            logits = model(x)
    else:
        logits = model(x)
    return torch.sigmoid(logits.float()).cpu().numpy()


def predict_clips(model: torch.nn.Module, features_list: Iterable[np.ndarray], *,
                  normalizer: Callable[[np.ndarray], np.ndarray] | None, chunk_frames: int,
                  device: torch.device | str = "cpu", aggregate: str = "mean", hop: int | None = None,
                  batch_size: int = 64, progress: bool = False, total: int | None = None) -> np.ndarray:
    """Clip-level tag probabilities for many clips of any lengths.

    Parameters
    ----------
    features_list : clips' features, each [shape=(T_i, n_bins)] (a generator is fine)
    batch_size : about how many chunks go through the model at once

    Returns
    -------
    np.ndarray [shape=(n_clips, n_tags), dtype=float32]
    """
    if aggregate not in AGGREGATES:
        raise ParameterError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    was_training = model.training
    model.eval()
    chunked = (chunk_frames_of(f, chunk_frames, hop, normalizer=normalizer) for f in features_list)
    total = total if total is not None else (len(features_list) if hasattr(features_list, "__len__") else None)
    bar = tqdm(total=total, desc="predict", unit="clip", disable=not progress, leave=False)
    out: list[np.ndarray] = []
    try:
        for chunks, counts in _batches_of_chunks(chunked, batch_size):
            out.append(aggregate_chunks(chunk_probabilities(model, chunks, device), counts, aggregate))
            bar.update(len(counts))
    finally:
        bar.close()
        model.train(was_training)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def predict_clip(model: torch.nn.Module, features: np.ndarray, *,
                 normalizer: Callable[[np.ndarray], np.ndarray] | None, chunk_frames: int,
                 device: torch.device | str = "cpu", aggregate: str = "mean", hop: int | None = None) -> np.ndarray:
    """Tag probabilities (n_tags,) of one clip of any length (see `predict_clips`)."""
    return predict_clips(model, [features], normalizer=normalizer, chunk_frames=chunk_frames, device=device,
                         aggregate=aggregate, hop=hop, batch_size=1 << 30)[0]


def _torch_load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunDirError(f"{path.parent}: no {path.name}; train the run first ('python -m pipeline train ...')")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable checkpoint: {exc}") from exc
    missing = [k for k in ("model_name", "model_kwargs", "tags", "features", "normalizer", "chunk_frames")
               if k not in ckpt]
    if missing:
        raise RunDirError(f"{path}: checkpoint lacks {missing}")
    return ckpt


def load_checkpoint(run_dir: str | Path, name: str = CHECKPOINT) -> dict[str, Any]:
    """A run's checkpoint dict (best on validation by default), loaded with ``weights_only=True``."""
    return _torch_load(RunDir(run_dir) / name)


def is_baseline_checkpoint(ckpt: dict[str, Any]) -> bool:
    """True for a classical baseline's run (its estimator lives in `BASELINE_FILE`)."""
    return ckpt.get("kind") == "baseline"


def load_run_model(run_dir: str | Path, device: torch.device | str | None = None) -> tuple[torch.nn.Module, dict]:
    """The trained network of a run, in eval mode on ``device`` (default CPU), and its checkpoint dict.

    Raises `RunDirError` for a missing or unreadable checkpoint and for a baseline run (which
    has no network; use `load_run`).
    """
    from models.registry import get_model

    ckpt = load_checkpoint(run_dir)
    if is_baseline_checkpoint(ckpt):
        raise RunDirError(f"{run_dir}: run of the classical baseline {ckpt['model_name']!r} has no network "
                          "(no taggrams or embeddings); use pipeline.scoring.inference.load_run for its predictions")
    model = get_model(ckpt["model_name"], n_tags=len(ckpt["tags"]), **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model.to(torch.device(device) if device is not None else torch.device("cpu")), ckpt


@dataclass
class RunModel:
    """A trained run ready to tag features or audio files: a network or a classical baseline."""

    checkpoint: dict[str, Any]
    model: torch.nn.Module | None = None
    baseline: Any = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        from pipeline.features.extract import FeatureConfig, Normalizer

        self.tags: list[str] = list(self.checkpoint["tags"])
        self.features = FeatureConfig.from_dict(self.checkpoint["features"])
        self.normalizer = Normalizer.from_dict(self.checkpoint["normalizer"])
        self.chunk_frames = int(self.checkpoint["chunk_frames"])

    @property
    def is_baseline(self) -> bool:
        return self.model is None

    def features_of(self, path: str | Path) -> np.ndarray:
        """Decode an audio file and compute the run's features (T, n_bins); `AudioDecodeError` if broken."""
        from pipeline.features.audio import load_audio
        from pipeline.features.extract import compute_features

        return compute_features(load_audio(Path(path), sample_rate=self.features.sample_rate), self.features)

    def predict_many(self, features_list: Iterable[np.ndarray], *, aggregate: str = "mean",
                     batch_size: int = 64, progress: bool = False, total: int | None = None) -> np.ndarray:
        """Probabilities (n_clips, n_tags) for clips' features of any lengths (a generator is fine)."""
        if self.baseline is not None:
            if aggregate not in AGGREGATES:
                raise ParameterError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
            return np.asarray(self.baseline.predict_proba(list(features_list)), dtype=np.float32)
        assert self.model is not None
        return predict_clips(self.model, features_list, normalizer=self.normalizer, chunk_frames=self.chunk_frames,
                             device=self.device, aggregate=aggregate, batch_size=batch_size, progress=progress,
                             total=total)

    def predict(self, features: np.ndarray, *, aggregate: str = "mean") -> np.ndarray:
        """Probabilities (n_tags,) of one clip's features (T, n_bins)."""
        return self.predict_many([features], aggregate=aggregate)[0]

    def predict_file(self, path: str | Path, *, aggregate: str = "mean") -> np.ndarray:
        """Probabilities (n_tags,) of an audio file of any length."""
        return self.predict(self.features_of(path), aggregate=aggregate)


def load_run(run_dir: str | Path, device: torch.device | str | None = None) -> RunModel:
    """Load any trained run (network or classical baseline) for prediction."""
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir)
    if is_baseline_checkpoint(ckpt):
        from models.baselines import load_baseline

        return RunModel(checkpoint=ckpt, baseline=load_baseline(run_dir / BASELINE_FILE))
    model, ckpt = load_run_model(run_dir, device)
    return RunModel(checkpoint=ckpt, model=model, device=next(model.parameters()).device)
