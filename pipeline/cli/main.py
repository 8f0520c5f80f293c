"""Command dispatch for ``python -m pipeline <command> ...``.

Each command lives in ``pipeline/cli/<name>.py`` with ``build_parser()`` and
``main(argv)``. Commands are imported only when run, so ``--help`` and light commands stay
fast (torch alone takes over a second to import).
"""

from __future__ import annotations

import importlib
import logging
import sys

from pipeline.errors import PipelineError

# name -> one-line description; the module is pipeline.cli.<name>
COMMANDS: dict[str, str] = {
    "data": "build a corpus: the synthesized demo (data demo) or MagnaTagATune (data mtt)",
    "features": "compute and cache log-mel / MFCC / waveform features for a corpus",
    "train": "train a tagger (a CNN from the model zoo, or a classical baseline)",
    "score": "score every clip once: probabilities, taggrams, embeddings (any run on any corpus)",
    "evaluate": "evaluate a run's scores: ROC-AUC / PR-AUC overall and per tag, with confidence intervals",
    "embed": "clip and tag maps, neighbours and label issues, from a run's scores",
    "tag": "tag audio files or folders (musicnn's published model by default, or a run) and print the top tags",
    "review": "the verdicts reviewers gave by ear: export them with corrected annotations, or their status",
    "pretrained": "musicnn's published taggers converted to torch: list, get NAME, fetch (the install step)",
    "demo": "build the whole demo from nothing: corpus, features, training, artifacts",
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    return ("usage: python -m pipeline <command> [options]\n\ncommands:\n" + "\n".join(lines)
            + "\n\nRun 'python -m pipeline <command> --help' for a command's options.")


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors print a one-line message and exit with status 2."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(f"pipeline.cli.{name}")
    try:
        return int(module.main(rest) or 0)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
