"""Widget groups and page furniture shared by the pages: the sidebar, pickers, players, messages.

Each widget group is a function that draws and returns plain values; loaders report a broken
or missing artifact as a message on the page (never a traceback) and return None.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import loaders, review, state
from dashboard.loaders import Predictions, RunInfo
from dashboard.text import code, md
from dashboard.theme import OUTCOME_LABELS, PLOTLY_CONFIG, TEXT_QUIET, chip, legend_html
from pipeline.analysis.metrics import GLOBAL_THRESHOLD
from pipeline.errors import PipelineError
from pipeline.paths import REPO
from pipeline.run import locate
from pipeline.run import rundir as rd

log = logging.getLogger(__name__)
T = TypeVar("T")

STAGE_PURPOSE = {
    "train": "training history",
    "score": "predictions and taggrams",
    "evaluate": "metrics",
    "embed": "embeddings, tag maps and label issues",
}
assert set(STAGE_PURPOSE) == set(rd.STAGE_FILES), "one purpose per stage of the contract"

WARMED = "_warmed"  # session state: the (run, predictions stamp) whose shared artifacts this session loaded
# Said on every page of a run whose corpus annotates none of the model's tags (a user's own music).
NO_ANNOTATIONS = "This corpus has no annotations: showing the model's predictions only."


# ---------------------------------------------------------------------------------------------
# Where the runs are
# ---------------------------------------------------------------------------------------------
def runs_root(argv: list[str] | None = None) -> Path:
    """The runs folder: ``--runs`` after ``--`` on the command line, else $AUTOTAG_RUNS, else <repo>/data/runs.

    A relative ``--runs`` is taken from the working directory when it exists there, else from
    the repository (so ``--runs data/runs`` works from anywhere).
    """
    args = _arguments(argv)
    path = args.runs or (Path(os.environ[loaders.RUNS_ENV]) if os.environ.get(loaders.RUNS_ENV) else None)
    if path is None:
        return loaders.DEFAULT_RUNS
    path = path.expanduser()
    if not path.is_absolute() and not path.exists():
        path = REPO / path
    return path.resolve()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", type=Path, default=None)
    parser.add_argument("--corpus-root", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return args


def corpus_override(argv: list[str] | None = None) -> str | None:
    """``--corpus-root`` after ``--``: a folder, or NAME=DIR entries, re-pointing moved corpora.

    Without it ``$MUSICTAG_CORPUS_ROOT`` applies (`pipeline.run.locate`), then each run's own root.
    """
    return _arguments(argv).corpus_root


@dataclass
class Context:
    """What every page needs: the runs folder, the runs in it and the selected one."""

    root: Path
    runs: list[RunInfo]
    run: RunInfo | None

    def by_name(self, name: str | None) -> RunInfo | None:
        return next((r for r in self.runs if r.name == name), None)


def context() -> Context:
    """Draw the sidebar (run picker, thresholds) and return the page's context; each page calls it first.

    The sidebar is drawn by the page rather than by app.py so that it belongs to the page's
    script run (AppTest only sees a page's own elements after a page switch).
    """
    return sidebar(runs_root(), corpus_override())


def _default_run(runs: list[RunInfo]) -> RunInfo:
    """The newest readable run with the most complete stages."""
    def rank(r: RunInfo) -> tuple[int, int, float]:
        mtime = (loaders.stamp(r.file(rd.MANIFEST)) or (0, 0))[0]
        return (r.error is None, len(r.done), mtime)

    return max(runs, key=rank)


def sidebar(root: Path, corpus_root: str | None = None) -> Context:
    """Draw the run picker and threshold controls; return the page context.

    A run that cannot be read stays in the picker (marked unreadable) and is listed below it with
    its reason and the command that rebuilds it; it never stops another run's page.
    """
    runs = loaders.list_runs(root, corpus_root)
    run = None
    with st.sidebar:
        if runs:
            names = [r.name for r in runs]
            statuses = {r.name: r.status() for r in runs}
            default = _default_run(runs).name
            name = st.selectbox("Run", names, format_func=lambda n: n if statuses[n] == "complete"
                                else f"{n} ({statuses[n]})", help=f"Run directories found in {code(root)}",
                                **state.bind("run", options=names, default=default))
            run = next(r for r in runs if r.name == name)
            warmed = (str(run.path), loaders.stamp(run.file(rd.PREDICTIONS))) if run.error is None else None
            if warmed is not None and st.session_state.get(WARMED) != warmed:  # once a session and run, not a rerun
                loaders.warm(run)
                st.session_state[WARMED] = warmed
            bad = [r for r in runs if r.error]
            if bad:
                with st.expander(f"{len(bad)} run(s) cannot be read", icon=":material/error:"):
                    for r in bad:
                        st.caption(f"**{md(r.name)}**: {md(r.error)}")
                        st.code(r.rebuild, language="bash")
        tuned = st.toggle("Per-tag tuned thresholds", help="Use each tag's threshold tuned on the validation "
                          "split (per_tag.csv) instead of one global threshold.",
                          **state.bind("tuned", default=False))
        st.slider("Decision threshold", 0.0, 1.0, step=0.01, format="%.2f", disabled=bool(tuned),
                  help="A tag counts as predicted when its probability is at or above this value.",
                  **state.bind("threshold", default=GLOBAL_THRESHOLD))
        review.reviewer_field()
        review.show_notes()
        if run is None or not run.unannotated:  # outcomes need annotations
            st.markdown(legend_html(), unsafe_allow_html=True)
        st.caption(f"Runs folder: {code(root)}")
    return Context(root, runs, run)


# ---------------------------------------------------------------------------------------------
# Messages and guarded loading
# ---------------------------------------------------------------------------------------------
def chart(figure: Any, *, key: str, where: Any = None) -> None:
    """Show a chart from `dashboard.charts` in ``where`` (a column or container; the page by default).

    A Vega-Lite spec (a dict) or a plotly figure, both with ``theme=None``: each carries the app's
    own look (`theme.VEGA_CONFIG`, `theme.PLOTLY_TEMPLATE`), so the browser is spared Streamlit's
    theme merge, a quarter of its time for a plotly bar chart.
    """
    if isinstance(figure, dict):  # Streamlit moves the spec's tables out of the dict it is given
        (where or st).vega_lite_chart(spec=dict(figure), key=key, theme=None, width="stretch")
    else:
        (where or st).plotly_chart(figure, key=key, theme=None, config=PLOTLY_CONFIG)


def table(frame: pd.DataFrame, *, index: bool = False, where: Any = None) -> None:
    """A small table as one Markdown element (every cell made literal with `md`), numbers right-aligned.

    For a handful of rows: ``st.dataframe`` draws a scrollable grid on a canvas, twice the browser's
    time for two small tables (`python -m benchmarks chart_cost`); use it for long or sortable ones.
    """
    shown = frame.reset_index() if index else frame
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) for c in shown.columns]
    lines = ["| " + " | ".join(md(c) for c in shown.columns) + " |",
             "|" + "|".join("--:" if n else ":--" for n in numeric) + "|"]
    def cell(value: Any, number: bool) -> str:  # numbers are digits only: nothing to escape
        if not number:
            return md(value)
        return f"{int(value):,}" if isinstance(value, (int, np.integer)) else fmt(value)

    lines += ["| " + " | ".join(cell(v, n) for v, n in zip(row, numeric)) + " |" for row in shown.itertuples(index=False)]
    (where or st).markdown("\n".join(lines))


def header(title: str, caption: str | None = None, run: RunInfo | None = None) -> None:
    st.title(title)
    bits = [caption] if caption else []
    if run is not None:
        bits.append(f"Run **{md(run.name)}**")
        if run.manifest.get("synthetic"):
            bits.append(":orange-badge[synthetic data]")
    if bits:
        st.markdown(" · ".join(bits))
    if run is not None and run.corpus_missing():
        st.caption(f"Audio is unavailable: the corpus folder {code(run.corpus_root)} of this run is missing; "
                   f"{md(locate.repoint_hint(run.corpus_name))}. Everything else shows as usual.")


def no_runs_message(ctx: Context) -> str:
    """What to do when the runs folder holds no run."""
    return (f"No runs found in {code(ctx.root)}.\n\nBuild the demo run with `make demo` (or "
            "`python -m pipeline demo`), or point the dashboard at another folder with "
            "`streamlit run dashboard/app.py -- --runs PATH`.")


def need_run(ctx: Context) -> RunInfo:
    """The selected run, or stop the page with a message saying what is missing."""
    if not ctx.runs:
        st.info(no_runs_message(ctx), icon=":material/folder_off:")
        st.stop()
    run = ctx.run
    assert run is not None
    if run.error:
        st.error(f"Run **{md(run.name)}** cannot be read: {md(run.error)}\n\nRebuild it with {code(run.rebuild)}.",
                 icon=":material/error:")
        st.stop()
    return run


def stage_message(run: RunInfo, stage: str) -> str:
    missing = run.missing_files(stage)
    listed = stage in (run.manifest.get("stages") or {})
    if listed and missing:
        why = f"its **{stage}** stage is incomplete: missing {', '.join(code(m) for m in missing)}"
    elif listed:
        why = f"its **{stage}** stage is incomplete"
    else:
        why = f"it has no **{stage}** stage yet"
    command = rd.rebuild_command(stage, run.path, run.corpus_root)
    return (f"Run **{md(run.name)}** has no {STAGE_PURPOSE[stage]}: {why}.\n\n"
            f"Build it with {code(command)}.")


def require(run: RunInfo, stage: str, *, stop: bool = True) -> bool:
    """True when ``stage`` is complete; otherwise show what is missing or why it was skipped (and stop if asked)."""
    if run.has(stage):
        return True
    reason = run.skip_reason(stage)
    if reason is not None:
        st.info(f"Run **{md(run.name)}** has no {STAGE_PURPOSE[stage]}: {md(reason)}.\n\n{tags_csv_hint(run)}",
                icon=":material/label_off:")
    else:
        st.warning(stage_message(run, stage), icon=":material/hourglass_empty:")
    if stop:
        st.stop()
    return False


def guarded(fn: Callable[..., T], *args: Any, what: str = "") -> T | None:
    """Call a loader; a broken artifact becomes an error message and None."""
    try:
        return fn(*args)
    except (PipelineError, OSError, ValueError, KeyError) as exc:
        log.warning("could not load %s: %s", what or getattr(fn, "__name__", fn), exc)
        st.error(f"Could not load {what or 'an artifact'}: {md(exc)}", icon=":material/error:")
        return None


def predictions(run: RunInfo, *, stop: bool = True) -> Predictions | None:
    """The run's predictions (score stage), audio located under its corpus folder, or a message."""
    if not require(run, rd.SCORE_STAGE, stop=stop):
        return None
    preds = guarded(loaders.load_predictions, str(run.file(rd.PREDICTIONS)), run.stamp(rd.PREDICTIONS),
                    run.corpus_root, run.corpus_name, what=rd.PREDICTIONS)
    if preds is None and stop:
        st.stop()
    return preds


def evaluated_split(run: RunInfo) -> str | None:
    """The split the evaluate stage scored (metrics.json's "split"); None without a readable evaluation."""
    if not run.has("evaluate"):
        return None
    try:
        return loaders.load_metrics(str(run.file(rd.METRICS)), run.stamp(rd.METRICS)).split
    except PipelineError:
        return None


def tags_csv_hint(run: RunInfo) -> str:
    """What to supply for metrics: a tags CSV, and the command that scores the corpus with it."""
    origin = run.manifest.get("origin") if isinstance(run.manifest.get("origin"), dict) else {}
    model_run = origin.get("run") or "MODEL_RUN"
    folder = run.corpus_root or "FOLDER"
    command = (f"python -m pipeline score {model_run} --corpus {folder} --tags-csv TAGS.csv "
               f"--out {run.path.parent / (run.name + '-tagged')}")
    return (f"To get metrics, give the corpus a tags CSV (`tags.csv` in the folder: a `path,tags` header, then "
            f"rows such as `songs/a.mp3,rock;guitar`; or one 0/1 column per tag) and score it again: {code(command)}")


def no_annotations(run: RunInfo, preds: Predictions | None = None) -> bool:
    """Say `NO_ANNOTATIONS` when the run has no ground truth; True when it was said.

    ``preds`` decides when given (its ``true:<tag>`` columns), else the manifest (`RunInfo.unannotated`).
    """
    if (preds.truth is None) if preds is not None else run.unannotated:
        st.info(NO_ANNOTATIONS, icon=":material/label_off:")
        return True
    return False


def partial_note(preds: Predictions, *, container: Any = st) -> None:
    """A caption naming the annotated tags when the corpus annotates only some of the model's tags."""
    if preds.partly_annotated:
        labelled = preds.labelled_tags
        container.caption(f"This corpus annotates {len(labelled)} of the model's {len(preds.tags)} tags "
                          f"({', '.join(map(md, labelled))}): metrics and outcomes cover those only; the other "
                          "tags have no ground truth here.")


def scored_predictions(run: RunInfo, why: str) -> Predictions:
    """The run's predictions on the tags with ground truth, or stop the page saying ``why`` they are needed.

    A corpus that annotates only some of the model's tags gives a view of those tags
    (`Predictions.annotated_only`) and a caption naming them; one that annotates none stops the
    page with `NO_ANNOTATIONS`, why the page is empty and what to supply.
    """
    preds = predictions(run)
    assert preds is not None  # predictions() stops the page otherwise
    if preds.truth is None:
        st.info(f"{NO_ANNOTATIONS} This page is empty: {why}.\n\n{tags_csv_hint(run)}",
                icon=":material/label_off:")
        st.stop()
    partial_note(preds)
    return preds.annotated_only()


def per_tag(run: RunInfo) -> pd.DataFrame | None:
    """per_tag.csv when the evaluate stage is complete (silently None otherwise)."""
    if not run.has("evaluate"):
        return None
    return guarded(loaders.load_per_tag, str(run.file(rd.PER_TAG)), run.stamp(rd.PER_TAG), what=rd.PER_TAG)


def artifact(run: RunInfo, stage: str, name: str, required: tuple[str, ...] = (), *,
             stop: bool = False) -> pd.DataFrame | None:
    """A Parquet artifact of ``stage`` (message when the stage is missing)."""
    if not require(run, stage, stop=stop):
        return None
    return guarded(loaders.load_table, str(run.file(name)), run.stamp(name), required, what=name)


# ---------------------------------------------------------------------------------------------
# Thresholds, tags, splits
# ---------------------------------------------------------------------------------------------
def thresholds(run: RunInfo, tags: list[str]) -> tuple[np.ndarray, str]:
    """Per-tag thresholds in use (global slider, or tuned per tag) and a phrase describing them."""
    global_t = float(state.get("threshold", GLOBAL_THRESHOLD))
    if state.get("tuned", False):
        table = per_tag(run)
        if table is not None and table["tuned_threshold"].notna().any():
            tuned = table.set_index("tag")["tuned_threshold"].reindex(tags)
            values = tuned.fillna(global_t).to_numpy(np.float64)
            return values, "per-tag tuned thresholds"
        st.sidebar.caption("This run has no tuned thresholds (evaluate stage); using the global threshold.")
    return np.full(len(tags), global_t), f"threshold {global_t:.2f}"


def tag_picker(tags: list[str], *, label: str = "Tag", default: str | None = None, container: Any = st) -> str:
    """A tag selectbox bound to the shared ``tag`` state."""
    return container.selectbox(label, tags, **state.bind("tag", options=tags, default=default or tags[0]))


def split_picker(splits: list[str], *, label: str = "Split", container: Any = st, allow_all: bool = True) -> str:
    """A split selectbox bound to the shared ``split`` state (test by default)."""
    options = [*splits, "all"] if allow_all else list(splits)
    default = "test" if "test" in options else options[0]
    names = {"all": "all splits"}
    return container.selectbox(label, options, format_func=lambda s: names.get(s, s),
                               **state.bind("split", options=options, default=default))


def split_phrase(split: str, *, bold: bool = False) -> str:
    """'the test split' / 'all splits' for captions."""
    if split == "all":
        return "all splits"
    return f"the **{md(split)}** split" if bold else f"the {md(split)} split"


# ---------------------------------------------------------------------------------------------
# Audio and tag chips
# ---------------------------------------------------------------------------------------------
def play(preds: Predictions, row: int, *, container: Any = st, compact: bool = False) -> bool:
    """Play clip ``row`` from its original file's bytes; a missing, refused or unreadable file gets a message.

    The file is located under the run's corpus folder (`Predictions.audio_file`): a path that
    leaves it is refused, never read.
    """
    say = container.caption if compact else container.warning
    stored = str(preds.clips["audio_path"].iat[row]) or "(no path)"
    try:
        path = preds.audio_file(row)
    except PipelineError as exc:
        located = preds.audio_root is not None and preds.audio_root.is_dir()
        say(f"{'Audio not played' if located else 'Audio file not found'}: {code(stored)}: {md(exc)}")
        return False
    if not path.is_file():
        say(f"Audio file not found: {code(stored)}")
        return False
    try:
        data = loaders.audio_bytes(str(path), loaders.stamp(path))
    except OSError as exc:
        container.warning(f"Audio file unreadable: {code(path)} ({md(exc)})")
        return False
    container.audio(data, format=loaders.audio_mime(path))
    return True


def chips_html(names: list[str], outcomes: list[str], probs: list[float] | None = None) -> str:
    """Tag chips coloured by outcome (TP / FP / FN), with probabilities when given."""
    if not names:
        return '<span style="color:#8A94A6">none</span>'
    parts = []
    for i, (name, outcome) in enumerate(zip(names, outcomes)):
        text = f"{name} {probs[i]:.2f}" if probs is not None else name
        parts.append(chip(text, outcome, title=OUTCOME_LABELS[outcome]))
    return "".join(parts)


def open_clip_button(clip_id: str, *, key: str, label: str = "Open", container: Any = st,
                     switch: bool = True) -> None:
    """A button that selects ``clip_id`` (and switches to the Clip explorer unless ``switch`` is False)."""
    clicked = container.button(label, key=key, help=f"Open clip {md(clip_id)} in the Clip explorer",
                               icon=":material/open_in_new:", on_click=state.select, args=("clip", clip_id))
    if clicked and switch:
        st.switch_page(PAGES["explorer"])


# Page files, for st.Page and st.switch_page (paths relative to dashboard/app.py). The folder is
# not called "pages/": Streamlit would take it for an old-style multipage app and, on a cold start,
# run a page linked to directly without app.py (no page config, no state from the URL).
PAGES = {
    "overview": "views/overview.py",
    "explorer": "views/clip_explorer.py",
    "metrics": "views/tag_metrics.py",
    "errors": "views/error_analysis.py",
    "map": "views/tag_map.py",
    "tag": "views/tag_a_file.py",
    "compare": "views/compare_runs.py",
    "review": "views/review.py",
    "inside": "views/inside_model.py",
}


def fmt(value: Any, digits: int = 3) -> str:
    """A number for display ('–' for missing)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if not np.isfinite(value) else f"{value:.{digits}f}"


def clip_card(preds: Predictions, row: int, *, detail: str, key: str, container: Any = st,
              tag: str | None = None, run: RunInfo | None = None, source: str = "") -> None:
    """A bordered row: clip id and a detail line, its annotated tags, a player and an Open button.

    With ``tag`` and ``run`` the card also asks whether ``tag`` is in the clip (present / absent /
    unsure, `dashboard.review.verdict_buttons`) and shows the earlier verdicts on that pair.
    """
    info = preds.clips.iloc[row]
    if preds.truth is not None:
        listed = "annotated: " + (", ".join(md(preds.tags[j]) for j in np.flatnonzero(preds.truth[row])) or "none")
    else:  # no annotations: the model's most probable tags instead
        top = np.argsort(-preds.probs[row], kind="stable")[:3]
        listed = "most probable: " + ", ".join(f"{md(preds.tags[j])} {preds.probs[row, j]:.2f}" for j in top)
    # A horizontal container, not st.columns: each block is an element the browser renders, and a
    # page of cards is mostly blocks (docs/benchmarks.md, "The server's garbage collection, fewer elements").
    with container.container(border=True):
        with st.container(horizontal=True, vertical_alignment="center"):
            st.markdown(f"**{md(info['clip_id'])}** · {detail}  \n"
                        f"<span style='color:{TEXT_QUIET};font-size:0.85rem'>{listed}"
                        f" · {md(info['split'])}</span>", unsafe_allow_html=True, width="stretch")
            open_clip_button(str(info["clip_id"]), key=key)
        play(preds, row, compact=True)
        if tag is not None and run is not None and tag in preds.tags:
            review.verdict_buttons(review.store(run, quiet=True), review.question(preds, row, preds.tags.index(tag)),
                                   key=f"{key}:verdict", source=source, run=run.name)
