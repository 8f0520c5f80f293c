"""The verdict store: every answer a reviewer gives to a (clip, tag) question, in SQLite.

Verdicts are about a corpus's audio and annotations, not about one run, so there is one
database per corpus folder under the data root (`pipeline.paths.reviews_root`,
``$MUSICTAG_REVIEWS``), and it outlives every run and retraining::

    <reviews root>/<corpus_key(corpus root)>.sqlite    (+ its -wal and -shm files while open)

Every answer is a new row; an undo only marks a row undone; nothing is ever deleted, so the
history of each question is kept. A reviewer's *current* answer to a question is their latest
live (not undone) one; reviewers whose current answers say both present and absent disagree.

Concurrency and durability, because a review is many small writes from a few browser sessions
(threads of one Streamlit server) and the occasional CLI (another process):

- WAL journal: readers never wait for the writer and a writer never waits for readers;
  ``synchronous=FULL`` syncs the log at every commit, so an answer acknowledged to the reviewer
  survives a kill of the server and a power cut too (NORMAL would survive the kill but may lose
  the last commits on power loss). It costs one fsync per answer, nothing at a listener's pace.
- Writes are short ``BEGIN IMMEDIATE`` transactions (the write lock is taken up front, so a
  transaction never fails half way for want of it); a busy database is waited for by SQLite's
  busy handler in short slices and retried here with backoff until ``timeout_s`` runs out, then
  `ReviewStoreBusy` (the dashboard shows a warning, never an error page).
- A connection per thread and process (sqlite3 connections must not cross threads or a fork):
  a question costs well under a millisecond once the thread's connection is open.

The schema version is ``PRAGMA user_version``; `MIGRATIONS` brings a database from any older
version to `SCHEMA_VERSION`, each step in one transaction. The file is untrusted input: only
parameterised SQL touches it, values read back are coerced to plain Python values, and a file
that is not a verdict database, or one written by newer code, is a one-line `ReviewStoreError`.
This is the one file of the project not written by temp-name-then-move: SQLite's log is what
makes each commit atomic.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import numbers
import operator
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import ParameterError, PipelineError
from pipeline.paths import REVIEWS_ENV, corpus_key, reviews_root

__all__ = [
    "MIGRATIONS",
    "REVIEWS_ENV",
    "SCHEMA_VERSION",
    "VERDICTS",
    "ReviewStoreBusy",
    "ReviewStoreError",
    "Verdict",
    "VerdictStore",
    "database_path",
]

log = logging.getLogger(__name__)

VERDICTS = ("present", "absent", "unsure")
SUFFIX = ".sqlite"
MAX_NOTE = 2000  # characters of a note: a sentence or two, not a document
MAX_REVIEWER = 100  # characters of a reviewer name
MAX_NAME = 1000  # characters of a clip id (a relative audio path in a folder corpus) or a tag
MAX_LABEL = 200  # characters of the source / run an answer was given from
BUSY_SLICE_S = 0.2  # longest wait inside SQLite's busy handler before our own retry loop decides
FIRST_BACKOFF_S = 0.01  # first pause between tries; doubles up to MAX_BACKOFF_S
MAX_BACKOFF_S = 0.2
_IN_CHUNK = 500  # clip ids per IN (...) list: far below SQLite's bound-parameter limit

# Each step brings a database from version i to i + 1 (its index + 1); statements run in order in
# one transaction with the version bump. Never edit a released step: append a new one.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: the answers, one row each
        """CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY,  -- answer order: rows are never deleted, so ids only grow
            clip_id TEXT NOT NULL,
            tag TEXT NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ('present', 'absent', 'unsure')),
            reviewer TEXT NOT NULL,
            time TEXT NOT NULL,  -- ISO 8601 UTC with milliseconds
            note TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL DEFAULT '',
            run TEXT NOT NULL DEFAULT '',
            probability REAL,  -- the model's probability the reviewer saw, if any
            annotated INTEGER CHECK (annotated IN (0, 1)),  -- the annotation the reviewer saw
            undone INTEGER NOT NULL DEFAULT 0 CHECK (undone IN (0, 1)),
            undone_time TEXT
        )""",
        # the lookups: a question's current answers, and a reviewer's live answers (undo, progress)
        "CREATE INDEX verdicts_live_by_question ON verdicts (clip_id, tag, reviewer, id) WHERE undone = 0",
        "CREATE INDEX verdicts_live_by_reviewer ON verdicts (reviewer, id) WHERE undone = 0",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = ("id", "clip_id", "tag", "verdict", "reviewer", "time", "note", "source", "run",
            "probability", "annotated", "undone", "undone_time")
_SELECT = "SELECT " + ", ".join(_COLUMNS) + " FROM verdicts"
# the newest live row of each (clip, tag, reviewer); callers add conditions after WHERE undone = 0
_CURRENT = "SELECT MAX(id) FROM verdicts WHERE undone = 0{where} GROUP BY clip_id, tag, reviewer"
_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (primary codes; extended ones share the low byte)
_FORK_LEFTOVERS: list[sqlite3.Connection] = []  # connections inherited over a fork: never closed by the child

T = TypeVar("T")


class ReviewStoreError(PipelineError):
    """A verdict database cannot be used: not a database, corrupt, or of a newer schema."""


class ReviewStoreBusy(ReviewStoreError):
    """The verdict database stayed locked by another writer for the whole retry budget."""


@dataclass(frozen=True)
class Verdict:
    """One answer to "is ``tag`` in ``clip_id``?", as stored (every field a plain Python value)."""

    id: int  # row id: answer order within the database
    clip_id: str
    tag: str
    verdict: str  # one of VERDICTS
    reviewer: str
    time: str  # when it was given: ISO 8601 UTC with milliseconds, e.g. 2026-12-01T16:40:01.123Z
    note: str
    source: str  # where it was given: "queue:issues", "errors", "explorer", ...
    run: str  # the run it was given from ('' if none)
    probability: float | None  # the model's probability the reviewer saw
    annotated: int | None  # the annotation (0/1) the reviewer saw
    undone: bool
    undone_time: str | None = None  # when it was undone


def database_path(corpus_root: str | os.PathLike[str]) -> Path:
    """The verdict database of the corpus at ``corpus_root``: ``<reviews root>/<corpus key>.sqlite``."""
    return reviews_root() / f"{corpus_key(corpus_root)}{SUFFIX}"


def _now() -> str:
    """The current UTC time as ISO 8601 with milliseconds and a ``Z``."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _text(field: str, value: object, *, limit: int, required: bool, one_line: bool) -> str:
    """``value`` checked as a text field: a string, non-empty if ``required``, at most ``limit`` long."""
    if not isinstance(value, str):
        raise ParameterError(f"{field} must be a string, got {type(value).__name__} {_shown(value)}")
    if required and not value.strip():
        raise ParameterError(f"{field} must not be empty, got {value!r}")
    if len(value) > limit:
        raise ParameterError(f"{field} is {len(value)} characters long; at most {limit} are allowed")
    if one_line and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ParameterError(f"{field} must be one line of printable text, got {_shown(value)}")
    if "\x00" in value:
        raise ParameterError(f"{field} must not contain NUL characters, got {_shown(value)}")
    return value


def _reviewer(value: object) -> str:
    """A reviewer name: surrounding spaces dropped (a sidebar field), then non-empty and one line."""
    if isinstance(value, str):
        value = value.strip()
    return _text("reviewer", value, limit=MAX_REVIEWER, required=True, one_line=True)


def _probability(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        # NaN fails the range test too
        raise ParameterError(f"probability must be a number in [0, 1] or None, got {_shown(value)}")
    return float(value)


def _annotated(value: object) -> int | None:
    if value is None:
        return None
    try:
        flag = operator.index(value)  # int, bool, numpy integers; not 0.5 or "1"
    except TypeError:
        flag = -1
    if flag not in (0, 1):
        raise ParameterError(f"annotated must be 0, 1 or None, got {_shown(value)}")
    return int(flag)


def _plain_text(value: object) -> str:
    """A stored text value as ``str`` whatever the (untrusted) file holds."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _plain_float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _plain_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _verdict(row: Sequence[Any]) -> Verdict:
    """A row of ``_SELECT`` as a `Verdict` of plain Python values."""
    (id_, clip_id, tag, verdict, reviewer, when, note, source, run,
     probability, annotated, undone, undone_time) = row
    return Verdict(id=int(id_), clip_id=_plain_text(clip_id), tag=_plain_text(tag),
                   verdict=_plain_text(verdict), reviewer=_plain_text(reviewer), time=_plain_text(when),
                   note=_plain_text(note), source=_plain_text(source), run=_plain_text(run),
                   probability=_plain_float(probability), annotated=_plain_int(annotated),
                   undone=bool(undone), undone_time=None if undone_time is None else _plain_text(undone_time))


def _is_busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` is SQLite saying another connection holds the lock (worth retrying)."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    message = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in message or "busy" in message)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class VerdictStore:
    """The verdicts of one corpus, in the SQLite database at ``path``.

    Safe to share between threads (each thread opens its own connection) and to open from
    several processes at once. ``timeout_s`` bounds how long one call waits for a database
    locked by another writer before it raises `ReviewStoreBusy`.

    Examples
    --------
    >>> store = VerdictStore.for_corpus(corpus.root)                       # doctest: +SKIP
    >>> store.record("15317", "female vocal", "present", "ana", source="queue:issues")  # doctest: +SKIP
    >>> store.current_for("15317", "female vocal")[0].verdict              # doctest: +SKIP
    'present'
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 10.0) -> None:
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, numbers.Real) or not 0 < timeout_s < math.inf:
            raise ParameterError(f"timeout_s must be a positive number of seconds, got {_shown(timeout_s)}")
        self.path = Path(path).expanduser()
        self.timeout_s = float(timeout_s)
        self._local = threading.local()
        if self.path.is_dir():
            raise ReviewStoreError(f"{self.path} is a folder, not a verdict database")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReviewStoreError(f"cannot create the folder of the verdict database {self.path.parent}: "
                                   f"{exc.strerror or exc}") from None
        self._open()

    @classmethod
    def for_corpus(cls, corpus_root: str | os.PathLike[str], *, timeout_s: float = 10.0) -> VerdictStore:
        """The store of the corpus at ``corpus_root`` (`database_path`), created on first use."""
        return cls(database_path(corpus_root), timeout_s=timeout_s)

    def __repr__(self) -> str:
        return f"VerdictStore({str(self.path)!r})"

    # -- writing ---------------------------------------------------------------------------

    def record(self, clip_id: str, tag: str, verdict: str, reviewer: str, *, note: str = "",
               source: str = "", run: str = "", probability: float | None = None,
               annotated: int | None = None) -> Verdict:
        """Store one answer (a new row; earlier answers stay in the history) and return it.

        ``probability`` and ``annotated`` record what the reviewer saw when answering. Bad
        values raise `ParameterError` naming the field; nothing is written then.
        """
        values = (
            _text("clip_id", clip_id, limit=MAX_NAME, required=True, one_line=True),
            _text("tag", tag, limit=MAX_NAME, required=True, one_line=True),
            self._verdict_value(verdict),
            _reviewer(reviewer),
            _text("note", note, limit=MAX_NOTE, required=False, one_line=False),
            _text("source", source, limit=MAX_LABEL, required=False, one_line=True),
            _text("run", run, limit=MAX_LABEL, required=False, one_line=True),
            _probability(probability),
            _annotated(annotated),
        )

        def insert(conn: sqlite3.Connection) -> Verdict:
            # the time is taken under the write lock so that time order is id order
            when = _now()
            cursor = conn.execute(
                "INSERT INTO verdicts (clip_id, tag, verdict, reviewer, note, source, run, probability,"
                " annotated, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (*values, when))
            row_id = cursor.lastrowid
            assert row_id is not None
            c, t, v, r, n, s, u, p, a = values
            return Verdict(id=row_id, clip_id=c, tag=t, verdict=v, reviewer=r, time=when, note=n,
                           source=s, run=u, probability=p, annotated=a, undone=False)

        return self._run(insert, begin="BEGIN IMMEDIATE")

    def undo_last(self, reviewer: str) -> Verdict | None:
        """Mark ``reviewer``'s newest live answer undone and return it (None if there is none).

        The row stays in the history; that question's current answer falls back to the
        reviewer's previous live answer, if any. Called again, it undoes the one before.
        """
        name = _reviewer(reviewer)
        return self._undo("reviewer = ? AND undone = 0 ORDER BY id DESC LIMIT 1", (name,))

    def undo(self, verdict_id: int) -> Verdict | None:
        """Mark the answer with id ``verdict_id`` undone and return it (None if no live answer has it)."""
        try:
            row_id = operator.index(verdict_id)
        except TypeError:
            raise ParameterError(f"verdict_id must be an integer, got {_shown(verdict_id)}") from None
        return self._undo("id = ? AND undone = 0", (row_id,))

    def _undo(self, where: str, params: tuple[Any, ...]) -> Verdict | None:
        def mark(conn: sqlite3.Connection) -> Verdict | None:
            row = conn.execute(f"{_SELECT} WHERE {where}", params).fetchone()
            if row is None:
                return None
            when = _now()
            conn.execute("UPDATE verdicts SET undone = 1, undone_time = ? WHERE id = ?", (when, row[0]))
            return replace(_verdict(row), undone=True, undone_time=when)

        return self._run(mark, begin="BEGIN IMMEDIATE")

    # -- reading ---------------------------------------------------------------------------

    def current(self, *, reviewer: str | None = None, clip_ids: Iterable[str] | None = None) -> list[Verdict]:
        """The latest live answer per (clip_id, tag, reviewer), oldest first.

        ``reviewer`` keeps one reviewer's; ``clip_ids`` keeps those about these clips.
        """
        where, params = "", []
        if reviewer is not None:
            where, params = " AND reviewer = ?", [_reviewer(reviewer)]
        if clip_ids is None:
            return self._rows(f"{_SELECT} WHERE id IN ({_CURRENT.format(where=where)}) ORDER BY id", params)
        ids = sorted({_text("clip_ids", c, limit=MAX_NAME, required=True, one_line=False) for c in clip_ids})

        def read(conn: sqlite3.Connection) -> list[Verdict]:
            found: list[Verdict] = []
            for chunk in _chunks(ids, _IN_CHUNK):  # one question's rows all share its clip: chunks never split a group
                marks = ", ".join("?" * len(chunk))
                sql = f"{_SELECT} WHERE id IN ({_CURRENT.format(where=f'{where} AND clip_id IN ({marks})')})"
                found.extend(_verdict(row) for row in conn.execute(sql, [*params, *chunk]))
            return sorted(found, key=lambda v: v.id)

        return self._run(read, begin="BEGIN")

    def current_for(self, clip_id: str, tag: str) -> list[Verdict]:
        """Each reviewer's current answer to (``clip_id``, ``tag``), newest first."""
        clip = _text("clip_id", clip_id, limit=MAX_NAME, required=True, one_line=False)
        name = _text("tag", tag, limit=MAX_NAME, required=True, one_line=False)
        where = " AND clip_id = ? AND tag = ?"
        return self._rows(f"{_SELECT} WHERE id IN ({_CURRENT.format(where=where)}) ORDER BY id DESC",
                          [clip, name])

    def reviewed(self, reviewer: str) -> set[tuple[str, str]]:
        """The (clip_id, tag) pairs ``reviewer`` has a live answer to ("unreviewed only" skips them)."""
        name = _reviewer(reviewer)
        rows = self._run(lambda conn: conn.execute(
            "SELECT DISTINCT clip_id, tag FROM verdicts WHERE reviewer = ? AND undone = 0", (name,)).fetchall(),
            begin="BEGIN")
        return {(_plain_text(clip), _plain_text(tag)) for clip, tag in rows}

    def history(self, *, clip_id: str | None = None, tag: str | None = None,
                reviewer: str | None = None) -> list[Verdict]:
        """Every answer, undone ones too, oldest first; each given filter narrows it."""
        conditions, params = [], []
        for column, value in (("clip_id", clip_id), ("tag", tag)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(_text(column, value, limit=MAX_NAME, required=True, one_line=False))
        if reviewer is not None:
            conditions.append("reviewer = ?")
            params.append(_reviewer(reviewer))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return self._rows(f"{_SELECT}{where} ORDER BY id", params)

    def disagreements(self) -> list[tuple[str, str, dict[str, str]]]:
        """``(clip_id, tag, {reviewer: verdict})`` for each question whose current answers
        include both present and absent (every reviewer's answer listed, unsure too), sorted."""
        answers: dict[tuple[str, str], dict[str, str]] = {}
        for v in self.current():
            answers.setdefault((v.clip_id, v.tag), {})[v.reviewer] = v.verdict
        return [(clip, tag, dict(sorted(by.items())))
                for (clip, tag), by in sorted(answers.items())
                if {"present", "absent"} <= set(by.values())]

    def reviewers(self) -> list[tuple[str, int]]:
        """``(name, current answers)`` of every reviewer with a live answer, most answers first."""
        rows = self._run(lambda conn: conn.execute(
            f"SELECT reviewer, COUNT(*) FROM verdicts WHERE id IN ({_CURRENT.format(where='')})"
            " GROUP BY reviewer ORDER BY COUNT(*) DESC, reviewer").fetchall(), begin="BEGIN")
        return [(_plain_text(name), int(n)) for name, n in rows]

    def count(self) -> int:
        """How many current answers there are (questions answered, counted once per reviewer)."""
        return self._run(lambda conn: int(conn.execute(
            f"SELECT COUNT(*) FROM ({_CURRENT.format(where='')})").fetchone()[0]), begin="BEGIN")

    def stamp(self) -> tuple[int, int]:
        """``(newest id, live rows)``: changes with every answer recorded (ids only grow) and every
        undo (one live row fewer), whichever process wrote it, and never repeats (the id only
        grows, and under one id the live rows only fall). A key for caches of what verdicts change;
        unlike the files' size and time it cannot miss a write."""
        row = self._run(lambda conn: conn.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM verdicts),"
            " (SELECT COUNT(*) FROM verdicts WHERE undone = 0)").fetchone(), begin="BEGIN")
        return int(row[0]), int(row[1])

    def close(self) -> None:
        """Close this thread's connection (others close with their threads); the store stays usable."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            if self._local.pid == os.getpid():
                conn.close()
            else:
                _FORK_LEFTOVERS.append(conn)  # the parent's (see _connection)
        self._local.conn = None

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _verdict_value(value: object) -> str:
        if not isinstance(value, str) or value not in VERDICTS:
            raise ParameterError(f"verdict must be one of {', '.join(VERDICTS)}; got {_shown(value)}")
        return value

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Verdict]:
        return self._run(lambda conn: [_verdict(row) for row in conn.execute(sql, params)], begin="BEGIN")

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again in a forked child)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            if self._local.pid == os.getpid():
                return conn
            _FORK_LEFTOVERS.append(conn)  # the parent's: closing it here could disturb the parent's locks
        # isolation_level=None: we issue BEGIN / COMMIT ourselves; the busy handler waits one slice
        conn = sqlite3.connect(self.path, timeout=min(self.timeout_s, BUSY_SLICE_S), isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = FULL")  # see the module docstring
            conn.execute("PRAGMA trusted_schema = OFF")  # a crafted file's triggers / views get no side effects
        except BaseException:
            conn.close()
            raise
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _drop_connection(self) -> None:
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):  # already broken: nothing more to release
                conn.close()

    def _run(self, work: Callable[[sqlite3.Connection], T], *, begin: str | None) -> T:
        """``work(conn)`` in one transaction (``begin``; None: none), retried while the database is busy."""
        deadline = time.monotonic() + self.timeout_s
        pause, tries = FIRST_BACKOFF_S, 0
        while True:
            tries += 1
            try:
                conn = self._connection()
                if begin is None:
                    return work(conn)
                conn.execute(begin)
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    self._rollback(conn)
                    raise
                return result
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    self._drop_connection()
                    raise self._failure(exc) from None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ReviewStoreBusy(
                        f"{self.path}: the verdict database is still locked by another writer after "
                        f"{self.timeout_s:g} s ({tries} tries); nothing was changed, try again") from None
                log.debug("%s busy (%s), try %d; retrying", self.path, exc, tries)
                time.sleep(min(left, pause * random.uniform(0.5, 1.0)))  # jitter: writers do not retry in step
                pause = min(pause * 2, MAX_BACKOFF_S)

    def _rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                self._drop_connection()  # a connection that cannot roll back is not reused

    def _failure(self, exc: sqlite3.Error) -> ReviewStoreError:
        """``exc`` as a one-line error naming the database."""
        message = str(exc)
        if "not a database" in message or isinstance(exc, sqlite3.DatabaseError) and "malformed" in message:
            return ReviewStoreError(f"{self.path} is not a readable SQLite verdict database ({message}); "
                                    "move it aside and a new one is created")
        if "unable to open" in message:
            return ReviewStoreError(f"cannot open the verdict database {self.path} ({message})")
        return ReviewStoreError(f"{self.path}: verdict database error: {message}")

    def _open(self) -> None:
        """Switch the file to WAL, bring its schema to this code's version, and check it."""
        # journal_mode is stored in the file (every later connection gets WAL) and cannot change in a transaction
        mode = self._run(lambda conn: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0], begin=None)
        if str(mode).lower() != "wal":
            log.warning("%s: the file system refused WAL mode (journal_mode=%s): concurrent reviewers wait longer",
                        self.path, mode)
        version = self._run(_user_version, begin="BEGIN")
        self._check_version(version)
        if version < len(MIGRATIONS):
            self._run(self._migrate, begin="BEGIN IMMEDIATE")
        self._run(self._check_schema, begin="BEGIN")

    def _check_version(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise ReviewStoreError(f"{self.path}: verdict database schema version {version} is newer than this "
                                   f"code's {len(MIGRATIONS)}; update the code to open it")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # read again under the write lock: another process may have migrated since we looked
        version = _user_version(conn)
        self._check_version(version)
        for step in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
            log.info("%s: verdict database schema %d -> %d", self.path, step, step + 1)
        conn.execute(f"PRAGMA user_version = {int(len(MIGRATIONS))}")  # a pragma takes no parameters

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        have = {row[1] for row in conn.execute("PRAGMA table_info(verdicts)")}
        missing = [column for column in _COLUMNS if column not in have]
        if missing:
            raise ReviewStoreError(f"{self.path} is not a verdict database: its verdicts table lacks "
                                   f"{', '.join(missing)}")


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


assert {f.name for f in fields(Verdict)} == set(_COLUMNS)  # one declaration of what a row holds
