"""Verdicts become corrected labels: the verdicts CSV, the reviewers' consensus, corrected annotations.

The verdict store (`pipeline.review.store`) keeps every answer a reviewer gave by ear. This
module is what comes after:

- `export_verdicts` writes a store's current verdicts (or every live answer, ``history=True``)
  as a CSV of `EXPORT_COLUMNS`; `read_verdicts_csv` reads one back, validating it as the
  untrusted file it is (errors name the file, line and column);
- `consensus` turns verdicts into labels: per (clip, tag) each reviewer's latest answer counts,
  "unsure" is ignored, agreeing answers give the label (present 1, absent 0) and a pair answered
  both present and absent is a disagreement, listed and not applied;
- `apply_corrections` sets those labels in a label matrix (a copy) and counts what it did;
  `correct_labels` does it from a verdicts file and returns the record a run keeps
  (`train --corrections`, `evaluate --corrections`; `pipeline.run.files.CORRECTIONS_KEYS`);
- `write_corrected_annotations` writes a corrected copy of a corpus's own annotation file
  (MagnaTagATune's ``annotations_final.csv``, or a folder's tags CSV in its own style), so
  that reloading the corpus with the copy in place gives the labels `apply_corrections` gives.

numpy and pandas only (no torch): the dashboard imports `consensus` and `apply_corrections`.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from pipeline.errors import DataFormatError, ParameterError
from pipeline.io import sha256_file, write_text
from pipeline.review.store import VERDICTS
from pipeline.sources.corpus import Corpus, LabelConfig
from pipeline.sources.folder import TAGS_FILE, read_csv_rows
from pipeline.sources.loader import detect_source, load_corpus
from pipeline.sources.mtt_format import ANNOTATIONS_FILE, read_annotations, write_annotations
from pipeline.sources.mtt_tags import SYNONYMS

if TYPE_CHECKING:
    from pipeline.review.store import Verdict, VerdictStore

log = logging.getLogger(__name__)

EXPORT_COLUMNS: tuple[str, ...] = ("clip_id", "tag", "verdict", "reviewer", "time", "note")
VERDICTS_FILE = "verdicts.csv"  # the name `python -m pipeline review export` gives the verdicts CSV
LABEL_OF: dict[str, int] = {"present": 1, "absent": 0}  # "unsure" gives no label
_REQUIRED = ("clip_id", "tag", "verdict", "reviewer", "time")  # may not be empty (the note may)
_TIME_EXAMPLE = "2026-12-01T16:40:01.123Z"

Pair = tuple[str, str]  # (clip_id, tag)


class VerdictLike(Protocol):
    """What `consensus` reads of a verdict: a store's `Verdict` or a `VerdictRow` of a CSV."""

    clip_id: str
    tag: str
    verdict: str
    reviewer: str
    time: str


@dataclass(frozen=True)
class VerdictRow:
    """One row of a verdicts CSV (`EXPORT_COLUMNS`)."""

    clip_id: str
    tag: str
    verdict: str  # one of pipeline.review.store.VERDICTS
    reviewer: str
    time: str  # ISO 8601, UTC, e.g. 2026-12-01T16:40:01.123Z
    note: str = ""


class Consensus(NamedTuple):
    """What the reviewers' answers say, pair by pair (`consensus`)."""

    labels: dict[Pair, int]  # (clip_id, tag) -> 1 (present) / 0 (absent), where the answers agree
    disagreements: list[tuple[str, str, dict[str, str]]]  # (clip_id, tag, {reviewer: verdict}), not applied
    unsure: int  # pairs whose every answer is "unsure" (no label)


@dataclass(frozen=True)
class CorrectionReport:
    """What `apply_corrections` did: pairs applied (``changed`` of them differ from the annotation)."""

    applied: int = 0  # corrections whose clip and tag are in the label matrix
    changed: int = 0  # of those, labels that differ from the annotation (added + removed)
    added: int = 0  # 0 -> 1: a tag the annotators missed
    removed: int = 0  # 1 -> 0: a tag that is not there
    unknown_clips: tuple[str, ...] = ()  # clips of corrections not in the matrix (sorted)
    unknown_tags: tuple[str, ...] = ()  # tags of corrections not in the vocabulary (sorted)

    def counts(self) -> dict[str, int]:
        """The plain counts a record keeps: applied, changed, unknown_clips, unknown_tags."""
        return {"applied": self.applied, "changed": self.changed, "unknown_clips": len(self.unknown_clips),
                "unknown_tags": len(self.unknown_tags)}

    def describe(self) -> str:
        """One line for a log or a command's output."""
        text = f"{self.applied} applied, {self.changed} labels changed ({self.added} added, {self.removed} removed)"
        for what, names in (("clip", self.unknown_clips), ("tag", self.unknown_tags)):
            if names:
                text += f"; {len(names)} unknown {what}(s), e.g. {names[0]!r} (not applied)"
        return text


# ---------------------------------------------------------------------------------------------
# the verdicts CSV


def verdict_rows(verdicts: Iterable[VerdictLike]) -> list[VerdictRow]:
    """Verdicts (a store's, or rows already) as `VerdictRow`s, the note kept where they have one."""
    return [VerdictRow(v.clip_id, v.tag, v.verdict, v.reviewer, v.time, getattr(v, "note", "") or "")
            for v in verdicts]


def write_verdicts_csv(path: str | Path, verdicts: Iterable[VerdictLike]) -> list[VerdictRow]:
    """Write ``verdicts`` as a CSV of `EXPORT_COLUMNS`, atomically; returns the rows written."""
    rows = verdict_rows(verdicts)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows((r.clip_id, r.tag, r.verdict, r.reviewer, r.time, r.note) for r in rows)
    write_text(path, buffer.getvalue())
    return rows


def export_verdicts(store: VerdictStore, path: str | Path, *, reviewer: str | None = None,
                    history: bool = False) -> list[VerdictRow]:
    """Write the store's verdicts to the CSV ``path``; returns the rows written.

    Parameters
    ----------
    reviewer : only this reviewer's answers (None: everyone's)
    history : every live answer, oldest first, instead of each reviewer's current one per pair.
        Undone answers are left out either way, so `consensus` of the file is the store's.
    """
    if history:
        verdicts: list[Verdict] = [v for v in store.history(reviewer=reviewer) if not v.undone]
    else:
        verdicts = sorted(store.current(reviewer=reviewer), key=lambda v: (v.clip_id, v.tag, v.reviewer))
    return write_verdicts_csv(path, verdicts)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; none means UTC) as an aware datetime; ValueError otherwise."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def read_verdicts_csv(path: str | Path) -> list[VerdictRow]:
    """Read and validate a verdicts CSV (`EXPORT_COLUMNS`; further columns are ignored).

    A missing or repeated column, a row of the wrong length, an empty clip id / tag / verdict /
    reviewer / time, a verdict other than `VERDICTS` or a time that is not ISO 8601 is a
    `DataFormatError` naming the file, the line and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such verdicts file")
    header, rows = read_csv_rows(path, "verdicts CSV")
    if not header or not any(header):
        raise DataFormatError(f"{path}, line 1: empty file; expected a header {', '.join(EXPORT_COLUMNS)}")
    missing = [c for c in EXPORT_COLUMNS if c not in header]
    if missing:
        raise DataFormatError(f"{path}, line 1: missing column(s) {', '.join(missing)} (header has {header}; "
                              f"expected {', '.join(EXPORT_COLUMNS)})")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DataFormatError(f"{path}, line 1, column {repeated[0]!r}: column given twice")
    at = {c: header.index(c) for c in EXPORT_COLUMNS}
    out = []
    for line, fields in rows:
        where = f"{path}, line {line}"
        if len(fields) != len(header):
            raise DataFormatError(f"{where}: {len(fields)} fields, but the header has {len(header)}")
        values = {c: fields[i] if c == "note" else fields[i].strip() for c, i in at.items()}
        for column in _REQUIRED:
            if not values[column]:
                raise DataFormatError(f"{where}, column {column!r}: empty value")
        if values["verdict"] not in VERDICTS:
            raise DataFormatError(f"{where}, column 'verdict': expected one of {', '.join(VERDICTS)}, "
                                  f"got {values['verdict']!r}")
        try:
            parse_time(values["time"])
        except ValueError:
            raise DataFormatError(f"{where}, column 'time': expected an ISO 8601 time such as {_TIME_EXAMPLE}, "
                                  f"got {values['time']!r}") from None
        out.append(VerdictRow(**values))
    return out


# ---------------------------------------------------------------------------------------------
# consensus and corrected labels


def current_answers(verdicts: Iterable[VerdictLike]) -> dict[Pair, dict[str, str]]:
    """Each reviewer's latest answer per (clip, tag): ``{(clip_id, tag): {reviewer: verdict}}``.

    Latest by time, ties by order (a store's history and an export list answers oldest first),
    so a full-history export gives what the store's current answers give.
    """
    latest: dict[tuple[str, str, str], tuple[datetime, int, str]] = {}
    for order, v in enumerate(verdicts):
        key = (v.clip_id, v.tag, v.reviewer)
        stamp = (parse_time(v.time), order, v.verdict)
        if key not in latest or stamp[:2] >= latest[key][:2]:
            latest[key] = stamp
    answers: dict[Pair, dict[str, str]] = {}
    for (clip, tag, reviewer), (_, _, verdict) in sorted(latest.items()):
        answers.setdefault((clip, tag), {})[reviewer] = verdict
    return answers


def consensus(verdicts: Iterable[VerdictLike]) -> Consensus:
    """The labels the reviewers agree on (see the module docstring for the rule).

    Returns
    -------
    Consensus  ``(labels, disagreements, unsure)``: labels ``{(clip_id, tag): 0 / 1}``;
    disagreements ``[(clip_id, tag, {reviewer: verdict})]`` (pairs with both present and absent
    among the current answers, sorted); unsure, the number of pairs answered only "unsure".
    """
    labels: dict[Pair, int] = {}
    disagreements: list[tuple[str, str, dict[str, str]]] = []
    unsure = 0
    for (clip, tag), by_reviewer in current_answers(verdicts).items():
        decided = {LABEL_OF[v] for v in by_reviewer.values() if v in LABEL_OF}
        if not decided:
            unsure += 1
        elif len(decided) > 1:
            disagreements.append((clip, tag, dict(by_reviewer)))
        else:
            labels[(clip, tag)] = decided.pop()
    return Consensus(labels, disagreements, unsure)


def apply_corrections(clip_ids: Sequence[str], tags: Sequence[str], labels: np.ndarray,
                      corrections: Mapping[Pair, int]) -> tuple[np.ndarray, CorrectionReport]:
    """``labels`` with ``corrections`` set, as a copy, and what was done.

    Parameters
    ----------
    clip_ids : [len n]
    tags : [len k]
    labels : np.ndarray [shape=(n, k)]  0/1 annotations (left unchanged)
    corrections : ``{(clip_id, tag): 0 / 1}`` (`Consensus.labels`); pairs whose clip or tag is not
        in the matrix are counted as unknown and skipped

    Returns
    -------
    (np.ndarray [shape=(n, k), dtype=uint8], CorrectionReport)
    """
    labels = np.asarray(labels)
    if labels.shape != (len(clip_ids), len(tags)):
        raise ParameterError(f"labels of shape {labels.shape} do not match {len(clip_ids)} clips x {len(tags)} tags")
    out = labels.astype(np.uint8, copy=True)
    row = {c: i for i, c in enumerate(clip_ids)}
    col = {t: j for j, t in enumerate(tags)}
    unknown_clips, unknown_tags = set(), set()
    applied = added = removed = 0
    for (clip, tag), value in corrections.items():
        if value not in (0, 1):
            raise ParameterError(f"correction of ({clip!r}, {tag!r}) must be 0 or 1, got {value!r}")
        i, j = row.get(clip), col.get(tag)
        if i is None:
            unknown_clips.add(clip)
        if j is None:
            unknown_tags.add(tag)
        if i is None or j is None:
            continue
        applied += 1
        if out[i, j] != value:
            added += value == 1
            removed += value == 0
            out[i, j] = value
    report = CorrectionReport(applied=applied, changed=added + removed, added=added, removed=removed,
                              unknown_clips=tuple(sorted(unknown_clips)), unknown_tags=tuple(sorted(unknown_tags)))
    return out, report


@dataclass(frozen=True)
class Corrections:
    """A verdicts file read and reduced to labels (`read_corrections`)."""

    path: Path  # resolved
    sha256: str
    rows: tuple[VerdictRow, ...]
    consensus: Consensus
    reviewers: tuple[str, ...] = field(default=())  # sorted names


def read_corrections(path: str | Path) -> Corrections:
    """Read a verdicts CSV (`read_verdicts_csv`) and take its `consensus`."""
    path = Path(path).expanduser().resolve()
    rows = read_verdicts_csv(path)
    return Corrections(path=path, sha256=sha256_file(path), rows=tuple(rows), consensus=consensus(rows),
                       reviewers=tuple(sorted({r.reviewer for r in rows})))


def corrections_record(corrections: Corrections, report: CorrectionReport) -> dict[str, Any]:
    """What a run records of the verdicts its labels were corrected with (`pipeline.run.files.CORRECTIONS_KEYS`)."""
    return {"file": str(corrections.path), "sha256": corrections.sha256, "rows": len(corrections.rows),
            **report.counts(), "disagreements": len(corrections.consensus.disagreements),
            "reviewers": list(corrections.reviewers)}


def correct_labels(clip_ids: Sequence[str], tags: Sequence[str], labels: np.ndarray, path: str | Path, *,
                   expected_sha256: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """``labels`` corrected by the verdicts CSV at ``path``, and the record a run keeps of it.

    ``expected_sha256``: the digest a run recorded (a resumed run); a file changed since is a
    `ParameterError`, as the run would otherwise continue on other labels than it started with.
    """
    corrections = read_corrections(path)
    if expected_sha256 is not None and corrections.sha256 != expected_sha256:
        raise ParameterError(f"corrections file {corrections.path} changed since the run started with it (sha256 "
                             f"{expected_sha256[:12]}..., now {corrections.sha256[:12]}...); restore it or train a "
                             "new run")
    corrected, report = apply_corrections(clip_ids, tags, labels, corrections.consensus.labels)
    log.info("corrections from %s (%d verdicts, %d reviewer(s), %d disagreement(s) skipped): %s", corrections.path,
             len(corrections.rows), len(corrections.reviewers), len(corrections.consensus.disagreements),
             report.describe())
    return corrected, corrections_record(corrections, report)


# ---------------------------------------------------------------------------------------------
# a corrected copy of a corpus's own annotations

_GROUPS: dict[str, tuple[str, ...]] = {group[0]: group for group in SYNONYMS}  # head -> head and its synonyms


def write_corrected_annotations(corpus_root: str | Path, corrections: Mapping[Pair, int], out_dir: str | Path, *,
                                labels: LabelConfig | None = None) -> tuple[Path, CorrectionReport]:
    """Write a corrected copy of the corpus's annotation file into ``out_dir``; returns (file, report).

    The copy has the original's name and format: an MTT-format corpus (MagnaTagATune, the demo)
    gets ``annotations_final.csv`` with its raw columns; a folder its tags CSV in the same style
    (``path,tags`` or one 0/1 column per tag; rows added for clips it did not list), or a new
    ``path,tags`` file when it had none (then the vocabulary is the tags the corrections name).
    Only corrections of the corpus's clips and processed tags (``labels``: the label config the
    corpus is loaded with, default its own) are written; the report says what that changed. With
    merged synonyms, "present" sets the head's raw column (a synonym's where the file lacks the
    head) and "absent" clears the head and every synonym of its group, so reloading the copy with
    the same label config gives `apply_corrections`'s labels. Two effects of label processing can
    still differ on reload: a top-N cut-off the corrected counts move a tag across, and a clip
    left without any tag under ``drop_untagged``.
    """
    root = Path(corpus_root).expanduser().resolve()
    out = Path(out_dir).expanduser()
    corpus = load_corpus(root, labels)
    if detect_source(root) == "mtt":
        target = out / ANNOTATIONS_FILE
        report = _write_mtt(root, corpus, corrections, target)
    else:
        target = out / TAGS_FILE
        report = _write_folder(root, corpus, corrections, target)
    log.info("%s: corrected copy of %s's annotations: %s", target, corpus.name, report.describe())
    return target, report


def _applicable(corpus: Corpus, corrections: Mapping[Pair, int], tags: Sequence[str] | None = None
                ) -> tuple[dict[Pair, int], CorrectionReport]:
    """The corrections of the corpus's clips and tags (``tags``: another vocabulary), and the report."""
    tags = corpus.tags if tags is None else tags
    base = corpus.labels if tags is corpus.tags else np.zeros((len(corpus), len(tags)), dtype=np.uint8)
    _, report = apply_corrections(corpus.clip_ids, tags, base, corrections)
    clips, vocab = set(corpus.clip_ids), set(tags)
    return {p: v for p, v in corrections.items() if p[0] in clips and p[1] in vocab}, report


def _raw_names(tag: str, corpus: Corpus, raw_tags: Sequence[str]) -> list[str]:
    """The raw columns that make processed ``tag``: its synonym group's (head first) when merged."""
    merged = corpus.label_config is not None and corpus.label_config.merge_synonyms
    group = _GROUPS.get(tag, (tag,)) if merged else (tag,)
    present = set(raw_tags)
    return [name for name in group if name in present]


def _write_mtt(root: Path, corpus: Corpus, corrections: Mapping[Pair, int], target: Path) -> CorrectionReport:
    clip_ids, raw_tags, raw, mp3_paths = read_annotations(root / ANNOTATIONS_FILE, root)
    todo, report = _applicable(corpus, corrections)
    row = {c: i for i, c in enumerate(clip_ids)}
    col = {t: j for j, t in enumerate(raw_tags)}
    for (clip, tag), value in todo.items():
        cols = [col[name] for name in _raw_names(tag, corpus, raw_tags)]
        assert cols, (tag, "a processed tag comes from raw columns")
        if value:
            raw[row[clip], cols[0]] = 1
        else:
            raw[row[clip], cols] = 0
    write_annotations(target, clip_ids, raw_tags, raw, mp3_paths)
    return report


def _write_folder(root: Path, corpus: Corpus, corrections: Mapping[Pair, int], target: Path) -> CorrectionReport:
    source = root / TAGS_FILE
    if not source.is_file():
        # No annotations yet: the verdicts are the first, and their tags the vocabulary.
        vocab = sorted({tag for _, tag in corrections})
        todo, report = _applicable(corpus, corrections, vocab)
        present: dict[str, list[str]] = {}
        for (clip, tag), value in sorted(todo.items()):
            if value:
                present.setdefault(clip, []).append(tag)
        index = {c: i for i, c in enumerate(corpus.clip_ids)}
        rows = [[corpus.rel_paths[index[c]], ";".join(names)] for c, names in sorted(present.items())]
        _write_rows(target, ["path", "tags"], rows)
        return report

    header, lines = read_csv_rows(source, "tags CSV")
    rows = [list(fields) for _, fields in lines]
    todo, report = _applicable(corpus, corrections)
    lookup = {p: c for p, c in zip(corpus.rel_paths, corpus.clip_ids)} | {c: c for c in corpus.clip_ids}
    row_of = {_clip_of(fields[header.index("path")], root, lookup): k for k, fields in enumerate(rows)}
    index = {c: i for i, c in enumerate(corpus.clip_ids)}
    list_style = "tags" in header
    raw_tags = (sorted({t for r in rows for t in _tag_list(r[header.index("tags")])}) if list_style
                else [h for h in header if h != "path"])
    separator = "," if list_style and not any(";" in r[header.index("tags")] for r in rows) and any(
        "," in r[header.index("tags")] for r in rows) else ";"
    for (clip, tag), value in sorted(todo.items()):
        if clip not in row_of:  # a clip the CSV did not list (no tags): a row of its own
            blank = ["0"] * len(header) if not list_style else [""] * len(header)
            blank[header.index("path")] = corpus.rel_paths[index[clip]]
            row_of[clip] = len(rows)
            rows.append(blank)
        fields = rows[row_of[clip]]
        names = _raw_names(tag, corpus, raw_tags) or [tag]
        if list_style:
            cell = _tag_list(fields[header.index("tags")])
            if value and not set(names) & set(cell):
                cell.append(names[0])
            elif not value:
                cell = [t for t in cell if t not in names]
            fields[header.index("tags")] = separator.join(cell)
        else:
            for k, name in enumerate(names):
                if value and k == 0:
                    fields[header.index(name)] = "1"
                elif not value:
                    fields[header.index(name)] = "0"
    _write_rows(target, header, rows, delimiter="\t" if source.suffix.lower() == ".tsv" else ",")
    return report


def _tag_list(cell: str) -> list[str]:
    """A ``path,tags`` cell's names, in order (separated by ``;`` or ``,``, as `pipeline.sources.folder` reads)."""
    return [t.strip() for t in cell.replace(";", ",").split(",") if t.strip()]


def _clip_of(cell: str, root: Path, lookup: dict[str, str]) -> str:
    """The clip a validated tags-CSV ``path`` cell names (relative path or id; an absolute path under the root)."""
    text = cell.strip().replace("\\", "/")
    path = PurePosixPath(text)
    if path.is_absolute():
        path = PurePosixPath(Path(text).resolve().relative_to(root).as_posix())
    return lookup[str(path)]


def _write_rows(target: Path, header: Sequence[str], rows: Iterable[Sequence[str]], delimiter: str = ",") -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(target, buffer.getvalue())
