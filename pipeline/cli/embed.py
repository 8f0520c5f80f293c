"""``python -m pipeline embed RUN_DIR``: clip and tag embeddings, projections, neighbours and label issues."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _splits(text: str) -> tuple[str, ...] | None:
    from pipeline.sources.corpus import SPLITS

    if text == "all":
        return None
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in names if s not in SPLITS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected 'all' or a comma list of {', '.join(SPLITS)}, got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    from pipeline.analysis.embed import DEFAULT_NEIGHBORS, EmbedConfig
    from pipeline.analysis.label_issues import METHODS
    from pipeline.analysis.projection import TSNE_MAX_POINTS

    d = EmbedConfig()
    p = argparse.ArgumentParser(
        prog="python -m pipeline embed",
        description=(
            "Precompute what the dashboard shows about embeddings for a run whose score stage is done (no network "
            "runs: everything comes from the scores): the clip embeddings' (the network's penultimate layer, mean "
            "over a clip's chunks) seeded 2-D UMAP and "
            "t-SNE projections and each clip's nearest clips by cosine similarity; tag embeddings in four views "
            "(cooccurrence: Word2Vec on the train clips' tag lists; semantic: pretrained word vectors of the tag "
            "names, with --word-vectors; acoustic: the output layer's weight rows; prediction: correlation of the "
            "predicted scores across clips), each projected with t-SNE and UMAP and clustered, with the views' "
            "neighbourhood agreement; and likely label issues (cleanlab, on the valid and test clips), scored "
            "against truth.csv when the corpus has one. Idempotent: parts whose inputs and options are unchanged "
            "are reused."),
        epilog="Writes clip_embeddings.parquet, clip_neighbors.parquet, tag_embeddings.npz, "
               "tag_projections.parquet, tag_views.json and label_issues.parquet (see pipeline/run/rundir.py).")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory with a complete score stage")
    p.add_argument("--word-vectors", default=None, metavar="PATH_OR_NAME",
                   help="pretrained word vectors for the semantic view: GoogleNews-vectors-negative300.bin, any "
                        "word2vec (.bin or text) or GloVe text file, a gensim .kv file, or a gensim-data name such "
                        "as glove-wiki-gigaword-100 (downloads; needs the internet). Once given, later runs keep "
                        "them unless --no-word-vectors")
    p.add_argument("--no-word-vectors", action="store_true", help="drop the semantic view built before")
    p.add_argument("--word-vectors-limit", type=int, default=None, metavar="N",
                   help="read only the first N vectors of the file (GoogleNews is sorted by frequency; "
                        "500000 cuts its load time and memory by 6x)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help=f"seed of the projections, clusterings and the co-occurrence Word2Vec (default {d.seed}); "
                        "the same seed gives identical coordinates")
    p.add_argument("--neighbors", type=int, default=DEFAULT_NEIGHBORS, metavar="K",
                   help=f"nearest clips stored per clip (default {DEFAULT_NEIGHBORS})")
    tsne = p.add_mutually_exclusive_group()
    tsne.add_argument("--no-tsne", dest="tsne", action="store_false", default=None,
                      help="skip the clip t-SNE (minutes at MagnaTagATune scale); tsne_x/tsne_y are then NaN")
    tsne.add_argument("--tsne", dest="tsne", action="store_true",
                      help="run the clip t-SNE whatever the number of clips")
    p.add_argument("--tsne-max-clips", type=int, default=TSNE_MAX_POINTS, metavar="N",
                   help=f"without --tsne / --no-tsne, t-SNE runs only up to N clips (default {TSNE_MAX_POINTS})")
    p.add_argument("--agreement-k", type=int, default=d.agreement_k, metavar="K",
                   help=f"neighbourhood size of the tag-view agreement (default {d.agreement_k})")
    p.add_argument("--issue-method", default=d.issue_method, choices=METHODS,
                   help="label-issue score: self_confidence (cleanlab's quality of the annotated value) or "
                        "adjusted (the same after cleanlab's per-tag threshold adjustment, which keeps tags the "
                        f"model is shy of from flooding the ranking) (default {d.issue_method})")
    p.add_argument("--issue-splits", type=_splits, default=d.issue_splits, metavar="SPLITS",
                   help="splits searched for label issues: a comma list or 'all' (default valid,test: out-of-sample "
                        "predictions; train-split predictions agree with the annotations the model was fitted to)")
    p.add_argument("--max-issues", type=int, default=d.max_issues, metavar="N",
                   help=f"label issues kept, highest score first (default {d.max_issues})")
    p.add_argument("--force", action="store_true", help="rebuild every part even when it is up to date")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.analysis.embed import EmbedConfig, run_embed

    config = EmbedConfig(
        seed=args.seed, neighbors=args.neighbors, tsne=args.tsne, tsne_max_clips=args.tsne_max_clips,
        word_vectors="" if args.no_word_vectors else args.word_vectors, word_vectors_limit=args.word_vectors_limit,
        agreement_k=args.agreement_k, issue_method=args.issue_method, issue_splits=args.issue_splits,
        max_issues=args.max_issues)
    stage = run_embed(args.run_dir, config, force=args.force, progress=not args.no_progress)
    print(report(stage, args.run_dir))
    return 0


def report(stage: dict, run_dir: Path) -> str:
    """What the command prints about an embed stage entry (``run_embed``'s return value)."""
    rebuilt = stage.get("rebuilt", [])
    lines = [f"{run_dir}: embed stage {'built: ' + ', '.join(rebuilt) if rebuilt else 'up to date'}"]
    clips, tags, issues = stage.get("clips") or {}, stage.get("tags") or {}, stage.get("issues") or {}
    if clips:
        lines.append(f"  clips: {clips['n_clips']} x {clips['dim']} ({clips['source']}), "
                     f"{clips['neighbors']} neighbours each, t-SNE {'yes' if clips['tsne'] else 'skipped'}")
    if tags:
        lines.append(f"  tag views: {', '.join(tags['views'])}; agreement {json.dumps(tags['agreement'])}"
                     + ("; co-occurrence from the model's predictions (no annotations)"
                        if tags.get("basis") == "predictions" else ""))
    if issues.get("skipped"):
        lines.append(f"  label issues: skipped: {issues['skipped']}")
    elif issues:
        line = f"  label issues: {issues['n_issues']} ({issues['n_flagged']} flagged) on {', '.join(issues['splits'])}"
        if "truth" in issues:
            t = issues["truth"]
            line += (f"; vs truth.csv precision@50 {t['precision@50']:.3f}, precision@200 {t['precision@200']:.3f}"
                     f" (random {t['base_rate']:.3f})")
        lines.append(line)
    return "\n".join(lines)
