"""``python -m benchmarks transfer``: transfer learning from a trained source run vs training from scratch.

The RWTH thesis's experiment on a CPU: a corpus used as "a user's own collection" with its own
tag set (the demo corpus by default: its tags are the new tag set, even where a name matches
one of the source's), at several numbers of training clips (``--sizes 100,300,all``: seeded
nested subsets of the corpus's training split; the validation and test splits stay whole). At
each size it trains

- ``scratch``: the demo CPU recipe (the default model with its CPU recipe), from random weights;
- ``features``: the source network frozen, a new output layer trained on its embeddings;
- ``last:K``: the source's last K blocks and a new output layer fine-tuned, the rest frozen;
- ``all``: every layer fine-tuned, the backbone at a tenth of the output layer's rate,

then scores each run's test clips (every chunk, mean over chunks: the score stage's figures)
and prints test macro ROC-AUC, the support-weighted ROC-AUC (the thesis's WAUC,
`pipeline.analysis.metrics.wauc`), PR-AUC and the wall time of training. Runs go to
``--runs`` and are reused when their config is unchanged.

Time on 2 CPU cores is held by caps: the head of ``features`` trains ``--head-epochs`` epochs
on embeddings computed once (shared by every size in this process), and each fine-tuning run
at most ``--finetune-epochs`` epochs and ``--finetune-minutes`` minutes of training.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.paths import data_root

log = logging.getLogger(__name__)

DEFAULT_SOURCE = "mtt_musicnn"  # the converted published model (`python -m pipeline pretrained get mtt_musicnn`)
DEFAULT_LEVELS = ("scratch", "features", "last:2", "all")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks transfer", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", help=f"the source run (directory, .pt file or pretrained run name; default the "
                   f"pretrained {DEFAULT_SOURCE} when present)")
    p.add_argument("--corpus", type=Path, default=data_root() / "demo",
                   help="the new collection, with its own tags (default data/demo)")
    p.add_argument("--sizes", default="100,300,all", help="training clips per comparison, comma-separated; 'all' "
                   "is the whole training split (default 100,300,all)")
    p.add_argument("--levels", default=",".join(DEFAULT_LEVELS),
                   help=f"what to train at each size: scratch and transfer levels (default {','.join(DEFAULT_LEVELS)})")
    p.add_argument("--head-epochs", type=int, default=30, help="features: epochs of the output layer (default 30)")
    p.add_argument("--finetune-epochs", type=int, default=30, help="last:K and all: most epochs (default 30, the "
                   "CPU recipe's; --finetune-minutes holds the larger sizes)")
    p.add_argument("--finetune-minutes", type=float, default=2.0,
                   help="last:K and all: most minutes of training per run (default 2)")
    p.add_argument("--valid-clips", type=_count, default=40, metavar="N|all",
                   help="validation clips, which only choose each run's best epoch (a seeded subset of the valid "
                   "split, the same for every run; default 40, so that validating an epoch costs little)")
    p.add_argument("--test-clips", type=_count, default=None, metavar="N|all",
                   help="test clips scored per run (a seeded subset of the test split, the same for every run; "
                   "default all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsets and of training (default 0)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the CPU target)")
    p.add_argument("--device", default="cpu", help="where to train and score: cpu (default: the CPU target), "
                   "auto, cuda, ...")
    p.add_argument("--runs", type=Path, default=data_root() / "runs" / "transfer",
                   help="where the runs and split files go (default data/runs/transfer; unchanged runs are reused)")
    return p


def _count(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of clips >= 1 or 'all', got {text!r}")
    return int(text)


def default_source() -> str:
    """The installed converted MTT musicnn's folder, or a `ParameterError` saying how to get one (nothing is fetched)."""
    from pipeline.errors import ParameterError
    from pipeline.pretrained.build import installed_model, missing_message

    folder = installed_model(DEFAULT_SOURCE)
    if folder is None:
        raise ParameterError(f"--source: {missing_message(DEFAULT_SOURCE)}; or pass --source RUN (any trained network run)")
    return str(folder)


def parse_sizes(text: str) -> list[int | None]:
    """``"100,300,all"`` -> ``[100, 300, None]`` (None: every training clip)."""
    from pipeline.errors import ParameterError

    sizes: list[int | None] = []
    for item in text.split(","):
        item = item.strip().lower()
        if item == "all":
            sizes.append(None)
        elif item.isdigit() and int(item) >= 2:
            sizes.append(int(item))
        else:
            raise ParameterError(f"--sizes: expected numbers of clips >= 2 or 'all', got {item!r}")
    return sizes


def write_splits(corpus_dir: Path, sizes: list[int | None], out: Path, *, seed: int, valid_clips: int | None = None,
                 test_clips: int | None = None) -> dict[str, Path]:
    """One split CSV per size: a seeded prefix of the corpus's training clips, and its valid and test clips.

    The training subsets are nested (the 100 clips are among the 300), so a larger size only
    adds clips; every size has the same valid and test clips (all, or a seeded subset).
    """
    import pandas as pd

    from pipeline.io import write_csv
    from pipeline.sources.loader import load_corpus

    corpus = load_corpus(corpus_dir)
    rng = np.random.default_rng(seed)

    def shuffled(split: str) -> np.ndarray:
        ids = np.array(corpus.clip_ids, dtype=object)[corpus.indices(split)]
        return ids[rng.permutation(len(ids))]

    order = shuffled("train")
    keep = [(c, s) for s, n in (("valid", valid_clips), ("test", test_clips)) for c in sorted(shuffled(s)[:n])]
    files = {}
    for size in sizes:
        n = len(order) if size is None else min(size, len(order))
        if size is not None and size > len(order):
            log.warning("--sizes %d: the training split has %d clips; using all", size, len(order))
        frame = pd.DataFrame([(c, "train") for c in order[:n]] + keep, columns=["clip_id", "split"])
        n_valid, n_test = (sum(1 for _, s in keep if s == name) for name in ("valid", "test"))
        path = out / f"split_train{n}_valid{n_valid}_test{n_test}.csv"
        write_csv(path, frame, index=False)
        files["all" if size is None else str(size)] = path
    return files


def run_config(level: str, source: str | None, split: Path, args: argparse.Namespace) -> Any:
    """The TrainConfig of one cell: the demo CPU recipe from scratch, or a transfer level from ``source``."""
    from pipeline.training.checkpoints import load_source_checkpoint
    from pipeline.training.config import CPU_RECIPE, TrainConfig, demo_train_config, parse_transfer

    common = {"split": str(split), "workers": 0, "seed": args.seed, "device": args.device}
    if level == "scratch":
        return demo_train_config(**common)
    assert source is not None
    kind = parse_transfer(level).kind
    # The recipe's optimisation (batch, rate, cosine schedule, positive weights); the input and
    # the network's size are the source's.
    recipe = {k: v for k, v in CPU_RECIPE.items() if k not in ("n_mels", "chunk_seconds")}
    budget = ({"epochs": args.head_epochs, "max_minutes": None} if kind == "features"
              else {"epochs": args.finetune_epochs, "max_minutes": args.finetune_minutes})
    model = load_source_checkpoint(source)["model_name"]
    return TrainConfig.from_overrides(None, **{**recipe, **budget, **common, "model": model, "init_from": source,
                                               "transfer": level})


def test_scores(run: Path, corpus_dir: Path, labels: Any, device: str = "cpu") -> dict[str, float]:
    """Test-split macro ROC-AUC, WAUC and PR-AUC of a run: every chunk of every test clip, mean over chunks."""
    from pipeline import device as devices
    from pipeline.analysis.metrics import auc_scores, wauc
    from pipeline.scoring.inference import feature_cache, load_run
    from pipeline.sources.loader import load_corpus

    run_model = load_run(run, devices.pick_device(device))
    corpus = load_corpus(corpus_dir, labels)
    assert list(corpus.tags) == run_model.tags, "the run's tags are the corpus's"
    rows = corpus.indices("test")
    cache = feature_cache(run_model, corpus)
    ids = [corpus.clip_ids[i] for i in rows if corpus.clip_ids[i] in cache]
    y = corpus.labels[[i for i in rows if corpus.clip_ids[i] in cache]]
    probs = run_model.predict_many([np.asarray(cache.read(c)) for c in ids])
    scores = auc_scores(y, probs)
    return {"roc_auc": scores["roc_auc_macro"], "wauc": wauc(y, probs), "pr_auc": scores["pr_auc_macro"],
            "test_clips": len(ids)}


def run_cell(level: str, size: str, config: Any, corpus_dir: Path, out: Path) -> dict[str, Any]:
    """Train one cell (or reuse it when its config is unchanged), then score its test clips."""
    from pipeline.run.rundir import RunDir
    from pipeline.training.train import train

    rd = RunDir(out)
    reused = rd.stage_done("train") and (rd.manifest().get("benchmark") or {}).get("config") == config.to_dict()
    wall = (rd.manifest().get("benchmark") or {}).get("wall_seconds") if reused else None
    if not reused:
        start = time.perf_counter()
        train(config, corpus_dir, out, force=True, progress=False)
        wall = time.perf_counter() - start
        rd.update_manifest(benchmark={"config": config.to_dict(), "wall_seconds": round(wall, 1)})
    manifest = rd.manifest()
    row = {"size": size, "level": level, "train_clips": manifest["split_sizes"]["train"],
           "epochs": manifest["training"]["epochs_run"], "train_s": wall, "reused": reused,
           "params_trained": _trained_params(manifest)}
    row.update(test_scores(out, corpus_dir, config.labels, config.device))
    log.info("%s @ %s clips: test ROC-AUC %.4f, WAUC %.4f, %.0f s", level, size, row["roc_auc"], row["wauc"],
             row["train_s"] or float("nan"))
    return row


def _trained_params(manifest: dict[str, Any]) -> str:
    """What trained, for the table: the blocks a transfer run fine-tuned (or everything)."""
    record = manifest.get("transfer")
    if record is None:
        return "all (random init)"
    trained = record.get("trained_blocks") or []
    if not record.get("frozen_blocks"):
        return "every block + output layer"
    return "output layer" if not trained else ", ".join(trained) + " + output layer"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results as the docs' table."""
    lines = ["| train clips | method | trains | test ROC-AUC | test WAUC | test PR-AUC | epochs | train (s) |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        seconds = "-" if r["train_s"] is None else f"{r['train_s']:.0f}"
        lines.append(f"| {r['train_clips']} | {r['level']} | {r['params_trained']} | {r['roc_auc']:.4f} | "
                     f"{r['wauc']:.4f} | {r['pr_auc']:.4f} | {r['epochs']} | {seconds} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from pipeline.errors import ParameterError
    from pipeline.io import write_json
    from pipeline.training.config import parse_transfer

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    levels = [lv.strip() for lv in args.levels.split(",") if lv.strip()]
    for level in levels:
        if level != "scratch":
            parse_transfer(level)  # a bad level fails before anything trains
    if not args.corpus.is_dir():
        raise ParameterError(f"--corpus: no such folder: {args.corpus} (build the demo corpus with "
                             f"'python -m pipeline data demo')")
    source = None
    if any(lv != "scratch" for lv in levels):
        source = args.source or default_source()
    sizes = parse_sizes(args.sizes)
    args.runs.mkdir(parents=True, exist_ok=True)
    splits = write_splits(args.corpus, sizes, args.runs, seed=args.seed, valid_clips=args.valid_clips,
                          test_clips=args.test_clips)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; source {source}; corpus {args.corpus}")
    rows = []
    started = time.perf_counter()
    for size, split in splits.items():
        for level in levels:
            config = run_config(level, source, split, args)
            out = args.runs / f"{level.replace(':', '')}_{size}"
            rows.append(run_cell(level, size, config, args.corpus, out))
    total = time.perf_counter() - started
    write_json(args.runs / "results.json", {"source": source, "corpus": str(args.corpus), "rows": rows,
                                             "total_seconds": round(total, 1)})
    print(f"\n## transfer from {Path(str(source)).name if source else '-'} to {args.corpus.name} "
          f"({total / 60:.1f} min in all)\n")
    print(markdown(rows))
    return 0
