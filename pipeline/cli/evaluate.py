"""``python -m pipeline evaluate RUN_DIR``: metrics.json and per_tag.csv for a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.analysis.metrics import Evaluation


def build_parser() -> argparse.ArgumentParser:
    from pipeline.sources.corpus import SPLITS

    p = argparse.ArgumentParser(
        prog="python -m pipeline evaluate",
        description="Evaluate a run's scores (predictions.parquet, from 'python -m pipeline score'; no network "
                    "runs): ROC-AUC and PR-AUC (macro, micro, support-weighted) with bootstrap "
                    "95% confidence intervals, and per tag support, ROC-AUC, PR-AUC, precision / recall / F1 at "
                    "0.5 and at per-tag thresholds tuned on the validation split. Writes metrics.json and "
                    "per_tag.csv into the run directory and the headline figures into its manifest.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a scored run directory (python -m pipeline score)")
    p.add_argument("--split", default="test", choices=SPLITS, help="split to evaluate (default test)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples of the confidence intervals; 0 skips them (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--corrections", type=Path, metavar="FILE",
                   help="a verdicts CSV (python -m pipeline review export): score against the annotations its "
                   "reviewers' consensus corrects; metrics.json and the stage entry record which (default: the "
                   "annotations as they are)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (kept for symmetry; nothing is long)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.analysis.evaluate import evaluate_run

    evaluation = evaluate_run(args.run_dir, split=args.split, n_bootstrap=args.bootstrap, seed=args.seed,
                              progress=not args.no_progress, corrections=args.corrections)
    print(report(evaluation, args.run_dir, args.split))
    return 0


def report(evaluation: Evaluation | None, run_dir: Path, split: str | None = None) -> str:
    """What the command prints: the summary and the files written, or why the stage was skipped.

    ``split`` is the evaluated split (None: the one metrics.json records).
    """
    from pipeline.analysis.evaluate import summary
    from pipeline.run.rundir import RunDir

    run = RunDir(run_dir)
    if evaluation is None:
        entry = run.read_manifest().stage("evaluate")
        reason = entry.skipped if entry is not None else None
        return f"{run_dir}: evaluation skipped: {reason or 'no ground truth'}"
    metrics = run.read_metrics()
    split = split or metrics.split
    text = f"{summary(evaluation, run_dir, split)}\nwrote {run_dir / 'metrics.json'} and {run_dir / 'per_tag.csv'}"
    if metrics.corrections:
        c = metrics.corrections
        text += (f"\nscored against annotations corrected by {c['file']}: {c['changed']} of {c['applied']} "
                 f"verdicts applied changed a label ({c['disagreements']} disagreements skipped)")
    return text
