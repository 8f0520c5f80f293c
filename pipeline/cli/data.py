"""``python -m pipeline data``: build a corpus folder.

- ``data demo --out DIR``: synthesize the demo corpus (MagnaTagATune's shape, audio rendered
  from generated MIDI through a General MIDI SoundFont); see `pipeline.sources.demo`.
- ``data mtt --out DIR``: download and extract MagnaTagATune; see `pipeline.sources.mtt`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    from pipeline.paths import data_root

    parser = argparse.ArgumentParser(
        prog="python -m pipeline data",
        description="Build a corpus folder in MagnaTagATune's format (annotations_final.csv, "
                    "clip_info_final.csv, mp3s in folders 0-9 and a-f), ready for "
                    "'python -m pipeline features DIR'.",
    )
    sub = parser.add_subparsers(dest="source", required=True, metavar="{demo,mtt}")

    demo = sub.add_parser(
        "demo", prog="python -m pipeline data demo",
        help="synthesize the demo corpus (no download needed)",
        description="Synthesize a demo corpus shaped exactly like MagnaTagATune: genre recipes (classical, "
                    "rock, metal, techno, ambient, indian, opera, ...) rendered from generated MIDI through "
                    "the General MIDI SoundFont shipped with pretty_midi, 16 kHz mono mp3s at 32 kbit/s. "
                    "The annotations omit each true tag with probability --label-dropout, like human "
                    "taggers; truth.csv beside them keeps every true tag. Deterministic from --seed; "
                    "rerunning reuses every clip already rendered.",
    )
    demo.add_argument("--out", type=Path, default=data_root() / "demo", help="corpus folder to create or complete (default: %(default)s)")
    demo.add_argument("--clips", type=int, default=1500, help="number of clips (default: %(default)s)")
    demo.add_argument("--seconds", type=float, default=10.0, help="length of each clip in seconds, 1 to 600 (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of arrangements, tags, names, split and dropout (default: %(default)s)")
    demo.add_argument("--label-dropout", type=float, default=0.2,
                      help="probability that annotations_final.csv omits a true tag, in [0, 1) (default: %(default)s)")
    demo.add_argument("--workers", type=int, default=None,
                      help="rendering processes (default: the number of CPU cores)")
    demo.add_argument("--force", action="store_true",
                      help="re-render every clip, even where a valid mp3 exists (e.g. after a generator update)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    mtt = sub.add_parser(
        "mtt", prog="python -m pipeline data mtt",
        help="download and extract MagnaTagATune (about 3 GB)",
        description="Download MagnaTagATune (mp3.zip.001-003, annotations_final.csv, clip_info_final.csv) "
                    "with resume and size / checksum checks, then join and extract the archive into DIR. "
                    "Idempotent: files already complete are kept.",
    )
    mtt.add_argument("--out", type=Path, default=data_root() / "mtt", help="folder to download and extract into (default: %(default)s)")
    mtt.add_argument("--base-url", default=None,
                     help="where the files live (default: MagnaTagATune's home, "
                          "https://mirg.city.ac.uk/datasets/magnatagatune/)")
    mtt.add_argument("--force", action="store_true", help="download and extract again even if complete")
    return parser


def _demo(args: argparse.Namespace) -> int:
    from pipeline.sources.demo import build_demo_corpus

    out = build_demo_corpus(args.out, clips=args.clips, seconds=args.seconds, seed=args.seed,
                            label_dropout=args.label_dropout, workers=args.workers,
                            progress=not args.no_progress, force=args.force)
    log.info("next: python -m pipeline features %s", out)
    return 0


def _mtt(args: argparse.Namespace) -> int:
    # imported here: the download module is only needed for this sub-command
    from pipeline.sources.mtt import download_mtt

    kwargs = {"force": args.force}
    if args.base_url is not None:
        kwargs["base_url"] = args.base_url
    out = download_mtt(args.out, **kwargs)
    log.info("MagnaTagATune ready in %s; next: python -m pipeline features %s, then train on it (the literature's "
             "protocol by default: top-50 unmerged tags, tagged clips, folder split; --split FILE|DIR reads "
             "Won et al.'s or musicnn's published split)", out, out)
    return 0


def main(argv: list[str]) -> int:
    from pipeline.io import check_folder_path

    args = build_parser().parse_args(argv)
    check_folder_path(args.out, "--out")
    return {"demo": _demo, "mtt": _mtt}[args.source](args)
