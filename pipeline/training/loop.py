"""The epoch loop: one training epoch, validation, and the loop over epochs with its state.

Plain functions in the style of torchvision's reference scripts (`train_one_epoch`,
`validate`); `run_epochs` drives them, saving both checkpoints and the history after every
epoch so that a killed run resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pipeline import device as devices
from pipeline.analysis.metrics import auc_scores
from pipeline.run.rundir import CHECKPOINT, LAST_CHECKPOINT, RunDir
from pipeline.scoring.chunks import aggregate_chunks
from pipeline.training.checkpoints import plain, save_checkpoint, write_history
from pipeline.training.config import TrainConfig
from pipeline.training.optim import lr_factor, make_optimizer, optimizer_phase, set_lr

log = logging.getLogger(__name__)

Callback = Callable[[int, dict[str, Any]], None]


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def set_train_mode(model: nn.Module, frozen: list[nn.Module]) -> None:
    """Train mode, except frozen blocks, which stay in eval mode so batch-norm statistics stay fixed."""
    model.train()
    for block in frozen:
        block.eval()



# ----------------------------------------------------------------------------- what a run will cost

ESTIMATE_AFTER_BATCHES = 4  # batches timed, after the first, before a CPU run estimates its duration
# A CPU run estimated longer than this says so and names the CPU recipe (unless --demo was given):
# the recipe itself stops at 5 minutes of training (CPU_RECIPE["max_minutes"]) plus its validations.
LONG_CPU_RUN_MINUTES = 10.0
# Validation runs forward passes only, which take about a third of a training step per chunk
# (the backward pass costs about twice the forward).
FORWARD_SHARE = 1 / 3
# Chunks a validation batch holds: make_loaders sizes them to about 4 training batches.
VALID_BATCH_CHUNKS = 4


@dataclass(frozen=True)
class RunEstimate:
    """How long the rest of a run will take, from the measured seconds of a training batch."""

    batch_seconds: float  # one training batch, measured
    batches_per_epoch: int
    epochs: int  # epochs still to run, the current one included
    valid_seconds: float  # one validation pass, estimated from the batch time
    budget_seconds: float | None = None  # what the time budget (--max-minutes) leaves, if any

    @property
    def train_seconds(self) -> float:
        full = self.epochs * self.batches_per_epoch * self.batch_seconds
        return full if self.budget_seconds is None else min(full, self.budget_seconds)

    @property
    def seconds(self) -> float:
        """Training plus a validation after each epoch that fits the budget (early stopping aside)."""
        epoch_seconds = max(self.batches_per_epoch * self.batch_seconds, 1e-9)
        epochs_run = min(self.epochs, math.ceil(self.train_seconds / epoch_seconds))
        return self.train_seconds + epochs_run * self.valid_seconds

    def describe(self) -> str:
        budget = (f", capped by the time budget at {self.budget_seconds / 60:.1f} min of training"
                  if self.budget_seconds is not None and self.train_seconds < self.epochs * self.batches_per_epoch
                  * self.batch_seconds else "")
        return (f"about {_minutes(self.seconds)} in all: {self.epochs} epoch(s) x {self.batches_per_epoch} batches x "
                f"{self.batch_seconds:.2f} s a batch, plus about {self.valid_seconds:.0f} s of validation an "
                f"epoch{budget}")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"


def estimate_run(batch_seconds: float, *, batches_per_epoch: int, epochs: int, valid_batches: int, batch_size: int,
                 budget_seconds: float | None = None) -> RunEstimate:
    """A `RunEstimate` from one training batch's seconds and the run's shape (validation from its batch count)."""
    per_chunk = batch_seconds / max(batch_size, 1)
    valid_seconds = valid_batches * VALID_BATCH_CHUNKS * batch_size * per_chunk * FORWARD_SHARE
    return RunEstimate(batch_seconds=batch_seconds, batches_per_epoch=batches_per_epoch, epochs=epochs,
                       valid_seconds=valid_seconds, budget_seconds=budget_seconds)


def report_estimate(estimate: RunEstimate, *, suggest_recipe: bool) -> None:
    """Log the estimate; warn in one line, naming the CPU recipe, when it is long and the recipe was not asked for."""
    log.info("this CPU run will take %s", estimate.describe())
    if suggest_recipe and estimate.seconds > LONG_CPU_RUN_MINUTES * 60:
        log.warning("this run will take about %s on the CPU; for a run of minutes use the CPU recipe "
                    "(pipeline.training.config.CPU_RECIPE, with each model's own width and epochs): add --demo "
                    "(python -m pipeline train --corpus DIR --demo [--model NAME]), or cap it with --max-minutes",
                    _minutes(estimate.seconds))


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
                    epoch: int = 0, progress: bool = True,
                    on_batch_time: Callable[[float], None] | None = None) -> EpochResult:
    """One pass over ``loader`` (``(x (B, n_bins, T), y (B, k))`` batches).

    ``deadline`` (a `time.monotonic` value) stops the epoch after the batch that passes it.
    ``on_batch_time`` is called once with the seconds a batch takes: the mean over
    `ESTIMATE_AFTER_BATCHES` batches after the first (whose warm-up would mislead), or over
    every batch of an epoch too short for that.
    """
    precision = precision or devices.Precision(None, False)
    scaler = scaler or devices.make_scaler(device, precision)
    set_train_mode(model, frozen or [])
    start = time.monotonic()
    total, batches, samples = 0.0, 0, 0
    completed = True
    first_done = None  # time.monotonic() after the first batch
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
        if on_batch_time is not None:
            if batches == 1:
                first_done = time.monotonic()
            elif batches == 1 + ESTIMATE_AFTER_BATCHES:
                on_batch_time((time.monotonic() - first_done) / ESTIMATE_AFTER_BATCHES)
                on_batch_time = None
        # Under DDP every process must stop at the same step, or the others would wait forever.
        if deadline is not None and devices.any_rank(time.monotonic() > deadline, device):
            completed = False
            break
    bar.close()
    seconds = time.monotonic() - start
    if on_batch_time is not None and batches:  # an epoch of few batches: its mean, warm-up included
        on_batch_time(seconds / batches)
    return EpochResult(loss=total / max(batches, 1), batches=batches, samples=samples, completed=completed,
                       seconds=seconds)


@torch.no_grad()
def predict_loader(model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device, *,
                   precision: devices.Precision | None = None, aggregate: str = "mean",
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip probabilities from a `ClipChunksDataset` loader: ``(rows, probs (n, k), labels (n, k))``.

    Under DDP each process scores its shard and the shards are gathered on every process.
    """
    precision = precision or devices.Precision(None, False)
    net = unwrap(model)
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


# ----------------------------------------------------------------------------- the loop


class TensorBoard:
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


@dataclass
class TrainState:
    """What changes from epoch to epoch; ``last.pt`` holds all of it, so a resume continues exactly."""

    model: nn.Module  # the bare network (what checkpoints hold)
    net: nn.Module  # what runs the batches: the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    phase: str  # "adam" or "sgd" (optim.optimizer_phase)
    scaler: torch.amp.GradScaler
    precision: devices.Precision
    criterion: nn.Module
    frozen: list[nn.Module]  # frozen blocks, kept in eval mode
    start_epoch: int = 0  # epochs already run (0-based index of the next)
    best_score: float = -math.inf  # best validation macro ROC-AUC so far
    best_epoch: int = 0  # 1-based epoch of checkpoint.pt; 0: none yet
    bad_epochs: int = 0  # epochs since the last improvement (early stopping)
    elapsed: float = 0.0  # seconds of training so far, over every resume
    history: list[dict[str, Any]] = field(default_factory=list)  # history.csv's rows

    def restore(self, last: dict[str, Any], config: TrainConfig, history: list[dict[str, Any]]) -> None:
        """Take up the state saved in ``last.pt``."""
        self.model.load_state_dict(last["state_dict"])
        self.phase = last["scheduler"]["phase"]
        self.optimizer = make_optimizer(self.model, config, self.phase)
        self.optimizer.load_state_dict(last["optimizer"])
        if last.get("scaler"):
            self.scaler.load_state_dict(last["scaler"])
        self.start_epoch = int(last["epoch"])
        self.best_score = float(last["best_score"]) if last["best_score"] is not None else -math.inf
        self.best_epoch, self.bad_epochs = int(last["best_epoch"]), int(last["bad_epochs"])
        self.elapsed = float(last["elapsed"])
        self.history = history

    def record(self, score: float, epoch: int, *, has_valid: bool) -> bool:
        """Count epoch ``epoch`` (0-based) scoring ``score``; True if it is the best so far."""
        improved = score > self.best_score or self.best_epoch == 0 or not has_valid
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = max(score, self.best_score), epoch + 1, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def best(self) -> float | None:
        return None if not np.isfinite(self.best_score) else float(self.best_score)


@dataclass
class EpochLoop:
    """What the loop needs besides its state: the run, the loaders and the main-process duties."""

    config: TrainConfig
    run: RunDir
    device: torch.device
    loader: torch.utils.data.DataLoader
    sampler: Any  # loaders.EpochSampler
    vloader: torch.utils.data.DataLoader
    has_valid: bool
    base_ckpt: dict[str, Any]  # what every checkpoint holds besides the weights and the epoch's state
    info: devices.DistInfo
    board: TensorBoard
    callbacks: list[Callback]
    progress: bool
    suggest_recipe: bool = True  # a long CPU run names the CPU recipe (off for --demo runs)


def _switch_phase(state: TrainState, loop: EpochLoop, epoch: int) -> None:
    """Won et al. 2020: from Adam to SGD, restarting from the best weights so far."""
    devices.barrier()
    best = loop.run / CHECKPOINT
    if best.is_file():
        state.model.load_state_dict(torch.load(best, map_location=loop.device, weights_only=True)["state_dict"])
    state.phase = optimizer_phase(loop.config, epoch)
    state.optimizer = make_optimizer(state.model, loop.config, state.phase)
    log.info("epoch %d: switching to SGD (lr %.1e) from the best checkpoint", epoch + 1, loop.config.sgd_lr)


def _save_epoch(state: TrainState, loop: EpochLoop, epoch: int, scores: dict[str, float], improved: bool) -> None:
    """Both checkpoints and the history after epoch ``epoch`` (main process)."""
    weights = {k: v.detach().cpu() for k, v in state.model.state_dict().items()}
    ckpt = {**loop.base_ckpt, "state_dict": weights, "epoch": epoch + 1, "best_score": state.best,
            "valid": plain(scores)}
    if improved:
        save_checkpoint(loop.run / CHECKPOINT, ckpt)
    save_checkpoint(loop.run / LAST_CHECKPOINT, {
        **ckpt, "optimizer": state.optimizer.state_dict(),
        "scheduler": {"schedule": loop.config.schedule, "phase": state.phase, "next_epoch": epoch + 1},
        "scaler": state.scaler.state_dict() if state.precision.use_scaler else {}, "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs, "elapsed": state.elapsed})
    write_history(loop.run, state.history)


def run_epoch(state: TrainState, loop: EpochLoop, epoch: int, deadline: float | None) -> EpochResult:
    """Train and validate epoch ``epoch`` (0-based), then save and report it; returns how it went."""
    config = loop.config
    # Dropout and other torch randomness depend only on (seed, epoch): resuming repeats them.
    torch.manual_seed(config.seed * 100_003 + epoch)
    loop.sampler.set_epoch(epoch)
    if optimizer_phase(config, epoch) != state.phase:
        _switch_phase(state, loop, epoch)
    lr = set_lr(state.optimizer, lr_factor(config, epoch))
    on_batch_time = None
    if epoch == state.start_epoch and loop.device.type == "cpu" and loop.info.is_main:
        def on_batch_time(seconds: float) -> None:
            budget = None if config.max_minutes is None else max(config.max_minutes * 60 - state.elapsed, 0.0)
            report_estimate(estimate_run(seconds, batches_per_epoch=len(loop.loader), epochs=config.epochs - epoch,
                                         valid_batches=len(loop.vloader) if loop.has_valid else 0,
                                         batch_size=config.batch_size, budget_seconds=budget),
                            suggest_recipe=loop.suggest_recipe)
    result = train_one_epoch(state.net, loop.loader, state.criterion, state.optimizer, loop.device,
                             precision=state.precision, scaler=state.scaler, frozen=state.frozen, deadline=deadline,
                             epoch=epoch, progress=loop.progress and loop.info.is_main, on_batch_time=on_batch_time)
    scores = validate(state.net, loop.vloader, loop.device, precision=state.precision)
    state.elapsed += result.seconds
    row = {"epoch": epoch + 1, "train_loss": result.loss, "valid_roc_auc": scores["roc_auc"],
           "valid_pr_auc": scores["pr_auc"], "lr": lr, "seconds": round(result.seconds, 3)}
    state.history.append(row)
    score = scores["roc_auc"] if np.isfinite(scores["roc_auc"]) else -math.inf
    improved = state.record(score, epoch, has_valid=loop.has_valid)
    if loop.info.is_main:
        _save_epoch(state, loop, epoch, scores, improved)
        loop.board.log(row)
        memory = f", peak GPU memory {peak_gpu_gb(loop.device):.2f} GB" if loop.device.type == "cuda" else ""
        log.info("epoch %d/%d: loss %.4f, valid ROC-AUC %.4f, PR-AUC %.4f, lr %.2e, %.1f s (%.0f samples/s)%s%s",
                 epoch + 1, config.epochs, result.loss, scores["roc_auc"], scores["pr_auc"], lr, result.seconds,
                 result.samples * loop.info.world_size / max(result.seconds, 1e-9), memory,
                 " (best)" if improved else "")
        for callback in loop.callbacks:
            callback(epoch + 1, row)
    return result


def run_epochs(state: TrainState, loop: EpochLoop) -> None:
    """Epochs from ``state.start_epoch`` until the last, the time budget or early stopping."""
    config = loop.config
    deadline = None
    if config.max_minutes is not None:
        deadline = time.monotonic() + max(config.max_minutes * 60 - state.elapsed, 0.0)
    for epoch in range(state.start_epoch, config.epochs):
        if deadline is not None and devices.any_rank(time.monotonic() >= deadline, loop.device):
            log.info("time budget of %.1f min used up before epoch %d", config.max_minutes, epoch + 1)
            break
        result = run_epoch(state, loop, epoch, deadline)
        if not result.completed:
            log.info("time budget of %.1f min reached during epoch %d", config.max_minutes, epoch + 1)
            break
        if config.patience is not None and state.bad_epochs >= config.patience:
            log.info("early stop: no better validation ROC-AUC for %d epochs", state.bad_epochs)
            break
    devices.barrier()


def peak_gpu_gb(device: torch.device) -> float:
    """The most GPU memory this process has allocated, in GiB."""
    return torch.cuda.max_memory_allocated(device) / 2**30
