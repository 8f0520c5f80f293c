"""Review queue: one (clip, tag) question at a time; listen, answer present / absent / unsure, next.

The queue is built once per choice of source, split, tag and size (kept in the session, so a
rerun elsewhere on the page does not reshuffle it); answering, skipping, going back and undoing
rerun only the question panel (a fragment), so the next question loads at once. Answers go to
the corpus's verdict database (`dashboard.review`, `pipeline.review.store`).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import light_charts, loaders, review, state, widgets
from dashboard.review import Question
from dashboard.text import code, md
from dashboard.theme import FN, FP, TEXT_QUIET, TN, TP
from pipeline.errors import PipelineError
from pipeline.review.store import VERDICTS, VerdictStore
from pipeline.run import rundir as rd

QUEUE_SIZES = (10, 25, 50, 100, 200, 400, 1000)

ctx = widgets.context()
run = widgets.need_run(ctx)
widgets.header("Review queue", "Listen, decide, and record what the annotations should say", run)
db = review.store(run)
if db is None:
    st.stop()
preds = widgets.predictions(run)
annotated_run = preds.truth is not None
if not annotated_run:
    st.info(f"{widgets.NO_ANNOTATIONS} Review pairs drawn at random (the model's probability shown) to "
            "build annotations by ear.", icon=":material/label_off:")

# ---- what to review
sources = [s for s in review.SOURCES if annotated_run or s == "random"]
c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
source = c1.selectbox("Questions from", sources, format_func=review.SOURCES.get, key="review:source")
split = widgets.split_picker(preds.splits, container=c2)
size = c4.selectbox("Queue size", QUEUE_SIZES, index=QUEUE_SIZES.index(100), key="review:size")
tag = None
if source in ("fp", "fn"):
    tag = widgets.tag_picker(preds.labelled_tags, container=c3)
elif source == "issues":
    only = c3.selectbox("Tag", ["all tags", *preds.labelled_tags], key="review:issue_tag")
    tag = None if only == "all tags" else only
only_new = st.toggle("Unreviewed only", value=True, key="review:only_new",
                     help="Leave out the pairs you have already answered (under the reviewer name in the sidebar).")
me = review.reviewer()
rows = preds.rows(split)
if not len(rows):
    st.info(f"{widgets.split_phrase(split).capitalize()} has no clips.")
    st.stop()


@st.cache_data(show_spinner="Ranking label issues…", max_entries=8)
def _live_issues(_preds: loaders.Predictions, run_path: str, predictions_stamp: loaders.Stamp,
                 split: str) -> pd.DataFrame:
    # ``_preds`` is not hashed (leading underscore): the run's path and the file's stamp identify it.
    return review.ranked_issues(_preds, split)


def build_queue(n: int) -> tuple[list[Question], str]:
    """Up to ``n`` questions of the chosen source and a caption saying where they come from."""
    thresholds, how = widgets.thresholds(run, preds.tags)
    if source in ("fp", "fn"):
        j = preds.tags.index(tag)
        return (review.error_questions(preds, rows, j, float(thresholds[j]), source, n),
                f"{'most confident false positives' if source == 'fp' else 'clearest false negatives'} of "
                f"'{md(tag)}' at {how} on {widgets.split_phrase(split)}")
    if source == "contradictions":
        return (review.contradiction_questions(preds, rows, thresholds, n),
                f"contradictory tags predicted together at {how} on {widgets.split_phrase(split)}")
    if source == "random":
        return (review.random_questions(preds, rows, n, seed=0),
                f"random (clip, tag) pairs of {widgets.split_phrase(split)}")
    stored = widgets.artifact(run, "embed", rd.LABEL_ISSUES, ("clip_id", "tag"))
    covered = set(stored["split"].astype(str)) if stored is not None and "split" in stored else set()
    wanted = set(preds.clips["split"].to_numpy()[rows].astype(str))
    if stored is not None and wanted <= covered:
        if split != "all":
            stored = stored[stored["split"].astype(str) == split]
        return (review.issue_questions(stored, preds, n, tag),
                f"the embed stage's ranked label issues on {widgets.split_phrase(split)}, most likely first")
    live = _live_issues(preds, str(run.path), run.stamp(rd.PREDICTIONS), split)
    return (review.issue_questions(live, preds, n, tag),
            f"label issues ranked from the model's probabilities on {widgets.split_phrase(split)}, most likely "
            "first" + (" (train-split probabilities are in-sample, so less telling than valid / test ones)"
                       if "train" in wanted else ""))


queue_key = ("review:queue", run.name, run.stamp(rd.PREDICTIONS), me, source, split, tag, size, only_new,
             state.get("threshold"), state.get("tuned"))
key = "review:queue:" + "|".join(map(str, queue_key))
if st.session_state.get("review:queue_key") != key:
    answered = db.reviewed(me) if only_new else set()
    questions, origin = build_queue(size + len(answered))  # enough left after leaving the answered out
    st.session_state["review:drawn"] = len(questions)  # before leaving out what was answered
    questions = review.unreviewed(questions, answered)
    st.session_state["review:queue_key"] = key
    st.session_state["review:queue"] = questions[:size]
    st.session_state["review:origin"] = origin
    st.session_state["review:pos"] = 0
queue: list[Question] = st.session_state["review:queue"]
st.caption(f"Questions: {st.session_state['review:origin']}."
           + (" Pairs you answered earlier are left out." if only_new else ""))
if st.button("Rebuild the queue", icon=":material/refresh:", key="review:rebuild",
             help="Draw the questions again (leaving out what you have answered since)."):
    st.session_state.pop("review:queue_key", None)
    st.rerun()
if not st.session_state["review:drawn"]:
    st.info(f"This source has no questions here ({st.session_state['review:origin']}: none). "
            "Choose another source, split or tag.", icon=":material/inbox:")
    st.stop()
if not queue:
    st.success("Nothing left to review here: every question of this source is answered. Choose another source, "
               "split or tag, or turn off 'Unreviewed only' to see your answers again.", icon=":material/task_alt:")
    st.stop()


# ---- the question panel (a fragment: answering reruns only this part)
def _go(pos: int) -> None:
    st.session_state["review:pos"] = max(0, min(pos, len(queue)))


def _next_open(start: int, done: set[tuple[str, str]]) -> int:
    """The first question at or after ``start`` still unanswered (with "Unreviewed only"), else ``start``."""
    if not only_new:
        return start
    for i in range(start, len(queue)):
        if (queue[i].clip_id, queue[i].tag) not in done:
            return i
    return len(queue)


def _answer(store: VerdictStore, question: Question, verdict: str, pos: int) -> None:
    note = str(st.session_state.get("review:note") or "").strip()
    if review.save(store, question, verdict, note=note, source=f"queue:{source}", run=run.name):
        st.session_state["review:note"] = ""
        _go(_next_open(pos + 1, store.reviewed(me)))


def _undo(store: VerdictStore) -> None:
    try:
        undone = store.undo_last(me)
    except (PipelineError, OSError) as exc:  # a busy or broken database is a message, never an error page
        review.notify(f"Nothing undone: {md(exc)}", ":material/error:")
        return
    if undone is None:
        review.notify("You have no answer to undo.", ":material/info:")
        return
    review.notify(f"Undone: '{md(undone.tag)}' {md(undone.verdict)} in clip {md(undone.clip_id)}.", ":material/undo:")
    pairs = [(q.clip_id, q.tag) for q in queue]
    if (undone.clip_id, undone.tag) in pairs:
        _go(pairs.index((undone.clip_id, undone.tag)))


def _outcome(q: Question, threshold: float) -> str:
    predicted = q.probability >= threshold
    if q.annotated is None:
        return TP if predicted else TN
    return {(1, True): TP, (0, True): FP, (1, False): FN, (0, False): TN}[(q.annotated, predicted)]


@st.fragment
def question_panel() -> None:
    review.show_notes()
    done = db.reviewed(me)
    answered = sum((q.clip_id, q.tag) in done for q in queue)
    st.progress(answered / len(queue), text=f"**{answered} of {len(queue)} reviewed** by {md(me)}")
    pos = int(st.session_state.get("review:pos", 0))
    if pos >= len(queue):
        st.success(f"End of the queue: {answered} of {len(queue)} answered.", icon=":material/task_alt:")
        a, b = st.columns(2)
        a.button("Back to the last question", key="review:last", on_click=_go, args=(len(queue) - 1,),
                 icon=":material/arrow_back:")
        b.button("Undo my last answer", key="review:undo_end", on_click=_undo, args=(db,), icon=":material/undo:")
        return
    q = queue[pos]
    thresholds, how = widgets.thresholds(run, preds.tags)
    with st.container(border=True):
        st.markdown(f"#### Question {pos + 1} of {len(queue)}: is **{md(q.tag)}** in clip {code(q.clip_id)}?")
        annotation = ("not annotated for this tag" if q.annotated is None
                      else f"annotated **{'with' if q.annotated else 'without'}** '{md(q.tag)}'")
        st.markdown(f"The corpus has it {annotation}; the model gives **p = {q.probability:.3f}** "
                    f"({'predicted' if q.probability >= thresholds[q.column] else 'not predicted'} at {how}). "
                    f"<span style='color:{TEXT_QUIET}'>Why asked: {q.why}</span>", unsafe_allow_html=True)
        earlier = db.current_for(q.clip_id, q.tag)
        if earlier:
            st.caption("Earlier verdicts: " + review.verdicts_line(earlier))
        mine = next((v.verdict for v in earlier if v.reviewer == me), None)
        widgets.play(preds, q.row)
        buttons = st.container(horizontal=True, gap="small")
        for verdict in VERDICTS:
            buttons.button(review.VERDICT_LABELS[verdict], key=f"review:answer:{verdict}", icon=review.VERDICT_ICONS[verdict],
                           type="primary" if mine == verdict else "secondary", on_click=_answer,
                           args=(db, q, verdict, pos), help=f"'{md(q.tag)}' is {verdict} in this clip")
        st.text_input("Note (optional)", key="review:note", placeholder="e.g. a woman sings from 0:04",
                      max_chars=2000)
        nav = st.container(horizontal=True, gap="small")
        nav.button("Back", key="review:back", icon=":material/arrow_back:", on_click=_go, args=(pos - 1,),
                   disabled=pos == 0)
        nav.button("Skip", key="review:skip", icon=":material/arrow_forward:", on_click=_go, args=(pos + 1,))
        nav.button("Undo my last answer", key="review:undo", icon=":material/undo:", on_click=_undo, args=(db,))
        nav.button("Open in the Clip explorer", key="review:open", icon=":material/open_in_new:",
                   on_click=review.select_clip, args=(q.clip_id,))
    _question_figure(q, _outcome(q, float(thresholds[q.column])))
    recent = db.history(reviewer=me)[-8:][::-1]
    if recent:
        with st.expander(f"Your latest answers ({len(done)} pairs answered in this corpus)"):
            st.dataframe(pd.DataFrame([{"time": review.when(v), "clip": v.clip_id, "tag": v.tag, "verdict": v.verdict,
                                        "undone": v.undone, "note": v.note} for v in recent]),
                         hide_index=True, width="stretch")


def _question_figure(q: Question, outcome: str) -> None:
    """The clip's mel-spectrogram above the question tag's activation over time."""
    mel = mel_fps = duration = None
    try:
        path = preds.audio_file(q.row)
        if path.is_file():
            mel, mel_fps, duration = loaders.mel_spectrogram(str(path), loaders.stamp(path),
                                                             **loaders.feature_params(run.manifest))
    except Exception as exc:  # any decoder failure becomes a caption, not a traceback
        st.caption(f"No spectrogram: {md(exc)}")
    taggram = loaders.clip_taggram(run, q.clip_id)
    frame_rate = loaders.frame_rate(run.manifest)
    if frame_rate is None and taggram is not None and duration:
        frame_rate = len(taggram) / duration
    if taggram is None and mel is None:
        return
    light_charts.clip_view(taggram[:, [q.column]] if taggram is not None else None, frame_rate, [q.tag], [outcome],
                           mel_db=mel, mel_fps=mel_fps, title=f"Mel-spectrogram and '{q.tag}' over time",
                           key="review:figure")


question_panel()

# ---- everyone's verdicts in this corpus
st.divider()
st.subheader("Verdicts in this corpus")
people = db.reviewers()
if not people:
    st.caption("No verdicts yet.")
else:
    st.caption(f"Kept in {code(db.path)} (one database per corpus, shared by every run of it). "
               f"Export them with {code(f'python -m pipeline review export --run {run.path}')}.")
    st.dataframe(pd.DataFrame(people, columns=["reviewer", "answers"]), hide_index=True)
    conflicts = db.disagreements()
    if conflicts:
        st.markdown(f"**{len(conflicts)} pair(s) where reviewers disagree** (left out of the corrections until settled):")
        st.dataframe(pd.DataFrame([{"clip": c, "tag": t, **{f"{name}": v for name, v in by.items()}}
                                   for c, t, by in conflicts[:500]]), hide_index=True, width="stretch")
    else:
        st.caption("No disagreements between reviewers.")
