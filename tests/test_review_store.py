"""The verdict store on real SQLite files: answer semantics, concurrent writers, kill -9, locks,
migrations, refused files, and where the databases live."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import pipeline.review.store as store_module
from pipeline.errors import ParameterError
from pipeline.paths import REVIEWS_ENV, corpus_key, reviews_root
from pipeline.review.store import (
    SCHEMA_VERSION,
    VERDICTS,
    ReviewStoreBusy,
    ReviewStoreError,
    Verdict,
    VerdictStore,
    database_path,
)

REPO = Path(__file__).resolve().parents[1]

# A writer in its own process: prints "ready", waits for a line on stdin, then records N answers,
# printing each answer's id only after record() returned (its transaction committed).
WRITER = """
import sys
from pipeline.review.store import VerdictStore
path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = VerdictStore(path)
print("ready", flush=True)
sys.stdin.readline()
for i in range(n):
    v = store.record(f"{name}-{i}", "piano", "present", name, note="x" * (i % 50), source="queue:issues")
    print(v.id, flush=True)
"""


def _writer(db: Path, name: str, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(db), name, str(n)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture()
def store(tmp_path: Path) -> VerdictStore:
    return VerdictStore(tmp_path / "reviews" / "corpus.sqlite", timeout_s=5.0)


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- semantics --------------------------------------------------------------------------------


def test_record_returns_what_it_stored(store: VerdictStore) -> None:
    v = store.record("15317", "female vocal", "present", "ana", note="clearly sung", source="queue:issues",
                     run="demo", probability=0.83, annotated=0)
    assert isinstance(v, Verdict) and v.id >= 1 and not v.undone and v.undone_time is None
    assert (v.clip_id, v.tag, v.verdict, v.reviewer, v.note, v.source, v.run, v.probability, v.annotated) == (
        "15317", "female vocal", "present", "ana", "clearly sung", "queue:issues", "demo", 0.83, 0)
    assert len(v.time) == len("2026-12-01T16:40:01.123Z") and v.time.endswith("Z") and v.time[19] == "."
    assert store.history() == [v]
    assert store.current() == [v]


def test_latest_live_answer_counts_and_history_keeps_all(store: VerdictStore) -> None:
    first = store.record("c1", "piano", "present", "ana")
    second = store.record("c1", "piano", "absent", "ana")
    other = store.record("c2", "piano", "unsure", "ana")
    assert store.current() == [second, other]
    assert store.current_for("c1", "piano") == [second]
    assert store.history(clip_id="c1") == [first, second]
    assert store.count() == 2
    assert store.reviewed("ana") == {("c1", "piano"), ("c2", "piano")}
    assert store.reviewed("bob") == set()
    assert store.current(clip_ids=["c2", "nope"]) == [other]
    assert store.current(clip_ids=[]) == []


def test_undo_marks_the_newest_live_answer_and_falls_back(store: VerdictStore) -> None:
    first = store.record("c1", "piano", "present", "ana")
    store.record("c1", "piano", "absent", "bob")
    second = store.record("c1", "piano", "absent", "ana")
    third = store.record("c2", "rock", "present", "ana")

    undone = store.undo_last("ana")
    assert undone is not None and undone.id == third.id and undone.undone and undone.undone_time
    assert store.reviewed("ana") == {("c1", "piano")}
    undone = store.undo_last("ana")
    assert undone is not None and undone.id == second.id
    assert [v.id for v in store.current(reviewer="ana")] == [first.id]  # back to the earlier answer
    assert store.undo_last("ana").id == first.id
    assert store.undo_last("ana") is None
    assert store.current(reviewer="ana") == [] and store.count() == 1  # bob's answer untouched
    # nothing was deleted: every answer is in the history, the undone ones marked
    history = store.history(reviewer="ana")
    assert [v.id for v in history] == [first.id, second.id, third.id] and all(v.undone for v in history)


def test_undo_by_id(store: VerdictStore) -> None:
    a = store.record("c1", "piano", "present", "ana")
    b = store.record("c1", "piano", "absent", "ana")
    assert store.undo(a.id).id == a.id
    assert store.undo(a.id) is None  # already undone
    assert store.undo(10_000) is None
    assert store.current() == [b]
    with pytest.raises(ParameterError, match="verdict_id"):
        store.undo("1")  # type: ignore[arg-type]


def test_stamp_changes_with_every_record_and_undo(store: VerdictStore) -> None:
    seen = [store.stamp()]
    assert seen == [(0, 0)]
    store.record("c1", "piano", "present", "ana")
    seen.append(store.stamp())
    VerdictStore(store.path).record("c1", "piano", "absent", "ana")  # another connection's write
    seen.append(store.stamp())
    store.undo_last("ana")
    seen.append(store.stamp())
    store.undo_last("nobody")  # nothing changed: same stamp
    store.current()
    seen.append(store.stamp())
    assert seen == [(0, 0), (1, 1), (2, 2), (2, 1), (2, 1)]


def test_two_reviewers_disagreements_and_reviewers(store: VerdictStore) -> None:
    store.record("c1", "piano", "present", "ana")
    store.record("c1", "piano", "absent", "bob")
    store.record("c2", "piano", "present", "ana")
    store.record("c2", "piano", "unsure", "bob")  # unsure is not a disagreement
    store.record("c3", "rock", "absent", "ana")
    store.record("c3", "rock", "present", "bob")
    store.record("c3", "rock", "absent", "bob")  # bob changed his mind: agreement now
    store.record("c4", "rock", "present", "cem")
    store.record("c4", "rock", "absent", "ana")
    store.record("c4", "rock", "unsure", "bob")
    assert store.disagreements() == [
        ("c1", "piano", {"ana": "present", "bob": "absent"}),
        ("c4", "rock", {"ana": "absent", "bob": "unsure", "cem": "present"}),
    ]
    assert store.reviewers() == [("ana", 4), ("bob", 4), ("cem", 1)]
    assert store.count() == 9
    assert [v.reviewer for v in store.current_for("c4", "rock")] == ["bob", "ana", "cem"]  # newest first
    assert {v.verdict for v in store.current(reviewer="bob")} == {"absent", "unsure"}
    store.undo_last("cem")
    assert [d[:2] for d in store.disagreements()] == [("c1", "piano")]
    assert store.reviewers() == [("ana", 4), ("bob", 4)]


def test_reviewer_name_is_trimmed_everywhere(store: VerdictStore) -> None:
    store.record("c1", "piano", "present", "  ana ")
    assert store.current(reviewer="ana")[0].reviewer == "ana"
    assert store.reviewed(" ana") == {("c1", "piano")}


def test_values_read_back_are_plain_python(store: VerdictStore) -> None:
    store.record("c1", "piano", "present", "ana", probability=np.float32(0.25), annotated=np.uint8(1))
    v = store.current()[0]
    assert type(v.probability) is float and v.probability == 0.25
    assert type(v.annotated) is int and v.annotated == 1
    assert type(v.id) is int and type(v.undone) is bool
    # a crafted file: wrong types in the columns still come back as plain values
    with _raw(store.path) as conn:
        conn.execute("INSERT INTO verdicts (clip_id, tag, verdict, reviewer, time, note, probability, annotated)"
                     " VALUES (?, ?, 'absent', 'eve', ?, ?, 'high', 1)", (b"c2", "piano", "2026", b"\xffnote"))
    crafted = store.current(reviewer="eve")[0]
    assert crafted.clip_id == "c2" and isinstance(crafted.note, str) and crafted.probability is None


def test_text_is_stored_verbatim_never_executed(store: VerdictStore) -> None:
    evil = "x'); DROP TABLE verdicts; --"
    store.record(evil, "piano\" OR 1=1 --", "present", "ana", note="line one\nline two; DELETE FROM verdicts")
    assert store.current_for(evil, "piano\" OR 1=1 --")[0].note == "line one\nline two; DELETE FROM verdicts"
    assert store.current_for(evil, "piano") == [] and store.count() == 1


@pytest.mark.parametrize(("field", "kwargs"), [
    ("verdict", {"verdict": "maybe"}),
    ("verdict", {"verdict": "Present"}),
    ("verdict", {"verdict": np.array(["present", "absent"])}),
    ("clip_id", {"clip_id": ""}),
    ("clip_id", {"clip_id": 15317}),
    ("clip_id", {"clip_id": "a\nb"}),
    ("tag", {"tag": "   "}),
    ("tag", {"tag": "t" * (store_module.MAX_NAME + 1)}),
    ("reviewer", {"reviewer": ""}),
    ("reviewer", {"reviewer": "  "}),
    ("reviewer", {"reviewer": "r" * (store_module.MAX_REVIEWER + 1)}),
    ("reviewer", {"reviewer": "ana\tbob"}),
    ("note", {"note": "n" * (store_module.MAX_NOTE + 1)}),
    ("note", {"note": None}),
    ("source", {"source": "s" * (store_module.MAX_LABEL + 1)}),
    ("run", {"run": "a\x00b"}),
    ("probability", {"probability": 1.5}),
    ("probability", {"probability": float("nan")}),
    ("probability", {"probability": "0.3"}),
    ("probability", {"probability": True}),
    ("annotated", {"annotated": 2}),
    ("annotated", {"annotated": 0.5}),
])
def test_bad_values_are_refused_naming_the_field(store: VerdictStore, field: str, kwargs: dict) -> None:
    args = {"clip_id": "c1", "tag": "piano", "verdict": "present", "reviewer": "ana", **kwargs}
    with pytest.raises(ParameterError, match=rf"^{field} "):
        store.record(args.pop("clip_id"), args.pop("tag"), args.pop("verdict"), args.pop("reviewer"), **args)
    assert store.history() == []  # nothing written


def test_limits_are_inclusive(store: VerdictStore) -> None:
    v = store.record("c" * store_module.MAX_NAME, "piano", "unsure", "r" * store_module.MAX_REVIEWER,
                     note="n" * store_module.MAX_NOTE, probability=1, annotated=False)
    assert len(store.current()[0].note) == store_module.MAX_NOTE and v.probability == 1.0 and v.annotated == 0
    assert VERDICTS == ("present", "absent", "unsure")


def test_bad_timeout_is_refused(tmp_path: Path) -> None:
    for bad in (0, -1, float("inf"), "10"):
        with pytest.raises(ParameterError, match="timeout_s"):
            VerdictStore(tmp_path / "x.sqlite", timeout_s=bad)  # type: ignore[arg-type]


# -- concurrency and durability -----------------------------------------------------------------


def test_concurrent_threads_lose_nothing(store: VerdictStore, tmp_path: Path) -> None:
    n_threads, n_answers = 8, 40
    start = threading.Barrier(n_threads)
    errors: list[BaseException] = []
    ids: list[int] = []
    lock = threading.Lock()

    def answer(t: int) -> None:
        # half the threads share the fixture's store (Streamlit's cached resource), half open their own
        own = store if t % 2 else VerdictStore(store.path, timeout_s=5.0)
        start.wait()
        try:
            for i in range(n_answers):
                v = own.record(f"t{t}-{i}", "piano", VERDICTS[i % 3], f"reviewer{t}")
                own.current_for(v.clip_id, v.tag)  # reads interleave with the writes
                with lock:
                    ids.append(v.id)
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=answer, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(ids) == len(set(ids)) == n_threads * n_answers
    assert {v.id for v in store.history()} == set(ids)
    assert store.count() == n_threads * n_answers
    assert store.reviewers() == [(f"reviewer{t}", n_answers) for t in range(n_threads)]


def test_concurrent_processes_lose_nothing(store: VerdictStore) -> None:
    n_procs, n_answers = 4, 40
    procs = [_writer(store.path, f"p{k}", n_answers) for k in range(n_procs)]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in procs:  # all start writing at once
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=60) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    printed = [int(line) for out, _ in outputs for line in out.split()]
    assert len(printed) == len(set(printed)) == n_procs * n_answers
    assert {v.id for v in store.history()} == set(printed)
    assert sorted(store.reviewers()) == [(f"p{k}", n_answers) for k in range(n_procs)]


def test_a_writer_killed_mid_stream_loses_no_committed_answer(store: VerdictStore) -> None:
    proc = _writer(store.path, "victim", 100_000)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        printed = [int(proc.stdout.readline()) for _ in range(25)]
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    printed += [int(line) for line in out.split()]  # ids printed before the kill landed
    stored = {v.id for v in VerdictStore(store.path).history()}
    assert set(printed) <= stored
    assert len(stored) - len(printed) <= 1  # at most the one committed but not yet printed
    with _raw(store.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert store.record("after", "piano", "absent", "ana").id > max(stored)  # the lock did not die with it


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO verdicts (clip_id, tag, verdict, reviewer, time) VALUES ('lost', 'piano', 'present', 'x', 't')")
print("held", flush=True)
time.sleep(60)
"""


def test_a_writer_killed_inside_its_transaction_leaves_no_lock_and_no_half_answer(store: VerdictStore) -> None:
    kept = store.record("c1", "piano", "present", "ana")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    began = time.monotonic()
    after = VerdictStore(store.path, timeout_s=2.0).record("c2", "piano", "absent", "ana")
    assert time.monotonic() - began < 1.0  # the dead writer's lock went with it
    assert [v.id for v in store.history()] == [kept.id, after.id]  # its uncommitted row did not survive


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_opens_its_own_connection(store: VerdictStore) -> None:
    store.record("c1", "piano", "present", "ana")
    inherited = store._connection()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            fresh = store._connection() is not inherited
            code = 0 if fresh and store.record("c2", "piano", "absent", "child").reviewer == "child" else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store._connection() is inherited  # the parent keeps its own
    assert [v.reviewer for v in store.history()] == ["ana", "child"]


def _hold_write_lock(path: Path, seconds: float, held: threading.Event) -> None:
    conn = _raw(path)
    conn.execute("BEGIN IMMEDIATE")
    held.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_a_locked_database_is_retried_and_the_write_succeeds(store: VerdictStore,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    store.record("c0", "piano", "present", "ana")
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(store.path, 0.5, held))
    holder.start()
    held.wait()
    try:
        began = time.monotonic()
        assert len(store.current()) == 1  # WAL: readers do not wait for the writer
        assert time.monotonic() - began < 0.2
        with caplog.at_level(logging.DEBUG, logger=store_module.__name__):
            v = store.record("c1", "piano", "absent", "ana")
        waited = time.monotonic() - began
    finally:
        holder.join()
    assert 0.3 < waited < 4.0
    assert any("retrying" in r.getMessage() for r in caplog.records)  # our loop, not only SQLite's handler
    assert store.current_for("c1", "piano") == [v]


def test_a_lock_held_past_the_budget_is_review_store_busy(tmp_path: Path) -> None:
    store = VerdictStore(tmp_path / "busy.sqlite", timeout_s=0.3)
    store.record("c0", "piano", "present", "ana")
    conn = _raw(store.path)
    conn.execute("BEGIN IMMEDIATE")
    try:
        began = time.monotonic()
        with pytest.raises(ReviewStoreBusy, match=r"busy\.sqlite.*still locked.*0\.3 s") as info:
            store.record("c1", "piano", "absent", "ana")
        assert 0.25 < time.monotonic() - began < 2.0
        assert "\n" not in str(info.value)
        with pytest.raises(ReviewStoreBusy):
            store.undo_last("ana")
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    assert [v.clip_id for v in store.history()] == ["c0"]  # nothing half written
    assert store.record("c1", "piano", "absent", "ana").clip_id == "c1"  # usable once released


def test_the_database_is_in_wal_mode_with_full_sync(store: VerdictStore) -> None:
    with _raw(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert store._connection().execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


# -- schema versions and refused files -------------------------------------------------------


def test_a_new_database_has_the_current_schema_version(store: VerdictStore) -> None:
    with _raw(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (1,)


def test_migration_keeps_rows_and_bumps_the_version(store: VerdictStore, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = store.record("c1", "piano", "present", "ana", note="before the migration")
    step = ("ALTER TABLE verdicts ADD COLUMN device TEXT NOT NULL DEFAULT 'speakers'",
            "CREATE INDEX verdicts_by_time ON verdicts (time)")
    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, step])
    migrated = VerdictStore(store.path)
    with _raw(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
        assert conn.execute("SELECT note, device FROM verdicts").fetchall() == [("before the migration", "speakers")]
    assert migrated.history() == [kept]
    assert migrated.record("c2", "piano", "absent", "ana").id == kept.id + 1
    VerdictStore(store.path)  # already at version 2: nothing to do


def test_a_failed_migration_changes_nothing(store: VerdictStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.record("c1", "piano", "present", "ana")
    step = ("CREATE TABLE reviewers (name TEXT)", "ALTER TABLE no_such_table ADD COLUMN x TEXT")
    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, step])
    with pytest.raises(ReviewStoreError, match=r"corpus\.sqlite.*no_such_table"):
        VerdictStore(store.path)
    with _raw(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (1,)
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'reviewers'").fetchall() == []
    monkeypatch.undo()
    assert len(VerdictStore(store.path).history()) == 1


def test_a_database_from_newer_code_is_refused(store: VerdictStore) -> None:
    store.record("c1", "piano", "present", "ana")
    with _raw(store.path) as conn:
        conn.execute("PRAGMA user_version = 7")
    with pytest.raises(ReviewStoreError, match=rf"{store.path.name}.*version 7 is newer than this code's 1"):
        VerdictStore(store.path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"clip_id,tag,verdict\n" * 200)
    with pytest.raises(ReviewStoreError, match=r"notes\.sqlite is not a readable SQLite verdict database") as info:
        VerdictStore(path)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == b"clip_id,tag,verdict\n" * 200  # left as it was


def test_another_sqlite_database_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with _raw(other) as conn:  # the right version, the wrong table
        conn.execute("CREATE TABLE verdicts (x TEXT)")
        conn.execute("PRAGMA user_version = 1")
    with pytest.raises(ReviewStoreError, match=r"other\.sqlite is not a verdict database.*lacks id, clip_id"):
        VerdictStore(other)
    clash = tmp_path / "clash.sqlite"
    with _raw(clash) as conn:  # version 0 whose table is in the way of the first migration
        conn.execute("CREATE TABLE verdicts (x TEXT)")
    with pytest.raises(ReviewStoreError, match=r"clash\.sqlite.*already exists"):
        VerdictStore(clash)


def test_a_folder_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "db.sqlite").mkdir()
    with pytest.raises(ReviewStoreError, match=r"db\.sqlite is a folder"):
        VerdictStore(tmp_path / "db.sqlite")
    (tmp_path / "file").write_text("")
    with pytest.raises(ReviewStoreError, match=r"cannot create the folder .*file"):
        VerdictStore(tmp_path / "file" / "db.sqlite")


# -- placement ------------------------------------------------------------------------------


def test_databases_live_under_the_data_root_or_musictag_reviews(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSICTAG_DATA", str(tmp_path / "data"))
    monkeypatch.delenv(REVIEWS_ENV, raising=False)
    corpus = tmp_path / "data" / "corpora" / "mine"
    assert reviews_root() == tmp_path / "data" / "reviews"
    assert database_path(corpus) == tmp_path / "data" / "reviews" / f"{corpus_key(corpus)}.sqlite"
    store = VerdictStore.for_corpus(corpus)
    store.record("c1", "piano", "present", "ana")
    assert store.path.is_file() and not corpus.exists()  # never written into the corpus folder

    monkeypatch.setenv(REVIEWS_ENV, str(tmp_path / "elsewhere"))
    assert database_path(corpus) == tmp_path / "elsewhere" / f"{corpus_key(corpus)}.sqlite"
    assert VerdictStore.for_corpus(corpus).history() == []  # a different database
    assert database_path(tmp_path / "other" / "mine") != database_path(corpus)  # same name, other folder


def test_corpus_key_is_the_old_cache_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the values features.cache.corpus_cache_name gave before it moved: feature caches stay valid
    monkeypatch.setenv("MUSICTAG_DATA", str(tmp_path / "data"))
    assert corpus_key(tmp_path / "data" / "corpora" / "mine") == "mine-f04301c4083a"  # inside the data root
    assert corpus_key("/musictag-nowhere/corpora/mine") == "mine-bad65a82ef79"  # outside it
    monkeypatch.setenv("MUSICTAG_DATA", str(tmp_path / "moved"))
    assert corpus_key(tmp_path / "moved" / "corpora" / "mine") == "mine-f04301c4083a"  # the data root moved
