"""Reviewing labels by ear: the review queue's questions, the reviewer, and the verdict buttons.

A verdict is what a person decided about one (clip, tag) pair after listening: *present*,
*absent* or *unsure*. Verdicts live in the corpus's SQLite database
(`pipeline.review.store`, under the data root), not in a run, so they survive retraining and
show in every run of that corpus. The database of a run is found from the corpus root its
manifest *stores* (not a ``--corpus-root`` re-pointing, which only says where the audio is
today), so a moved corpus keeps its verdicts.

The queue's question sources (`SOURCES`) are plain functions of the run's predictions; the
page (`dashboard/views/review.py`) serves them one at a time, and `verdict_buttons` puts the
same three answers on every clip card elsewhere.
"""

from __future__ import annotations

import functools
import getpass
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import analysis, state
from dashboard.loaders import Predictions, RunInfo
from dashboard.text import md
from pipeline.errors import PipelineError
from pipeline.paths import data_root, reviews_root
from pipeline.review.store import VERDICTS, ReviewStoreBusy, Verdict, VerdictStore, database_path
from pipeline.run import locate

log = logging.getLogger(__name__)

SOURCES = {
    "issues": "Likely label issues",
    "fp": "False positives of a tag",
    "fn": "False negatives of a tag",
    "contradictions": "Contradictions",
    "random": "Random pairs (calibration)",
}
VERDICT_LABELS = {"present": "Present", "absent": "Absent", "unsure": "Unsure"}
VERDICT_ICONS = {"present": ":material/check_circle:", "absent": ":material/cancel:", "unsure": ":material/help:"}
VERDICT_MARKS = {"present": "✓", "absent": "✗", "unsure": "?"}
REVIEWER_KEY = "review:reviewer"
MAX_NAME = 80  # characters of a reviewer name kept


@dataclass(frozen=True)
class Question:
    """One (clip, tag) pair to answer, with what the reviewer is shown about it."""

    clip_id: str
    tag: str
    row: int  # row in the run's predictions
    column: int  # the tag's column there
    probability: float
    annotated: int | None  # None: the corpus does not annotate this tag
    why: str  # one line: why the pair is in the queue (Markdown-safe)


# ---------------------------------------------------------------------------------------------
# The reviewer and the store
# ---------------------------------------------------------------------------------------------
def default_reviewer() -> str:
    """The OS user's name, or "reviewer" where there is none (a container without a passwd entry)."""
    try:
        return getpass.getuser() or "reviewer"
    except (KeyError, OSError):
        return "reviewer"


def reviewer_field() -> None:
    """The sidebar's reviewer name (kept for the session; not in the URL, so a shared link carries no name)."""
    if REVIEWER_KEY not in st.session_state:
        st.session_state[REVIEWER_KEY] = default_reviewer()
    st.text_input("Reviewer", key=REVIEWER_KEY, max_chars=MAX_NAME,
                  help="Your name on the verdicts you give (the review queue and the clip cards' answers).")


def reviewer() -> str:
    """The reviewer's name for a verdict (the sidebar field, stripped; the default when blank)."""
    name = str(st.session_state.get(REVIEWER_KEY) or "").strip()
    return name[:MAX_NAME] or default_reviewer()


@functools.lru_cache(maxsize=64)
def _database_of(stored: str, data: str, reviews: str) -> Path:
    # Resolving paths costs system calls and a page of clip cards asks once per card; the roots
    # are part of the key, so a changed $MUSICTAG_DATA / $MUSICTAG_REVIEWS is never served stale.
    return database_path(locate.stored_root(stored))


def database_of(run: RunInfo) -> Path | None:
    """The verdict database of the run's corpus, from the corpus root its manifest stores (None without one).

    The stored root, not a ``--corpus-root`` / $MUSICTAG_CORPUS_ROOT re-pointing: that says where the
    audio is today, while the verdicts belong to the corpus whatever folder it was moved to.
    """
    corpus = run.record.corpus if run.record is not None else None
    if corpus is None or not corpus.root:
        return None
    return _database_of(str(corpus.root), str(data_root()), str(reviews_root()))


STORE_TIMEOUT_S = 5.0  # how long an answer waits for a database another writer holds, retries included


@st.cache_resource(show_spinner=False, max_entries=16)
def _open_store(path: str, timeout_s: float) -> VerdictStore:
    # One object per database: it opens a connection per thread, so every session's thread can share it.
    return VerdictStore(Path(path), timeout_s=timeout_s)


def store(run: RunInfo, *, quiet: bool = False) -> VerdictStore | None:
    """The verdict database of the run's corpus (created on first use), or None with a message why not."""
    path = database_of(run)
    if path is None:
        if not quiet:
            st.caption("This run records no corpus folder, so its verdicts have nowhere to be kept.")
        return None
    try:
        return _open_store(str(path), STORE_TIMEOUT_S)
    except (PipelineError, OSError) as exc:
        log.warning("verdict database %s: %s", path, exc)
        if not quiet:
            st.warning(f"The verdict database cannot be opened: {md(exc)}", icon=":material/database:")
        return None


NOTES_KEY = "review:notes"


def notify(message: str, icon: str) -> None:
    """Queue a toast for the next run (a callback must not draw: in a fragment it would land at the page's top)."""
    st.session_state.setdefault(NOTES_KEY, []).append((message, icon))


def show_notes() -> None:
    """Show the toasts the callbacks queued (called by the sidebar and by the review queue's fragment)."""
    for message, icon in st.session_state.pop(NOTES_KEY, []):
        st.toast(message, icon=icon)


def save(db: VerdictStore, question: Question, verdict: str, *, note: str = "", source: str, run: str) -> bool:
    """Record one answer; a busy or broken database becomes a toast, never an error page."""
    try:
        db.record(question.clip_id, question.tag, verdict, reviewer(), note=note, source=source, run=run,
                  probability=question.probability, annotated=question.annotated)
    except ReviewStoreBusy:
        notify("The verdict database is busy (another writer holds it); your answer was not saved, "
               "please answer again.", ":material/hourglass_empty:")
        return False
    except (PipelineError, OSError) as exc:  # ReviewStoreError included
        notify(f"Your answer was not saved: {md(exc)}", ":material/error:")
        return False
    return True


def when(verdict: Verdict) -> str:
    """A verdict's time for display, in the server's local time ("2026-12-01 16:40")."""
    try:
        moment = datetime.fromisoformat(verdict.time.replace("Z", "+00:00"))
    except ValueError:
        return md(verdict.time)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def verdicts_line(verdicts: list[Verdict]) -> str:
    """'✓ present · alice, 2026-12-01 16:40; ✗ absent · bob, ...' (Markdown-safe), '' when none."""
    return "; ".join(f"{VERDICT_MARKS.get(v.verdict, '')} {md(v.verdict)} · {md(v.reviewer)}, {when(v)}"
                     + (f" (“{md(v.note)}”)" if v.note else "") for v in verdicts)


# ---------------------------------------------------------------------------------------------
# Verdict buttons (review queue and clip cards)
# ---------------------------------------------------------------------------------------------
def _answer_from_widget(db: VerdictStore, question: Question, key: str, mine: Verdict | None, source: str,
                        run: str) -> None:
    verdict = st.session_state.get(key)
    if verdict is None:  # the selected answer clicked again: withdraw it (marked undone, kept in the history)
        if mine is not None:
            try:
                db.undo(mine.id)
            except (PipelineError, OSError) as exc:
                notify(f"Your answer was not withdrawn: {md(exc)}", ":material/error:")
        return
    save(db, question, str(verdict), source=source, run=run)


def verdict_buttons(db: VerdictStore | None, question: Question, *, key: str, source: str, run: str,
                    container: Any = st) -> None:
    """Present / Absent / Unsure for ``question``'s pair (one segmented control), with the earlier verdicts.

    The reviewer's own current answer shows selected; clicking it again withdraws it. One widget
    rather than three buttons: a page of clip cards stays light.
    """
    if db is None:
        return
    try:
        earlier = db.current_for(question.clip_id, question.tag)
    except (PipelineError, OSError) as exc:
        container.caption(f"Verdicts unavailable: {md(exc)}")
        return
    mine = next((v for v in earlier if v.reviewer == reviewer()), None)
    st.session_state[key] = mine.verdict if mine is not None else None  # another session may have answered
    container.segmented_control(f"Is **{md(question.tag)}** in it?", VERDICTS, format_func=VERDICT_LABELS.get,
                                key=key, on_change=_answer_from_widget,
                                args=(db, question, key, mine, source, run),
                                help=f"Your verdict as {md(reviewer())}: kept for every run of this corpus. "
                                     "Click your answer again to withdraw it.")
    others = [v for v in earlier if v is not mine]
    if others:
        container.caption("Other verdicts: " + verdicts_line(others))


# ---------------------------------------------------------------------------------------------
# Question sources
# ---------------------------------------------------------------------------------------------
def question(preds: Predictions, row: int, column: int, why: str = "") -> Question:
    """The question whether tag ``column`` is in clip ``row``."""
    annotated = (int(preds.truth[row, column]) if preds.truth is not None and preds.labelled[column] else None)
    return Question(str(preds.clips["clip_id"].iat[row]), preds.tags[column], int(row), int(column),
                    float(preds.probs[row, column]), annotated, why)


def error_questions(preds: Predictions, rows: np.ndarray, column: int, threshold: float, kind: str,
                    n: int) -> list[Question]:
    """A tag's most confident false positives (``kind="fp"``) or clearest false negatives ("fn")."""
    assert preds.truth is not None
    fp, fn = analysis.top_errors(preds.truth[rows, column], preds.probs[rows, column], threshold, n)
    picked = fp if kind == "fp" else fn
    why = ("predicted, not annotated: a missing annotation, or a false alarm?" if kind == "fp"
           else "annotated, not predicted: a wrong annotation, or a miss?")
    return [question(preds, int(rows[i]), column, why) for i in picked]


def issue_questions(issues: pd.DataFrame, preds: Predictions, n: int, tag: str | None = None) -> list[Question]:
    """The ranked label issues (most likely first), optionally of one tag."""
    view = issues if tag is None else issues[issues["tag"] == tag]
    order = "rank" if "rank" in view else ("score" if "score" in view else None)
    if order:
        view = view.sort_values(order, ascending=order == "rank", kind="stable")
    column = {t: j for j, t in enumerate(preds.tags)}
    out = []
    for clip_id, name, kind in zip(view["clip_id"].astype(str), view["tag"].astype(str),
                                   view["kind"].astype(str) if "kind" in view else [""] * len(view)):
        row, j = preds.row(clip_id), column.get(name)
        if row is None or j is None:
            continue
        why = {"missing": "likely missing: the model hears it, the annotators did not tag it",
               "wrong": "likely wrong: annotated, but the model does not hear it"}.get(kind, "likely label issue")
        out.append(question(preds, row, j, why))
        if len(out) >= n:
            break
    return out


def ranked_issues(preds: Predictions, split: str) -> pd.DataFrame:
    """Label issues of ``split`` ranked live from the run's probabilities (for splits label_issues.parquet skips).

    The embed stage's own ranking (`pipeline.analysis.label_issues.find_label_issues`, same score
    and tie-break) without cleanlab's flags, so a train-split pair (whose probability is
    in-sample, hence less telling) ranks as it would there.
    """
    from pipeline.analysis.label_issues import find_label_issues

    assert preds.truth is not None
    labelled = np.flatnonzero(preds.labelled)
    return find_label_issues(preds.clips["clip_id"].astype(str).tolist(), preds.clips["split"].astype(str).tolist(),
                             [preds.tags[j] for j in labelled], preds.truth[:, labelled],
                             np.clip(preds.probs[:, labelled].astype(np.float64), 0.0, 1.0),
                             splits=None if split == "all" else [split], flag=False)


def contradiction_questions(preds: Predictions, rows: np.ndarray, thresholds: np.ndarray, n: int) -> list[Question]:
    """Both tags of each contradictory pair predicted together, the most confident clips first."""
    summary, flagged = analysis.contradictions(preds.tags, None, preds.probs[rows], thresholds)
    index = {t: j for j, t in enumerate(preds.tags)}
    candidates: list[tuple[float, int, str, str]] = []
    for i in np.flatnonzero(flagged != ""):
        for pair in str(flagged[i]).split("; "):
            a, b = pair.split(" + ")
            strength = float(min(preds.probs[rows[i], index[a]], preds.probs[rows[i], index[b]]))
            candidates.append((strength, int(rows[i]), a, b))
    candidates.sort(key=lambda c: -c[0])
    out = []
    for _, row, a, b in candidates:
        for tag, other in ((a, b), (b, a)):
            out.append(question(preds, row, index[tag], f"predicted together with '{md(other)}', which contradicts it"))
        if len(out) >= n:
            break
    return out[:n]


def random_questions(preds: Predictions, rows: np.ndarray, n: int, seed: int) -> list[Question]:
    """Uniformly random (clip, tag) pairs of ``rows``: how often the annotations are wrong anywhere."""
    columns = np.flatnonzero(preds.labelled) if preds.truth is not None else np.arange(len(preds.tags))
    total = len(rows) * len(columns)
    if total == 0:
        return []
    picked = np.random.default_rng(seed).choice(total, size=min(n, total), replace=False)
    return [question(preds, int(rows[p // len(columns)]), int(columns[p % len(columns)]),
                      "a random pair, for calibration") for p in picked]


def unreviewed(questions: list[Question], done: set[tuple[str, str]]) -> list[Question]:
    """The questions whose pair has no live answer in ``done``."""
    return [q for q in questions if (q.clip_id, q.tag) not in done]


def select_clip(clip_id: str) -> None:
    """Open ``clip_id`` on the Clip explorer from a callback."""
    state.select("clip", clip_id)


# ---------------------------------------------------------------------------------------------
# What the verdicts change (Overview)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Effect:
    """The verdicts on one run's clips and what they do to its labels and metrics on one split."""

    verdicts: int  # live answers on the run's clips (every reviewer)
    clips: int  # clips carrying at least one
    changed: int  # (clip, tag) labels the consensus changes
    disagreements: int  # pairs where reviewers disagree (not applied)
    split: str
    before: dict[str, float]  # headline AUCs against the annotations
    after: dict[str, float]  # the same against the corrected labels


def effect(db: VerdictStore, preds: Predictions, split: str, predictions_key: Any) -> Effect | None:
    """What the corpus's verdicts change in ``preds`` (None when none is on its clips).

    Cached by ``predictions_key`` (the predictions file's stamp) and the database's change stamp:
    at MagnaTagATune scale the two AUC passes are felt on every visit of the Overview otherwise.
    """
    return _effect(db, preds, str(db.path), db.stamp(), predictions_key, split)


@st.cache_data(show_spinner=False, max_entries=16)
def _effect(_db: VerdictStore, _preds: Predictions, database: str, verdicts_stamp: tuple[int, int],
            predictions_key: Any, split: str) -> Effect | None:
    from pipeline.analysis.metrics import auc_scores
    from pipeline.review.corrections import apply_corrections, consensus

    db, preds = _db, _preds
    assert preds.truth is not None
    ids = preds.clips["clip_id"].astype(str).tolist()
    verdicts = db.current(clip_ids=ids)
    if not verdicts:
        return None
    labels, disagreements, _ = consensus(verdicts)
    corrected, report = apply_corrections(ids, preds.tags, preds.truth, labels)
    rows = preds.rows(split)
    cols = np.flatnonzero(preds.labelled)
    before = auc_scores(preds.truth[np.ix_(rows, cols)], preds.probs[np.ix_(rows, cols)])
    after = auc_scores(corrected[np.ix_(rows, cols)], preds.probs[np.ix_(rows, cols)])
    return Effect(len(verdicts), len({v.clip_id for v in verdicts}), int(report.changed), len(disagreements),
                  split, before, after)
