"""Torch datasets and loaders over the feature cache.

Training reads a random chunk of ``chunk_frames`` frames from each clip (random-chunk cropping
for short-input models; a clip shorter than a chunk is zero-padded after normalisation).
Validation reads every chunk of a clip (`pipeline.scoring.chunks.chunk_clip`) so its clip
score is the aggregate the evaluation reports.

Randomness is carried by the sampler, not by the workers: `EpochSampler` draws, from
``(seed, epoch)`` alone, both the order of the clips and one crop seed per clip, and hands
``(row, crop_seed)`` pairs to the dataset. So a run gives the same batches whatever the
number of workers, with persistent workers, under DDP (each process takes its own shard of
the same permutation, like ``DistributedSampler``), and after a resume.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pipeline.scoring.chunks import chunk_clip

Normalize = Callable[[np.ndarray], np.ndarray]


def _pad_chunk(chunk: np.ndarray, chunk_frames: int, normalizer: Normalize | None) -> np.ndarray:
    """(t, n_bins) raw frames -> (n_bins, chunk_frames) float32, normalised then zero-padded."""
    x = normalizer(chunk) if normalizer is not None else chunk.astype(np.float32)
    out = np.zeros((x.shape[1], chunk_frames), dtype=np.float32)
    out[:, :len(x)] = x.T
    return out


class _ClipDataset(Dataset):
    """Clips of a feature cache with their labels (the part both datasets share)."""

    def __init__(self, cache: Any, clip_ids: Sequence[str], labels: np.ndarray, *, chunk_frames: int,
                 normalizer: Normalize | None = None) -> None:
        assert len(clip_ids) == len(labels)
        self.cache = cache
        self.clip_ids = list(clip_ids)
        self.labels = np.asarray(labels, dtype=np.float32)
        self.chunk_frames = int(chunk_frames)
        self.normalizer = normalizer

    def __len__(self) -> int:
        return len(self.clip_ids)


class RandomChunkDataset(_ClipDataset):
    """Training examples: one random chunk of a clip and its labels.

    Indexed by ``(row, crop_seed)`` pairs from `EpochSampler` (a plain int uses crop seed 0).
    Item: ``(x [shape=(n_bins, chunk_frames), float32], y [shape=(n_tags,), float32])``.
    """

    def __init__(self, cache: Any, clip_ids: Sequence[str], labels: np.ndarray, *, chunk_frames: int,
                 normalizer: Normalize | None = None) -> None:
        super().__init__(cache, clip_ids, labels, chunk_frames=chunk_frames, normalizer=normalizer)
        self.n_frames = np.array([cache.n_frames(c) for c in self.clip_ids], dtype=np.int64)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        row, crop_seed = item if isinstance(item, tuple) else (item, 0)
        clip_id = self.clip_ids[row]
        slack = int(self.n_frames[row]) - self.chunk_frames
        if slack > 0:
            start = int(np.random.default_rng(crop_seed).integers(0, slack + 1))
            chunk = self.cache.read_crop(clip_id, start, self.chunk_frames)
        else:
            chunk = self.cache.read(clip_id)  # shorter than a chunk: all of it, padded below
        x = _pad_chunk(np.asarray(chunk), self.chunk_frames, self.normalizer)
        return torch.from_numpy(x), torch.from_numpy(self.labels[row])


class ClipChunksDataset(_ClipDataset):
    """Evaluation examples: every chunk of a clip (see `chunk_clip`), its labels and its row.

    Item: ``(chunks [shape=(n_chunks, n_bins, chunk_frames)], y [shape=(n_tags,)], row)``;
    batch them with `collate_clip_chunks`.
    """

    def __init__(self, cache: Any, clip_ids: Sequence[str], labels: np.ndarray, *, chunk_frames: int,
                 normalizer: Normalize | None = None, hop: int | None = None) -> None:
        super().__init__(cache, clip_ids, labels, chunk_frames=chunk_frames, normalizer=normalizer)
        self.hop = hop

    def __getitem__(self, row: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        chunks = chunk_clip(np.asarray(self.cache.read(self.clip_ids[row])), self.chunk_frames, self.hop,
                            normalizer=self.normalizer)
        return torch.from_numpy(chunks), torch.from_numpy(self.labels[row]), row


def collate_clip_chunks(items: list[tuple[torch.Tensor, torch.Tensor, int]]
                        ) -> tuple[torch.Tensor, list[int], torch.Tensor, torch.Tensor]:
    """Stack clips' chunks: ``(chunks (N, n_bins, chunk_frames), counts per clip, y (B, k), rows (B,))``."""
    chunks = torch.cat([c for c, _, _ in items])
    counts = [len(c) for c, _, _ in items]
    y = torch.stack([t for _, t, _ in items])
    rows = torch.tensor([r for _, _, r in items], dtype=torch.long)
    return chunks, counts, y, rows


class EpochSampler(Sampler):
    """Seeded per-epoch shuffling (and sharding across DDP processes) that also hands out crop seeds.

    Yields ``(row, crop_seed)``; the whole stream is a function of ``(seed, epoch)``. With
    ``world_size > 1`` the permutation is padded to a multiple of the world size by repeating
    its head, and process ``rank`` takes every ``world_size``-th item (``DistributedSampler``'s
    scheme), so every process runs the same number of steps.
    """

    def __init__(self, n: int, *, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.seed, self.shuffle = int(n), int(seed), shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.per_rank = -(-self.n // world_size)

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch (the main process's sampler drives every worker)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        crop_seeds = rng.integers(0, 2**63 - 1, size=self.n)
        total = self.per_rank * self.world_size
        if total > self.n:
            order = np.concatenate([order, order[:total - self.n]])
        for row in order[self.rank:total:self.world_size]:
            yield int(row), int(crop_seeds[row])


class ShardSampler(Sampler):
    """Rows ``rank, rank + world_size, ...`` in order: each process evaluates its share once (no padding)."""

    def __init__(self, n: int, *, rank: int = 0, world_size: int = 1) -> None:
        self.rows = list(range(rank, n, world_size))

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[int]:
        return iter(self.rows)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed numpy and random in each worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def loader_kwargs(workers: int, *, pin_memory: bool, seed: int) -> dict[str, Any]:
    """Common DataLoader settings: workers (persistent, prefetching), pinned memory, seeded generator."""
    kwargs: dict[str, Any] = {"num_workers": workers, "pin_memory": pin_memory,
                              "worker_init_fn": seed_worker, "generator": torch.Generator().manual_seed(seed)}
    if workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=4)
    return kwargs


def train_loader(dataset: RandomChunkDataset, sampler: EpochSampler, *, batch_size: int, workers: int,
                 pin_memory: bool, seed: int, drop_last: bool = True) -> DataLoader:
    """Loader of random-chunk training batches ``(x (B, n_bins, chunk_frames), y (B, k))``.

    ``drop_last`` avoids a final batch of one example (batch-norm cannot train on it).
    """
    drop_last = drop_last and len(sampler) > batch_size
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      **loader_kwargs(workers, pin_memory=pin_memory, seed=seed))


def eval_loader(dataset: ClipChunksDataset, *, batch_size: int, workers: int, pin_memory: bool, seed: int,
                rank: int = 0, world_size: int = 1) -> DataLoader:
    """Loader of whole-clip chunk batches for validation / evaluation (see `collate_clip_chunks`)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=ShardSampler(len(dataset), rank=rank,
                                                                           world_size=world_size),
                      collate_fn=collate_clip_chunks, **loader_kwargs(workers, pin_memory=pin_memory, seed=seed))
