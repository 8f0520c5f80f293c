"""``python -m benchmarks label_issues RUN_DIR``: how well each ranking finds the dropped tags.

Needs a run on a corpus with ``truth.csv`` (the demo corpus) and a complete score stage.
Prints precision@k and recall@k of every label-issue method against the truth, beside a
random ranking (the base rate) and the same methods on as many in-sample train clips, so the
effect of out-of-sample probabilities is visible.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks label_issues",
        description="Score the label-issue rankings of a run against its corpus's truth.csv (demo corpus): "
                    "precision@k and recall@k of finding annotations that differ from the truth, per method, "
                    "on the out-of-sample valid+test clips and on the in-sample train clips.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run with a complete score stage")
    p.add_argument("--ks", default="50,200", help="cut-offs, comma separated (default 50,200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random ranking (default 0)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    import pandas as pd

    from pipeline.analysis.label_issues import METHODS, find_label_issues, run_truth, score_against_truth
    from pipeline.errors import ParameterError
    from pipeline.run import rundir as rd
    from pipeline.scoring.results import read_predictions

    ks = tuple(int(k) for k in args.ks.split(","))
    run = rd.RunDir(args.run_dir)
    run.require("score")
    scores = read_predictions(run)
    predictions, tags, probs, annotated = scores.frame, scores.tags, scores.probs, scores.truth
    clip_ids = predictions["clip_id"].tolist()
    split = predictions["split"].astype(str).to_numpy()
    truth = run_truth(run, clip_ids, tags)
    if truth is None:
        raise ParameterError(f"{run.path}: its corpus ({run.corpus_root()}) has no truth.csv to score against")

    rows_out = []
    held_out = np.flatnonzero(np.isin(split, ("valid", "test")))
    train = np.flatnonzero(split == "train")
    # Precision@k grows with the number of errors there are to find, so the in-sample rows use a
    # seeded sample of as many train clips as there are held-out clips.
    train = np.sort(np.random.default_rng(args.seed).permutation(train)[:len(held_out)]) if len(held_out) else train
    for name, rows in (("valid+test", held_out), ("train (in-sample)", train)):
        if not len(rows):
            continue
        ids = [clip_ids[i] for i in rows]
        for method in METHODS:
            t0 = time.perf_counter()
            issues = find_label_issues(ids, split[rows], tags, annotated[rows], probs[rows], splits=None,
                                       method=method, max_issues=None)
            seconds = time.perf_counter() - t0
            for subset, frame in (("all kinds", issues), ("missing only", issues[issues["kind"] == "missing"]),
                                  ("flagged", issues[issues["flagged"]])):
                score = score_against_truth(frame.assign(rank=np.arange(1, len(frame) + 1)), truth[rows],
                                            annotated[rows], ids, tags, ks)
                rows_out.append({"clips": name, "method": method, "subset": subset, "n": len(frame),
                                 **{f"P@{k}": score[f"precision@{k}"] for k in ks},
                                 **{f"R@{k}": score[f"recall@{k}"] for k in ks}, "seconds": round(seconds, 2)})
        rng = np.random.default_rng(args.seed)
        r, c = np.nonzero(annotated[rows] == 0)
        order = rng.permutation(len(r))
        random_issues = pd.DataFrame({"clip_id": [ids[i] for i in r[order]], "tag": [tags[j] for j in c[order]],
                                      "kind": "missing", "rank": np.arange(1, len(r) + 1)})
        score = score_against_truth(random_issues, truth[rows], annotated[rows], ids, tags, ks)
        rows_out.append({"clips": name, "method": "random", "subset": "missing only", "n": len(random_issues),
                         **{f"P@{k}": score[f"precision@{k}"] for k in ks},
                         **{f"R@{k}": score[f"recall@{k}"] for k in ks}, "seconds": 0.0})
        print(f"{name}: {len(rows)} clips x {len(tags)} tags, {score['n_errors']} annotation errors "
              f"({score['n_missing']} missing, {score['n_wrong']} wrong), base rate {score['base_rate']:.3f}")
    table = pd.DataFrame(rows_out)
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    return 0
