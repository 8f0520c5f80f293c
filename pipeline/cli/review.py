"""``python -m pipeline review export|status``: the verdicts of a corpus, exported or summed up.

``export`` writes the verdicts (``verdicts.csv``: clip_id, tag, verdict, reviewer, time, note)
and a corrected copy of the corpus's annotations in its own format into one folder;
``train --corrections FOLDER/verdicts.csv`` trains on them, ``evaluate RUN --corrections ...``
scores against them. ``status`` counts the verdicts per reviewer and lists the disagreements.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import ParameterError

if TYPE_CHECKING:
    from pipeline.review.store import VerdictStore
    from pipeline.sources.corpus import LabelConfig

EPILOG = """\
examples:
  python -m pipeline review status --run data/runs/demo
  python -m pipeline review export --run data/runs/demo --out exports/demo
  python -m pipeline train --corpus data/demo --demo --corrections exports/demo/verdicts.csv --out data/runs/fixed
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline review",
        description="The verdicts reviewers gave by ear in the dashboard's review queue (one database per corpus, "
                    "under <data root>/reviews or $MUSICTAG_REVIEWS).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = p.add_subparsers(dest="command", required=True, metavar="{export,status}")
    export = commands.add_parser(
        "export", help="write verdicts.csv and a corrected copy of the corpus's annotations",
        description="Write the verdicts as verdicts.csv (clip_id, tag, verdict, reviewer, time, note) and a "
                    "corrected copy of the corpus's annotations in its own format (annotations_final.csv for "
                    "MagnaTagATune and the demo, tags.csv for a folder): per (clip, tag) each reviewer's latest "
                    "answer counts, 'unsure' is ignored, and pairs the reviewers disagree on are left as annotated.")
    status = commands.add_parser("status", help="verdicts per reviewer, and the disagreements",
                                 description="Count the verdicts per reviewer and list the (clip, tag) pairs the "
                                             "reviewers disagree on.")
    for sub in (export, status):
        where = sub.add_mutually_exclusive_group(required=True)
        where.add_argument("--corpus", type=Path, metavar="DIR", help="the corpus folder")
        where.add_argument("--run", type=Path, metavar="RUN", help="a run directory: its corpus (as re-pointed by "
                           "$MUSICTAG_CORPUS_ROOT) and its label settings")
    export.add_argument("--out", type=Path, metavar="DIR", help="folder to write into (default: a new folder "
                        "<reviews root>/exports/<corpus>-<UTC time>)")
    export.add_argument("--reviewer", metavar="NAME", help="only this reviewer's verdicts (default: everyone's)")
    export.add_argument("--history", action="store_true", help="every answer given (undone ones left out), oldest "
                        "first, instead of each reviewer's current one per pair; the corrections are the same")
    return p


@dataclass(frozen=True)
class Where:
    """A corpus as the review commands see it: its folder today, its verdict database, its labels."""

    root: Path  # the folder today (a run's, as re-pointed by $MUSICTAG_CORPUS_ROOT)
    database: Path  # the corpus's verdict database (a run's: from the root its manifest stores)
    labels: LabelConfig | None  # a run's label settings; None: the corpus's defaults
    unreadable: str | None = None  # why the corpus cannot be reloaded for corrected annotations


def corpus_of(corpus: Path | None, run: Path | None) -> Where:
    """The corpus of ``--corpus`` or ``--run`` (a run's through its manifest)."""
    from pipeline.errors import DataFormatError
    from pipeline.review.store import database_path
    from pipeline.run.locate import repoint_hint, stored_root
    from pipeline.run.rundir import RunDir
    from pipeline.sources.loader import labels_from_record

    if run is not None:
        rundir = RunDir(run)
        manifest = rundir.read_manifest()
        root = rundir.corpus_root()
        if root is None or manifest.corpus is None:
            raise ParameterError(f"--run {run}: the manifest records no corpus")
        if not root.is_dir():
            raise ParameterError(f"--run {run}: its corpus folder {root} does not exist; "
                                 f"{repoint_hint(manifest.corpus.name)}")
        # The database follows the root the manifest stores, as the dashboard's does: verdicts
        # belong to the corpus whatever folder it was moved to.
        database = database_path(stored_root(manifest.corpus.root))
        try:
            return Where(root, database, labels_from_record(manifest.corpus.to_dict()))
        except DataFormatError as exc:  # e.g. a synthetic benchmark run: verdicts only
            return Where(root, database, None, unreadable=str(exc))
    assert corpus is not None
    if not corpus.is_dir():
        raise ParameterError(f"--corpus: no such folder: {corpus}")
    root = corpus.expanduser().resolve()
    return Where(root, database_path(root), None)


def open_store(where: Where) -> VerdictStore:
    """The corpus's verdict store; a `ParameterError` when it has none yet (nothing is created)."""
    from pipeline.review.store import VerdictStore

    if not where.database.is_file():
        raise ParameterError(f"no verdicts for corpus {where.root.name} ({where.root}): {where.database} does not "
                             "exist; answer questions in the dashboard's review queue first")
    return VerdictStore(where.database)


def export_folder(name: str) -> Path:
    """A new folder ``<reviews root>/exports/<name>-<UTC time>`` (a suffix where one exists already)."""
    from pipeline.paths import reviews_root

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = reviews_root() / "exports" / f"{name}-{stamp}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


def export(args: argparse.Namespace) -> int:
    from pipeline.io import check_folder_path
    from pipeline.review.corrections import VERDICTS_FILE, consensus, export_verdicts, write_corrected_annotations

    where = corpus_of(args.corpus, args.run)
    root = where.root
    store = open_store(where)
    try:
        reviewers = dict(store.reviewers())
        if args.reviewer is not None and args.reviewer not in reviewers:
            known = ", ".join(reviewers) or "none yet"
            raise ParameterError(f"--reviewer: no verdicts by {args.reviewer!r} on corpus {root.name} "
                                 f"(reviewers: {known})")
        if not reviewers:
            raise ParameterError(f"no verdicts for corpus {root.name} in {store.path}: nothing to export")
        out = check_folder_path(args.out if args.out is not None else export_folder(root.name), "--out")
        rows = export_verdicts(store, out / VERDICTS_FILE, reviewer=args.reviewer, history=args.history)
    finally:
        store.close()
    result = consensus(rows)
    names = sorted({r.reviewer for r in rows})
    print(f"wrote {out / VERDICTS_FILE}: {len(rows)} verdicts by {len(names)} reviewer(s) ({', '.join(names)})")
    if where.unreadable is None:
        annotations, report = write_corrected_annotations(root, result.labels, out, labels=where.labels)
        print(f"wrote {annotations}: {report.describe()}")
    else:
        print(f"no corrected annotations: the corpus cannot be reloaded ({where.unreadable})")
    print(f"{len(result.labels)} agreed labels, {len(result.disagreements)} disagreement(s) skipped, "
          f"{result.unsure} pair(s) only 'unsure'")
    print(f"next: python -m pipeline train --corpus {root} --corrections {out / VERDICTS_FILE} ...")
    return 0


def status(args: argparse.Namespace) -> int:
    from pipeline.review.corrections import apply_corrections, consensus
    from pipeline.sources.loader import load_corpus

    where = corpus_of(args.corpus, args.run)
    root = where.root
    store = open_store(where)
    try:
        reviewers, current = store.reviewers(), store.current()
    finally:
        store.close()
    print(f"corpus {root.name} ({root}): {len(current)} current verdicts by {len(reviewers)} reviewer(s) in "
          f"{store.path}")
    width = max((len(n) for n, _ in reviewers), default=0)
    for name, count in reviewers:
        print(f"  {name:<{width}}  {count}")
    result = consensus(current)
    if where.unreadable is None:
        corpus = load_corpus(root, where.labels)
        _, report = apply_corrections(corpus.clip_ids, corpus.tags, corpus.labels, result.labels)
        changed = report.describe()
    else:
        changed = f"the corpus cannot be reloaded: {where.unreadable}"
    print(f"consensus: {len(result.labels)} labels ({changed}); {result.unsure} pair(s) only 'unsure'")
    print(f"{len(result.disagreements)} disagreement(s){':' if result.disagreements else ''}")
    for clip, tag, answers in result.disagreements:
        print(f"  {clip}  {tag}  " + ", ".join(f"{r}: {v}" for r, v in sorted(answers.items())))
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return export(args) if args.command == "export" else status(args)
