"""Tag a file: upload audio, see its top tags and taggram, and its nearest corpus clips.

The tagger is one of musicnn's published models by default (`pipeline.pretrained`, converted at
install), or the selected run's own model.

Tagging goes through `pipeline.scoring.tagger.OnnxTagger` (ONNX Runtime, no torch). The tagger gives
tag probabilities and a taggram but no embedding, so the nearest clips are found by cosine
similarity between the file's tag-probability vector and every clip's in predictions.parquet
(`pipeline.analysis.projection.nearest_to_vector`): clips the model describes with the same tags.
"""

from __future__ import annotations

import logging

import numpy as np
import streamlit as st

from dashboard import charts, light_charts, loaders, widgets
from dashboard.text import code, md
from dashboard.theme import PRED, UNPRED
from pipeline.errors import PipelineError
from pipeline.run import rundir as rd

log = logging.getLogger(__name__)
MAX_UPLOAD_MB = 50
FORMATS = ["mp3", "wav", "flac", "ogg", "oga", "opus", "m4a", "aif", "aiff"]
N_NEAREST = 5
N_TOP = 5  # tags shown as the published models' answer


@st.cache_data(show_spinner="Tagging…", max_entries=16)
def tag_upload(tagger_path: str, model_stamp: loaders.Stamp, name: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [n_tags], taggram [frames, n_tags]) of an uploaded file (cached by content)."""
    tagger = loaders.onnx_tagger(tagger_path, model_stamp)
    probs, taggram = tagger.tag_bytes(data, name)
    return np.asarray(probs, np.float32), np.asarray(taggram if taggram is not None else np.zeros((0, len(probs))),
                                                     np.float32)


def run_tagger_problem(run: loaders.RunInfo | None) -> str | None:
    """Why the selected run's own model cannot tag an upload, or None when it can."""
    if run is None:
        return "No run is selected."
    if run.error:
        return f"Run **{md(run.name)}** cannot be read: {md(run.error)}"
    if not run.has(rd.SCORE_STAGE):
        return widgets.stage_message(run, rd.SCORE_STAGE)
    if not run.file(rd.ONNX_MODEL).is_file():
        return (f"Run **{md(run.name)}** has no exported model (`{rd.ONNX_MODEL}`), so it cannot tag new files. "
                f"Export it with {code(rd.rebuild_command(rd.SCORE_STAGE, run.path, run.corpus_root))}.")
    return None


ctx = widgets.context()
run = ctx.run if ctx.runs else None  # the published models tag files even before any run exists
widgets.header("Tag a file", "Upload a recording and see which tags a model hears, and when", run)
if run is not None and not run.error:
    widgets.no_annotations(run)  # the selected run's clips are the upload's neighbours

# ---- the tagger: a published model (musicnn's, converted at install) or the selected run's own
published = loaders.published_models()  # name -> (folder, dataset)
own_problem = run_tagger_problem(run)
choices = [f"{name} · published, {dataset}" for name, (_, dataset) in published.items()]
if own_problem is None and run is not None:
    choices.append(f"this run's model ({run.name})")
if not ctx.runs:
    st.info(widgets.no_runs_message(ctx), icon=":material/folder_off:")
if not choices:
    st.warning((own_problem or "No tagger is available.") + "\n\nThe published musicnn models are not installed "
               "either: run `python -m pipeline pretrained fetch` (or `make install`).", icon=":material/block:")
    st.stop()
if own_problem is not None and run is not None:
    st.info(f"This run's own model is not offered: {own_problem}", icon=":material/block:")
choice = st.selectbox("Tagger", choices, key="tag:tagger",
                      help="musicnn's published taggers (MagnaTagATune or Million Song Dataset tags, converted from "
                           "musicnn 0.1.0) hear real music; a run's own model knows its corpus's tags.")
own = choice.startswith("this run's model")
if own:
    assert run is not None
    tagger_path, stamp = str(run.path), run.stamp(rd.ONNX_MODEL)
else:
    folder = published[choice.split(" · ")[0]][0]
    tagger_path, stamp = str(folder), loaders.stamp(folder / rd.ONNX_MODEL)
    st.caption(f"{md(choice)}. Licence and provenance: {code(str(folder / 'manifest.json'))}.")
tagger = None
try:
    import pipeline.scoring.tagger  # noqa: F401 - only checks that the fast tagger is installed

    tagger = loaders.onnx_tagger(tagger_path, stamp)
except ImportError as exc:
    st.warning(f"The fast tagger (`pipeline.scoring.tagger`) is not available in this installation: {md(exc)}.",
               icon=":material/block:")
    st.stop()
except (PipelineError, OSError, ValueError, RuntimeError, KeyError) as exc:
    st.warning(f"Could not load the tagger {md(choice)}: {md(exc)}", icon=":material/block:")
    st.caption("Choose another tagger, or another run in the sidebar.")
    st.stop()

upload = st.file_uploader(f"Audio file ({', '.join(FORMATS)}; up to {MAX_UPLOAD_MB} MB)", type=FORMATS,
                          max_upload_size=MAX_UPLOAD_MB, key="tag:upload")
if upload is None:
    st.caption("Any length works: long files are cut into the model's input chunks and the chunk "
               "probabilities averaged, as in evaluation.")
    st.stop()
data = upload.getvalue()
if not data:
    st.error(f"{code(upload.name)} is empty (0 bytes).")
    st.stop()
try:
    probs, taggram = tag_upload(tagger_path, stamp, upload.name, data)
except PipelineError as exc:  # AudioDecodeError and friends name the file and the reason
    st.error(f"Could not tag {code(upload.name)}: {md(exc)}", icon=":material/error:")
    st.stop()
except Exception as exc:  # an odd upload must give a message, not a traceback
    log.exception("tagging %s failed", upload.name)
    # the type only: an unexpected error's message may name server paths (the log has it all)
    st.error(f"Could not tag {code(upload.name)}: unexpected {type(exc).__name__} (details in the server log).",
             icon=":material/error:")
    st.stop()

tags = list(tagger.tags)
if own and run is not None:
    thresholds, how = widgets.thresholds(run, tags)
    predicted = probs >= thresholds
else:  # a published model's probabilities are calibrated on its own data: its best tags, not a threshold
    top = np.argsort(-probs, kind="stable")[:N_TOP]
    thresholds, how = np.full(len(tags), np.nan), f"its {N_TOP} most probable tags"
    predicted = np.isin(np.arange(len(tags)), top)
st.audio(data, format=loaders.audio_mime(upload.name))
st.success(f"**{md(upload.name)}**: " + (", ".join(f"{md(tags[i])} ({probs[i]:.2f})"
                                              for i in np.argsort(-probs, kind="stable") if predicted[i])
                                     or f"no tag reaches {how}"), icon=":material/sell:")

left, right = st.columns([2, 3])
with left:
    global_threshold = float(thresholds[0]) if own and np.all(thresholds == thresholds[0]) else None
    widgets.chart(charts.top_tags(tags, probs, threshold=global_threshold), key="top_tags")
with right:
    fps = tagger.taggram_fps
    if len(taggram):
        order = np.argsort(-probs, kind="stable")[:15]
        light_charts.clip_view(taggram[:, order], fps, [tags[i] for i in order],
                               [PRED if predicted[i] else UNPRED for i in order],  # an upload has no annotation
                               title="Taggram: the top tags' activations over time", key="upload_taggram")
        st.caption("Labels in blue are " + ("predicted at " if own else "") + how + ".")
    else:
        st.caption("The tagger returned no taggram for this file.")

# ---- nearest clips in the corpus
st.subheader("Nearest clips in the corpus")
preds = widgets.predictions(run, stop=False) if run is not None and run.has(rd.SCORE_STAGE) else None
if preds is not None and list(preds.tags) == tags:
    from pipeline.analysis.projection import nearest_to_vector

    idx, sims = nearest_to_vector(preds.probs, probs, N_NEAREST)
    st.caption(f"Clips of run **{md(run.name)}** whose predicted tag probabilities are most similar (cosine) to "
               "this file's.")
    for n, (row, sim) in enumerate(zip(idx, sims), 1):
        widgets.clip_card(preds, int(row), detail=f"similarity {sim:.2f}", key=f"nearest:{n}")
elif run is not None:
    st.caption(f"The tagger's tags are not those of run **{md(run.name)}**'s predictions, so there are no "
               "neighbours to show: choose the run's own model, or score the published model on the corpus "
               f"({code('python -m pipeline score NAME --corpus DIR --out NEW_RUN')}).")
