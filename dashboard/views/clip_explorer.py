"""Clip explorer: find a clip, listen to it, see its spectrogram, taggram, tags and similar clips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import analysis, charts, light_charts, loaders, review, state, widgets
from dashboard.text import code, md
from dashboard.theme import FN, FP, PRED, QUIET, TEXT_QUIET, TP
from pipeline.run import rundir as rd
from pipeline.run.files import INSIDE_FILES

MAX_OPTIONS = 300  # clips listed in the picker at once (the search narrows them)
N_SIMILAR = 5
TAGGRAM_ROWS = 20

ctx = widgets.context()
run = widgets.need_run(ctx)
widgets.header("Clip explorer", "Listen to a clip and compare what it was tagged with to what the model hears", run)
preds = widgets.predictions(run)
tags, clips = preds.tags, preds.clips
annotated_run = not widgets.no_annotations(run, preds)
widgets.partial_note(preds)

# Computed outside the fragment: `widgets.thresholds` may write to the sidebar, which a fragment cannot.
thresholds, how = widgets.thresholds(run, tags)


@st.fragment
def explorer() -> None:
    """The page below the header: choosing, opening or searching a clip reruns this part only."""
    review.show_notes()
    # ---- find a clip
    c1, c2, c3 = st.columns([3, 2, 1])
    text = c1.text_input("Search", placeholder="clip id, file name or any text column", key="explorer:search")
    with_tags = (c2.multiselect("Annotated with", preds.labelled_tags, key="explorer:tags", placeholder="any tag")
                 if annotated_run else [])
    split = c3.selectbox("Split", ["all", *preds.splits], key="explorer:split")
    text_columns = [c for c in clips.columns if c not in ("audio_path", "split")
                    and (pd.api.types.is_string_dtype(clips[c]) or clips[c].dtype == object)]
    mask = analysis.search_clips(clips, text, text_columns)
    if split != "all":
        mask &= (clips["split"] == split).to_numpy()
    if with_tags and preds.truth is not None:
        cols = [tags.index(t) for t in with_tags]
        mask &= preds.truth[:, cols].all(axis=1)
    matches = np.flatnonzero(mask)
    ids = clips["clip_id"].to_numpy()
    options = list(ids[matches[:MAX_OPTIONS]])
    current = state.get("clip")
    if current is not None and current not in options and preds.row(current) is not None:
        options.insert(0, current)  # keep the selected clip (e.g. from a shared link) whatever the filters
    if not options:
        st.info("No clip matches the search and filters.", icon=":material/search_off:")
        return
    files = dict(zip(ids[matches[:MAX_OPTIONS]], clips["file"].to_numpy()[matches[:MAX_OPTIONS]]))
    clip = st.selectbox("Clip", options, format_func=lambda c: f"{c} · {files.get(c, '')}",
                        **state.bind("clip", options=options))
    st.caption(f"{len(matches):,} of {len(clips):,} clips match"
               + (f"; the picker lists the first {MAX_OPTIONS:,}." if len(matches) > MAX_OPTIONS else "."))

    row = preds.row(clip)
    assert row is not None
    info = clips.iloc[row]
    probs = preds.probs[row]
    truth = preds.truth[row] if preds.truth is not None else None
    outcomes = analysis.outcomes(truth, probs, thresholds, preds.labelled if truth is not None else None)

    st.divider()
    st.subheader(f"Clip {md(clip)}")
    st.caption(f"Split **{md(info['split'])}** · file {code(info['audio_path'] or '(none)')} · "
               + (f"outcomes at {how}" if annotated_run else f"predicted at {how}"))

    # ---- audio, tag lists, counts
    left, right = st.columns([2, 3])
    with left:
        has_audio = widgets.play(preds, row)
        inspectable = run.has(rd.SCORE_STAGE) and all(run.file(name).is_file() for name in INSIDE_FILES)
        if inspectable and st.button("See inside the model", key="explorer:inside", icon=":material/biotech:",
                                     help="This clip's feature maps, its channels heard, and the first-layer filters"):
            st.switch_page(widgets.PAGES["inside"])
        order = np.argsort(-probs, kind="stable")
        annotated = [i for i in order if outcomes[i] in (TP, FN)]
        predicted = [i for i in order if outcomes[i] in (TP, FP, PRED)]
        # Horizontal containers rather than columns, a heading and its chips in one markdown: the
        # browser's cost of a rerun grows with the number of elements.
        if annotated_run:
            counts = {o: int((outcomes == o).sum()) for o in (TP, FP, FN)}
            with st.container(horizontal=True):
                st.metric("True positives", counts[TP], help="annotated and predicted")
                st.metric("False positives", counts[FP], help="predicted, not annotated")
                st.metric("False negatives", counts[FN], help="annotated, not predicted")
        else:
            st.metric("Predicted tags", len(predicted), help=f"tags at {how}")
        with st.container(horizontal=True):
            if annotated_run:
                st.markdown("**Annotated**<br>" + widgets.chips_html([tags[i] for i in annotated],
                                                                     [outcomes[i] for i in annotated]),
                            unsafe_allow_html=True, width="stretch")
            st.markdown("**Predicted**<br>" + widgets.chips_html([tags[i] for i in predicted],
                                                                 [outcomes[i] for i in predicted],
                                                                 [float(probs[i]) for i in predicted]),
                        unsafe_allow_html=True, width="stretch")
    with right:
        widgets.chart(charts.clip_tags(tags, probs, list(outcomes), thresholds), key="clip_tags")

    # ---- verdicts: is a tag in this clip? (kept per corpus, shown in every run of it)
    db = review.store(run, quiet=True)
    if db is not None:
        with st.container(border=True):
            v1, v2 = st.columns([1, 3], vertical_alignment="bottom")
            # Default: the most confident disagreement of model and annotation, else the most probable tag.
            doubtful = [i for i in order if outcomes[i] in (FP, FN)]
            review_tag = v1.selectbox("Review a tag", [tags[i] for i in order], index=order.tolist().index(doubtful[0])
                                      if doubtful else 0, key=f"explorer:review_tag:{clip}")
            review.verdict_buttons(db, review.question(preds, row, tags.index(review_tag)), key=f"explorer:verdict:{clip}",
                                   source="explorer", run=run.name, container=v2)
            on_clip = [v for v in db.current(clip_ids=[clip]) if v.tag != review_tag]
            if on_clip:
                st.caption("Other verdicts on this clip: " + "; ".join(f"**{md(v.tag)}** " + review.verdicts_line([v])
                                                                      for v in on_clip))

    # ---- spectrogram and taggram on one time axis
    mel = mel_fps = duration = None
    if has_audio:
        params = loaders.feature_params(run.manifest)
        path = preds.audio_file(row)
        try:
            mel, mel_fps, duration = loaders.mel_spectrogram(str(path), loaders.stamp(path), **params)
        except Exception as exc:  # any decoder failure becomes a message, not a traceback
            st.warning(f"Could not decode {code(path.name)} for the spectrogram: {md(exc)}")
    taggram = widgets.guarded(loaders.clip_taggram, run, clip, what=rd.TAGGRAMS)
    frame_rate = loaders.frame_rate(run.manifest)
    if frame_rate is None and taggram is not None and duration:
        frame_rate = len(taggram) / duration  # the taggram spans the clip
    shown = [i for i in order if outcomes[i] not in QUIET]
    shown += [i for i in order if outcomes[i] in QUIET][: max(0, TAGGRAM_ROWS - len(shown))]
    if taggram is None and mel is None:
        st.caption("No taggram and no spectrogram for this clip.")
    else:
        light_charts.clip_view(taggram[:, shown] if taggram is not None else None, frame_rate,
                               [tags[i] for i in shown], [outcomes[i] for i in shown], mel_db=mel, mel_fps=mel_fps,
                               title="Mel-spectrogram (top) and taggram (tag activations over time)", key="clip_view")
        st.caption(("Taggram rows: annotated and predicted tags first (labels coloured by outcome), then the most "
                    "probable others." if annotated_run else
                    "Taggram rows: predicted tags first (labels in blue), then the most probable others.")
                   + ("" if taggram is not None else " This clip has no taggram."))

    # ---- similar clips
    st.subheader("Similar clips")
    if widgets.require(run, "embed", stop=False):
        neighbors = widgets.guarded(loaders.neighbor_index, str(run.file(rd.CLIP_NEIGHBORS)),
                                    run.stamp(rd.CLIP_NEIGHBORS), what=rd.CLIP_NEIGHBORS)
        near = neighbors.of(clip, N_SIMILAR) if neighbors is not None else []
        if not near:
            st.caption("No neighbours recorded for this clip.")
        for n, (other, similarity) in enumerate(near):
            other_row = preds.row(other)
            if other_row is None:
                continue
            other_info = clips.iloc[other_row]
            # Tags compared: the annotated ones, or (no annotations) those predicted at the thresholds in use.
            if annotated_run:
                other_tags = [tags[j] for j in np.flatnonzero(preds.truth[other_row])]
                mine = {tags[i] for i in annotated}
            else:
                other_tags = [tags[j] for j in np.argsort(-preds.probs[other_row], kind="stable")
                              if preds.probs[other_row, j] >= thresholds[j]]
                mine = {tags[i] for i in predicted}
            shared = sorted(set(other_tags) & mine)
            listed = (("Tags: " if annotated_run else "Predicted: ") + (", ".join(map(md, other_tags)) or "none")
                      + (f" · shared: {', '.join(map(md, shared))}" if shared else ""))
            # One bordered horizontal row (not columns) and one markdown: fewer elements to render.
            with st.container(border=True, horizontal=True, vertical_alignment="center"):
                st.markdown(f"**{md(other)}** · similarity {similarity:.2f}  \n{code(other_info['file'])} "
                            f"({md(other_info['split'])})  \n<span style='color:{TEXT_QUIET};font-size:0.85rem'>"
                            f"{listed}</span>", unsafe_allow_html=True, width=320)
                widgets.play(preds, other_row, compact=True)
                widgets.open_clip_button(other, key=f"similar:{n}", switch=False)


explorer()
