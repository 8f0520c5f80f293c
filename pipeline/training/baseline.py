"""Training a classical baseline (models.baselines) into a run directory like a network's."""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import device as devices
from pipeline.analysis.metrics import auc_scores
from pipeline.errors import ParameterError
from pipeline.features.extract import Normalizer
from pipeline.run.rundir import BASELINE_FILE, CHECKPOINT, HISTORY, LAST_CHECKPOINT, RunDir
from pipeline.sources.corpus import Corpus, corpus_record
from pipeline.sources.labels import LabelConfig
from pipeline.training.checkpoints import plain, save_checkpoint, write_history
from pipeline.training.config import TrainConfig
from pipeline.training.data import feature_cache, split_rows
from pipeline.training.resolve import baseline_features, resolved_config

log = logging.getLogger(__name__)


def baseline_options(config: TrainConfig) -> dict[str, Any]:
    """The baseline's options: the given ones, plus the run's seed where the baseline takes one."""
    from models.baselines import BASELINES as BASELINE_CLASSES

    options = dict(config.model_kwargs)
    params = inspect.signature(BASELINE_CLASSES[config.model].__init__).parameters
    if "seed" in params and "seed" not in options:
        options["seed"] = config.seed
    return options


def train_baseline(config: TrainConfig, corpus: Corpus, labels: LabelConfig, run: RunDir, *,
                   info: devices.DistInfo, progress: bool) -> Path:
    """Fit a classical baseline on pooled log-mel features and save it like a network's run.

    ``labels`` is the label config resolved for ``corpus``. The estimator goes to
    ``baseline.npz`` (arrays + JSON, no pickle); ``checkpoint.pt`` / ``last.pt`` hold the same metadata a network's
    do (tags, features, resolved config; an empty state_dict) so that evaluation and the
    dashboard treat both alike.
    """
    from models.baselines import get_baseline

    if info.enabled:
        raise ParameterError(f"baseline {config.model!r} trains in one process; run it without torchrun")
    features = baseline_features(config)
    used = resolved_config(config, features, labels).to_dict()
    cache = feature_cache(corpus, features, config, progress=progress)
    rows = split_rows(corpus, cache)
    baseline = get_baseline(config.model, **baseline_options(config))
    run.update_manifest(
        corpus=corpus_record(corpus, labels), tags=list(corpus.tags),
        split_sizes={s: int(len(r)) for s, r in rows.items()},
        model={"name": config.model, "kwargs": plain(baseline.options), "params": None, "chunk_frames": 0,
               "kind": "baseline"},
        features=features.to_dict(), config=used, device={"type": "cpu", "library": "scikit-learn"})
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
    ckpt = {"kind": "baseline", "model_name": config.model, "model_kwargs": plain(baseline.options),
            "tags": list(corpus.tags), "state_dict": {}, "features": features.to_dict(),
            "normalizer": Normalizer("none").to_dict(), "chunk_frames": 0, "config": used,
            "epoch": 1, "best_score": best, "valid": plain(scores), "baseline_file": BASELINE_FILE}
    save_checkpoint(run / CHECKPOINT, ckpt)
    save_checkpoint(run / LAST_CHECKPOINT, {**ckpt, "best_epoch": 1, "bad_epochs": 0, "elapsed": seconds})
    write_history(run, [{"epoch": 1, "train_loss": float("nan"), "valid_roc_auc": scores["roc_auc"],
                         "valid_pr_auc": scores["pr_auc"], "lr": float("nan"), "seconds": round(seconds, 3)}])
    run.update_manifest(training={"epochs_run": 1, "best_epoch": 1, "best_valid_roc_auc": best,
                                  "seconds": round(seconds, 1)})
    run.mark_stage("train", files=(CHECKPOINT, LAST_CHECKPOINT, HISTORY, BASELINE_FILE))
    log.info("fitted %s in %.1f s: valid ROC-AUC %.4f; %s", config.model, seconds, scores["roc_auc"], run.path)
    return run.path
