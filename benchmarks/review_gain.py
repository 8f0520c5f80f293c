"""``python -m benchmarks review_gain RUN_DIR``: what reviewing the top-k label issues by ear is worth.

Needs a scored run on a corpus with ``truth.csv`` (the demo corpus, whose annotations drop 20% of
the true tags). The benchmark plays the reviewer with the truth as the oracle: for the top k
(clip, tag) pairs of the run's label-issue ranking it answers *present* where the truth holds the
tag and *absent* where it does not, records every answer through the real verdict store (a
database of its own per cell: ``$MUSICTAG_REVIEWS`` under the work folder), exports them with the
real ``review export`` command, retrains with the demo recipe and ``--corrections``, and scores
the test clips against the truth. The same for k random (clip, tag) pairs shows what the ranking
itself is worth; "before" is the same recipe and seed trained on the annotations as they are, so
only the labels differ between cells.

The ranking reviewed is in-sample over every clip (`find_label_issues` with ``splits=None``):
the run's own label_issues.parquet ranks only valid+test clips, and correcting those leaves the
training labels as they were (``--rankings heldout`` measures that variant too). The test split's
verdicts are reviewed like any other but change no training label, so the table also counts the
changes that reached the training split.

Each cell (a review, an export, a training run, a test scoring) lands in its own folder under
``--work`` and its figures in ``results.json`` there; a rerun with the same settings reuses every
finished cell, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

CELL_NAME = re.compile(r"before|review-only|(issues|random|heldout)-\d+")  # the folders a run of this benchmark makes

ORACLE = "oracle"  # the reviewer's name in the verdict store


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks review_gain",
        description="Review the top-k label issues of a demo run with truth.csv as the oracle (and k random pairs), "
                    "retrain on the corrections with the demo recipe and report test ROC-AUC / PR-AUC against the "
                    "truth, before and after.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a scored run on a corpus with truth.csv")
    p.add_argument("--ks", default="50,100,200,400", help="numbers of pairs reviewed, comma separated "
                   "(default 50,100,200,400)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random pairs and of training (default 0)")
    p.add_argument("--rankings", default="issues,random", help="what is reviewed, comma separated: issues (the "
                   "in-sample ranking over every clip), random (k random pairs), heldout (the valid+test ranking "
                   "of label_issues.parquet) (default issues,random)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the demo recipe's)")
    p.add_argument("--max-minutes", type=float, help="time budget per training run (default: none, so that every "
                   "cell trains the same epochs whatever the machine's load)")
    p.add_argument("--review-only", action="store_true", help="review and export every cell, count the labels the "
                   "verdicts change, and stop (no training: seconds, not an hour)")
    p.add_argument("--work", type=Path, help="folder of the cells (default <data root>/benchmarks/review_gain/<run>)")
    return p


def pair_order(kind: str, clip_ids: list[str], split: np.ndarray, tags: list[str], annotated: np.ndarray,
               probs: np.ndarray, seed: int, k_max: int) -> list[tuple[int, int]]:
    """The (row, column) pairs a reviewer is shown, in order: the first k are the cell of size k."""
    from pipeline.analysis.label_issues import DEFAULT_SPLITS, find_label_issues

    if kind == "random":
        order = np.random.default_rng(seed).permutation(annotated.size)[:k_max]
        return [divmod(int(p), annotated.shape[1]) for p in order]
    splits = None if kind == "issues" else DEFAULT_SPLITS
    issues = find_label_issues(clip_ids, split, tags, annotated, probs, splits=splits, max_issues=k_max)
    row = {c: i for i, c in enumerate(clip_ids)}
    col = {t: j for j, t in enumerate(tags)}
    return [(row[c], col[t]) for c, t in zip(issues["clip_id"], issues["tag"])]


def review(cell: Path, run_dir: Path, corpus_root: Path, pairs: list[tuple[int, int]], *, clip_ids: list[str],
           tags: list[str], truth: np.ndarray, annotated: np.ndarray, probs: np.ndarray, source: str) -> Path:
    """The oracle's verdicts on ``pairs`` in a store of the cell's own, exported by ``review export``."""
    from pipeline.cli.review import main as review_main
    from pipeline.paths import REVIEWS_ENV
    from pipeline.review.corrections import VERDICTS_FILE
    from pipeline.review.store import VerdictStore

    os.environ[REVIEWS_ENV] = str(cell / "reviews")
    store = VerdictStore.for_corpus(corpus_root)
    try:
        if store.count() != len(pairs):  # a cell killed while reviewing starts its review again
            store.close()
            for path in (cell / "reviews").glob("*"):
                path.unlink()
            store = VerdictStore.for_corpus(corpus_root)
            for i, j in pairs:
                store.record(clip_ids[i], tags[j], "present" if truth[i, j] else "absent", ORACLE, source=source,
                             run=run_dir.name, probability=float(probs[i, j]), annotated=int(annotated[i, j]))
    finally:
        store.close()
    review_main(["export", "--run", str(run_dir), "--out", str(cell)])
    return cell / VERDICTS_FILE


def retrain(out: Path, corpus_root: Path, verdicts: Path | None, *, seed: int, epochs: int | None,
            max_minutes: float | None) -> Path:
    """The demo recipe trained into ``out`` (on the labels ``verdicts`` correct); a finished, same one is kept."""
    from pipeline.io import sha256_file
    from pipeline.run.rundir import RunDir
    from pipeline.training.config import demo_train_config
    from pipeline.training.train import train

    overrides: dict[str, Any] = {"seed": seed, "max_minutes": max_minutes,
                                 "corrections": str(verdicts) if verdicts is not None else None}
    if epochs is not None:
        overrides["epochs"] = epochs
    config = demo_train_config(**overrides)
    run = RunDir(out)
    if run.stage_done("train"):
        saved = run.read_manifest()
        asked = {k: getattr(config, k) for k in ("epochs", "seed", "max_minutes", "corrections")}
        same = {k: (saved.config or {}).get(k) for k in asked} == asked
        if same and (verdicts is None or (saved.corrections or {}).get("sha256") == sha256_file(verdicts)):
            return out
    return train(config, corpus_root, out, force=True, progress=False)


def score_test_clips(out: Path, corpus: Any, rows: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """ROC-AUC / PR-AUC of the run in ``out`` on the clips ``rows`` of ``corpus``, against ``truth[rows]``."""
    from pipeline.analysis.metrics import auc_scores
    from pipeline.scoring.inference import feature_cache, load_run

    model = load_run(out)
    cache = feature_cache(model, corpus)
    probs = model.predict_many([np.asarray(cache.read(corpus.clip_ids[i])) for i in rows])
    assert list(model.checkpoint["tags"]) == list(corpus.tags)
    return auc_scores(truth[rows], probs)


def review_only(work: Path, run_dir: Path, corpus: Any, orders: dict[str, list[tuple[int, int]]], ks: list[int], *,
                truth: np.ndarray, probs: np.ndarray) -> int:
    """Each cell reviewed and exported as in the full benchmark, and the labels its verdicts change; no training."""
    import pandas as pd

    from pipeline.review.corrections import correct_labels

    split = np.asarray(corpus.split).astype(str)
    rows = []
    for kind, order in orders.items():
        for k in ks:
            verdicts = review(work / f"{kind}-{k}", run_dir, corpus.root, order[:k], clip_ids=corpus.clip_ids,
                              tags=corpus.tags, truth=truth, annotated=corpus.labels, probs=probs,
                              source=f"benchmark:{kind}")
            corrected, record = correct_labels(corpus.clip_ids, corpus.tags, corpus.labels, verdicts)
            changed = corrected != corpus.labels
            rows.append({"ranking": kind, "k": k, "verdicts": record["rows"], "changed": record["changed"],
                         "changed_share": record["changed"] / k,
                         "changed_train": int(changed[split == "train"].sum()),
                         "still_wrong": int((corrected != truth).sum())})
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(pd.DataFrame(rows).to_string(index=False))
    return 0


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    import pandas as pd

    from pipeline.analysis.label_issues import run_truth
    from pipeline.errors import ParameterError
    from pipeline.features.extract import FEATURE_VERSION
    from pipeline.io import read_json, write_json
    from pipeline.paths import data_root
    from pipeline.run import rundir as rd
    from pipeline.scoring.results import read_predictions
    from pipeline.sources.loader import labels_from_record, load_corpus

    ks = sorted({int(k) for k in args.ks.split(",")}, reverse=True)
    kinds = [k.strip() for k in args.rankings.split(",") if k.strip()]
    unknown = sorted(set(kinds) - {"issues", "random", "heldout"})
    if unknown or not ks or min(ks) < 1:
        raise ParameterError(f"--rankings must name issues, random, heldout and --ks positive counts; got "
                             f"{args.rankings!r}, {args.ks!r}")
    run_dir = args.run_dir.expanduser().resolve()
    run = rd.RunDir(run_dir)
    scores = read_predictions(run)
    corpus_root = run.corpus_root()
    record = run.read_manifest().corpus
    assert corpus_root is not None and record is not None
    corpus = load_corpus(corpus_root, labels_from_record(record.to_dict()))
    if scores.clip_ids != corpus.clip_ids or scores.tags != corpus.tags:
        raise ParameterError(f"{run_dir}: its predictions are not of its corpus's clips and tags; rescore it")
    truth = run_truth(run, corpus.clip_ids, corpus.tags)
    if truth is None:
        raise ParameterError(f"{run_dir}: its corpus ({corpus_root}) has no truth.csv to play the reviewer with")
    work = (args.work or data_root() / "benchmarks" / "review_gain" / run_dir.name).expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    # The feature version is a setting too: cells trained on another version's features would
    # not compare with new ones (training diverges), so a change starts every cell over.
    settings = {"run": _digest(run_dir / rd.PREDICTIONS), "seed": args.seed, "epochs": args.epochs,
                "max_minutes": args.max_minutes, "feature_version": FEATURE_VERSION}
    results_path = work / "results.json"
    results: dict[str, Any] = read_json(results_path) if results_path.is_file() else {}
    if results.get("settings") != settings:
        for old in work.iterdir():  # cells of other settings: never reused
            if old.is_dir() and CELL_NAME.fullmatch(old.name):
                shutil.rmtree(old)
        results = {"settings": settings, "cells": {}}
    split = np.asarray(corpus.split).astype(str)
    test = np.flatnonzero(split == "test")
    train_rows = split == "train"
    print(f"{run_dir.name}: {len(corpus)} clips x {len(corpus.tags)} tags, {int((truth != corpus.labels).sum())} "
          f"annotations differ from the truth; test {len(test)} clips; load average {os.getloadavg()[0]:.1f}; "
          f"work folder {work}")

    cells: list[tuple[str, int]] = [("before", 0)] + [(kind, k) for k in ks for kind in kinds]
    orders = {kind: pair_order(kind, corpus.clip_ids, split, corpus.tags, corpus.labels, scores.probs, args.seed,
                               ks[0]) for kind in kinds}
    if args.review_only:
        return review_only(work / "review-only", run_dir, corpus, orders, ks, truth=truth, probs=scores.probs)
    for kind, k in cells:
        name = "before" if kind == "before" else f"{kind}-{k}"
        if name in results["cells"]:
            continue
        t0 = time.perf_counter()
        cell = work / name
        verdicts, row = None, {"ranking": kind, "k": k}
        if kind != "before":
            pairs = orders[kind][:k]
            verdicts = review(cell, run_dir, corpus_root, pairs, clip_ids=corpus.clip_ids, tags=corpus.tags,
                              truth=truth, annotated=corpus.labels, probs=scores.probs, source=f"benchmark:{kind}")
            changed = [(i, j) for i, j in pairs if truth[i, j] != corpus.labels[i, j]]
            row.update(verdicts=len(pairs), changed=len(changed),
                       changed_train=sum(bool(train_rows[i]) for i, _ in changed))
        out = retrain(cell / "run", corpus_root, verdicts, seed=args.seed, epochs=args.epochs,
                      max_minutes=args.max_minutes)
        manifest = rd.RunDir(out).read_manifest()
        if verdicts is not None:
            assert manifest.corrections is not None and manifest.corrections["changed"] == row["changed"], manifest
        figures = score_test_clips(out, corpus, test, truth)
        row.update({k_: figures[k_] for k_ in ("roc_auc_macro", "pr_auc_macro", "roc_auc_micro", "pr_auc_micro")},
                   epochs_run=(manifest.training or {}).get("epochs_run"), seconds=round(time.perf_counter() - t0, 1))
        results["cells"][name] = row
        write_json(results_path, results)
        print(f"{name}: {row}", flush=True)

    table = pd.DataFrame([{"cell": n, **r} for n, r in results["cells"].items()])
    before = results["cells"].get("before")
    if before is not None:
        for metric in ("roc_auc_macro", "pr_auc_macro"):
            table[f"d_{metric}"] = table[metric] - before[metric]
    if "verdicts" in table:
        table["changed_share"] = table["changed"] / table["verdicts"]
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))
    print(f"load average at the end {os.getloadavg()[0]:.1f}; results in {results_path}")
    return 0
