"""The whole demo from nothing: corpus, features, training, scores, evaluation, embeddings.

Every stage is idempotent, so a second call reuses what exists and finishes in seconds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.paths import data_root
from pipeline.run.rundir import RunDir

log = logging.getLogger(__name__)

DEFAULT_DATA = data_root()


@dataclass
class DemoConfig:
    """Where the demo goes and how big it is."""

    data: Path = DEFAULT_DATA  # corpus in <data>/demo, run in <data>/runs/demo
    clips: int = 1500  # demo corpus size: enough for a model to learn every tag
    seconds: float = 10.0  # clip length
    seed: int = 0  # corpus and training seed
    epochs: int | None = None  # None: the demo training recipe's own
    progress: bool = True

    @property
    def corpus_dir(self) -> Path:
        return self.data / "demo"

    @property
    def run_dir(self) -> Path:
        return self.data / "runs" / "demo"


def build_demo(config: DemoConfig) -> Path:
    """Run every stage of the demo (each skipped when already complete); return the run directory."""
    from pipeline.analysis.embed import run_embed
    from pipeline.analysis.evaluate import evaluate_run, summary
    from pipeline.scoring.score import score_run
    from pipeline.sources.demo import build_demo_corpus
    from pipeline.training.config import demo_train_config
    from pipeline.training.train import train

    started = time.monotonic()
    steps = 5
    run = RunDir(config.run_dir)
    overrides = {"seed": config.seed}
    if config.epochs is not None:
        overrides["epochs"] = config.epochs
    # built (and so validated) first: a bad --epochs fails now, not after the corpus and features
    train_config = demo_train_config(**overrides)

    log.info("step 1/%d: demo corpus (%d clips x %.0f s) in %s", steps, config.clips, config.seconds,
             config.corpus_dir)
    build_demo_corpus(config.corpus_dir, clips=config.clips, seconds=config.seconds, seed=config.seed,
                      progress=config.progress)

    if run.stage_done("train"):
        log.info("step 2/%d: training: reusing the trained run in %s", steps, run.path)
    else:
        log.info("step 2/%d: features and training into %s", steps, run.path)
        # resume=True continues an interrupted demo run from last.pt instead of starting over
        train(train_config, config.corpus_dir, run.path, resume=True,
              progress=config.progress)

    # The stages run in data-flow order: train -> score -> evaluate -> embed. Scoring is a no-op
    # when its files are intact; recomputing it forgets evaluate and embed, which then rebuild.
    log.info("step 3/%d: scores, taggrams, embeddings and ONNX export (one pass over the corpus)", steps)
    score_run(run.path, progress=config.progress)
    if run.stage_done("evaluate"):
        log.info("step 4/%d: evaluation: reusing metrics.json", steps)
    else:
        log.info("step 4/%d: evaluation on the test split", steps)
        evaluation = evaluate_run(run.path, progress=config.progress)
        print(summary(evaluation, run.path, "test"))
    log.info("step 5/%d: clip and tag maps, neighbours and label issues", steps)
    run_embed(run.path, progress=config.progress)

    log.info("demo ready in %.0f s: run directory %s", time.monotonic() - started, run.path)
    return run.path
