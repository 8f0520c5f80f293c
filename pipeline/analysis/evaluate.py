"""Evaluate a trained run the way the literature does, and write metrics.json and per_tag.csv.

Clip scores come from `pipeline.scoring.inference` (chunks of the model's input, aggregated by mean
or max); per-tag thresholds are tuned on the validation split and applied to the evaluated
split; headline figures get bootstrap 95% intervals (`pipeline.analysis.metrics`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.analysis.metrics import GLOBAL_THRESHOLD, Evaluation, evaluate_scores, format_summary, tune_thresholds
from pipeline.errors import ParameterError, RunDirError
from pipeline.io import write_csv, write_json
from pipeline.run.rundir import METRICS, PER_TAG, RunDir
from pipeline.scoring.inference import AGGREGATES, RunModel, load_run
from pipeline.sources.corpus import SPLITS, Corpus
from pipeline.sources.loader import corpus_from_record

log = logging.getLogger(__name__)


def _features_source(run_model: RunModel, corpus: Corpus, *, workers: int | None, progress: bool) -> Any:
    """The run's feature cache for ``corpus`` (built by training; rebuilt if it was deleted)."""
    from pipeline.features.cache import build_cache

    cfg = run_model.checkpoint.get("config", {})
    kwargs: dict[str, Any] = {"workers": workers, "progress": progress}
    if cfg.get("cache_root"):
        kwargs["cache_root"] = Path(cfg["cache_root"])
    return build_cache(corpus, run_model.features, **kwargs)


def score_split(run_model: RunModel, corpus: Corpus, cache: Any, split: str, *, aggregate: str = "mean",
                progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Clip probabilities of one split: ``(rows of the corpus [n], probs [n, n_tags])``.

    Clips whose audio could not be decoded (absent from the cache) are left out with a warning.
    """
    rows = corpus.indices(split)
    ok = np.array([corpus.clip_ids[i] in cache for i in rows], dtype=bool)
    if (~ok).any():
        log.warning("%s: %d clip(s) without features are left out", split, int((~ok).sum()))
    rows = rows[ok]
    if not len(rows):
        return rows, np.zeros((0, len(run_model.tags)), dtype=np.float32)
    features = (np.asarray(cache.read(corpus.clip_ids[i])) for i in rows)  # read lazily, one clip at a time
    probs = run_model.predict_many(features, aggregate=aggregate, progress=progress, total=len(rows))
    return rows, probs


def evaluate_run(run_dir: str | Path, *, split: str = "test", aggregate: str = "mean", n_bootstrap: int = 1000,
                 seed: int = 0, device: str | None = None, workers: int | None = None,
                 progress: bool = True, write: bool = True) -> Evaluation:
    """Evaluate the run in ``run_dir`` on ``split``; write metrics.json / per_tag.csv and the manifest.

    Parameters
    ----------
    split : the split evaluated (``test``, or ``valid`` / ``train`` for diagnosis)
    aggregate : how chunk probabilities become a clip's: ``mean`` or ``max``
    n_bootstrap : resamples of the confidence intervals (0: none)
    seed : seed of the bootstrap
    write : False computes and returns without touching the run directory
    """
    if split not in SPLITS:
        raise ParameterError(f"split must be one of {SPLITS}, got {split!r}")
    if aggregate not in AGGREGATES:
        raise ParameterError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    if n_bootstrap < 0:
        raise ParameterError(f"bootstrap must be >= 0, got {n_bootstrap}")
    run = RunDir(run_dir)
    run.require("train")
    manifest = run.manifest()
    from pipeline.device import pick_device

    run_model = load_run(run.path, pick_device(device or "auto"))
    corpus = corpus_from_record(manifest["corpus"])
    if list(corpus.tags) != run_model.tags:
        raise RunDirError(f"{run.path}: the corpus at {corpus.root} now has different tags than the run was "
                          f"trained on; retrain the run")
    cache = _features_source(run_model, corpus, workers=workers, progress=progress)

    valid_rows, valid_probs = score_split(run_model, corpus, cache, "valid", aggregate=aggregate, progress=progress)
    if len(valid_rows):
        thresholds = tune_thresholds(corpus.labels[valid_rows], valid_probs)
    else:
        log.warning("no validation clips: per-tag thresholds stay at 0.5")
        thresholds = np.full(len(corpus.tags), GLOBAL_THRESHOLD)
    if split == "valid":
        rows, probs = valid_rows, valid_probs
    else:
        rows, probs = score_split(run_model, corpus, cache, split, aggregate=aggregate, progress=progress)
    if not len(rows):
        raise ParameterError(f"{run.path}: split {split!r} of corpus {corpus.root} has no clips to evaluate")
    evaluation = evaluate_scores(corpus.labels[rows], probs, corpus.tags, thresholds=thresholds,
                                 n_bootstrap=n_bootstrap, seed=seed)
    if write:
        _write(run, evaluation, split=split, aggregate=aggregate, seed=seed, checkpoint=run_model.checkpoint,
               n_valid=len(valid_rows))
    return evaluation


def _write(run: RunDir, evaluation: Evaluation, *, split: str, aggregate: str, seed: int,
           checkpoint: dict[str, Any], n_valid: int) -> None:
    record = {"split": split, "aggregate": aggregate, "bootstrap_seed": seed,
              "thresholds_tuned_on": "valid" if n_valid else None,
              "checkpoint_epoch": checkpoint.get("epoch"), "model": checkpoint.get("model_name"),
              **evaluation.to_dict()}
    write_json(run / METRICS, record)
    write_csv(run / PER_TAG, evaluation.per_tag, float_format="%.6g")
    run.update_manifest(metrics={k: record[k] for k in ("split", "aggregate", "n_clips", "headline", "ci95",
                                                         "undefined_tags")})
    run.mark_stage("evaluate")


def summary(evaluation: Evaluation, run_dir: str | Path, split: str) -> str:
    """The summary table the command prints: headline figures, then the best and worst tags."""
    text = format_summary(evaluation, title=f"{Path(run_dir).name}: {split} split")
    table = evaluation.per_tag.dropna(subset=["roc_auc"]).sort_values("roc_auc", ascending=False)
    if len(table):
        def rows(frame: Any) -> str:
            return "\n".join(f"  {r.tag:<20} support {int(r.support):>5}  ROC-AUC {r.roc_auc:.3f}  "
                             f"PR-AUC {r.pr_auc:.3f}  F1 {r.f1:.3f} (tuned {r.f1_tuned:.3f})"
                             for r in frame.itertuples())
        text += f"\nbest tags:\n{rows(table.head(5))}\nworst tags:\n{rows(table.tail(5).iloc[::-1])}"
    return text
