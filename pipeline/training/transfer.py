"""Transfer learning from another run: what is frozen, the source's record, the frozen embeddings.

A transfer run starts from a source run's network (``TrainConfig.init_from``), rebuilds its
output layer for the new corpus's tags (`pipeline.training.checkpoints.transfer_weights`) and
trains at one of the levels of `pipeline.training.config.TransferLevel`:

- ``features``: the network is a frozen feature extractor. Every chunk of every training and
  validation clip is embedded once (the penultimate layer, `models.base.Tagger.embed`, in eval
  mode) and only the new output layer -- a per-tag logistic regression -- trains on those
  embeddings, which on a CPU takes seconds where a forward pass per batch would take minutes;
- ``last:K``: the last K blocks (`models.base.Tagger.named_blocks`) and the output layer train,
  the rest is frozen, its batch-norm statistics too (eval mode);
- ``all``: everything trains, the backbone at ``backbone_lr_mult`` times the rate.

The input is the source's: its feature config and its fitted normaliser, as the frozen layers
were trained on exactly that.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from models.base import Tagger
from pipeline import device as devices
from pipeline.errors import ParameterError, PipelineError
from pipeline.features.cache import FeatureCache
from pipeline.features.extract import FeatureConfig, Normalizer
from pipeline.run.rundir import CHECKPOINT, RunDir
from pipeline.sources.corpus import Corpus
from pipeline.training.checkpoints import source_path
from pipeline.training.config import TrainConfig, TransferLevel, parse_transfer
from pipeline.training.data import Loaders
from pipeline.training.loaders import ClipChunksDataset, EpochSampler, eval_loader, train_loader

log = logging.getLogger(__name__)

Blocks = list[tuple[str, nn.Module]]

# The feature options a transfer run cannot change (the CLI flag of each, for the message).
_FEATURE_FLAGS: dict[str, str] = {"sample_rate": "--sample-rate", "n_fft": "--n-fft", "hop_length": "--hop-length"}


def model_blocks(model: nn.Module) -> Blocks:
    """The network's blocks in input-to-output order (`models.base.Tagger.named_blocks`), named."""
    if not isinstance(model, Tagger):
        raise ParameterError(f"model {type(model).__name__} is no models.base.Tagger: it does not list its blocks")
    return model.named_blocks()


def frozen_blocks(model: nn.Module, config: TrainConfig) -> Blocks:
    """Freeze what ``config`` keeps fixed and return those blocks, named (they run in eval mode).

    ``freeze_blocks=k``: the first k blocks. ``transfer``: ``features`` every block, ``last:K``
    all but the last K, ``all`` none. Parameters outside every block (the output layer aside)
    freeze with the frozen part, so that exactly the blocks named train.
    """
    blocks = model_blocks(model)
    names = ", ".join(n for n, _ in blocks)
    if config.transfer is None:
        if config.freeze_blocks > len(blocks):
            raise ParameterError(f"freeze_blocks={config.freeze_blocks}, but {config.model} has {len(blocks)} "
                                 f"blocks: {names}")
        frozen = blocks[:config.freeze_blocks]
        loose: set[int] = set()
    else:
        level = parse_transfer(config.transfer)
        if level.kind == "last" and level.k > len(blocks):
            raise ParameterError(f"transfer={config.transfer!r}, but {config.model} has {len(blocks)} blocks: {names}")
        n_frozen = {"features": len(blocks), "last": len(blocks) - level.k, "all": 0}[level.kind]
        frozen = blocks[:n_frozen]
        trained = {id(p) for _, b in blocks[n_frozen:] for p in b.parameters()}
        trained |= {id(p) for p in model.classifier.parameters()}
        loose = {id(p) for p in model.parameters() if id(p) not in trained} if level.kind != "all" else set()
    for _, block in frozen:
        for p in block.parameters():
            p.requires_grad_(False)
    for p in model.parameters():
        if id(p) in loose:
            p.requires_grad_(False)
    return frozen


def check_source_features(config: TrainConfig, source: dict[str, Any]) -> None:
    """A feature option set (away from its default) to other than the source's is an error naming it.

    A transfer run's input is the source's (its features, its normaliser): the frozen layers
    know nothing else.
    """
    theirs = FeatureConfig.from_dict(source["features"])
    default = TrainConfig()
    asked: dict[str, tuple[str, Any, Any]] = {}
    for name, flag in _FEATURE_FLAGS.items():
        mine = getattr(config.features, name)
        if mine != getattr(default.features, name):
            asked[name] = (flag, mine, getattr(theirs, name))
    if config.n_mels is not None:
        asked["n_mels"] = ("--n-mels", config.n_mels, theirs.n_bins)
    if config.normalization != default.normalization:
        asked["normalization"] = ("--normalization", config.normalization,
                                  Normalizer.from_dict(source["normalizer"]).mode)
    for name, (flag, mine, src) in asked.items():
        if mine != src:
            raise ParameterError(f"{name}={mine!r} ({flag}) differs from the source run's {src!r}: with init_from "
                                 f"(--from) the features come from the source run {config.init_from}; leave {flag} out")


def source_normalizer(source: dict[str, Any]) -> Normalizer:
    """The source run's fitted normaliser (a transfer run's input is processed exactly as the source's)."""
    return Normalizer.from_dict(source["normalizer"])


def source_record(config: TrainConfig, source: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``transfer.source``: the source run, its model, tags and the provenance it carries.

    Provenance is the source manifest's ``provenance`` (a converted model's licence, origin and
    published figures), its description, and what it holds beyond the run contract's fields (a
    source's own ``transfer`` record, so a chain of transfers stays legible).
    """
    path = source_path(str(config.init_from)).resolve()
    run_dir = path if path.is_dir() else path.parent
    record: dict[str, Any] = {"run": str(run_dir), "name": run_dir.name, "model": source.get("model_name"),
                              "model_kwargs": dict(source.get("model_kwargs") or {}),
                              "n_tags": len(source.get("tags") or []), "checkpoint_epoch": source.get("epoch")}
    try:
        manifest = RunDir(run_dir).read_manifest()
    except (PipelineError, OSError) as exc:  # a bare checkpoint file: what it holds is the record
        log.info("source %s: no readable manifest (%s); recording its checkpoint only", run_dir, exc)
        return record
    record["name"] = manifest.name
    if manifest.corpus is not None:
        record["corpus"] = {"name": manifest.corpus.name, "source": manifest.corpus.source}
    if manifest.description:
        record["description"] = manifest.description
    record["synthetic"] = bool(manifest.synthetic)
    if manifest.provenance:
        record["provenance"] = dict(manifest.provenance)
    if manifest.transfer:  # a source fine-tuned itself: the chain stays legible
        record["transfer"] = dict(manifest.transfer)
    record.update({k: v for k, v in manifest.extra.items() if k not in record})
    return record


def transfer_record(config: TrainConfig, source: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """The manifest's ``transfer``: level, source, which blocks froze and which train, the backbone rate.

    ``model`` is the network as `frozen_blocks` left it (a frozen block has no trainable parameter).
    """
    level: TransferLevel | None = parse_transfer(config.transfer) if config.transfer else None
    blocks = model_blocks(model)
    frozen = [n for n, b in blocks if not any(p.requires_grad for p in b.parameters())]
    return {"level": str(level) if level else None, "init_from": str(config.init_from),
            "source": source_record(config, source), "frozen_blocks": frozen,
            "trained_blocks": [n for n, _ in blocks if n not in frozen],
            "backbone_lr_mult": config.backbone_lr_factor}


# ----------------------------------------------------------------------------- frozen embeddings


class EmbeddedChunks(Dataset):
    """Training examples of the ``features`` level: one chunk's embedding and its clip's labels.

    Indexed like `pipeline.training.loaders.RandomChunkDataset` (``(row, crop_seed)`` pairs
    from `EpochSampler`; the seed is unused: an embedding has nothing to crop).
    Item: ``(x [shape=(D,)], y [shape=(n_tags,)])``.
    """

    def __init__(self, clips: list[np.ndarray], labels: np.ndarray) -> None:
        counts = [len(c) for c in clips]
        self.x = torch.from_numpy(np.concatenate(clips).astype(np.float32))  # (N chunks, D)
        self.y = torch.from_numpy(np.repeat(np.asarray(labels, dtype=np.float32), counts, axis=0))  # (N, k)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        row = item[0] if isinstance(item, tuple) else item
        return self.x[row], self.y[row]


class EmbeddedClips(Dataset):
    """Validation examples of the ``features`` level, shaped like `ClipChunksDataset`'s.

    Item: ``(chunk embeddings [shape=(n_chunks, D)], y [shape=(n_tags,)], row)``; batch them
    with `pipeline.training.loaders.collate_clip_chunks`, and the epoch loop validates the
    output layer on them as it validates a whole network on chunks.
    """

    def __init__(self, clips: list[np.ndarray], labels: np.ndarray) -> None:
        self.clips = [torch.from_numpy(c.astype(np.float32)) for c in clips]
        self.labels = np.asarray(labels, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, row: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.clips[row], torch.from_numpy(self.labels[row]), row


# Frozen embeddings already computed in this process, by (source, features, clip): a benchmark or a
# search that trains several output layers on one source embeds each clip once. Bounded (clips).
_MEMO: dict[tuple[str, ...], np.ndarray] = {}
_MEMO_MAX_CLIPS = 50_000


def _memo_scope(config: TrainConfig, cache: FeatureCache, chunk_frames: int, normalizer: Normalizer) -> tuple[str, ...]:
    """What a clip's frozen embedding depends on besides the clip: the source's weights, the features, the chunking."""
    path = source_path(str(config.init_from)).resolve()
    ckpt = path / CHECKPOINT if path.is_dir() else path
    stat = ckpt.stat()
    return (str(ckpt), str(stat.st_mtime_ns), str(stat.st_size), str(cache.directory.resolve()), str(chunk_frames),
            json.dumps(normalizer.to_dict(), sort_keys=True, default=str))


@torch.no_grad()
def clip_embeddings(model: nn.Module, dataset: ClipChunksDataset, device: torch.device, *,
                    precision: devices.Precision | None = None, chunks_per_batch: int = 64, workers: int = 0,
                    progress: bool = False, desc: str = "embed", memo: tuple[str, ...] | None = None
                    ) -> list[np.ndarray]:
    """The penultimate embedding of every chunk of every clip of ``dataset``: one (n_chunks, D) array per clip.

    The network runs in eval mode (batch-norm statistics and dropout as at inference), as a
    frozen feature extractor does. With ``memo`` (`_memo_scope`), clips embedded earlier in
    this process under the same scope are taken from memory.
    """
    precision = precision or devices.Precision(None, False)
    out: list[np.ndarray | None] = [_MEMO.get((*memo, c)) if memo else None for c in dataset.clip_ids]
    todo = [i for i, e in enumerate(out) if e is None]
    if todo:
        was_training = model.training
        model.eval()
        subset = torch.utils.data.Subset(dataset, todo)
        per_clip = len(dataset[todo[0]][0])
        loader = eval_loader(subset, batch_size=max(1, chunks_per_batch // per_clip), workers=workers,
                             pin_memory=False, seed=0)  # one process embeds every clip (no sharding)
        for chunks, counts, _, rows in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress):
            with devices.autocast(device, precision):
                emb = model.embed(chunks.to(device, non_blocking=True))  # (n_chunks, D)
            emb_np = emb.float().cpu().numpy()
            starts = np.cumsum([0, *counts])
            for i, row in enumerate(rows.tolist()):
                out[row] = emb_np[starts[i]:starts[i + 1]]
        model.train(was_training)
        if memo and len(_MEMO) + len(todo) <= _MEMO_MAX_CLIPS:
            _MEMO.update({(*memo, dataset.clip_ids[i]): out[i] for i in todo})  # type: ignore[misc]
    return out  # type: ignore[return-value]


def embedding_loaders(model: nn.Module, corpus: Corpus, cache: FeatureCache, rows: dict[str, np.ndarray],
                      normalizer: Normalizer, *, chunk_frames: int, config: TrainConfig, device: torch.device,
                      precision: devices.Precision, info: devices.DistInfo, progress: bool) -> Loaders:
    """The ``features`` level's data: training chunk embeddings in random order, validation clips' embeddings.

    Every process embeds every clip (cheap beside training a network); the training sampler
    shards them under DDP as it shards chunks.
    """
    ids = {split: [corpus.clip_ids[i] for i in rows[split]] for split in ("train", "valid")}
    memo = _memo_scope(config, cache, chunk_frames, normalizer)
    embedded = {}
    for split in ("train", "valid"):
        dataset = ClipChunksDataset(cache, ids[split], corpus.labels[rows[split]], chunk_frames=chunk_frames,
                                    normalizer=normalizer)
        embedded[split] = clip_embeddings(model, dataset, device, precision=precision, progress=progress,
                                          desc=f"embed {split}", memo=memo)
    train_set = EmbeddedChunks(embedded["train"], corpus.labels[rows["train"]])  # split_rows: >= 2 clips
    log.info("frozen embeddings: %d training chunks of %d clips, %d validation clips, dimension %d",
             len(train_set), len(ids["train"]), len(ids["valid"]), train_set.x.shape[1])
    sampler = EpochSampler(len(train_set), seed=config.seed, rank=info.rank, world_size=info.world_size)
    loader = train_loader(train_set, sampler, batch_size=config.batch_size, workers=0, pin_memory=False,
                          seed=config.seed)  # tensors in memory: worker processes would only add overhead
    valid_set = EmbeddedClips(embedded["valid"], corpus.labels[rows["valid"]])
    vloader = eval_loader(valid_set, batch_size=max(1, 4 * config.batch_size), workers=0, pin_memory=False,
                          seed=config.seed, rank=info.rank, world_size=info.world_size)
    return Loaders(train=loader, sampler=sampler, valid=vloader, train_ids=ids["train"], valid_ids=ids["valid"])
