"""The review queue and the verdict buttons, driven by AppTest over a synthetic run, with a real SQLite store.

Each test gets its own verdict database folder ($MUSICTAG_REVIEWS), so answers never leak
between tests; the run is shared by the module (the dashboard only reads it).
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from test_dashboard_app import app, texts

from benchmarks.synthetic_run import build_synthetic_run
from dashboard import review
from pipeline.review.store import REVIEWS_ENV, VerdictStore, database_path
from pipeline.run import rundir as rd

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("review-runs")
    build_synthetic_run(root / "complete", seed=0, n_clips=120, n_tags=16, seconds=4.0, audio_seconds=1.0,
                        n_audio=120, audio_format="wav", n_bootstrap=20)
    return root


@pytest.fixture()
def reviews(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "reviews"
    monkeypatch.setenv(REVIEWS_ENV, str(folder))
    return folder


def corpus_store(runs: Path) -> VerdictStore:
    """The store the dashboard writes for the run's corpus (the folder its manifest records)."""
    manifest = rd.RunDir(runs / "complete").manifest()
    return VerdictStore(database_path(manifest["corpus"]["root"]))


def heading(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("#### Question"))


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def test_answer_change_undo_and_progress(runs: Path, reviews: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "review", run="complete")
    assert "Question 1 of" in heading(at)
    first = heading(at)
    click(at, "review:answer:present")
    assert "Question 2 of" in heading(at), "the next question loads after an answer"
    assert "1 of" in at.get("progress")[0].proto.text
    db = corpus_store(runs)
    [answer] = db.current()
    assert answer.verdict == "present" and answer.reviewer == review.default_reviewer()
    assert answer.source == "queue:issues" and answer.run == "complete"
    assert f"`{answer.clip_id}`" in first and answer.tag in first, "the answer is about the question shown"

    # change my mind: back to question 1, answer absent; both answers stay in the history
    at.toggle(key="review:only_new").set_value(False).run()
    at.session_state["review:pos"] = 0
    at.run()
    assert "present" in texts(at), "the earlier verdict is shown on the question"
    click(at, "review:answer:absent")
    assert [v.verdict for v in db.current()] == ["absent"]
    assert [v.verdict for v in db.history()] == ["present", "absent"]

    # undo the last answer: the one before it counts again, and the question comes back
    click(at, "review:undo")
    assert [v.verdict for v in db.current()] == ["present"]
    assert "Question 1 of" in heading(at)
    assert [v.undone for v in db.history()] == [False, True]


def test_skip_back_note_and_unreviewed_only(runs: Path, reviews: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "review", run="complete")
    click(at, "review:skip")
    assert "Question 2 of" in heading(at)
    click(at, "review:back")
    assert "Question 1 of" in heading(at)
    at.text_input(key="review:note").set_value("a piano enters at 0:02").run()
    click(at, "review:answer:unsure")
    click(at, "review:answer:present")
    db = corpus_store(runs)
    answered = {(v.clip_id, v.tag) for v in db.current()}
    assert len(answered) == 2
    assert sorted(v.note for v in db.current()) == ["", "a piano enters at 0:02"]

    # a new session (the browser closed and opened again) leaves out what was answered
    again = app(runs, monkeypatch, "review", run="complete")
    queue = again.session_state["review:queue"]
    assert not answered & {(q.clip_id, q.tag) for q in queue}
    assert "0 of" in again.get("progress")[0].proto.text


def test_two_reviewers_disagree(runs: Path, reviews: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "review", run="complete")
    at.text_input(key=review.REVIEWER_KEY).set_value("alice").run()
    click(at, "review:answer:present")
    other = app(runs, monkeypatch, "review", run="complete")
    other.text_input(key=review.REVIEWER_KEY).set_value("bob").run()
    assert "Question 1 of" in heading(other), "bob has not answered anything yet"
    click(other, "review:answer:absent")
    db = corpus_store(runs)
    assert sorted((v.reviewer, v.verdict) for v in db.current()) == [("alice", "present"), ("bob", "absent")]
    assert len(db.disagreements()) == 1
    other.run()
    assert "1 pair(s) where reviewers disagree" in texts(other)
    assert "alice" in texts(other) or any("alice" in str(d.value) for d in other.dataframe)


def test_every_source_serves_questions(runs: Path, reviews: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "review", run="complete", split="all")
    for source in review.SOURCES:
        at.selectbox(key="review:source").set_value(source).run()
        assert not at.exception, (source, at.exception)
        if source == "contradictions":  # the synthetic vocabulary holds no contradictory pair
            assert "This source has no questions here" in texts(at)
        else:
            assert "Question 1 of" in heading(at), source
            assert at.session_state["review:queue"], f"{source}: an empty queue on a run with errors"


def test_verdict_buttons_on_error_cards_and_overview(runs: Path, reviews: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "error_analysis", run="complete", split="all")
    at.segmented_control(key="err:FP:1:verdict").set_value("present").run()
    db = corpus_store(runs)
    [answer] = db.current()
    assert answer.verdict == "present" and answer.source == "errors"
    assert answer.annotated == 0, "a false positive is a pair without the annotation"
    assert at.segmented_control(key="err:FP:1:verdict").value == "present", "the card shows my verdict"

    # another reviewer's verdict shows on the card, with their name
    VerdictStore(db.path).record(answer.clip_id, answer.tag, "absent", "bob")
    at.run()
    assert "Other verdicts: ✗ absent · bob" in texts(at)
    # clicking my answer again withdraws it (kept in the history, marked undone)
    at.segmented_control(key="err:FP:1:verdict").set_value(None).run()
    assert [(v.reviewer, v.verdict) for v in db.current()] == [("bob", "absent")]
    at.segmented_control(key="err:FP:1:verdict").set_value("present").run()
    assert sorted(v.reviewer for v in db.current()) == ["bob", review.default_reviewer()]

    overview = app(runs, monkeypatch, "overview", run="complete", split="all")
    assert "Reviewed by ear" in texts(overview)
    changed = next(m.value for m in overview.metric if m.label == "Labels changed")
    assert changed == "0", "reviewers who disagree change no label"
    assert "1 pair(s) where reviewers disagree are left out" in texts(overview)
    VerdictStore(db.path).record(answer.clip_id, answer.tag, "present", "bob")  # bob changes his mind
    overview.run()
    changed = next(m.value for m in overview.metric if m.label == "Labels changed")
    assert changed == "1", "an agreed present verdict on an unannotated pair changes one label"

    explorer = app(runs, monkeypatch, "clip_explorer", run="complete", clip=answer.clip_id)
    explorer.selectbox(key=f"explorer:review_tag:{answer.clip_id}").set_value(answer.tag).run()
    assert explorer.segmented_control(key=f"explorer:verdict:{answer.clip_id}").value == "present", \
        "the clip explorer shows the verdict given on the Error analysis page"
    assert "bob" in texts(explorer)


def test_a_locked_database_is_retried_then_reported_not_raised(runs: Path, reviews: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "review", run="complete")
    path = corpus_store(runs).path
    monkeypatch.setattr(review, "STORE_TIMEOUT_S", 0.3)
    holder = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the database for longer than the budget
    try:
        click(at, "review:answer:present")
        assert any("busy" in str(t.value) for t in at.toast), "the reviewer is told, on the page"
        assert "Question 1 of" in heading(at), "the question stays until its answer is saved"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # a lock released within the budget is waited for: the answer is saved
    holder = sqlite3.connect(path, timeout=0.1, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.1, lambda: (holder.execute("ROLLBACK"), holder.close()))
    release.start()
    click(at, "review:answer:present")
    release.join()
    assert len(corpus_store(runs).current()) == 1
    assert "Question 2 of" in heading(at)


def _answer_five(runs: str, reviews: str, name: str, ready: Any, results: Any) -> None:
    """One reviewer's session in its own process: open the queue, wait for the other, answer five questions."""
    os.environ[REVIEWS_ENV] = reviews
    error, shown = None, ""
    try:
        with pytest.MonkeyPatch.context() as patch:
            at = app(Path(runs), patch, "review", run="complete")
            at.text_input(key=review.REVIEWER_KEY).set_value(name).run()
            ready.wait(timeout=120)  # both sessions answer at the same time
            for verdict in ("present", "absent", "unsure", "present", "absent"):
                at.button(key=f"review:answer:{verdict}").click().run()
                assert not at.exception, at.exception
            shown = heading(at)
    except BaseException as exc:  # reported by the test
        error = f"{name}: {type(exc).__name__}: {exc}"
    results.put((name, error, shown))


def test_two_sessions_answering_at_once_lose_nothing(runs: Path, reviews: Path) -> None:
    """Two reviewers answer at the same time into one database, each session in its own process.

    (AppTest keeps the Streamlit runtime in a process-wide global, so two AppTest sessions cannot
    run in threads of one process as a server's sessions do; processes share the database the same way.)
    """
    spawn = multiprocessing.get_context("spawn")
    ready, results = spawn.Barrier(2), spawn.Queue()
    workers = [spawn.Process(target=_answer_five, args=(str(runs), str(reviews), name, ready, results))
               for name in ("alice", "bob")]
    for worker in workers:
        worker.start()
    outcome = {name: (error, shown) for name, error, shown in (results.get(timeout=300) for _ in workers)}
    for worker in workers:
        worker.join(timeout=60)
    assert not [error for error, _ in outcome.values() if error], outcome
    db = corpus_store(runs)
    by = {name: sorted((v.clip_id, v.tag) for v in db.current(reviewer=name)) for name in outcome}
    assert len(by["alice"]) == len(by["bob"]) == 5, by
    assert by["alice"] == by["bob"], "both reviewers were asked the same five questions, in the same order"
    for _, shown in outcome.values():
        assert "Question 6 of" in shown
