"""Cached loaders of the "Inside the model" page: the run's inspector, a clip's maps, a channel heard.

Live maps come from ``inspect.onnx`` through ONNX Runtime (`pipeline.inspect.maps.OnnxInspector`:
the module explains why not maps stored per clip), so the dashboard still never imports torch.
A clip's maps at every inspectable layer are computed once when the clip is opened (one pass of
its chunks, tens of milliseconds for the demo's model) and shared read-only; choosing another
layer or channel of the clip is then a slice and a figure. A channel's resynthesis is cached
per (clip, layer, channel). The corpus statistics (`pipeline.inspect.precompute`) are small
arrays loaded once per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.loaders import RunInfo, Stamp, load_json, stamp
from pipeline.errors import RunDirError
from pipeline.inspect import filters as flt
from pipeline.inspect import resynth
from pipeline.inspect.maps import LayerInfo, layers_of
from pipeline.run import files as rf
from pipeline.run import rundir as rd


def inspect_config(run: RunInfo) -> dict[str, Any] | None:
    """The run's inspect.json (validated), None when the score stage wrote none (an older run, a baseline)."""
    if rf.INSPECT not in run.manifest.get("stages", {}).get(rd.SCORE_STAGE, {}).get("files", []):
        return None
    return load_json(str(run.file(rf.INSPECT)), run.stamp(rf.INSPECT))


@st.cache_resource(show_spinner="Loading the network's layers…", max_entries=4)
def inspector(run_path: str, onnx_stamp: Stamp, config_stamp: Stamp) -> Any:
    """`pipeline.inspect.maps.OnnxInspector` of a run (a resource shared by every session)."""
    from pipeline.inspect.maps import OnnxInspector

    config = load_json(str(Path(run_path) / rf.INSPECT), config_stamp)
    # one thread: a clip's pass is small, and several sessions share the server's cores
    return OnnxInspector(run_path, config, threads=1)


@dataclass(frozen=True)
class ClipMaps:
    """One clip at every inspectable layer (read-only arrays).

    audio : the clip at the model's sample rate; maps : {layer: (C, T') or (C, F', T')};
    means : {layer: (C,)} each channel's mean activation on the clip (sorts the channels)
    """

    audio: np.ndarray
    sample_rate: int
    n_frames: int
    maps: dict[str, np.ndarray]
    means: dict[str, np.ndarray]


@st.cache_resource(show_spinner="Running the clip through the network…", max_entries=16)
def clip_maps(run_path: str, onnx_stamp: Stamp, config_stamp: Stamp, audio_path: str,
              audio_stamp: Stamp) -> ClipMaps:
    """A clip's maps at every inspectable layer, from its audio file (decoded, featurised, run through ONNX)."""
    from pipeline.features.audio import load_audio
    from pipeline.features.extract import compute_features

    net = inspector(run_path, onnx_stamp, config_stamp)
    y = load_audio(Path(audio_path), net.features.sample_rate)
    features = compute_features(y, net.features)
    maps = net.maps(features)
    means = {name: m.reshape(m.shape[0], -1).mean(axis=1) for name, m in maps.items()}
    for array in (y, *maps.values(), *means.values()):
        array.flags.writeable = False
    return ClipMaps(y, net.features.sample_rate, len(features), maps, means)


def maps_of(run: RunInfo, audio_path: Path) -> ClipMaps:
    """`clip_maps` of a run's clip (keys: the run's files' and the audio file's stamps)."""
    return clip_maps(str(run.path), run.stamp(rf.INSPECT_ONNX), run.stamp(rf.INSPECT), str(audio_path),
                     stamp(audio_path))


@st.cache_data(show_spinner="Resynthesising…", max_entries=64)
def channel_audio(run_path: str, onnx_stamp: Stamp, config_stamp: Stamp, audio_path: str, audio_stamp: Stamp,
                  layer_name: str, channel: int, waveform: bool) -> tuple[bytes, float | None]:
    """The clip heard through one channel, as WAV bytes at the original's loudness, and the gain applied (dB).

    Spectrogram models: the clip's STFT masked by the channel's map, original phase. The waveform
    model: the map itself as a signal (`pipeline.inspect.resynth`).
    """
    clip = clip_maps(run_path, onnx_stamp, config_stamp, audio_path, audio_stamp)
    net = inspector(run_path, onnx_stamp, config_stamp)
    layer: LayerInfo = net.layer(layer_name)
    channel_map = clip.maps[layer_name][channel]
    if waveform:
        out = resynth.map_signal(channel_map, len(clip.audio))
    else:
        f = net.features
        rows = (resynth.bin_rows_for(layer.freq_rows, sample_rate=f.sample_rate, n_fft=f.n_fft, n_mels=f.n_mels,
                                     fmin=f.fmin, fmax=f.fmax) if layer.has_freq else None)
        mask = resynth.mask_grid(channel_map, 1 + len(clip.audio) // f.hop_length,
                                 steps_per_frame=layer.chunk_steps / net.chunk_frames, bin_rows=rows)
        out = resynth.resynthesize(clip.audio, mask, n_fft=f.n_fft, hop=f.hop_length)
    scaled, gain = resynth.match_loudness(out, clip.audio)
    return resynth.wav_bytes(scaled, clip.sample_rate), gain


@dataclass(frozen=True)
class ChannelStats:
    """The precomputed channels of a run: index (layer, channel, column, spread, mean), clip means
    [n_clips, K] (rows of predictions.parquet), tag correlations [K, n_tags], spectra [K, n_spec]."""

    index: pd.DataFrame
    activations: np.ndarray
    correlations: np.ndarray
    spectra: np.ndarray

    def column(self, layer: str, channel: int) -> int | None:
        """The column of (layer, channel), None when that channel was not precomputed."""
        hit = self.index[(self.index["layer"] == layer) & (self.index["channel"] == channel)]
        return int(hit["column"].iat[0]) if len(hit) else None

    def of_layer(self, layer: str) -> pd.DataFrame:
        return self.index[self.index["layer"] == layer]


@st.cache_resource(show_spinner=False, max_entries=8)
def channel_stats(run_path: str, stamps: tuple[Stamp, ...]) -> ChannelStats:
    """channel_index.parquet and the three arrays, validated by the run contract and against each other."""
    run = rd.RunDir(run_path)
    index = run.read_table(rf.CHANNEL_INDEX)
    acts = run.read_array(rf.CHANNEL_ACTIVATIONS)
    corr = run.read_array(rf.CHANNEL_TAGS)
    spectra = run.read_array(rf.CHANNEL_SPECTRA)
    k = len(index)
    if acts.shape[1] != k or corr.shape[0] != k or spectra.shape[0] != k:
        raise RunDirError(f"{run.path}: {rf.CHANNEL_INDEX} lists {k} channels, but the arrays have "
                          f"{acts.shape[1]}, {corr.shape[0]} and {spectra.shape[0]}")
    if k and not index["column"].between(0, k - 1).all():
        raise RunDirError(f"{run.path / rf.CHANNEL_INDEX}: column values should lie in [0, {k - 1}]")
    for array in (acts, corr, spectra):
        array.flags.writeable = False
    return ChannelStats(index, acts, corr, spectra)


def stats_of(run: RunInfo) -> ChannelStats:
    names = (rf.CHANNEL_INDEX, rf.CHANNEL_ACTIVATIONS, rf.CHANNEL_TAGS, rf.CHANNEL_SPECTRA)
    return channel_stats(str(run.path), tuple(run.stamp(n) for n in names))


@st.cache_resource(show_spinner=False, max_entries=8)
def filter_groups(path: str, file_stamp: Stamp) -> list[flt.FilterGroup]:
    """filters.npz as `pipeline.inspect.filters.FilterGroup` s (never unpickled; shapes checked)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable filters ({exc})") from exc
    try:
        return flt.groups(arrays)
    except ValueError as exc:
        raise RunDirError(f"{path}: {exc}") from exc


def layers(config: dict[str, Any]) -> list[LayerInfo]:
    """The inspectable layers recorded in inspect.json."""
    return layers_of(config)
