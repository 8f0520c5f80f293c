"""``python -m benchmarks agreement``: the converted musicnn models against the original's own outputs.

For each published model and each real mp3 in ../shared/fixtures/real-audio, the toolkit's whole
path (decode, log-mel, musicnn's patching, the converted network) is compared with the
reference outputs the original musicnn (TensorFlow) wrote (tests/fixtures/musicnn_reference,
made by scripts/musicnn_reference.py): the largest absolute difference of the per-patch
taggram, of its mean, of the clip score of the scoring pass and of the penultimate layer, and
whether the top-5 tags agree in order. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.paths import REPO

REFERENCE = REPO / "tests" / "fixtures" / "musicnn_reference"
AUDIO = REPO.parent / "shared" / "fixtures" / "real-audio"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks agreement", description=__doc__.splitlines()[0])
    p.add_argument("--audio", type=Path, default=AUDIO, metavar="DIR", help=f"the real mp3s (default {AUDIO})")
    args = p.parse_args(argv)
    from pipeline.errors import ParameterError
    from pipeline.pretrained.build import ensure_model
    from pipeline.pretrained.catalog import MODELS
    from pipeline.pretrained.verify import compare

    files = sorted(args.audio.glob("*.mp3"))
    if not files:
        raise ParameterError(f"--audio {args.audio}: no mp3 files")
    print("| model | file | patches | taggram max abs diff | mean max abs diff | "
          "penultimate max abs diff (largest value) | top-5 (converted = original) |")
    print("|---|---|---|---|---|---|---|")
    for name, entry in MODELS.items():
        folder = ensure_model(name)
        for audio in files:
            ref = REFERENCE / f"{audio.stem}.{entry.original}.npz"
            if not ref.is_file():
                continue
            got = compare(folder, audio, ref)
            same = "equal" if got.top5_equal else f"DIFFER: {got.top5} vs {got.top5_original}"
            print(f"| {name} | {audio.name[:24]} | {got.n_patches} | {got.taggram_max_abs:.1e} | "
                  f"{got.mean_max_abs:.1e} | {got.penultimate_max_abs:.1e} "
                  f"({got.penultimate_scale:.2f}) | {', '.join(got.top5)}: {same} |", flush=True)
    return 0
