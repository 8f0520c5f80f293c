"""Training: a CNN tagger from the model zoo, or a classical baseline, into a run directory.

`train(config, corpus_dir, out_dir)` writes the run-directory contract (`pipeline.run.rundir`):
``checkpoint.pt`` (best validation macro ROC-AUC), ``last.pt`` (with optimiser and schedule
state, for ``--resume``), ``history.csv`` and the manifest, each holding the resolved config.
The pieces: `pipeline.training.config` (`TrainConfig`, recipes), `.resolve` (model input,
labels), `.data` (feature cache, loaders), `.optim`, `.checkpoints`, `.transfer` (starting
from another run: ``init_from`` and ``transfer``), `.loop` (the epochs) and `.baseline`.

Examples
--------
>>> config = TrainConfig(model="musicnn", model_kwargs={"width": 0.25}, epochs=2)  # doctest: +SKIP
>>> train(config, "data/demo", "data/runs/musicnn")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline import device as devices
from pipeline.errors import ParameterError, PipelineError, RunDirError
from pipeline.features.cache import FeatureCache
from pipeline.features.extract import Normalizer
from pipeline.paths import data_root
from pipeline.review.corrections import correct_labels
from pipeline.run.rundir import LAST_CHECKPOINT, TENSORBOARD, RunDir
from pipeline.sources.corpus import Corpus, corpus_record
from pipeline.sources.labels import LabelConfig
from pipeline.sources.loader import load_corpus
from pipeline.training.baseline import train_baseline
from pipeline.training.checkpoints import (
    load_source_checkpoint,
    plain,
    prepare_run_dir,
    read_history,
    transfer_weights,
)
from pipeline.training.config import TrainConfig, parse_transfer
from pipeline.training.data import Loaders, auto_workers, feature_cache, make_loaders, split_rows
from pipeline.training.loop import Callback, EpochLoop, TensorBoard, TrainState, peak_gpu_gb, run_epochs
from pipeline.training.optim import compute_pos_weight, make_optimizer, optimizer_phase
from pipeline.training.resolve import (
    Resolved,
    baseline_features,
    build_model,
    resolve_model_input,
    resolved_config,
)
from pipeline.training.transfer import (
    check_source_features,
    embedding_loaders,
    frozen_blocks,
    source_normalizer,
    transfer_record,
)

log = logging.getLogger(__name__)

DEFAULT_RUNS_ROOT = data_root() / "runs"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(config: TrainConfig, corpus_dir: str | Path | None, out_dir: str | Path | None = None, *,
          resume: bool = False, force: bool = False, progress: bool = True,
          callbacks: list[Callback] | None = None, suggest_recipe: bool = True) -> Path:
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
    suggest_recipe : on a CPU, a run estimated to take long warns and names the CPU recipe
        (`pipeline.training.loop.report_estimate`); False where the recipe was asked for (--demo)

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
                      progress=progress, callbacks=callbacks or [], suggest_recipe=suggest_recipe)
    finally:
        if joined_here:
            devices.cleanup_distributed()


@dataclass
class _Start:
    """Where a run starts: its directory, the config to run and, when resuming, the saved state."""

    run: RunDir
    config: TrainConfig
    corpus_dir: str | Path
    last: dict[str, Any] | None  # last.pt when resuming
    given: TrainConfig | None  # the config asked for when resuming (the saved one runs)
    finished: bool = False  # resuming a run already finished: nothing to do


def _start(config: TrainConfig, corpus_dir: str | Path | None, out: Path, *, info: devices.DistInfo,
           resume: bool, force: bool) -> _Start:
    """Check the run directory (main process; all follow) and take up a resumed run's config."""
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
    last, given = None, None
    if resume and (out / LAST_CHECKPOINT).is_file():
        last = torch.load(out / LAST_CHECKPOINT, map_location="cpu", weights_only=True)
        given, config = config, TrainConfig.from_dict(last["config"])
        if run.stage_done("train"):
            log.info("%s: training already finished; nothing to resume", out)
            return _Start(run, config, corpus_dir or "", last, given, finished=True)
        if corpus_dir is None:
            corpus_dir = run.manifest()["corpus"]["root"]
    elif resume:
        log.info("%s: no %s to resume from; training from scratch", out, LAST_CHECKPOINT)
    if corpus_dir is None:
        raise ParameterError("a corpus folder is needed (--corpus DIR) unless resuming a run")
    return _Start(run, config, corpus_dir, last, given)


def _warn_if_ignored(given: TrainConfig, saved: TrainConfig, corpus: Corpus, source: dict[str, Any] | None) -> None:
    """A resumed run keeps its saved (resolved) config: say so when other options were asked for."""
    if given == TrainConfig():
        return
    features = baseline_features(given) if given.is_baseline else resolve_model_input(given, source_ckpt=source).features
    given = resolved_config(given, features, corpus.resolve_labels(given.labels))
    if given != saved:
        log.warning("--resume continues with the run's saved config; options given now are ignored")


def _set_determinism(config: TrainConfig, device: torch.device) -> None:
    seed_everything(config.seed)
    if config.deterministic and device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def _load_source(config: TrainConfig) -> dict[str, Any] | None:
    """The checkpoint to start from (transfer learning), checked against ``config.model``."""
    if not config.init_from:
        return None
    source = load_source_checkpoint(config.init_from)
    if source.get("kind", "network") != "network":
        raise ParameterError(f"init_from {config.init_from} is a {source.get('kind')} run; transfer needs a network")
    if source.get("model_name") != config.model:
        raise ParameterError(f"init_from {config.init_from} holds a {source.get('model_name')!r} model, "
                             f"but --model is {config.model!r}")
    check_source_features(config, source)
    return source


def _features_level(config: TrainConfig) -> bool:
    """True when only the output layer trains, on the frozen network's embeddings (transfer ``features``)."""
    return config.transfer is not None and parse_transfer(config.transfer).kind == "features"


def _shared_cache(corpus: Corpus, resolved: Resolved, config: TrainConfig, *, info: devices.DistInfo,
                  progress: bool) -> FeatureCache:
    """The feature cache: built by the main process, then opened by the others."""
    if info.is_main:
        cache = feature_cache(corpus, resolved.features, config, progress=progress and info.is_main)
    devices.barrier()
    if not info.is_main:
        cache = feature_cache(corpus, resolved.features, config, progress=False)
    return cache


def _build_state(config: TrainConfig, corpus: Corpus, rows: dict[str, np.ndarray], resolved: Resolved, *,
                 source: dict[str, Any] | None, last: dict[str, Any] | None, run: RunDir, device: torch.device,
                 info: devices.DistInfo) -> TrainState:
    """Model (from the source's weights, blocks frozen), optimiser, loss; a resumed run's state restored."""
    seed_everything(config.seed)
    model = build_model(config.model, len(corpus.tags), resolved.model_kwargs)
    if source is not None and last is None:
        # A transfer level re-initialises the whole output layer: the new tag set is new even where
        # a name matches one of the source's (a user's "rock" is not MagnaTagATune's).
        carried = transfer_weights(model, source, corpus.tags, copy_shared=config.transfer is None)
        log.info("initialised from %s: %s", config.init_from, carried)
    frozen = frozen_blocks(model, config)
    if frozen:
        log.info("frozen blocks: %s", ", ".join(n for n, _ in frozen))
    model.to(device)
    # The features level trains the output layer alone, on embeddings computed once: it is the net.
    net: nn.Module = model.classifier if _features_level(config) else model
    phase = optimizer_phase(config, 0)
    precision = devices.pick_precision(device, config.precision)
    pos_weight = compute_pos_weight(corpus.labels[rows["train"]], config.pos_weight, config.max_pos_weight)
    criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(device) if pos_weight is not None else None)
    state = TrainState(model=model, net=net, optimizer=make_optimizer(model, config, phase), phase=phase,
                       scaler=devices.make_scaler(device, precision), precision=precision, criterion=criterion,
                       frozen=[m for _, m in frozen] if net is model else [])
    if last is not None:
        state.restore(last, config, read_history(run, int(last["epoch"])))
        log.info("resuming %s after epoch %d (best valid ROC-AUC %.4f at epoch %d)", run.path, state.start_epoch,
                 state.best_score, state.best_epoch)
    if info.enabled:
        state.net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
    return state


def _write_manifest(run: RunDir, used: TrainConfig, corpus: Corpus, labels: LabelConfig, rows: dict[str, np.ndarray],
                    resolved: Resolved, state: TrainState, device: torch.device, info: devices.DistInfo,
                    transfer: dict[str, Any] | None) -> None:
    """What this run is, before the first epoch (a partial run is still legible)."""
    n_params = sum(p.numel() for p in state.model.parameters())
    if transfer is not None:  # where the network came from, and what of it trains
        run.update_manifest(transfer=transfer)
    run.update_manifest(
        corpus=corpus_record(corpus, labels), tags=list(corpus.tags),
        split_sizes={s: int(len(r)) for s, r in rows.items()},
        model={"name": used.model, "kwargs": plain(resolved.model_kwargs), "params": int(n_params),
               "chunk_frames": resolved.chunk_frames,
               "chunk_seconds": resolved.chunk_frames / resolved.features.frames_per_second},
        features=plain(resolved.features.to_dict()), config=used.to_dict(),
        device=devices.describe(device, state.precision, info))
    log.info("training %s (%d parameters) on %s: %d train / %d valid clips, %d tags, %s", used.model, n_params,
             device, len(rows["train"]), len(rows["valid"]), len(corpus.tags), state.precision.name)


def _finish(run: RunDir, config: TrainConfig, state: TrainState, device: torch.device) -> None:
    """The manifest's training summary, and the train stage marked complete (main process)."""
    training = {"epochs_run": len(state.history), "best_epoch": state.best_epoch,
                "best_valid_roc_auc": state.best, "seconds": round(state.elapsed, 1)}
    if device.type == "cuda":  # what a GPU run needs, for the docs' MagnaTagATune figures
        training["peak_gpu_memory_gb"] = round(peak_gpu_gb(device), 2)
    run.update_manifest(training=training)
    run.mark_stage("train")
    log.info("trained %s: best valid ROC-AUC %.4f at epoch %d; %s", config.model, state.best_score, state.best_epoch,
             run.path)


def training_corpus(config: TrainConfig, corpus_dir: str | Path, *, recorded: dict[str, Any] | None = None
                    ) -> tuple[Corpus, dict[str, Any] | None]:
    """The corpus as training sees it: label processing, then the verdicts of ``config.corrections``.

    Returns the corpus (its labels corrected) and the manifest's ``corrections`` record (None
    without corrections). ``recorded``: the record of the run being resumed, whose verdicts file
    must not have changed since (`pipeline.review.corrections.correct_labels`).
    """
    corpus = load_corpus(corpus_dir, config.labels)
    if not corpus.tags:
        raise ParameterError(f"{corpus.root}: the corpus has no tags to train on")
    if config.corrections is None:
        return corpus, None
    labels, record = correct_labels(corpus.clip_ids, corpus.tags, corpus.labels, config.corrections,
                                    expected_sha256=(recorded or {}).get("sha256"))
    return dataclasses.replace(corpus, labels=labels), record


def _train(config: TrainConfig, corpus_dir: str | Path | None, out: Path, *, info: devices.DistInfo,
           device: torch.device, resume: bool, force: bool, progress: bool, callbacks: list[Callback],
           suggest_recipe: bool = True) -> Path:
    start = _start(config, corpus_dir, out, info=info, resume=resume, force=force)
    if start.finished:
        return out
    config, run, last = start.config, start.run, start.last
    _set_determinism(config, device)

    # -- corpus and labels (resolved for this corpus: what was used is what the run records)
    recorded = run.read_manifest().corrections if last is not None else None
    corpus, corrections = training_corpus(config, start.corpus_dir, recorded=recorded)
    if info.is_main:
        run.update_manifest(corrections=corrections)
    labels = corpus.label_config or config.labels.resolved(corpus.source)
    source = _load_source(config)
    if start.given is not None:
        _warn_if_ignored(start.given, config, corpus, source)
    if config.is_baseline:
        return train_baseline(config, corpus, labels, run, info=info, progress=progress)

    # -- features, rows, normalisation
    resolved = resolve_model_input(config, source_ckpt=source)
    used = resolved_config(config, resolved.features, labels)
    cache = _shared_cache(corpus, resolved, config, info=info, progress=progress)
    rows = split_rows(corpus, cache)
    if not len(rows["valid"]):
        log.warning("no validation clips: the best checkpoint is simply the last epoch")
    train_ids = [corpus.clip_ids[i] for i in rows["train"]]
    # A transferred network gets its input exactly as the source did: the source's fitted normaliser.
    if last is not None:
        normalizer = Normalizer.from_dict(last["normalizer"])
    elif source is not None:
        normalizer = source_normalizer(source)
    else:
        normalizer = Normalizer(mode=config.normalization).fit(cache, train_ids)
    used = dataclasses.replace(used, normalization=normalizer.mode)

    # -- model, optimiser, loaders
    state = _build_state(config, corpus, rows, resolved, source=source, last=last, run=run, device=device, info=info)
    workers = auto_workers() if config.workers is None else config.workers
    if _features_level(config):
        data: Loaders = embedding_loaders(state.model, corpus, cache, rows, normalizer,
                                          chunk_frames=resolved.chunk_frames, config=config, device=device,
                                          precision=state.precision, info=info, progress=progress and info.is_main)
    else:
        data = make_loaders(corpus, cache, rows, normalizer, chunk_frames=resolved.chunk_frames, config=config,
                            workers=workers, info=info, pin_memory=device.type == "cuda")
    if info.is_main:
        transfer = transfer_record(used, source, state.model) if source is not None else None
        _write_manifest(run, used, corpus, labels, rows, resolved, state, device, info, transfer)
    base_ckpt = {
        "kind": "network", "model_name": config.model, "model_kwargs": plain(resolved.model_kwargs),
        "tags": list(corpus.tags), "features": plain(resolved.features.to_dict()),
        "normalizer": plain(normalizer.to_dict()), "chunk_frames": resolved.chunk_frames,
        "config": used.to_dict(),
    }
    board = TensorBoard(config.tensorboard and info.is_main, out / TENSORBOARD)
    loop = EpochLoop(config=config, run=run, device=device, loader=data.train, sampler=data.sampler,
                     vloader=data.valid, has_valid=bool(data.valid_ids), base_ckpt=base_ckpt, info=info, board=board,
                     callbacks=callbacks, progress=progress, suggest_recipe=suggest_recipe)
    try:
        run_epochs(state, loop)
    finally:
        board.close()
    if info.is_main:
        _finish(run, config, state, device)
    devices.barrier()
    return out
