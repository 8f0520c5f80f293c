"""``python -m pipeline score RUN_DIR [--corpus DIR --out NEW_RUN]``: score every clip once with a run's model.

With ``--corpus DIR --out NEW_RUN`` the new run is also evaluated (skipped, with the reason, when
the corpus has no annotations) and embedded, so that a folder of music becomes a complete
dashboard run in one command; ``--score-only`` stops after the scores.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline score",
        description="Score every clip of a corpus once with a trained run's model: the tag probabilities and "
                    "ground truth (predictions.parquet), the tag activations over time (taggrams.npy + "
                    "taggrams_index.parquet) and the penultimate-layer embeddings (clip_embeddings.npy), and export "
                    "the model to model.onnx + tagger.json for fast tagging ('python -m pipeline tag'). Evaluate "
                    "and embed then read these scores. Without --corpus the run's own corpus is scored in place; "
                    "with --corpus DIR --out NEW_RUN the model is copied into NEW_RUN, DIR is scored there and "
                    "the new run is then evaluated (when DIR has annotations for some of the model's tags) and "
                    "embedded, ready for the dashboard. "
                    "Uses CUDA when present. Rerunning with everything unchanged and intact does nothing; a damaged "
                    "file is detected and rebuilt.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                   help="a trained run directory (python -m pipeline train), or a published model's name "
                        "(mtt_musicnn, mtt_vgg, msd_musicnn, msd_vgg: see 'python -m pipeline pretrained list')")
    p.add_argument("--corpus", type=Path, default=None, metavar="DIR",
                   help="score this corpus (an MTT-format corpus or a folder of audio) instead of the run's own; "
                        "needs --out")
    p.add_argument("--out", type=Path, default=None, metavar="NEW_RUN",
                   help="the new run folder that holds the model scored on --corpus")
    p.add_argument("--score-only", action="store_true",
                   help="with --out: stop after the scores (default: evaluate and embed the new run too)")
    p.add_argument("--tags-csv", type=Path, default=None, metavar="CSV",
                   help="for a folder --corpus: its tags CSV (default: tags.csv in the folder, when present)")
    p.add_argument("--aggregate", default="mean", choices=("mean", "max"),
                   help="how a clip's chunk probabilities are combined (default mean, as validation)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N",
                   help="clips of equal length per forward pass (default 16)")
    p.add_argument("--taggram-hop", type=float, default=0.5, metavar="SECONDS",
                   help="taggram hop wanted, in seconds; a model whose own frames are coarser is run on shifted "
                        "copies of each clip to reach it, one whose frames are finer keeps them (default 0.5)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (default auto)")
    p.add_argument("--workers", type=int, default=None, help="feature-cache workers if the cache must be built")
    p.add_argument("--force", action="store_true", help="recompute even when the scores are up to date")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.pretrained.build import run_or_pretrained
    from pipeline.scoring.score import score_run

    args.run_dir = run_or_pretrained(args.run_dir)
    entry = score_run(args.run_dir, corpus_dir=args.corpus, out_dir=args.out, tags_csv=args.tags_csv,
                      aggregate=args.aggregate, batch_clips=args.batch_size, taggram_hop_s=args.taggram_hop,
                      device=args.device, workers=args.workers, force=args.force, progress=not args.no_progress)
    run_dir = args.out if args.out is not None else args.run_dir
    print(f"{run_dir}: scores for {entry['n_clips']} clips"
          + (f" ({entry['n_failed']} without features, listed in the manifest)" if entry.get("n_failed") else ""))
    labelled = entry.get("labelled_tags") or []
    print(f"  labels: {len(labelled)} of the model's tags are annotated in the corpus"
          + ("" if labelled else "; no metrics without annotations, every other view works"))
    plan = entry.get("taggram")
    if plan:
        print(f"  taggrams: {plan['fps']:.2f} frames per second ({plan['mode']}, window {plan['window_s']:.2f} s)")
    embedding = entry.get("embedding") or {}
    if embedding:
        print(f"  embeddings: {embedding.get('dim')} dimensions ({embedding.get('source')})")
    onnx = entry.get("onnx") or {}
    if "exporter" in onnx:
        print(f"  model.onnx: {onnx['exporter']} exporter, max |ONNX - torch| {onnx['max_abs_diff']:.1e}")
    elif "error" in onnx:
        print(f"  model.onnx: not exported ({onnx['error']}); 'tag' will use the torch checkpoint")
    print(f"  files: {', '.join(entry['files'])}")
    if args.out is None or args.score_only:
        print(f"next: python -m pipeline evaluate {run_dir}; python -m pipeline embed {run_dir}")
        return 0
    analyse(run_dir, progress=not args.no_progress)
    print(f"dashboard: streamlit run dashboard/app.py -- --runs {run_dir.parent}")
    return 0


def analyse(run_dir: Path, *, progress: bool) -> None:
    """The stages after score on a new run, with their default options: evaluate, then embed.

    Evaluation takes the first of the test, valid and train splits that has clips (a small
    folder may have no test clip) and is recorded as skipped when nothing is annotated.
    """
    from pipeline.analysis.embed import EmbedConfig, run_embed
    from pipeline.analysis.evaluate import evaluate_run
    from pipeline.cli import embed, evaluate

    print(evaluate.report(evaluate_run(run_dir, split=None, progress=progress), run_dir))
    print(embed.report(run_embed(run_dir, EmbedConfig(), progress=progress), run_dir))
