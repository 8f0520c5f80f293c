"""``python -m pipeline demo``: build the whole demo from nothing (make demo calls it)."""

from __future__ import annotations

import argparse
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from pipeline.end_to_end import DEFAULT_DATA, DemoConfig

    d = DemoConfig()
    p = argparse.ArgumentParser(
        prog="python -m pipeline demo",
        description="Build the demo end to end: a synthesized MagnaTagATune-shaped corpus, its log-mel cache, the "
                    "default CNN, one scoring pass (predictions, taggrams, embeddings), evaluation, maps and label issues. Every stage reuses "
                    "what is already built, so a second call takes seconds. Then open the dashboard with "
                    "'make dashboard' (make demo does both).")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"data folder: corpus in DATA/demo, run in DATA/runs/demo (default {DEFAULT_DATA})")
    p.add_argument("--clips", type=int, default=d.clips, help=f"demo corpus size (default {d.clips})")
    p.add_argument("--seconds", type=float, default=d.seconds, help=f"clip length in seconds (default {d.seconds:g})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"corpus and training seed (default {d.seed})")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the demo recipe's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.end_to_end import DemoConfig, build_demo
    from pipeline.io import check_folder_path

    check_folder_path(args.data, "--data")
    check_folder_path(args.data / "demo", "--data")  # the corpus and run folders go below it
    check_folder_path(args.data / "runs" / "demo", "--data")
    run = build_demo(DemoConfig(data=args.data, clips=args.clips, seconds=args.seconds, seed=args.seed,
                                epochs=args.epochs, progress=not args.no_progress))
    print(f"demo run: {run}\nopen the dashboard: make dashboard  (or: streamlit run dashboard/app.py -- --runs "
          f"{run.parent})")
    return 0
