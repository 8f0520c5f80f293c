"""Training data: the corpus's feature cache, its usable rows per split, and a run's loaders."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import device as devices
from pipeline.errors import ParameterError
from pipeline.features.cache import FeatureCache, build_cache
from pipeline.features.extract import FeatureConfig, Normalizer
from pipeline.sources.corpus import Corpus
from pipeline.training.config import TrainConfig
from pipeline.training.loaders import ClipChunksDataset, EpochSampler, RandomChunkDataset, eval_loader, train_loader

log = logging.getLogger(__name__)


def auto_workers() -> int:
    """Data-loader processes when not set: none on a machine of 2 cores or fewer (they would only
    compete with the training threads; bench train measures it), else half the cores up to 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 2 else min(8, cores // 2)


def feature_cache(corpus: Corpus, features: FeatureConfig, config: TrainConfig, *, progress: bool) -> FeatureCache:
    """The corpus's feature cache for ``features`` (built where missing), where ``config`` keeps caches."""
    cache_kwargs: dict[str, Any] = {"workers": config.workers or None, "progress": progress}
    if config.cache_root:
        cache_kwargs["cache_root"] = Path(config.cache_root)
    return build_cache(corpus, features, **cache_kwargs)


def split_rows(corpus: Corpus, cache: FeatureCache) -> dict[str, np.ndarray]:
    """Corpus rows per split whose features are in the cache (bad audio is left out, with a warning).

    Fewer than two training clips is an error: there is nothing to learn from.
    """
    out = {}
    for split in ("train", "valid", "test"):
        rows = corpus.indices(split)
        ok = np.array([corpus.clip_ids[i] in cache for i in rows], dtype=bool)
        if (~ok).any():
            log.warning("%s: %d clip(s) have no features (see the cache's report of bad files) and are left out",
                        split, int((~ok).sum()))
        out[split] = rows[ok]
    if len(out["train"]) < 2:
        raise ParameterError(f"{corpus.root}: the training split has {len(out['train'])} usable clip(s); need >= 2")
    return out


@dataclass
class Loaders:
    """A network run's data: the training loader and its sampler, the validation loader."""

    train: Any  # torch DataLoader of RandomChunkDataset
    sampler: EpochSampler
    valid: Any  # torch DataLoader of ClipChunksDataset
    train_ids: list[str]
    valid_ids: list[str]


def make_loaders(corpus: Corpus, cache: FeatureCache, rows: dict[str, np.ndarray], normalizer: Normalizer, *,
                 chunk_frames: int, config: TrainConfig, workers: int, info: devices.DistInfo,
                 pin_memory: bool) -> Loaders:
    """Random chunks of the training clips; every chunk of the validation clips, in batches of whole clips."""
    train_ids = [corpus.clip_ids[i] for i in rows["train"]]
    valid_ids = [corpus.clip_ids[i] for i in rows["valid"]]
    train_set = RandomChunkDataset(cache, train_ids, corpus.labels[rows["train"]], chunk_frames=chunk_frames,
                                   normalizer=normalizer)
    sampler = EpochSampler(len(train_set), seed=config.seed, rank=info.rank, world_size=info.world_size)
    loader = train_loader(train_set, sampler, batch_size=config.batch_size, workers=workers, pin_memory=pin_memory,
                          seed=config.seed)
    valid_set = ClipChunksDataset(cache, valid_ids, corpus.labels[rows["valid"]], chunk_frames=chunk_frames,
                                  normalizer=normalizer)
    clip_frames = max((cache.n_frames(c) for c in valid_ids[:32]), default=chunk_frames)
    chunks_per_clip = max(1, math.ceil(clip_frames / chunk_frames))
    vloader = eval_loader(valid_set, batch_size=max(1, 4 * config.batch_size // chunks_per_clip), workers=workers,
                          pin_memory=pin_memory, seed=config.seed, rank=info.rank, world_size=info.world_size)
    return Loaders(train=loader, sampler=sampler, valid=vloader, train_ids=train_ids, valid_ids=valid_ids)
