"""``python -m pipeline predict RUN_DIR``: predictions, taggrams and the exported tagger of a run."""

from __future__ import annotations

import argparse
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline predict",
        description="Precompute, for every clip of every split of a trained run's corpus, the tag probabilities "
                    "and ground truth (predictions.parquet) and the tag activations over time (taggrams.npy + "
                    "taggrams_index.parquet), and export the best checkpoint to model.onnx + tagger.json for "
                    "fast tagging ('python -m pipeline tag'). Reuses the run's feature cache; uses CUDA when "
                    "present. Rerunning with an unchanged checkpoint and options does nothing.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a trained run directory (python -m pipeline train)")
    p.add_argument("--aggregate", default="mean", choices=("mean", "max"),
                   help="how a clip's chunk probabilities are combined (default mean, as evaluation)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N",
                   help="clips of equal length per forward pass (default 16)")
    p.add_argument("--taggram-hop", type=float, default=0.5, metavar="SECONDS",
                   help="taggram hop wanted, in seconds; a model whose own frames are coarser is run on shifted "
                        "copies of each clip to reach it, one whose frames are finer keeps them (default 0.5)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (default auto)")
    p.add_argument("--workers", type=int, default=None, help="feature-cache workers if the cache must be rebuilt")
    p.add_argument("--force", action="store_true", help="recompute even when the predictions are up to date")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.scoring.predict import predict_run

    entry = predict_run(args.run_dir, aggregate=args.aggregate, batch_clips=args.batch_size,
                        taggram_hop_s=args.taggram_hop, device=args.device, workers=args.workers, force=args.force,
                        progress=not args.no_progress)
    plan = entry.get("taggram")
    print(f"{args.run_dir}: predictions for {entry['n_clips']} clips"
          + (f" ({entry['n_failed']} without features, listed in the manifest)" if entry.get("n_failed") else ""))
    if plan:
        print(f"  taggrams: {plan['fps']:.2f} frames per second ({plan['mode']}, window {plan['window_s']:.2f} s)")
    onnx = entry.get("onnx") or {}
    if "exporter" in onnx:
        print(f"  model.onnx: {onnx['exporter']} exporter, max |ONNX - torch| {onnx['max_abs_diff']:.1e}")
    elif "error" in onnx:
        print(f"  model.onnx: not exported ({onnx['error']}); 'tag' will use the torch checkpoint")
    print(f"  files: {', '.join(entry['files'])}")
    return 0
