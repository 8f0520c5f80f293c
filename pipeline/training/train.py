"""Training: a CNN tagger from the model zoo, or a classical baseline, into a run directory.

Plain functions in the style of torchvision's reference scripts: `train_one_epoch`,
`validate`, and `train(config, corpus_dir, out_dir)`, which writes the run-directory
contract (`pipeline.run.rundir`): ``checkpoint.pt`` (best validation macro ROC-AUC), ``last.pt``
(with optimiser and schedule state, for ``--resume``), ``history.csv`` and the manifest.

Examples
--------
>>> config = TrainConfig(model="musicnn", model_kwargs={"width": 0.25}, epochs=2)  # doctest: +SKIP
>>> train(config, "data/demo", "data/runs/musicnn")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from pipeline import device as devices
from pipeline.analysis.metrics import auc_scores
from pipeline.errors import ParameterError, PipelineError, RunDirError
from pipeline.io import atomic_path, write_csv
from pipeline.paths import data_root
from pipeline.run.rundir import CHECKPOINT, HISTORY, LAST_CHECKPOINT, MANIFEST, STAGE_FILES, RunDir
from pipeline.scoring.chunks import aggregate_chunks
from pipeline.scoring.inference import BASELINE_FILE, load_checkpoint
from pipeline.sources.corpus import Corpus, corpus_record, load_corpus
from pipeline.sources.labels import LabelConfig
from pipeline.training.loaders import ClipChunksDataset, EpochSampler, RandomChunkDataset, eval_loader, train_loader

log = logging.getLogger(__name__)

BASELINES: tuple[str, ...] = ("rf", "knn", "bof_lr")
SCHEDULES: tuple[str, ...] = ("step", "cosine", "none")
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd", "adam_sgd")
POS_WEIGHTS: tuple[str, ...] = ("none", "balanced", "sqrt")
HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "valid_roc_auc", "valid_pr_auc", "lr", "seconds")
TENSORBOARD_DIR = "tensorboard"
DEFAULT_RUNS_ROOT = data_root() / "runs"


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved, resolved, inside every checkpoint.

    Defaults follow the Music-Tagger recipe (Adam at 1e-3, divided by 10 at epochs 20, 30
    and 35 of 40) with the model's own input (mel bins, chunk length).
    """

    # --- model
    model: str = "shortchunk_res"  # a name from models.list_models(), or a baseline: rf, knn, bof_lr
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # constructor options, e.g. {"width": 0.5}
    # --- features (the kind and mel bins come from the model's InputSpec)
    n_mels: int | None = None  # None: the model's default (96 for most, 128 for shortchunk_res)
    sample_rate: int = 16000  # MagnaTagATune's rate
    n_fft: int = 512  # 32 ms windows at 16 kHz
    hop_length: int = 256  # 16 ms hop: 62.5 frames per second
    normalization: str = "per_bin"  # feature normalisation fitted on the training split (pipeline.features.extract)
    chunk_seconds: float | None = None  # None: the model's chunk; else the training chunk length in seconds
    # --- labels (pipeline.sources.labels.LabelConfig)
    merge_synonyms: bool | None = None  # None: on for MTT-format corpora (the 29 synonym groups)
    top_n: int | None = 50  # the N most frequent tags; None keeps every tag
    drop_untagged: bool = False  # drop clips left without any tag after top-N
    split: str = "auto"  # auto | folder | random | path of a split CSV
    split_seed: int = 0  # seed of a random split
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train / valid / test shares of a random split
    # --- optimisation
    epochs: int = 40  # the Music-Tagger recipe's 40 epochs
    batch_size: int = 16  # Won et al. 2020 use 16 for the short-chunk models
    optimizer: str = "adam"  # adam | sgd (Nesterov momentum) | adam_sgd (Won et al. 2020: Adam, then SGD)
    lr: float = 1e-3  # learning rate (of Adam in adam_sgd) (Music-Tagger recipe)
    weight_decay: float = 0.0  # L2 penalty (0: none, as in the Music-Tagger recipe; Won et al. use 1e-4)
    momentum: float = 0.9  # SGD's Nesterov momentum (sgd, adam_sgd)
    sgd_after: int = 80  # adam_sgd: epochs of Adam, then SGD restarting from the best checkpoint (Won et al.: 80)
    sgd_lr: float = 1e-3  # adam_sgd: learning rate of the SGD phase (Won et al.: 1e-3)
    schedule: str = "step"  # step (divide by 1/gamma at each milestone) | cosine (to 0 at the last epoch) | none
    milestones: tuple[int, ...] = (20, 30, 35)  # epochs (1-based) after which the step schedule decays
    gamma: float = 0.1  # the step schedule's factor
    pos_weight: str = "none"  # per-tag positive weight of the loss: none | balanced (neg/pos) | sqrt (its root)
    max_pos_weight: float = 50.0  # cap on a tag's positive weight, so a tag seen twice cannot dominate
    patience: int | None = None  # stop after this many epochs without a better validation ROC-AUC; None: never
    max_minutes: float | None = None  # time budget for the whole run (stops after the batch that exceeds it)
    # --- transfer learning
    init_from: str | None = None  # another run's directory (or .pt file) to start from; its model and features
    freeze_blocks: int = 0  # freeze the first k blocks of the network (see model_blocks); 0: none
    backbone_lr_mult: float = 1.0  # learning rate of every non-output layer relative to lr (e.g. 0.1)
    # --- execution
    seed: int = 0  # seeds torch, numpy, random, the data order and the crops
    workers: int | None = None  # data-loader processes; None: auto (0 on machines of <= 2 cores)
    device: str = "auto"  # auto (CUDA, else MPS, else CPU) | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto (bf16 on CUDA where supported, else fp16; fp32 on CPU) | fp32 | bf16 | fp16
    deterministic: bool = True  # cuDNN deterministic kernels (CPU is deterministic anyway)
    tensorboard: bool = False  # also log to <out>/tensorboard (needs the tensorboard package)
    cache_root: str | None = None  # where feature caches live; None: the feature cache's default

    def __post_init__(self) -> None:
        self.ratios = tuple(float(r) for r in self.ratios)  # type: ignore[assignment]
        self.milestones = tuple(int(m) for m in self.milestones)
        self.model_kwargs = dict(self.model_kwargs)
        self.validate()

    def validate(self) -> None:
        """Raise `ParameterError` naming the first option outside what it accepts."""
        checks: list[tuple[bool, str]] = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch_size must be >= 2 (batch-norm needs two examples), got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.sgd_after >= 1, f"sgd_after must be >= 1, got {self.sgd_after}"),
            (self.sgd_lr > 0, f"sgd_lr must be > 0, got {self.sgd_lr}"),
            (0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}"),
            (all(m >= 1 for m in self.milestones), f"milestones must be epochs >= 1, got {self.milestones}"),
            (self.pos_weight in POS_WEIGHTS, f"pos_weight must be one of {POS_WEIGHTS}, got {self.pos_weight!r}"),
            (self.max_pos_weight >= 1, f"max_pos_weight must be >= 1, got {self.max_pos_weight}"),
            (self.patience is None or self.patience >= 1, f"patience must be >= 1 or None, got {self.patience}"),
            (self.max_minutes is None or self.max_minutes > 0, f"max_minutes must be > 0, got {self.max_minutes}"),
            (self.freeze_blocks >= 0, f"freeze_blocks must be >= 0, got {self.freeze_blocks}"),
            (self.backbone_lr_mult >= 0, f"backbone_lr_mult must be >= 0, got {self.backbone_lr_mult}"),
            (self.workers is None or self.workers >= 0, f"workers must be >= 0 or None, got {self.workers}"),
            (self.chunk_seconds is None or self.chunk_seconds > 0,
             f"chunk_seconds must be > 0, got {self.chunk_seconds}"),
            (self.n_mels is None or self.n_mels >= 1, f"n_mels must be >= 1, got {self.n_mels}"),
            (self.device in devices.DEVICE_CHOICES or self.device.startswith("cuda:"),
             f"device must be one of {devices.DEVICE_CHOICES} or cuda:N, got {self.device!r}"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"),
             f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ParameterError(message)
        if self.model in BASELINES and (self.init_from or self.freeze_blocks):
            raise ParameterError(f"baseline {self.model!r} cannot use init_from / freeze_blocks (networks only)")
        self.label_config()  # validates top_n and ratios

    @classmethod
    def from_overrides(cls, base: TrainConfig | None = None, **overrides: Any) -> TrainConfig:
        """A config from ``base`` (default: the defaults) with ``overrides``; unknown names are errors."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ParameterError(f"unknown training option(s) {unknown}; known: {', '.join(sorted(known))}")
        values = asdict(base) if base is not None else {}
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by `to_dict` (e.g. from a checkpoint); unknown keys are errors."""
        return cls.from_overrides(None, **d)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists for tuples), fit for JSON and ``torch.load(weights_only=True)``."""
        d = asdict(self)
        d["ratios"] = list(self.ratios)
        d["milestones"] = list(self.milestones)
        return d

    def label_config(self) -> LabelConfig:
        return LabelConfig(merge_synonyms=self.merge_synonyms, top_n=self.top_n, drop_untagged=self.drop_untagged,
                           split=self.split, seed=self.split_seed, ratios=self.ratios)

    @property
    def is_baseline(self) -> bool:
        return self.model in BASELINES


# The default demo model: a narrow short-chunk ResNet (Won et al. 2020) on 3 s chunks of 96 mel
# bins, the fastest network of the zoo per training example on a CPU (bench train). Measured on
# the demo corpus (docs/benchmarks.md, "Training"): test macro ROC-AUC 0.97 (above every
# classical baseline) in 2.5-5 minutes of training on a shared 2-core CPU. Dropout 0.1, not the published 0.5: a network
# this narrow (64-unit embedding) underfits with heavy dropout (measured with fcn: width 0.25
# and dropout 0.5 reached 0.87, width 0.5 and dropout 0.1 reached 0.957).
DEFAULT_DEMO_MODEL = "shortchunk_res"


def demo_train_config(**overrides: Any) -> TrainConfig:
    """Settings that reach test macro ROC-AUC >= 0.90 on the demo corpus in under 5 minutes on 2 CPU cores.

    ``overrides`` replace any field (unknown names are errors), e.g. ``demo_train_config(epochs=2)``.
    """
    base = TrainConfig(
        model=DEFAULT_DEMO_MODEL,
        model_kwargs={"width": 0.125, "dropout": 0.1},  # channels 16-64, 0.19 M parameters
        n_mels=96,  # the cache the baselines and most models share (the published 128 adds little here)
        chunk_seconds=3.0,  # 187 frames; a 10 s clip is scored as 4 chunks
        epochs=30,  # the cosine schedule reaches 0 at the last epoch (12 epochs: 0.948, 20: 0.967, 30: 0.972)
        batch_size=32,
        lr=2e-3,  # higher than the recipe's 1e-3: few epochs, cosine decay
        schedule="cosine",
        pos_weight="sqrt",  # rare tags weigh more (the NYU fix); PR-AUC +0.006 here, ROC-AUC unchanged
        max_minutes=5.0,  # a safety net on a slow or busy machine; about 2.5 min of training on 2 quiet cores
    )
    return TrainConfig.from_overrides(base, **overrides)


# ----------------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def auto_workers() -> int:
    """Data-loader processes when not set: none on a machine of 2 cores or fewer (they would only
    compete with the training threads; bench train measures it), else half the cores up to 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 2 else min(8, cores // 2)


def _plain(obj: Any) -> Any:
    """Numpy values and arrays -> Python ones, recursively (for JSON and weights-only checkpoints)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def model_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network's blocks in input-to-output order, for freezing the first k.

    A block is a module with parameters that is an element of a ``Sequential`` /
    ``ModuleList`` or a direct part of the network; containers (and modules made of
    containers) are opened up. The output layer (``classifier``) is never a block.
    """
    containers = (nn.Sequential, nn.ModuleList)

    def opens(m: nn.Module) -> bool:
        return isinstance(m, containers) or any(isinstance(c, containers) for c in m.children())

    blocks: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if full == "classifier" or not any(True for _ in child.parameters()):
                continue
            if opens(child):
                walk(f"{full}.", child)
            else:
                blocks.append((full, child))

    walk("", model)
    return blocks


def _check_model_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Unknown constructor options get a clear error listing the model's options."""
    from models.registry import _REGISTRY, _load_zoo

    _load_zoo()
    builder = _REGISTRY.get(name)
    if builder is None:
        from models.registry import list_models

        raise ParameterError(f"unknown model {name!r}; known models: {', '.join(list_models())}; "
                             f"baselines: {', '.join(BASELINES)}")
    params = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p not in ("self", "n_tags")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ParameterError(f"model {name!r} has no option(s) {unknown}; it accepts: {', '.join(accepted)}")


@dataclass
class Resolved:
    """What a config resolves to before training: model options, features and input length."""

    model_kwargs: dict[str, Any]
    features: Any  # pipeline.features.extract.FeatureConfig
    chunk_frames: int


def resolve_model_input(config: TrainConfig, *, source_ckpt: dict[str, Any] | None = None) -> Resolved:
    """Derive the model options and feature config from the model's `InputSpec` and the overrides."""
    from models.registry import model_spec
    from pipeline.features.extract import FeatureConfig

    if source_ckpt is not None:  # transfer learning: the source's architecture and features
        kwargs = {**source_ckpt["model_kwargs"], **config.model_kwargs}
        features = FeatureConfig.from_dict(source_ckpt["features"])
    else:
        kwargs = dict(config.model_kwargs)
        if config.n_mels is not None:
            kwargs["n_mels"] = config.n_mels
        features = None
    _check_model_kwargs(config.model, kwargs)
    try:
        spec = model_spec(config.model, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"model {config.model!r} rejects options {kwargs}: {exc}") from exc
    if features is None:
        fkw: dict[str, Any] = {"kind": spec.kind, "sample_rate": config.sample_rate, "n_fft": config.n_fft,
                               "hop_length": config.hop_length}
        if spec.kind == "logmel":
            fkw["n_mels"] = spec.n_bins
        elif spec.kind == "mfcc":
            fkw["n_mfcc"] = spec.n_bins
        features = FeatureConfig(**fkw)
    chunk_frames = spec.chunk_frames
    if config.chunk_seconds is not None:
        chunk_frames = max(1, int(round(config.chunk_seconds * features.frames_per_second)))
        kwargs["chunk_frames"] = chunk_frames
        try:
            chunk_frames = model_spec(config.model, **kwargs).chunk_frames
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"model {config.model!r} cannot take chunk_seconds={config.chunk_seconds}: {exc}") \
                from exc
    return Resolved(model_kwargs=kwargs, features=features, chunk_frames=int(chunk_frames))


def optimizer_phase(config: TrainConfig, epoch: int) -> str:
    """Which optimiser runs ``epoch`` (0-based): ``"adam"`` or ``"sgd"``."""
    if config.optimizer == "sgd" or (config.optimizer == "adam_sgd" and epoch >= config.sgd_after):
        return "sgd"
    return "adam"


def lr_factor(config: TrainConfig, epoch: int) -> float:
    """Multiplier of the phase's base learning rate during ``epoch`` (0-based).

    The step schedule decays by ``gamma`` after each milestone; in ``adam_sgd`` the SGD phase
    counts only the milestones after ``sgd_after`` (Won et al.: SGD at 1e-3, 1e-4 after epoch
    100, 1e-5 after epoch 120).
    """
    if config.schedule == "step":
        sgd_phase = config.optimizer == "adam_sgd" and epoch >= config.sgd_after
        return config.gamma ** sum(1 for m in config.milestones if epoch >= m and (not sgd_phase or m > config.sgd_after))
    if config.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    return 1.0


def make_optimizer(model: nn.Module, config: TrainConfig, phase: str) -> torch.optim.Optimizer:
    """Adam or SGD over the trainable parameters: the output layer at the base rate, the rest at
    ``backbone_lr_mult`` times it. Each group keeps its ``base_lr`` for `set_lr`."""
    base = config.sgd_lr if phase == "sgd" and config.optimizer == "adam_sgd" else config.lr
    head = [p for p in model.classifier.parameters() if p.requires_grad]
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head, "lr": base, "base_lr": base}]
    if body:
        groups.append({"params": body, "lr": base * config.backbone_lr_mult,
                       "base_lr": base * config.backbone_lr_mult})
    if phase == "sgd":
        return torch.optim.SGD(groups, lr=base, momentum=config.momentum, nesterov=config.momentum > 0,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(groups, lr=base, weight_decay=config.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    """Set every group's rate to its base rate times ``factor``; returns the output layer's rate."""
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return float(optimizer.param_groups[0]["lr"])


def compute_pos_weight(labels: np.ndarray, mode: str, cap: float) -> torch.Tensor | None:
    """Per-tag weight of positive examples in the loss (the NYU fix for rare tags), or None."""
    if mode == "none":
        return None
    pos = labels.sum(axis=0).astype(np.float64)
    neg = len(labels) - pos
    ratio = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    ratio = np.sqrt(ratio) if mode == "sqrt" else ratio
    return torch.tensor(np.clip(ratio, 1.0, cap), dtype=torch.float32)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def set_train_mode(model: nn.Module, frozen: list[nn.Module]) -> None:
    """Train mode, except frozen blocks, which stay in eval mode so batch-norm statistics stay fixed."""
    model.train()
    for block in frozen:
        block.eval()


# ----------------------------------------------------------------------------- one epoch


@dataclass
class EpochResult:
    loss: float  # mean training loss over the batches run
    batches: int
    samples: int
    completed: bool  # False when the time budget cut the epoch short
    seconds: float


def train_one_epoch(model: nn.Module, loader: torch.utils.data.DataLoader, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, device: torch.device, *,
                    precision: devices.Precision | None = None, scaler: torch.amp.GradScaler | None = None,
                    frozen: list[nn.Module] | None = None, deadline: float | None = None,
                    epoch: int = 0, progress: bool = True) -> EpochResult:
    """One pass over ``loader`` (``(x (B, n_bins, T), y (B, k))`` batches).

    ``deadline`` (a `time.monotonic` value) stops the epoch after the batch that passes it.
    """
    precision = precision or devices.Precision(None, False)
    scaler = scaler or devices.make_scaler(device, precision)
    set_train_mode(model, frozen or [])
    start = time.monotonic()
    total, batches, samples = 0.0, 0, 0
    completed = True
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", unit="batch", leave=False, disable=not progress)
    for x, y in bar:
        x = x.to(device, non_blocking=True)  # (B, n_bins, T)
        y = y.to(device, non_blocking=True)  # (B, n_tags)
        with devices.autocast(device, precision):
            logits = model(x)
        loss = criterion(logits.float(), y)  # the loss in float32, whatever autocast ran in
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += float(loss.detach())
        batches += 1
        samples += len(x)
        if batches % 10 == 0:
            bar.set_postfix(loss=f"{total / batches:.4f}")
        # Under DDP every process must stop at the same step, or the others would wait forever.
        if deadline is not None and devices.any_rank(time.monotonic() > deadline, device):
            completed = False
            break
    bar.close()
    return EpochResult(loss=total / max(batches, 1), batches=batches, samples=samples, completed=completed,
                       seconds=time.monotonic() - start)


@torch.no_grad()
def predict_loader(model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device, *,
                   precision: devices.Precision | None = None, aggregate: str = "mean",
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip probabilities from a `ClipChunksDataset` loader: ``(rows, probs (n, k), labels (n, k))``.

    Under DDP each process scores its shard and the shards are gathered on every process.
    """
    precision = precision or devices.Precision(None, False)
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    rows, probs, labels = [], [], []
    for chunks, counts, y, r in tqdm(loader, desc="validate", unit="batch", leave=False, disable=not progress):
        with devices.autocast(device, precision):
            logits = net(chunks.to(device, non_blocking=True))  # (n_chunks, n_tags)
        p = torch.sigmoid(logits.float()).cpu().numpy()
        probs.append(aggregate_chunks(p, counts, aggregate))
        labels.append(y.numpy())
        rows.append(r.numpy())
    net.train(was_training)
    k = len(loader.dataset.labels[0]) if len(loader.dataset) else 0
    out_rows = torch.from_numpy(np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64))
    out_probs = torch.from_numpy(np.concatenate(probs) if probs else np.zeros((0, k), dtype=np.float32))
    out_rows = devices.all_gather_arrays(out_rows)
    out_probs = devices.all_gather_arrays(out_probs)
    order = torch.argsort(out_rows)
    rows_np = out_rows[order].numpy()
    return rows_np, out_probs[order].numpy(), loader.dataset.labels[rows_np]


def validate(model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device, *,
             precision: devices.Precision | None = None, progress: bool = False) -> dict[str, float]:
    """Validation macro ROC-AUC and PR-AUC (clip scores: mean over chunks), NaN if undefined."""
    _, probs, labels = predict_loader(model, loader, device, precision=precision, progress=progress)
    if len(probs) == 0:
        return {"roc_auc": float("nan"), "pr_auc": float("nan")}
    scores = auc_scores(labels.astype(np.uint8), probs)
    return {"roc_auc": scores["roc_auc_macro"], "pr_auc": scores["pr_auc_macro"]}


# ----------------------------------------------------------------------------- run directory


def prepare_run_dir(out_dir: Path, *, resume: bool, force: bool) -> RunDir:
    """Check what ``out_dir`` holds against ``resume`` / ``force`` (main process only).

    A complete run is never overwritten without ``force``; a partial one (``last.pt`` but no
    finished train stage) needs ``resume`` or ``force``.
    """
    run = RunDir(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunDirError(f"--out {out_dir} exists and is not a directory")
    if force and not resume:
        for name in {MANIFEST, HISTORY, BASELINE_FILE, *(f for files in STAGE_FILES.values() for f in files)}:
            path = out_dir / name
            if path.is_file():
                path.unlink()
        if (out_dir / TENSORBOARD_DIR).is_dir():
            shutil.rmtree(out_dir / TENSORBOARD_DIR)
        return run
    if resume:
        return run
    if run.stage_done("train"):
        raise RunDirError(f"{out_dir} already holds a trained run; pass --force to train it again from scratch "
                          f"(its files are replaced) or choose another --out")
    if (out_dir / LAST_CHECKPOINT).is_file():
        raise RunDirError(f"{out_dir} holds an unfinished run ({LAST_CHECKPOINT}); pass --resume to continue it "
                          f"or --force to start again")
    return run


def _save(path: Path, obj: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load_source_checkpoint(init_from: str) -> dict[str, Any]:
    path = Path(init_from).expanduser()
    if path.is_dir():
        return load_checkpoint(path)
    if path.is_file():
        return load_checkpoint(path.parent, path.name)
    raise ParameterError(f"init_from: no run directory or checkpoint at {path}")


def transfer_weights(model: nn.Module, source: dict[str, Any], tags: list[str]) -> dict[str, int]:
    """Load a source checkpoint's weights into ``model``; the output layer is rebuilt for ``tags``.

    Rows of the output layer whose tag exists in the source are copied; the others keep their
    fresh initialisation. Returns counts of what was carried over.
    """
    state = source["state_dict"]
    body = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(body, strict=False)
    missing = [k for k in missing if not k.startswith("classifier.")]
    if missing or unexpected:
        raise ParameterError(f"init_from: source weights do not fit model {source['model_name']!r} "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    src_tags = list(source["tags"])
    shared = [(i, src_tags.index(t)) for i, t in enumerate(tags) if t in src_tags]
    classifier: nn.Linear = model.classifier  # type: ignore[assignment]
    if "classifier.weight" in state and state["classifier.weight"].shape[1] == classifier.in_features:
        with torch.no_grad():
            for new, old in shared:
                classifier.weight[new] = state["classifier.weight"][old]
                classifier.bias[new] = state["classifier.bias"][old]
    return {"tensors": len(body), "shared_tags": len(shared), "new_tags": len(tags) - len(shared)}


def _write_history(run: RunDir, rows: list[dict[str, Any]]) -> None:
    write_csv(run / HISTORY, pd.DataFrame(rows, columns=list(HISTORY_COLUMNS)))


def _read_history(run: RunDir, upto_epoch: int) -> list[dict[str, Any]]:
    path = run / HISTORY
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    return [dict(r) for r in frame[frame["epoch"] <= upto_epoch].to_dict("records")]


class _TensorBoard:
    """Optional TensorBoard writer: a clear message, not a crash, when tensorboard is missing."""

    def __init__(self, enabled: bool, log_dir: Path) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("TensorBoard logging was asked for, but the 'tensorboard' package is not installed "
                        "(pip install tensorboard); training goes on without it (history.csv has every figure)")
            return
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key in ("train_loss", "valid_roc_auc", "valid_pr_auc", "lr"):
            if row.get(key) is not None and np.isfinite(row[key]):
                self.writer.add_scalar(key, row[key], row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _split_rows(corpus: Corpus, cache: Any) -> dict[str, np.ndarray]:
    """Corpus rows per split whose features are in the cache (bad audio is left out, with a warning)."""
    out = {}
    for split in ("train", "valid", "test"):
        rows = corpus.indices(split)
        ok = np.array([corpus.clip_ids[i] in cache for i in rows], dtype=bool)
        if (~ok).any():
            log.warning("%s: %d clip(s) have no features (see the cache's report of bad files) and are left out",
                        split, int((~ok).sum()))
        out[split] = rows[ok]
    return out


# ----------------------------------------------------------------------------- train


Callback = Callable[[int, dict[str, Any]], None]


def train(config: TrainConfig, corpus_dir: str | Path | None, out_dir: str | Path | None = None, *,
          resume: bool = False, force: bool = False, progress: bool = True,
          callbacks: list[Callback] | None = None) -> Path:
    """Train ``config`` on the corpus in ``corpus_dir`` into the run directory ``out_dir``.

    Parameters
    ----------
    corpus_dir : the corpus folder (None with ``resume``: the corpus the run recorded)
    out_dir : the run directory (default ``data/runs/<model>``)
    resume : continue from ``out_dir/last.pt`` with its saved config (a run already finished
        is left as it is); without ``last.pt`` training starts from scratch
    force : replace a complete or unfinished run in ``out_dir``
    callbacks : called as ``callback(epoch, history_row)`` after each epoch on the main process
        (an exception there stops training, leaving ``last.pt`` to resume from)

    Returns
    -------
    Path  the run directory
    """
    out = Path(out_dir) if out_dir is not None else DEFAULT_RUNS_ROOT / config.model
    out = out.expanduser().resolve()
    info = devices.dist_env()
    joined_here = False
    try:
        if info.enabled and not torch.distributed.is_initialized():
            joined_here = True
        info, device = devices.init_distributed(config.device)
        return _train(config, corpus_dir, out, info=info, device=device, resume=resume, force=force,
                      progress=progress, callbacks=callbacks or [])
    finally:
        if joined_here:
            devices.cleanup_distributed()


def _train(config: TrainConfig, corpus_dir: str | Path | None, out: Path, *, info: devices.DistInfo,
           device: torch.device, resume: bool, force: bool, progress: bool, callbacks: list[Callback]) -> Path:
    from pipeline.features.cache import build_cache
    from pipeline.features.extract import Normalizer

    # -- the run directory and, when resuming, the saved state (main process checks, all follow)
    error: str | None = None
    if info.is_main:
        try:
            prepare_run_dir(out, resume=resume, force=force)
        except PipelineError as exc:
            error = str(exc)
    error = devices.broadcast_object(error)  # type: ignore[assignment]
    if error:
        raise RunDirError(error)
    run = RunDir(out)
    last: dict[str, Any] | None = None
    if resume and (out / LAST_CHECKPOINT).is_file():
        last = torch.load(out / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
        saved = TrainConfig.from_dict(last["config"])
        if config not in (saved, TrainConfig()):
            log.warning("--resume continues with the run's saved config; options given now are ignored")
        config = saved
        if run.stage_done("train"):
            log.info("%s: training already finished; nothing to resume", out)
            return out
        if corpus_dir is None:
            corpus_dir = run.manifest()["corpus"]["root"]
    elif resume:
        log.info("%s: no %s to resume from; training from scratch", out, LAST_CHECKPOINT)
    if corpus_dir is None:
        raise ParameterError("a corpus folder is needed (--corpus DIR) unless resuming a run")

    seed_everything(config.seed)
    if config.deterministic and device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # -- corpus, labels, features
    label_config = config.label_config()
    corpus = load_corpus(corpus_dir, label_config)
    if not corpus.tags:
        raise ParameterError(f"{corpus.root}: the corpus has no tags to train on")
    source = _load_source_checkpoint(config.init_from) if config.init_from else None
    if source is not None and source.get("model_name") != config.model:
        raise ParameterError(f"init_from {config.init_from} holds a {source.get('model_name')!r} model, "
                             f"but --model is {config.model!r}")
    if config.is_baseline:
        return _train_baseline(config, corpus, run, info=info, progress=progress)
    resolved = resolve_model_input(config, source_ckpt=source)
    cache_kwargs: dict[str, Any] = {"workers": config.workers or None, "progress": progress and info.is_main}
    if config.cache_root:
        cache_kwargs["cache_root"] = Path(config.cache_root)
    if info.is_main:
        cache = build_cache(corpus, resolved.features, **cache_kwargs)
    devices.barrier()
    if not info.is_main:
        cache = build_cache(corpus, resolved.features, **{**cache_kwargs, "progress": False})
    rows = _split_rows(corpus, cache)
    if len(rows["train"]) < 2:
        raise ParameterError(f"{corpus.root}: the training split has {len(rows['train'])} usable clip(s); need >= 2")
    train_ids = [corpus.clip_ids[i] for i in rows["train"]]
    valid_ids = [corpus.clip_ids[i] for i in rows["valid"]]
    if not valid_ids:
        log.warning("no validation clips: the best checkpoint is simply the last epoch")
    if last is not None:
        normalizer = Normalizer.from_dict(last["normalizer"])
    else:
        normalizer = Normalizer(mode=config.normalization).fit(cache, train_ids)

    # -- model, optimiser, schedule
    workers = auto_workers() if config.workers is None else config.workers
    seed_everything(config.seed)
    model = _build_model(config.model, len(corpus.tags), resolved.model_kwargs)
    if source is not None and last is None:
        carried = transfer_weights(model, source, corpus.tags)
        log.info("initialised from %s: %s", config.init_from, carried)
    blocks = model_blocks(model)
    if config.freeze_blocks > len(blocks):
        raise ParameterError(f"freeze_blocks={config.freeze_blocks}, but {config.model} has {len(blocks)} blocks: "
                             f"{', '.join(n for n, _ in blocks)}")
    frozen = [m for _, m in blocks[:config.freeze_blocks]]
    for block in frozen:
        for p in block.parameters():
            p.requires_grad_(False)
    if frozen:
        log.info("frozen blocks: %s", ", ".join(n for n, _ in blocks[:config.freeze_blocks]))
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    phase = optimizer_phase(config, 0)
    optimizer = make_optimizer(model, config, phase)
    precision = devices.pick_precision(device, config.precision)
    scaler = devices.make_scaler(device, precision)
    train_labels = corpus.labels[rows["train"]]
    pos_weight = compute_pos_weight(train_labels, config.pos_weight, config.max_pos_weight)
    criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(device) if pos_weight is not None else None)

    start_epoch, best_score, best_epoch, bad_epochs, elapsed = 0, -math.inf, 0, 0, 0.0
    history: list[dict[str, Any]] = []
    if last is not None:
        model.load_state_dict(last["state_dict"])
        phase = last["scheduler"]["phase"]
        optimizer = make_optimizer(model, config, phase)
        optimizer.load_state_dict(last["optimizer"])
        if last.get("scaler"):
            scaler.load_state_dict(last["scaler"])
        start_epoch = int(last["epoch"])
        best_score = float(last["best_score"]) if last["best_score"] is not None else -math.inf
        best_epoch, bad_epochs = int(last["best_epoch"]), int(last["bad_epochs"])
        elapsed = float(last["elapsed"])
        history = _read_history(run, start_epoch)
        log.info("resuming %s after epoch %d (best valid ROC-AUC %.4f at epoch %d)", out, start_epoch,
                 best_score, best_epoch)

    net: nn.Module = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    pin = device.type == "cuda"
    train_set = RandomChunkDataset(cache, train_ids, train_labels, chunk_frames=resolved.chunk_frames,
                                   normalizer=normalizer)
    sampler = EpochSampler(len(train_set), seed=config.seed, rank=info.rank, world_size=info.world_size)
    loader = train_loader(train_set, sampler, batch_size=config.batch_size, workers=workers, pin_memory=pin,
                          seed=config.seed)
    valid_set = ClipChunksDataset(cache, valid_ids, corpus.labels[rows["valid"]], chunk_frames=resolved.chunk_frames,
                                  normalizer=normalizer)
    clip_frames = max((cache.n_frames(c) for c in valid_ids[:32]), default=resolved.chunk_frames)
    chunks_per_clip = max(1, math.ceil(clip_frames / resolved.chunk_frames))
    vloader = eval_loader(valid_set, batch_size=max(1, 4 * config.batch_size // chunks_per_clip), workers=workers,
                          pin_memory=pin, seed=config.seed, rank=info.rank, world_size=info.world_size)

    # -- the manifest says what this run is before the first epoch (a partial run is still legible)
    base_ckpt = {
        "kind": "network", "model_name": config.model, "model_kwargs": _plain(resolved.model_kwargs),
        "tags": list(corpus.tags), "features": _plain(resolved.features.to_dict()),
        "normalizer": _plain(normalizer.to_dict()), "chunk_frames": resolved.chunk_frames,
        "config": config.to_dict(),
    }
    if info.is_main:
        split_sizes = {s: int(len(r)) for s, r in rows.items()}
        run.update_manifest(
            corpus=corpus_record(corpus, label_config), tags=list(corpus.tags), split_sizes=split_sizes,
            model={"name": config.model, "kwargs": _plain(resolved.model_kwargs), "params": int(n_params),
                   "chunk_frames": resolved.chunk_frames,
                   "chunk_seconds": resolved.chunk_frames / resolved.features.frames_per_second},
            features=_plain(resolved.features.to_dict()), config=config.to_dict(),
            device=devices.describe(device, precision, info))
        log.info("training %s (%d parameters) on %s: %d train / %d valid clips, %d tags, %s, workers %d",
                 config.model, n_params, device, len(train_ids), len(valid_ids), len(corpus.tags),
                 precision.name, workers)
    board = _TensorBoard(config.tensorboard and info.is_main, out / TENSORBOARD_DIR)

    deadline = None
    if config.max_minutes is not None:
        deadline = time.monotonic() + max(config.max_minutes * 60 - elapsed, 0.0)
    try:
        epoch = start_epoch
        for epoch in range(start_epoch, config.epochs):
            if deadline is not None and devices.any_rank(time.monotonic() >= deadline, device):
                log.info("time budget of %.1f min used up before epoch %d", config.max_minutes, epoch + 1)
                break
            # Dropout and other torch randomness depend only on (seed, epoch): resuming repeats them.
            torch.manual_seed(config.seed * 100_003 + epoch)
            sampler.set_epoch(epoch)
            if optimizer_phase(config, epoch) != phase:
                # Won et al. 2020: from Adam to SGD, restarting from the best weights so far
                devices.barrier()
                if (out / CHECKPOINT).is_file():
                    model.load_state_dict(torch.load(out / CHECKPOINT, map_location=device, weights_only=True)
                                          ["state_dict"])
                phase = optimizer_phase(config, epoch)
                optimizer = make_optimizer(model, config, phase)
                log.info("epoch %d: switching to SGD (lr %.1e) from the best checkpoint", epoch + 1, config.sgd_lr)
            lr = set_lr(optimizer, lr_factor(config, epoch))
            result = train_one_epoch(net, loader, criterion, optimizer, device, precision=precision, scaler=scaler,
                                     frozen=frozen, deadline=deadline, epoch=epoch,
                                     progress=progress and info.is_main)
            scores = validate(net, vloader, device, precision=precision)
            seconds = result.seconds
            elapsed += seconds
            row = {"epoch": epoch + 1, "train_loss": result.loss, "valid_roc_auc": scores["roc_auc"],
                   "valid_pr_auc": scores["pr_auc"], "lr": lr, "seconds": round(seconds, 3)}
            history.append(row)
            score = scores["roc_auc"] if np.isfinite(scores["roc_auc"]) else -math.inf
            improved = score > best_score or best_epoch == 0 or (not valid_ids)
            if improved:
                best_score, best_epoch, bad_epochs = max(score, best_score), epoch + 1, 0
            else:
                bad_epochs += 1
            if info.is_main:
                state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
                ckpt = {**base_ckpt, "state_dict": state, "epoch": epoch + 1,
                        "best_score": None if not np.isfinite(best_score) else float(best_score),
                        "valid": _plain(scores)}
                if improved:
                    _save(out / CHECKPOINT, ckpt)
                _save(out / LAST_CHECKPOINT, {
                    **ckpt, "optimizer": optimizer.state_dict(),
                    "scheduler": {"schedule": config.schedule, "phase": phase, "next_epoch": epoch + 1},
                    "scaler": scaler.state_dict() if precision.use_scaler else {}, "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs, "elapsed": elapsed})
                _write_history(run, history)
                board.log(row)
                memory = f", peak GPU memory {_peak_gpu_gb(device):.2f} GB" if device.type == "cuda" else ""
                log.info("epoch %d/%d: loss %.4f, valid ROC-AUC %.4f, PR-AUC %.4f, lr %.2e, %.1f s (%.0f samples/s)%s%s",
                         epoch + 1, config.epochs, result.loss, scores["roc_auc"], scores["pr_auc"], lr, seconds,
                         result.samples * info.world_size / max(seconds, 1e-9), memory, " (best)" if improved else "")
                for callback in callbacks:
                    callback(epoch + 1, row)
            if not result.completed:
                log.info("time budget of %.1f min reached during epoch %d", config.max_minutes, epoch + 1)
                break
            if config.patience is not None and bad_epochs >= config.patience:
                log.info("early stop: no better validation ROC-AUC for %d epochs", bad_epochs)
                break
        devices.barrier()
    finally:
        board.close()
    if info.is_main:
        training = {"epochs_run": len(history), "best_epoch": best_epoch,
                    "best_valid_roc_auc": None if not np.isfinite(best_score) else best_score,
                    "seconds": round(elapsed, 1)}
        if device.type == "cuda":  # what a GPU run needs, for the docs' MagnaTagATune figures
            training["peak_gpu_memory_gb"] = round(_peak_gpu_gb(device), 2)
        run.update_manifest(training=training)
        run.mark_stage("train")
        log.info("trained %s: best valid ROC-AUC %.4f at epoch %d; %s", config.model, best_score, best_epoch, out)
    devices.barrier()
    return out


def _peak_gpu_gb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30


def _build_model(name: str, n_tags: int, kwargs: dict[str, Any]) -> nn.Module:
    from models.registry import get_model

    try:
        return get_model(name, n_tags=n_tags, **kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PipelineError):
            raise
        raise ParameterError(f"model {name!r} rejects options {kwargs}: {exc}") from exc


# ----------------------------------------------------------------------------- baselines


def _baseline_options(config: TrainConfig) -> dict[str, Any]:
    """The baseline's options: the given ones, plus the run's seed where the baseline takes one."""
    from models.baselines import BASELINES as BASELINE_CLASSES

    options = dict(config.model_kwargs)
    params = inspect.signature(BASELINE_CLASSES[config.model].__init__).parameters
    if "seed" in params and "seed" not in options:
        options["seed"] = config.seed
    return options


def _train_baseline(config: TrainConfig, corpus: Corpus, run: RunDir, *, info: devices.DistInfo,
                    progress: bool) -> Path:
    """Fit a classical baseline on pooled log-mel features and save it like a network's run.

    The estimator goes to ``baseline.joblib``; ``checkpoint.pt`` / ``last.pt`` hold the same
    metadata a network's do (tags, features, config; an empty state_dict) so that evaluation
    and the dashboard treat both alike.
    """
    from models.baselines import get_baseline
    from pipeline.features.cache import build_cache
    from pipeline.features.extract import FeatureConfig, Normalizer

    if info.enabled:
        raise ParameterError(f"baseline {config.model!r} trains in one process; run it without torchrun")
    features = FeatureConfig(kind="logmel", sample_rate=config.sample_rate, n_fft=config.n_fft,
                             hop_length=config.hop_length, n_mels=config.n_mels or 96)
    cache_kwargs: dict[str, Any] = {"workers": config.workers or None, "progress": progress}
    if config.cache_root:
        cache_kwargs["cache_root"] = Path(config.cache_root)
    cache = build_cache(corpus, features, **cache_kwargs)
    rows = _split_rows(corpus, cache)
    if len(rows["train"]) < 2:
        raise ParameterError(f"{corpus.root}: the training split has {len(rows['train'])} usable clip(s); need >= 2")
    baseline = get_baseline(config.model, **_baseline_options(config))
    label_config = config.label_config()
    run.update_manifest(
        corpus=corpus_record(corpus, label_config), tags=list(corpus.tags),
        split_sizes={s: int(len(r)) for s, r in rows.items()},
        model={"name": config.model, "kwargs": _plain(baseline.options), "params": None, "chunk_frames": 0,
               "kind": "baseline"},
        features=features.to_dict(), config=config.to_dict(), device={"type": "cpu", "library": "scikit-learn"})
    log.info("fitting baseline %s on %d clips (%d tags)", config.model, len(rows["train"]), len(corpus.tags))
    start = time.monotonic()
    # Memory-mapped views of the cache: each clip is read when the baseline pools it.
    baseline.fit([cache.read(corpus.clip_ids[i]) for i in rows["train"]], corpus.labels[rows["train"]])
    scores = {"roc_auc": float("nan"), "pr_auc": float("nan")}
    if len(rows["valid"]):
        probs = baseline.predict_proba([cache.read(corpus.clip_ids[i]) for i in rows["valid"]])
        auc = auc_scores(corpus.labels[rows["valid"]], probs)
        scores = {"roc_auc": auc["roc_auc_macro"], "pr_auc": auc["pr_auc_macro"]}
    seconds = time.monotonic() - start
    baseline.save(run / BASELINE_FILE)
    best = scores["roc_auc"] if np.isfinite(scores["roc_auc"]) else None
    ckpt = {"kind": "baseline", "model_name": config.model, "model_kwargs": _plain(baseline.options),
            "tags": list(corpus.tags), "state_dict": {}, "features": features.to_dict(),
            "normalizer": Normalizer("none").to_dict(), "chunk_frames": 0, "config": config.to_dict(),
            "epoch": 1, "best_score": best, "valid": _plain(scores), "baseline_file": BASELINE_FILE}
    _save(run / CHECKPOINT, ckpt)
    _save(run / LAST_CHECKPOINT, {**ckpt, "best_epoch": 1, "bad_epochs": 0, "elapsed": seconds})
    _write_history(run, [{"epoch": 1, "train_loss": float("nan"), "valid_roc_auc": scores["roc_auc"],
                          "valid_pr_auc": scores["pr_auc"], "lr": float("nan"), "seconds": round(seconds, 3)}])
    run.update_manifest(training={"epochs_run": 1, "best_epoch": 1, "best_valid_roc_auc": best,
                                  "seconds": round(seconds, 1)})
    run.mark_stage("train", files=(CHECKPOINT, LAST_CHECKPOINT, HISTORY, BASELINE_FILE))
    log.info("fitted %s in %.1f s: valid ROC-AUC %.4f; %s", config.model, seconds, scores["roc_auc"], run.path)
    return run.path
