"""Inside the model: a layer's feature maps on a clip, a channel heard, what it likes across the corpus, filters.

Live maps come from the run's ``inspect.onnx`` (torch-free; `dashboard.inside_loaders`); the corpus
statistics from what the score stage precomputed (`pipeline.inspect.precompute`).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from dashboard import inside_charts, inside_loaders, loaders, state, widgets
from dashboard.text import code, md
from pipeline.errors import PipelineError
from pipeline.inspect import filters as flt
from pipeline.inspect import stats as inspect_stats
from pipeline.run import files as rf
from pipeline.run import rundir as rd

MAX_OPTIONS = 300  # clips listed in the picker (the selected clip is always kept)
GRID = 24  # channels in the small-multiples grid
TAGGRAM_ROWS = 8
TOP_CLIPS = 5
N_TOP_TAGS = 5
MAX_KERNELS = 48  # 2-D kernels drawn per filter bank
FILTER_NOTES = {
    "1d": "Each kernel by its magnitude response (dB re its peak), sorted by the frequency of the peak: "
          "the sample-level model's first layer as a learned filterbank.",
    "vertical": "Tall in frequency, short in time: timbral filters, matching a spectral shape over many bands.",
    "horizontal": "One band, many frames: temporal filters, matching patterns in time (onsets, rhythm).",
    "square": "Small time-frequency patches (frequency up, time to the right), blue negative, red positive.",
}

ctx = widgets.context()
run = widgets.need_run(ctx)
widgets.header("Inside the model", "See and hear what the network's layers and channels respond to", run)
preds = widgets.predictions(run)
config = widgets.guarded(inside_loaders.inspect_config, run, what=rf.INSPECT)
if config is None:
    entry = run.manifest.get("stages", {}).get(rd.SCORE_STAGE, {})
    if run.manifest.get("synthetic"):
        st.info("This run is synthetic (no trained network): it has no layers to look inside.",
                icon=":material/layers_clear:")
    elif entry.get("taggram") is None:
        st.info("This run's model is a classical baseline: it has no layers to look inside.",
                icon=":material/layers_clear:")
    else:
        st.info("This run was scored before the score stage looked inside the model. Score it again to add its "
                f"feature maps and channel statistics: {code(rd.rebuild_command(rd.SCORE_STAGE, run.path) + ' --force')}",
                icon=":material/layers:")
    st.stop()
layers = inside_loaders.layers(config)
tags, clips = preds.tags, preds.clips
chunk_frames = int(config["chunk_frames"])
features = config["features"]
waveform = features.get("kind") == "waveform"
input_fps = float(features["sample_rate"]) / (1 if waveform else float(features["hop_length"]))

# ---- choose a clip and a layer
ids = clips["clip_id"].to_numpy()
options = list(ids[:MAX_OPTIONS])
current = state.get("clip")
if current is not None and current not in options and preds.row(current) is not None:
    options.insert(0, current)
files = dict(zip(ids[:MAX_OPTIONS], clips["file"].to_numpy()[:MAX_OPTIONS]))
c1, c2, c3 = st.columns([3, 2, 2])
clip = c1.selectbox("Clip", options, format_func=lambda c: f"{c} · {files.get(c, '')}",
                    help="The clip the maps are computed on (the same clip as in the Clip explorer)",
                    **state.bind("clip", options=options))
by_name = {layer.name: layer for layer in layers}


def describe(name: str) -> str:
    layer = by_name[name]
    return f"{name} · {layer.channels} ch · {'frequency x time' if layer.has_freq else 'time'}"


layer = by_name[c2.selectbox("Layer", list(by_name), format_func=describe, key="inside:layer",
                             help="The network's inspectable layers, input first (declared by the model)")]
row = preds.row(clip)
assert row is not None

# ---- the clip's maps (one ONNX pass per clip, cached)
maps = None
audio_path = None
try:
    audio_path = preds.audio_file(row)
except PipelineError as exc:  # a missing corpus, a refused path: said, not raised
    st.warning(f"No audio for clip {md(clip)}: {md(exc)}. Only the corpus statistics are shown.")
if audio_path is not None and not config.get("onnx"):
    st.warning(f"Live feature maps are unavailable: the score stage could not export {code(rf.INSPECT_ONNX)} "
               f"({md(config.get('onnx_error') or 'no reason recorded')}).")
elif audio_path is not None and audio_path.is_file():
    maps = widgets.guarded(inside_loaders.maps_of, run, audio_path, what=f"the feature maps of {clip}")
elif audio_path is not None:
    st.warning(f"Audio file not found: {code(audio_path)}")

if maps is not None:
    means = maps.means[layer.name]
    order = [int(c) for c in np.argsort(-means, kind="stable")]
    channel = c3.selectbox("Channel", order, format_func=lambda c: f"{c} · mean {means[c]:.3f}",
                           key=f"inside:channel:{layer.name}",
                           help="Sorted by the channel's mean activation on this clip, the most active first")
else:
    means = None
    channel = c3.selectbox("Channel", list(range(layer.channels)), key=f"inside:channel:{layer.name}")
map_fps = layer.steps_per_second(chunk_frames, input_fps)

if maps is not None:
    assert audio_path is not None
    channel_map = maps.maps[layer.name][channel]
    # ---- hear it
    a, b = st.columns(2)
    a.markdown("**Original**")
    widgets.play(preds, row, container=a)
    b.markdown(f"**Through channel {channel} of {md(layer.name)}**")
    wav, gain = inside_loaders.channel_audio(str(run.path), run.stamp(rf.INSPECT_ONNX), run.stamp(rf.INSPECT),
                                             str(audio_path), loaders.stamp(audio_path), layer.name, channel, waveform)
    b.audio(wav, format="audio/wav")
    if waveform:
        how = ("the channel's activation map itself, a signal at "
               f"{map_fps:,.0f} steps per second, upsampled to {maps.sample_rate:,} Hz with its mean removed")
    elif layer.has_freq:
        how = ("the clip's STFT masked by the channel's time x frequency map (each map row over its mel bands), "
               "inverted with the original phase")
    else:
        how = ("the clip's STFT masked by the channel's activation over time (this layer has no frequency axis), "
               "inverted with the original phase")
    level = (f"scaled to the original's RMS loudness (gain {gain:+.1f} dB) so both play at a comparable level"
             if gain is not None else "silent: the channel does not respond to this clip")
    b.caption(f"What the channel responds to: {how}; {level}.")

    # ---- see it, aligned with the spectrogram and the taggram
    mel = mel_fps = None
    try:
        mel, mel_fps, _ = loaders.mel_spectrogram(str(audio_path), loaders.stamp(audio_path),
                                                  **loaders.feature_params(run.manifest))
    except Exception as exc:  # a decoder failure becomes a message
        st.caption(f"No spectrogram: {md(exc)}")
    taggram = widgets.guarded(loaders.clip_taggram, run, clip, what=rd.TAGGRAMS)
    top = [int(i) for i in np.argsort(-preds.probs[row], kind="stable")[:TAGGRAM_ROWS]]
    tg_fps = loaders.frame_rate(run.manifest)
    fig = inside_charts.channel_view(mel, mel_fps or 1.0, channel_map, map_fps,
                                     taggram=taggram[:, top] if taggram is not None else None, taggram_fps=tg_fps,
                                     tags=[tags[i] for i in top],
                                     title=f"Mel-spectrogram, channel {channel} of {layer.name}, taggram "
                                           f"(top {len(top)} tags)")
    widgets.chart(fig, key="inside_view")
    st.caption(f"One time axis in seconds: the layer gives {map_fps:.1f} steps per second"
               + (f" and {layer.freq_rows} frequency rows (lowest at the bottom)" if layer.has_freq else "") + ".")
    shown = order[:GRID]
    widgets.chart(inside_charts.channel_grid(maps.maps[layer.name], shown, means, map_fps, selected=channel,
                                             title=f"Channels of {layer.name} on this clip, most active first "
                                                   f"({len(shown)} of {layer.channels}; mean activation)"),
                  key="inside_grid")

# ---- what the channel likes across the corpus
st.subheader("What this channel likes across the corpus")
stats = widgets.guarded(inside_loaders.stats_of, run, what=rf.CHANNEL_INDEX)
if stats is not None:
    column = stats.column(layer.name, channel)
    kept = stats.of_layer(layer.name)
    selection = config.get("selection", {})
    basis = config.get("correlation", {}).get("basis", "annotations")
    if column is None:
        listed = ", ".join(str(c) for c in kept["channel"].tolist()) or "none"
        st.caption(f"Channel {channel} is not among the {len(kept)} precomputed channels of {md(layer.name)} "
                   f"(the score stage keeps at most {selection.get('max_per_layer', '?')} per layer: "
                   f"{md(selection.get('rule', ''))}). Precomputed: {listed}.")
    else:
        left, right = st.columns([2, 3])
        with left:
            liked = inspect_stats.top_tags(stats.correlations[column], tags, N_TOP_TAGS)
            st.markdown("**Tags it tracks** (Pearson r of its clip means with the "
                        + ("annotations" if basis == "annotations" else "predicted probabilities") + ")")
            st.markdown("  \n".join(f"{md(t)}: r = {r:+.2f}" for t, r in liked) or "none")
            st.markdown("**Clips that excite it most**")
            for n, other in enumerate(inspect_stats.top_clips(stats.activations[:, column], TOP_CLIPS)):
                other_id = str(clips["clip_id"].iat[other])
                with st.container(border=True):
                    x, y = st.columns([2, 1], vertical_alignment="center")
                    x.markdown(f"**{md(other_id)}** · mean activation {stats.activations[other, column]:.3f}")
                    y.button("Open", key=f"inside:open:{n}", icon=":material/open_in_new:",
                             help=f"Show clip {md(other_id)} on this page", on_click=state.select,
                             args=("clip", other_id))
                    widgets.play(preds, int(other), compact=True)
        with right:
            spectrum = config.get("spectrum", {})
            widgets.chart(inside_charts.channel_spectrum(
                spectrum.get("hz", []), stats.spectra[column], np.asarray(config.get("corpus_spectrum", []), float),
                kind=spectrum.get("kind", "mel"),
                title=f"What channel {channel} lets through: its activation-weighted input spectrum"),
                key="inside_spectrum")
    if len(kept):
        cols = kept["column"].to_numpy()
        widgets.chart(inside_charts.channel_tags(stats.correlations[cols], kept["channel"].tolist(), tags,
                                                 selected=channel,
                                                 title=f"Precomputed channels of {layer.name} x tags: correlation "
                                                       f"over {stats.activations.shape[0]:,} clips"),
                      key="inside_tags")

# ---- filters
st.subheader("Filters")
if st.toggle("Show the first-layer filters and the layer's response spectra", key="inside:filters"):
    groups = widgets.guarded(inside_loaders.filter_groups, str(run.file(rf.FILTERS)), run.stamp(rf.FILTERS),
                             what=rf.FILTERS)
    for n, group in enumerate(groups or []):
        if group.kind == "1d":
            freqs, db = flt.frequency_response(group.kernels, float(features["sample_rate"]))
            fig = inside_charts.kernel_responses(freqs, db, title=f"{group.label}: frequency responses")
        else:
            shown = min(len(group.kernels), MAX_KERNELS)
            fig = inside_charts.kernel_images(group.kernels, max_kernels=MAX_KERNELS, title=group.label + (
                f" (the first {shown} shown)" if shown < len(group.kernels) else ""))
        widgets.chart(fig, key=f"inside_filters:{n}")
        st.caption(f"{md(group.label)}. {FILTER_NOTES[group.kind]}")
    if stats is not None and len(stats.of_layer(layer.name)):
        kept = stats.of_layer(layer.name)
        spectrum = config.get("spectrum", {})
        widgets.chart(inside_charts.layer_spectra(
            spectrum.get("hz", []), stats.spectra[kept["column"].to_numpy()],
            np.asarray(config.get("corpus_spectrum", []), float), kept["channel"].tolist(),
            kind=spectrum.get("kind", "mel"), selected=channel,
            title=f"{layer.name}: each precomputed channel's response spectrum over the corpus, minus the average"),
            key="inside_layer_spectra")
