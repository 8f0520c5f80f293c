"""``python -m benchmarks train``: training speed per model, data-loader throughput, and a comparison.

Three measurements, printed as tables (benchmarks print figures; tests never time anything):

1. **Model speed**: training samples per second of each model (forward, backward, Adam
   step on random input of the model's own shape), at the demo's narrow widths and, with
   ``--size full``, at the published widths.
2. **Data loader**: batches per second of the training loader over the corpus's feature
   cache (random chunks, normalisation, collation) with 0, 1 and 2 worker processes, beside
   the model's own steps per second, to show whether the loader is the bottleneck.
3. **Comparison** (``--compare``): every CNN of the zoo and every baseline trained on the
   corpus with the same short budget, then evaluated on its test split; one table.
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


def compare_config(name: str, *, budget: float = 15.0, epochs: int | None = None) -> Any:
    """The TrainConfig of ``name`` in the comparison: its CPU recipe, as the demo trains its model.

    Every CNN trains with the shared CPU recipe (pipeline.training.config.CPU_RECIPE) and the
    settings registered with it (models.base.ModelInfo.cpu_recipe: width, input, epochs);
    baselines with their defaults. ``epochs`` applies to a model whose recipe sets none.
    """
    from models.registry import get_model_info
    from pipeline.training.config import BASELINES, recipe_config

    if name in BASELINES:
        return recipe_config(name, workers=0)
    overrides: dict[str, Any] = {"max_minutes": budget, "workers": 0}
    if epochs is not None and "epochs" not in get_model_info(name).cpu_recipe:
        overrides["epochs"] = epochs
    return recipe_config(name, **overrides)


def build_parser() -> argparse.ArgumentParser:
    from pipeline.training.config import BASELINES

    p = argparse.ArgumentParser(prog="python -m benchmarks train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=Path, default=data_root() / "demo",
                   help="corpus for the loader and comparison (default data/demo)")
    p.add_argument("--models", nargs="+", help="models to time (default: every registered model)")
    p.add_argument("--size", choices=("small", "full", "both"), default="small",
                   help="narrow demo widths, the published widths, or both (default small)")
    p.add_argument("--batch-size", type=int, default=16, help="examples per batch (default 16)")
    p.add_argument("--seconds", type=float, default=10.0, help="time spent on each measurement (default 10)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the CPU target)")
    p.add_argument("--no-loader", action="store_true", help="skip the data-loader measurement")
    p.add_argument("--compare", action="store_true",
                   help=f"train every CNN and every baseline ({', '.join(BASELINES)}) on --corpus with the same "
                        "budget and evaluate each on the test split")
    p.add_argument("--budget", type=float, default=15.0,
                   help="--compare: most minutes of training per CNN (default 15)")
    p.add_argument("--epochs", type=int, default=None,
                   help="--compare: epochs of a CNN whose registered CPU recipe sets none (default: the CPU recipe's)")
    p.add_argument("--runs", type=Path, default=data_root() / "runs" / "compare",
                   help="--compare: where the runs go (default data/runs/compare; existing runs are reused)")
    return p


def _time_steps(step: Any, seconds: float, warmup: int = 2) -> tuple[float, int]:
    """Call ``step`` for about ``seconds`` after ``warmup`` calls; returns (calls per second, calls)."""
    for _ in range(warmup):
        step()
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed, n


def model_speed(name: str, kwargs: dict[str, Any], *, batch_size: int, seconds: float,
                n_tags: int = 50) -> dict[str, Any]:
    """Training samples per second of one model on random input of its own shape (CPU)."""
    import torch

    from models.registry import get_model
    from pipeline.features.extract import FeatureConfig

    model = get_model(name, n_tags=n_tags, **kwargs)
    spec = model.spec
    x = torch.randn(batch_size, spec.n_bins, spec.chunk_frames)
    y = (torch.rand(batch_size, n_tags) < 0.1).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    criterion = torch.nn.BCEWithLogitsLoss()
    model.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        criterion(model(x), y).backward()
        optimizer.step()

    rate, _ = _time_steps(step, seconds)
    fps = FeatureConfig(kind=spec.kind).frames_per_second  # samples or frames a second
    return {"model": name, "kwargs": kwargs, "params": sum(p.numel() for p in model.parameters()),
            "chunk_s": spec.chunk_frames / fps, "samples_per_s": rate * batch_size, "steps_per_s": rate}


def loader_speed(corpus_dir: Path, *, batch_size: int, seconds: float, workers: list[int]) -> list[dict[str, Any]]:
    """Batches per second of the training loader (random 3 s chunks of 96 mel bins) per worker count."""
    from pipeline.features.cache import build_cache
    from pipeline.features.extract import FeatureConfig, Normalizer
    from pipeline.sources.loader import load_corpus
    from pipeline.training.loaders import EpochSampler, RandomChunkDataset, train_loader

    corpus = load_corpus(corpus_dir)
    cache = build_cache(corpus, FeatureConfig(kind="logmel", n_mels=96), progress=True)
    rows = corpus.indices("train")
    ids = [corpus.clip_ids[i] for i in rows if corpus.clip_ids[i] in cache]
    labels = corpus.labels[[i for i in rows if corpus.clip_ids[i] in cache]]
    normalizer = Normalizer("per_bin").fit(cache, ids)
    dataset = RandomChunkDataset(cache, ids, labels, chunk_frames=187, normalizer=normalizer)
    out = []
    for n in workers:
        sampler = EpochSampler(len(dataset), seed=0)
        loader = train_loader(dataset, sampler, batch_size=batch_size, workers=n, pin_memory=False, seed=0)
        batches, epoch, start = 0, 0, time.perf_counter()
        first = None
        while time.perf_counter() - start < seconds:
            sampler.set_epoch(epoch)
            for _ in loader:
                batches += 1
                if first is None:
                    first = time.perf_counter() - start  # includes starting the worker processes
                if time.perf_counter() - start >= seconds:
                    break
            epoch += 1
        elapsed = time.perf_counter() - start
        out.append({"workers": n, "batches_per_s": batches / elapsed, "samples_per_s": batches * batch_size / elapsed,
                    "first_batch_s": first or 0.0})
        del loader
    return out


def compare(corpus_dir: Path, runs: Path, *, budget: float, epochs: int | None,
            models: list[str] | None) -> list[dict]:
    """Train every CNN (same budget) and every baseline on the corpus; evaluate each on the test split."""
    from models.registry import list_models
    from pipeline.analysis.evaluate import evaluate_run
    from pipeline.run.rundir import RunDir
    from pipeline.scoring.score import score_run
    from pipeline.training.config import BASELINES
    from pipeline.training.train import train

    results = []
    names = models or [*list_models(), *BASELINES]
    for name in names:
        out = runs / name
        config = compare_config(name, budget=budget, epochs=epochs)
        rd = RunDir(out)
        reuse = rd.stage_done("train") and rd.manifest().get("config") == config.to_dict()
        if not reuse:
            train(config, corpus_dir, out, force=True, progress=False)
        score_run(out, progress=False)  # train -> score -> evaluate
        ev = evaluate_run(out, n_bootstrap=200, progress=False)
        manifest = rd.manifest()
        h, ci = ev.headline, ev.ci
        results.append({"model": name, "kind": "baseline" if name in BASELINES else "CNN",
                        "params": manifest["model"].get("params"),
                        "train_min": manifest.get("training", {}).get("seconds", float("nan")) / 60,
                        "epochs": manifest.get("training", {}).get("epochs_run"),
                        "roc_auc": h["roc_auc_macro"], "roc_ci": ci["roc_auc_macro"], "pr_auc": h["pr_auc_macro"],
                        "pr_ci": ci["pr_auc_macro"], "roc_auc_weighted": h["roc_auc_weighted"]})
    return results


def _markdown(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in columns) + " |"
    rule = "|" + "|".join("---" if c[2] == "s" else "---:" for c in columns) + "|"
    lines = [head, rule]
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            v = r.get(key)
            if isinstance(v, tuple):
                cells.append(f"[{v[0]:.3f}, {v[1]:.3f}]")
            elif v is None or (isinstance(v, float) and not np.isfinite(v)):
                cells.append("-")
            else:
                cells.append(format(v, fmt) if fmt != "s" else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from models.registry import list_models
    from pipeline.training.config import TrainConfig
    from pipeline.training.resolve import resolve_model_input

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}")
    models = args.models or list_models()
    rows = []
    for name in models:
        sizes = {"small": [True], "full": [False], "both": [True, False]}[args.size]
        for small in sizes:
            # the comparison's (demo-like) settings, or the published model at its own input
            config = compare_config(name) if small else TrainConfig(model=name)
            kwargs = resolve_model_input(config).model_kwargs
            row = model_speed(name, kwargs, batch_size=args.batch_size, seconds=args.seconds)
            row["size"] = "demo" if small else "published"
            rows.append(row)
            print(f"{name:<15} {row['size']:<9} {row['params']:>10,d} params  {row['chunk_s']:5.2f} s chunks  "
                  f"{row['samples_per_s']:8.1f} samples/s", flush=True)
    print("\n## model training speed (CPU)\n")
    print(_markdown(rows, [("model", "model", "s"), ("size", "size", "s"), ("params", "parameters", ",d"),
                           ("chunk_s", "chunk (s)", ".2f"), ("samples_per_s", "samples/s", ".1f"),
                           ("steps_per_s", f"steps/s (batch {args.batch_size})", ".2f")]))

    if not args.no_loader:
        if not args.corpus.is_dir():
            print(f"\n(no corpus at {args.corpus}: loader not measured; build it with "
                  f"'python -m pipeline data demo --out {args.corpus}')")
        else:
            loader_rows = loader_speed(args.corpus, batch_size=args.batch_size, seconds=args.seconds,
                                       workers=[0, 1, 2])
            print(f"\n## training data loader ({args.corpus.name}, random 3 s chunks of 96 mels, batch "
                  f"{args.batch_size})\n")
            print(_markdown(loader_rows, [("workers", "workers", "d"), ("batches_per_s", "batches/s", ".1f"),
                                          ("samples_per_s", "samples/s", ".0f"),
                                          ("first_batch_s", "first batch (s)", ".2f")]))
            fastest_model = max(r["steps_per_s"] for r in rows)
            slowest_loader = min(r["batches_per_s"] for r in loader_rows)
            print(f"\nslowest loader {slowest_loader:.1f} batches/s vs fastest model {fastest_model:.2f} steps/s: "
                  f"the loader is {'not ' if slowest_loader > fastest_model else ''}the bottleneck "
                  f"({slowest_loader / fastest_model:.0f}x headroom)")

    if args.compare:
        results = compare(args.corpus, args.runs, budget=args.budget, epochs=args.epochs, models=args.models)
        print(f"\n## every CNN vs every baseline on the {args.corpus.name} test split\n")
        print(_markdown(results, [("model", "model", "s"), ("kind", "kind", "s"), ("params", "parameters", ",d"),
                                  ("epochs", "epochs", "d"), ("train_min", "train (min)", ".1f"),
                                  ("roc_auc", "ROC-AUC macro", ".4f"), ("roc_ci", "95% CI", "s"),
                                  ("pr_auc", "PR-AUC macro", ".4f"), ("pr_ci", "95% CI", "s")]))
        cnn = [r["roc_auc"] for r in results if r["kind"] == "CNN"]
        base = [r["roc_auc"] for r in results if r["kind"] == "baseline"]
        if cnn and base:
            print(f"\nworst CNN {min(cnn):.4f} vs best baseline {max(base):.4f}: every CNN "
                  f"{'beats' if min(cnn) > max(base) else 'does NOT beat'} every baseline")
    return 0
