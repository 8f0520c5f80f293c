"""Cached loaders of run-directory artifacts (the contract is `pipeline.run.rundir`).

Every loader is keyed by the file's path and its (mtime, size) stamp, so a stage that rewrites
an artifact while the dashboard is open invalidates the cache instead of serving stale data.
Frames and arrays go through ``st.cache_data``; open resources (the memory-mapped taggram
array, the ONNX tagger) through ``st.cache_resource``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from pipeline.errors import RunDirError
from pipeline.features.extract import FeatureConfig
from pipeline.paths import data_root
from pipeline.run import rundir as rd

log = logging.getLogger(__name__)

DEFAULT_RUNS = data_root() / "runs"
RUNS_ENV = "AUTOTAG_RUNS"  # environment variable naming the runs folder (used by tests)

AUDIO_MIME: dict[str, str] = {
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
}

# Feature defaults when a manifest does not say (the pipeline's log-mel defaults).
FEATURE_DEFAULTS = {k: getattr(FeatureConfig, k) for k in ("sample_rate", "n_fft", "hop_length", "n_mels")}

Stamp = tuple[int, int] | None


def stamp(path: Path) -> Stamp:
    """(mtime_ns, size) of a file, None when it does not exist."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


# ---------------------------------------------------------------------------------------------
# Runs and their stages
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    """A run directory as the dashboard sees it: manifest (or the error reading it) and complete stages."""

    path: Path
    manifest: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    error: str | None = None
    done: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(s for s in rd.STAGE_FILES if s not in self.done)

    def has(self, stage: str) -> bool:
        return stage in self.done

    def file(self, name: str) -> Path:
        return self.path / name

    def stamp(self, name: str) -> Stamp:
        return stamp(self.path / name)

    def missing_files(self, stage: str) -> list[str]:
        """Files of ``stage`` that are not on disk (the manifest's list, else the contract's)."""
        entry = self.manifest.get("stages", {}).get(stage) or {}
        files = entry.get("files") or rd.STAGE_FILES.get(stage, ())
        return [f for f in files if not (self.path / f).exists()]

    def status(self) -> str:
        """A short status for the run picker: 'complete', 'no embed', 'unreadable' ..."""
        if self.error:
            return "unreadable"
        if not self.missing:
            return "complete"
        return "missing " + ", ".join(self.missing)


def run_info(path: str | Path) -> RunInfo:
    """Read a run directory's manifest and which stages are complete (cheap; not cached)."""
    run = rd.RunDir(path)
    try:
        manifest = run.manifest()
    except RunDirError as exc:
        return RunInfo(Path(path), {}, str(exc), ())
    done = tuple(s for s in rd.STAGE_FILES if run.stage_done(s))
    return RunInfo(Path(path), manifest, None, done)


def list_runs(root: Path) -> list[RunInfo]:
    """Every run directory under ``root`` (with a manifest), sorted by name."""
    return [run_info(r.path) for r in rd.list_runs(root)]


def frame_rate(manifest: dict[str, Any]) -> float | None:
    """Taggram frames per second from the manifest (score stage entry), None when not recorded."""
    predict = manifest.get("stages", {}).get("score") or {}
    places = [predict, predict.get("taggram") or {}, manifest.get("taggram") or {}]
    for place in places:
        if not isinstance(place, dict):
            continue
        for key in ("frame_rate", "taggram_frame_rate", "frames_per_second", "taggram_fps", "fps"):
            value = place.get(key)
            if isinstance(value, int | float) and value > 0:
                return float(value)
        for key in ("frame_hop_seconds", "taggram_hop_seconds", "hop_seconds", "frame_seconds", "seconds_per_frame"):
            value = place.get(key)
            if isinstance(value, int | float) and value > 0:
                return 1.0 / float(value)
    return None


def feature_params(manifest: dict[str, Any]) -> dict[str, Any]:
    """Sample rate, n_fft, hop length, mel bins and band edges of the run's features (defaults filled in)."""
    features = manifest.get("features") or {}
    params: dict[str, Any] = dict(FEATURE_DEFAULTS)
    for key in params:
        value = features.get(key)
        if isinstance(value, int | float) and value > 0:
            params[key] = int(value)
    fmin, fmax = features.get("fmin"), features.get("fmax")
    params["fmin"] = float(fmin) if isinstance(fmin, int | float) and fmin >= 0 else 0.0
    params["fmax"] = float(fmax) if isinstance(fmax, int | float) and fmax > 0 else None
    return params


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Predictions:
    """predictions.parquet split into a clip table and two [n_clips, n_tags] matrices (read-only).

    Attributes
    ----------
    clips : pd.DataFrame  clip_id (str), split, audio_path, file and any other non-tag columns
    tags : list[str] [len k]
    probs : np.ndarray [shape=(n, k), dtype=float32]
    truth : np.ndarray [shape=(n, k), dtype=uint8] or None when the run has no annotations
    splits : the splits present, in train / valid / test order
    """

    clips: pd.DataFrame
    tags: list[str]
    probs: np.ndarray
    truth: np.ndarray | None
    splits: list[str] = field(default_factory=list)
    _rows: dict[str, int] = field(default_factory=dict, repr=False)
    _split_rows: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def row(self, clip_id: str) -> int | None:
        """Row of ``clip_id``, None when the run has no such clip."""
        return self._rows.get(clip_id)

    def rows_of(self, clip_ids: Sequence[str]) -> np.ndarray:
        """Rows of many clips at once; -1 where the run has no such clip."""
        get = self._rows.get
        return np.fromiter((get(c, -1) for c in clip_ids), dtype=np.int64, count=len(clip_ids))

    def rows(self, split: str | None) -> np.ndarray:
        """Row indices of ``split`` (all rows for None / "all")."""
        if split in (None, "all"):
            return np.arange(len(self.clips))
        return self._split_rows.get(split, np.array([], dtype=np.int64))


def _read_table(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """A Parquet or CSV artifact (by suffix); a missing, unreadable or incomplete one is a `RunDirError`."""
    if not path.is_file():
        raise RunDirError(f"{path} does not exist")
    csv = path.suffix.lower() == ".csv"
    try:
        frame = pd.read_csv(path) if csv else pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable {'CSV' if csv else 'Parquet'} file ({exc})") from exc
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise RunDirError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


# A resource, not data: st.cache_data would unpickle a fresh copy of these arrays and frames
# on every script run (~80 ms at MagnaTagATune scale, a quarter of the 300 ms budget), so
# every session shares one read-only copy instead (the arrays are flagged non-writeable).
@st.cache_resource(show_spinner="Loading predictions…", max_entries=8)
def load_predictions(path: str, file_stamp: Stamp) -> Predictions:
    """Predictions of a run (``path`` is predictions.parquet; ``file_stamp`` keys the cache)."""
    frame = _read_table(Path(path), ("clip_id",))
    tags = [c[len(rd.PROB_PREFIX):] for c in frame.columns if c.startswith(rd.PROB_PREFIX)]
    if not tags:
        raise RunDirError(f"{path}: no '{rd.PROB_PREFIX}<tag>' columns")
    probs = frame[[rd.prob_column(t) for t in tags]].to_numpy(dtype=np.float32)
    true_cols = [rd.true_column(t) for t in tags]
    truth = frame[true_cols].to_numpy(dtype=np.uint8) if all(c in frame for c in true_cols) else None
    tag_cols = {c for c in frame.columns if c.startswith((rd.PROB_PREFIX, rd.TRUE_PREFIX))}
    clips = frame[[c for c in frame.columns if c not in tag_cols]].copy()
    clips["clip_id"] = clips["clip_id"].astype(str)
    if "split" not in clips:
        clips["split"] = "none"
    clips["split"] = clips["split"].astype(str)
    if "audio_path" not in clips:
        clips["audio_path"] = ""
    clips["audio_path"] = clips["audio_path"].fillna("").astype(str)
    clips["file"] = [os.path.basename(p) for p in clips["audio_path"].tolist()]  # 50x faster than Path
    clips = clips.reset_index(drop=True)
    for array in (probs, truth):
        if array is not None:
            array.flags.writeable = False
    split = clips["split"].to_numpy()
    present = list(dict.fromkeys(split.tolist()))
    order = ["train", "valid", "test"]
    splits = [s for s in order if s in present] + sorted(set(present) - set(order))
    split_rows = {s: np.flatnonzero(split == s) for s in splits}
    rows = {c: i for i, c in enumerate(clips["clip_id"].tolist())}
    return Predictions(clips, tags, probs, truth, splits, rows, split_rows)


@st.cache_data(show_spinner=False, max_entries=16)
def load_per_tag(path: str, file_stamp: Stamp) -> pd.DataFrame:
    """per_tag.csv with a ``tuned_threshold`` column (from whichever name the file uses)."""
    frame = _read_table(Path(path), ("tag",))
    frame["tag"] = frame["tag"].astype(str)
    for name in ("threshold_tuned", "tuned_threshold", "threshold"):
        if name in frame:
            frame["tuned_threshold"] = pd.to_numeric(frame[name], errors="coerce")
            break
    else:
        frame["tuned_threshold"] = np.nan
    return frame


@st.cache_data(show_spinner=False, max_entries=16)
def load_history(path: str, file_stamp: Stamp) -> pd.DataFrame:
    return _read_table(Path(path), ("epoch",))


@st.cache_data(show_spinner=False, max_entries=16)
def load_json(path: str, file_stamp: Stamp) -> Any:
    from pipeline.io import read_json

    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable JSON ({exc})") from exc


# Shared read-only (see load_predictions): per-clip tables are large; callers never modify them.
@st.cache_resource(show_spinner=False, max_entries=16)
def load_table(path: str, file_stamp: Stamp, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """A Parquet artifact with clip-id-like columns as strings (shared: do not modify it)."""
    frame = _read_table(Path(path), required)
    for col in ("clip_id", "neighbor_id"):
        if col in frame:
            frame[col] = frame[col].astype(str)
    return frame


@dataclass(frozen=True)
class Neighbors:
    """clip_neighbors.parquet indexed by clip: ``of(clip_id)`` lists (neighbor_id, similarity) by rank."""

    neighbor_ids: np.ndarray
    similarities: np.ndarray
    spans: dict[str, tuple[int, int]]

    def of(self, clip_id: str, k: int | None = None) -> list[tuple[str, float]]:
        start, stop = self.spans.get(clip_id, (0, 0))
        stop = stop if k is None else min(stop, start + k)
        return list(zip(self.neighbor_ids[start:stop].tolist(), self.similarities[start:stop].tolist()))


@st.cache_resource(show_spinner=False, max_entries=8)
def neighbor_index(path: str, file_stamp: Stamp) -> Neighbors:
    """clip_neighbors.parquet grouped by clip (rows of one clip made contiguous, by rank)."""
    frame = _read_table(Path(path), ("clip_id", "neighbor_id"))
    frame["clip_id"] = frame["clip_id"].astype(str)

    def groups(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=np.int64)
        return starts, np.r_[starts[1:], len(ids)].astype(np.int64)

    ids = frame["clip_id"].to_numpy(dtype=object)
    starts, stops = groups(ids)
    ranked = "rank" not in frame or bool(np.all(np.diff(frame["rank"].to_numpy())[np.setdiff1d(
        np.arange(max(len(ids) - 1, 0)), starts[1:] - 1)] > 0))
    if len(set(ids[starts].tolist())) != len(starts) or not ranked:  # the writer did not group by clip
        frame = frame.sort_values(["clip_id", "rank"] if "rank" in frame else ["clip_id"], kind="stable")
        ids = frame["clip_id"].to_numpy(dtype=object)
        starts, stops = groups(ids)
    neighbor_ids = frame["neighbor_id"].astype(str).to_numpy(dtype=object)
    sims = (frame["similarity"].to_numpy(np.float32) if "similarity" in frame
            else np.full(len(frame), np.nan, np.float32))
    return Neighbors(neighbor_ids, sims, dict(zip(ids[starts].tolist(), zip(starts.tolist(), stops.tolist()))))


# ---------------------------------------------------------------------------------------------
# Taggrams (memory-mapped), audio, mel-spectrograms
# ---------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=4)
def taggram_store(array_path: str, index_path: str, array_stamp: Stamp,
                  index_stamp: Stamp) -> tuple[np.ndarray, dict[str, tuple[int, int]]]:
    """The memory-mapped taggram array [total_frames, n_tags] and {clip_id: (offset, n_frames)}.

    A resource, not data: the memory map stays open and is shared, never copied per session.
    """
    try:
        array = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{array_path}: unreadable taggram array ({exc})") from exc
    index = _read_table(Path(index_path), ("clip_id", "offset", "n_frames"))
    spans = dict(zip(index["clip_id"].astype(str),
                     zip(index["offset"].astype(int).tolist(), index["n_frames"].astype(int).tolist())))
    return array, spans


def clip_taggram(run: RunInfo, clip_id: str) -> np.ndarray | None:
    """One clip's taggram [n_frames, n_tags] as float32, None when the run has none for it."""
    if not (run.file(rd.TAGGRAMS).is_file() and run.file(rd.TAGGRAMS_INDEX).is_file()):
        return None  # a score stage may skip taggrams (the manifest says why)
    array, spans = taggram_store(str(run.file(rd.TAGGRAMS)), str(run.file(rd.TAGGRAMS_INDEX)),
                                 run.stamp(rd.TAGGRAMS), run.stamp(rd.TAGGRAMS_INDEX))
    span = spans.get(clip_id)
    if span is None:
        return None
    offset, n = span
    return np.asarray(array[offset:offset + n], dtype=np.float32)


def audio_mime(path: str | Path) -> str:
    return AUDIO_MIME.get(Path(path).suffix.lower(), "audio/mpeg")


@st.cache_data(show_spinner=False, max_entries=128)
def audio_bytes(path: str, file_stamp: Stamp) -> bytes:
    """The original file's bytes (played as they are, never decoded and rescaled)."""
    return Path(path).read_bytes()


@st.cache_data(show_spinner="Computing the mel-spectrogram…", max_entries=32)
def mel_spectrogram(path: str, file_stamp: Stamp, sample_rate: int, n_fft: int, hop_length: int,
                    n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> tuple[np.ndarray, float, float]:
    """Log-mel spectrogram of an audio file, as the pipeline computes it for the model.

    Uses `pipeline.features.audio.load_audio` and `pipeline.features.extract.compute_features` (log10(1 + 10^4
    mel power), no per-clip reference, so loud and quiet clips look loud and quiet), or librosa
    (in dB relative to the clip's peak) where the pipeline's modules are not available.

    Returns
    -------
    mel : np.ndarray [shape=(n_mels, t), dtype=float32]
    frames_per_second : float
    duration : float seconds
    """
    try:
        from pipeline.features.audio import load_audio
        from pipeline.features.extract import FeatureConfig, compute_features
    except ImportError:
        import librosa

        y, _ = librosa.load(path, sr=sample_rate, mono=True)
        mel = librosa.feature.melspectrogram(y=y, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                             fmin=fmin, fmax=fmax)
        mel = librosa.power_to_db(mel, ref=np.max, top_db=80.0).astype(np.float32)
    else:
        y = load_audio(Path(path), sample_rate)
        config = FeatureConfig(kind="logmel", sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                               n_mels=n_mels, fmin=fmin, fmax=fmax)
        mel = compute_features(y, config).T.astype(np.float32)
    return mel, sample_rate / hop_length, len(y) / sample_rate


# ---------------------------------------------------------------------------------------------
# The ONNX tagger (a resource)
# ---------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the tagger…", max_entries=4)
def onnx_tagger(run_path: str, model_stamp: Stamp) -> Any:
    """`pipeline.scoring.tagger.OnnxTagger` of a run (ImportError when the module is not available)."""
    from pipeline.scoring.tagger import OnnxTagger

    return OnnxTagger(run_path)


# ---------------------------------------------------------------------------------------------
# Headline metrics, whatever the exact nesting of metrics.json
# ---------------------------------------------------------------------------------------------
METRIC_NAMES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC"}
AVERAGES = ("macro", "micro", "weighted")
_CI_WORDS = {"ci", "ci95", "ci_95", "interval", "confidence", "bounds"}
_LOW_WORDS = {"lo", "low", "lower", "ci_low", "ci_lo", "ci_lower", "lower_bound"}
_HIGH_WORDS = {"hi", "high", "upper", "ci_high", "ci_hi", "ci_upper", "upper_bound"}


def _leaves(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _leaves(value, (*path, str(key).lower()))
    else:
        yield path, obj


def _metric_of(words: str) -> str | None:
    if "roc" in words:
        return "roc_auc"
    if re.search(r"(^|_)pr(_|$)|prauc|pr_auc|average_precision|(^|_)ap(_|$)|(^|_)map(_|$)", words):
        return "pr_auc"
    return None


def _number(value: Any) -> float:
    """A float, NaN for None or anything not numeric (metrics.json writes NaN as null)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def headline_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Headline ROC-AUC / PR-AUC (macro, micro, weighted) with 95% CI bounds from metrics.json.

    Accepts nested ({"roc_auc": {"macro": {"value", "ci": [lo, hi]}}}), flat ("roc_auc_macro",
    "roc_auc_macro_ci") and per-split ({"test": {...}}) layouts; prefers the test split.

    Returns
    -------
    pd.DataFrame columns metric, average, value, low, high (NaN where absent)
    """
    leaves = [(p, v) for p, v in _leaves(metrics) if p]
    if any("test" in p for p, _ in leaves):
        leaves = [(p, v) for p, v in leaves if "test" in p or not ({"train", "valid", "validation"} & set(p))]
    rows = []
    for metric in METRIC_NAMES:
        for average in AVERAGES:
            value = low = high = np.nan
            for path, leaf in leaves:
                words = "_".join(path).replace("-", "_")
                if _metric_of(words) != metric or average not in words:
                    continue
                last = path[-1]
                tokens = set(re.split(r"[_\W]+", words))
                if isinstance(leaf, list | tuple) and len(leaf) == 2 and (tokens & _CI_WORDS or "ci" in last):
                    low, high = _number(leaf[0]), _number(leaf[1])
                elif isinstance(leaf, int | float) and not isinstance(leaf, bool):
                    if last in _LOW_WORDS or last.endswith(("_low", "_lo", "_lower")):
                        low = float(leaf)
                    elif last in _HIGH_WORDS or last.endswith(("_high", "_hi", "_upper")):
                        high = float(leaf)
                    elif not (tokens & {"std", "n", "count", "support", "seconds", "bootstrap", "samples"}):
                        value = float(leaf)
            rows.append({"metric": METRIC_NAMES[metric], "average": average, "value": value,
                         "low": low, "high": high})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Derived figures worth caching (threshold-free, so they depend only on the run and the split)
# ---------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=32)
def split_aucs(path: str, file_stamp: Stamp, split: str) -> pd.DataFrame:
    """Support, ROC-AUC and PR-AUC per tag on one split of a run's predictions (index: tag)."""
    from dashboard.analysis import auc_per_tag

    preds = load_predictions(path, file_stamp)
    if preds.truth is None:
        raise RunDirError(f"{path}: no '{rd.TRUE_PREFIX}<tag>' columns, so no metrics")
    rows = preds.rows(split)
    table = auc_per_tag(preds.truth[rows], preds.probs[rows])
    table.index = pd.Index(preds.tags, name="tag")
    return table


@st.cache_data(show_spinner=False, max_entries=32)
def annotation_cooccurrence(path: str, file_stamp: Stamp, split: str) -> np.ndarray:
    """P(column tag | row tag) of the annotations of one split [k, k]."""
    from dashboard.analysis import cooccurrence

    preds = load_predictions(path, file_stamp)
    return cooccurrence(preds.truth[preds.rows(split)])


def warm(run: RunInfo) -> None:
    """Load a run's large shared artifacts (first load), so page switches and selections stay quick.

    Errors are left for the page that needs the artifact to report.
    """
    jobs = []
    if run.has("score"):
        jobs.append((load_predictions, (str(run.file(rd.PREDICTIONS)), run.stamp(rd.PREDICTIONS))))
        if run.file(rd.TAGGRAMS).is_file() and run.file(rd.TAGGRAMS_INDEX).is_file():
            jobs.append((taggram_store, (str(run.file(rd.TAGGRAMS)), str(run.file(rd.TAGGRAMS_INDEX)),
                                         run.stamp(rd.TAGGRAMS), run.stamp(rd.TAGGRAMS_INDEX))))
    if run.has("embed"):
        jobs.append((neighbor_index, (str(run.file(rd.CLIP_NEIGHBORS)), run.stamp(rd.CLIP_NEIGHBORS))))
        jobs.append((load_table, (str(run.file(rd.CLIP_PROJECTIONS)), run.stamp(rd.CLIP_PROJECTIONS), ("clip_id",))))
    for fn, args in jobs:
        try:
            fn(*args)
        except (RunDirError, OSError, ValueError, KeyError) as exc:
            log.info("not preloading %s: %s", args[0], exc)
    if run.has("score"):
        # Per-tag AUCs of every split but the evaluated one (per_tag.csv has those): a few hundred
        # ms at MagnaTagATune scale, better spent in the first load than when a user picks a split.
        evaluated = None
        if run.has("evaluate"):
            try:
                metrics = load_json(str(run.file(rd.METRICS)), run.stamp(rd.METRICS))
                evaluated = metrics.get("split", "test") if isinstance(metrics, dict) else "test"
            except RunDirError:
                pass
        try:
            preds = load_predictions(str(run.file(rd.PREDICTIONS)), run.stamp(rd.PREDICTIONS))
            if preds.truth is not None:
                for split in [*preds.splits, "all"]:
                    if split != evaluated:
                        split_aucs(str(run.file(rd.PREDICTIONS)), run.stamp(rd.PREDICTIONS), split)
        except (RunDirError, OSError, ValueError, KeyError) as exc:
            log.info("not precomputing per-tag AUCs of %s: %s", run.path, exc)
