"""``python -m benchmarks <name> ...``: benchmarks that print figures (never tests).

Each benchmark lives in ``benchmarks/<name>.py`` with ``main(argv)``.
"""

from __future__ import annotations

import importlib
import sys

from pipeline.errors import PipelineError

BENCHES: dict[str, str] = {
    "features": "decode vs decode + log-mel vs a plain librosa loop, in clips per second",
    "train": "training samples per second per model and data-loader throughput on this machine",
    "tag": "time 'python -m pipeline tag' on a 30 s clip as a whole process",
    "dashboard": "dashboard load and interaction times on a MagnaTagATune-scale run",
    "browser": "the dashboard in headless Chromium: user action to page settled, 1 and 5 concurrent sessions",
    "page_ab": "this checkout's dashboard against another checkout's, page switches alternated in one browser",
    "chart_cost": "what one chart costs headless Chromium: plotly with and without Streamlit's theme, Vega-Lite, WebGL",
    "label_issues": "precision@k of the label-issue rankings against the demo corpus's truth.csv",
    "agreement": "the converted musicnn models against the original's outputs on real mp3s",
    "review_gain": "review the top-k label issues with truth.csv as the oracle, retrain, gain vs k random pairs",
    "transfer": "fine-tuning a source run on a new tag set (3 levels) vs training from scratch, by training size",
    "inside": "inside-the-model precompute cost and size, and the page's server times, on a scored run",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHES:
        lines = "\n".join(f"  {k:<10} {v}" for k, v in BENCHES.items())
        print(f"usage: python -m benchmarks <name> [options]\n\nbenchmarks:\n{lines}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(f"benchmarks.{argv[0]}")
    try:
        return int(module.main(argv[1:]) or 0)
    except PipelineError as exc:  # bad input: one line, as `python -m pipeline` says it
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
