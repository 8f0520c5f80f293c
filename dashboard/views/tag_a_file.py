"""Tag a file: upload audio, see its top tags and taggram from the chosen run, and its nearest corpus clips.

Tagging goes through `pipeline.scoring.tagger.OnnxTagger` (ONNX Runtime, no torch). The tagger gives
tag probabilities and a taggram but no embedding, so the nearest clips are found by cosine
similarity between the file's tag-probability vector and every clip's in predictions.parquet
(`pipeline.analysis.projection.nearest_to_vector`): clips the model describes with the same tags.
"""

from __future__ import annotations

import logging

import numpy as np
import streamlit as st

from dashboard import charts, loaders, widgets
from dashboard.text import code, md
from dashboard.theme import PRED, UNPRED
from pipeline.errors import PipelineError
from pipeline.run import rundir as rd

log = logging.getLogger(__name__)
MAX_UPLOAD_MB = 50
FORMATS = ["mp3", "wav", "flac", "ogg", "oga", "opus", "m4a", "aif", "aiff"]
N_NEAREST = 5


@st.cache_data(show_spinner="Tagging…", max_entries=16)
def tag_upload(run_path: str, model_stamp: loaders.Stamp, name: str, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [n_tags], taggram [frames, n_tags]) of an uploaded file (cached by content)."""
    tagger = loaders.onnx_tagger(run_path, model_stamp)
    probs, taggram = tagger.tag_bytes(data, name)
    return np.asarray(probs, np.float32), np.asarray(taggram if taggram is not None else np.zeros((0, len(probs))),
                                                     np.float32)


ctx = widgets.context()
run = widgets.need_run(ctx)
widgets.header("Tag a file", "Upload a recording and see which tags the model hears, and when", run)
widgets.no_annotations(run)

# ---- is there a tagger for this run?
problem = None
try:
    import pipeline.scoring.tagger  # noqa: F401 - only checks that the fast tagger is installed
except ImportError as exc:
    problem = f"The fast tagger (`pipeline.scoring.tagger`) is not available in this installation: {exc}."
if problem is None and not run.has(rd.SCORE_STAGE):
    problem = widgets.stage_message(run, rd.SCORE_STAGE)
if problem is None and not run.file(rd.ONNX_MODEL).is_file():
    problem = (f"Run **{md(run.name)}** has no exported model (`{rd.ONNX_MODEL}`), so it cannot tag new files. "
               f"Export it with {code(rd.rebuild_command(rd.SCORE_STAGE, run.path, run.corpus_root))}.")
tagger = None
if problem is None:
    try:
        tagger = loaders.onnx_tagger(str(run.path), run.stamp(rd.ONNX_MODEL))
    except (PipelineError, OSError, ValueError, RuntimeError, KeyError) as exc:
        problem = f"Could not load the tagger of run **{md(run.name)}**: {md(exc)}"
if problem:
    st.warning(problem, icon=":material/block:")
    st.caption("Choose another run in the sidebar.")
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
    probs, taggram = tag_upload(str(run.path), run.stamp(rd.ONNX_MODEL), upload.name, data)
except PipelineError as exc:  # AudioDecodeError and friends name the file and the reason
    st.error(f"Could not tag {code(upload.name)}: {md(exc)}", icon=":material/error:")
    st.stop()
except Exception as exc:  # an odd upload must give a message, not a traceback
    log.exception("tagging %s failed", upload.name)
    # the type only: an unexpected error's message may name server paths (the log has it all)
    st.error(f"Could not tag {code(upload.name)}: unexpected {type(exc).__name__} (details in the server log).",
             icon=":material/error:")
    st.stop()

tags = list(getattr(tagger, "tags", None) or run.manifest.get("tags") or [f"tag {i}" for i in range(len(probs))])
thresholds, how = widgets.thresholds(run, tags)
predicted = probs >= thresholds
st.audio(data, format=loaders.audio_mime(upload.name))
st.success(f"**{md(upload.name)}**: " + (", ".join(f"{md(tags[i])} ({probs[i]:.2f})"
                                              for i in np.argsort(-probs, kind="stable") if predicted[i])
                                     or f"no tag reaches {how}"), icon=":material/sell:")

left, right = st.columns([2, 3])
with left:
    global_threshold = float(thresholds[0]) if np.all(thresholds == thresholds[0]) else None
    st.plotly_chart(charts.top_tags(tags, probs, threshold=global_threshold), key="top_tags")
with right:
    fps = getattr(tagger, "taggram_fps", None) or loaders.frame_rate(run.manifest)
    if len(taggram):
        order = np.argsort(-probs, kind="stable")[:15]
        fig = charts.clip_view(taggram[:, order], fps, [tags[i] for i in order],
                               [PRED if predicted[i] else UNPRED for i in order],  # an upload has no annotation
                               title="Taggram: the top tags' activations over time")
        st.plotly_chart(fig, key="upload_taggram")
        st.caption("Labels in blue are predicted at " + how + ".")
    else:
        st.caption("The tagger returned no taggram for this file.")

# ---- nearest clips in the corpus
st.subheader("Nearest clips in the corpus")
preds = widgets.predictions(run, stop=False)
if preds is not None and preds.probs.shape[1] == len(probs):
    from pipeline.analysis.projection import nearest_to_vector

    idx, sims = nearest_to_vector(preds.probs, probs, N_NEAREST)
    st.caption("Clips whose predicted tag probabilities are most similar (cosine) to this file's.")
    for n, (row, sim) in enumerate(zip(idx, sims), 1):
        widgets.clip_card(preds, int(row), detail=f"similarity {sim:.2f}", key=f"nearest:{n}")
elif preds is not None:
    st.caption("The run's predictions have a different tag set from its tagger; no neighbours to show.")
