"""``python -m pipeline pretrained list | get NAME | fetch``: musicnn's published taggers, converted to torch."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from pipeline.pretrained.catalog import DISTRIBUTION, MODELS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline pretrained",
        description=f"The published taggers of {DISTRIBUTION.requirement} ({DISTRIBUTION.licence} licence, "
                    f"{DISTRIBUTION.authors}), converted into the torch zoo by the project's own code (no "
                    "TensorFlow): the wheel is fetched with pip, its SHA-256 checked, each model written as a "
                    "model folder (checkpoint, ONNX export, manifest with provenance). Score one on any corpus "
                    "with 'python -m pipeline score NAME --corpus DIR --out NEW_RUN'; tag files with "
                    "'python -m pipeline tag FILE --model NAME'.")
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", help="the published models, their datasets and whether they are installed")
    ls.add_argument("--tags", action="store_true", help="also print each model's tag vocabulary")
    get = sub.add_parser("get", help="convert one model (fetching the distribution first) and print its folder")
    get.add_argument("name", metavar="NAME", help=", ".join(MODELS))
    fetch = sub.add_parser("fetch", help="fetch the distribution and convert every model (the install step)")
    for cmd in (get, fetch):
        cmd.add_argument("--wheel", type=Path, default=None, metavar="WHL",
                         help=f"use this {DISTRIBUTION.filename} (fetched elsewhere) instead of pip")
        cmd.add_argument("--force", action="store_true", help="convert again even when up to date")
    return p


def _figures(published: dict) -> str:
    if "roc_auc" not in published:
        return ""
    return f"ROC-AUC {published['roc_auc']:.4f}, PR-AUC {published['pr_auc']:.4f} (published)"


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pipeline.pretrained.build import catalog_rows, ensure_model

    if args.action == "list":
        for row in catalog_rows():
            state = row["folder"] or "not installed ('python -m pipeline pretrained get " + row["name"] + "')"
            print(f"{row['name']:<12} {row['architecture']:<8} {row['dataset']}, {row['n_tags']} tags")
            print(f"{'':<12} musicnn's {row['original']}; {state}")
            if row["published"]:
                print(f"{'':<12} {_figures(row['published'])}")
            if args.tags:
                print(textwrap.fill(", ".join(row["tags"]), width=100, initial_indent=" " * 13,
                                    subsequent_indent=" " * 13))
        return 0
    names = [args.name] if args.action == "get" else list(MODELS)
    for name in names:
        folder = ensure_model(name, wheel=args.wheel, force=args.force)
        print(f"{name}: {folder}")
    if args.action == "get":
        print(f"next: python -m pipeline tag FILE --model {names[0]}; "
              f"python -m pipeline score {names[0]} --corpus DIR --out data/runs/NAME")
    return 0
