"""Cached loaders of run-directory artifacts, read and validated through `pipeline.run.rundir`.

Every loader is keyed by the file's path and its (mtime, size) stamp, so a stage that rewrites
an artifact while the dashboard is open invalidates the cache instead of serving stale data.
Frames and arrays go through ``st.cache_data``; open resources (the memory-mapped taggram
array, the ONNX tagger) through ``st.cache_resource``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from pipeline.errors import PipelineError, RunDirError
from pipeline.features.extract import FeatureConfig
from pipeline.paths import data_root
from pipeline.run import locate
from pipeline.run import rundir as rd
from pipeline.run.manifest import Manifest
from pipeline.run.metrics import Metrics

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
    """A run directory as the dashboard sees it: its validated manifest (or why it cannot be read).

    ``manifest`` is the validated manifest as its JSON object (empty when unreadable) and
    ``record`` the same as a `Manifest`; ``error`` is the one-line reason a run cannot be read and
    ``rebuild`` the command that rebuilds it. ``corpus_root`` is where its audio is looked for
    (re-pointed by ``--corpus-root`` / $MUSICTAG_CORPUS_ROOT), None when the manifest records none.
    ``skipped`` holds the stages that finished without computing anything, with why
    (`pipeline.run.files.SKIPPED`: evaluate on a corpus without annotations): they are done,
    yet `has` is False for them, since their files do not exist.
    """

    path: Path
    manifest: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    error: str | None = None
    done: tuple[str, ...] = ()
    record: Manifest | None = field(default=None, hash=False, compare=False)
    rebuild: str = ""
    corpus_root: Path | None = None
    skipped: tuple[tuple[str, str], ...] = ()  # (stage, reason) pairs

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(s for s in rd.STAGE_FILES if s not in self.done)

    def has(self, stage: str) -> bool:
        """True when ``stage`` is complete and produced its files (a skipped stage did not)."""
        return stage in self.done and self.skip_reason(stage) is None

    def skip_reason(self, stage: str) -> str | None:
        """Why a finished ``stage`` computed nothing, None when it was not skipped."""
        return dict(self.skipped).get(stage)

    @property
    def unannotated(self) -> bool:
        """True when the run's corpus annotates none of the model's tags (no ground truth anywhere).

        Known from the score stage's ``labelled_tags`` (or a skipped evaluation); a run that does
        not record them is taken as annotated, and its predictions' columns decide.
        """
        entry = self.record.stage(rd.SCORE_STAGE) if self.record is not None else None
        labelled = entry.info.get("labelled_tags") if entry is not None else None
        return labelled == [] or self.skip_reason("evaluate") is not None

    def file(self, name: str) -> Path:
        return self.path / name

    def stamp(self, name: str) -> Stamp:
        return stamp(self.path / name)

    def missing_files(self, stage: str) -> list[str]:
        """Files of ``stage`` that are not on disk (the manifest's list, else the contract's)."""
        entry = self.record.stage(stage) if self.record else None
        files = entry.files if entry else rd.STAGE_FILES.get(stage, ())
        return [f for f in files if not (self.path / f).exists()]

    @property
    def corpus_name(self) -> str:
        return self.record.corpus.name if self.record is not None and self.record.corpus is not None else ""

    def corpus_missing(self) -> bool:
        """True when the manifest names a corpus folder that is not there (moved, or another machine's)."""
        return self.corpus_root is not None and not self.corpus_root.is_dir()

    def status(self) -> str:
        """A short status for the run picker: 'complete', 'missing embed', 'unreadable' ..."""
        if self.error:
            return "unreadable"
        if not self.missing:
            return "complete, no annotations" if self.unannotated else "complete"
        return "missing " + ", ".join(self.missing)


def _reason(exc: Exception, run_path: Path) -> str:
    """A `RunDirError`'s message with the run folder's path shortened to the run's name."""
    return str(exc).replace(str(run_path), run_path.name)


def run_info(path: str | Path, corpus_override: str | None = None) -> RunInfo:
    """Read and validate a run directory's manifest; note which stages are complete (cheap; not cached).

    A run that cannot be read (unreadable JSON, the wrong shape, another schema version) comes
    back with ``error`` set and the command that rebuilds it: it is listed, never raised.
    """
    path = Path(path)
    run = rd.RunDir(path)
    try:
        record = run.read_manifest()
    except RunDirError as exc:
        return RunInfo(path, {}, _reason(exc, path), (), None, rd.rebuild_command("train", path))
    done = tuple(s for s in rd.STAGE_FILES
                 if (entry := record.stage(s)) is not None and all((path / f).exists() for f in entry.files))
    root = None
    if record.corpus is not None:
        try:
            root = locate.corpus_root(record.corpus.name, record.corpus.root, corpus_override)
        except PipelineError as exc:  # a malformed override names itself
            log.warning("%s", exc)
    skipped = tuple((s, entry.skipped) for s in done if (entry := record.stage(s)) is not None and entry.skipped)
    return RunInfo(path, record.to_dict(), None, done, record, rd.rebuild_command("train", path, root), root, skipped)


def list_runs(root: Path, corpus_override: str | None = None) -> list[RunInfo]:
    """Every run directory under ``root`` (with a manifest), sorted by name; unreadable ones included."""
    return [run_info(r.path, corpus_override) for r in rd.list_runs(root)]


def frame_rate(manifest: dict[str, Any] | Manifest) -> float | None:
    """Taggram frames per second (the score stage's ``taggram.fps``), None when not recorded."""
    if not isinstance(manifest, Manifest):
        try:
            manifest = Manifest.from_dict(manifest)
        except RunDirError:
            return None
    return manifest.taggram_fps()


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
    truth : np.ndarray [shape=(n, k), dtype=uint8] or None when the run has no annotations at all;
        0 in the columns of tags the corpus does not annotate (see ``labelled``)
    labelled : np.ndarray [shape=(k,), dtype=bool] the tags that have a ``true:<tag>`` column (a
        corpus scored with another corpus's model may annotate only some of the model's tags)
    splits : the splits present, in train / valid / test order
    audio_root : the corpus folder that ``audio_path`` is relative to (None: not known)
    """

    clips: pd.DataFrame
    tags: list[str]
    probs: np.ndarray
    truth: np.ndarray | None
    labelled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    splits: list[str] = field(default_factory=list)
    _rows: dict[str, int] = field(default_factory=dict, repr=False)
    _split_rows: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    audio_root: Path | None = None
    corpus_name: str = ""

    def audio_file(self, row: int) -> Path:
        """The audio file of ``row``, resolved under the corpus root; a `RunDirError` says why there is none.

        A run folder is untrusted: a path leaving the corpus root (absolute elsewhere, ``..``, a
        symlink out) or a file that is not audio by its extension is refused, never read.
        """
        stored = str(self.clips["audio_path"].iat[row])
        if self.audio_root is None:
            raise RunDirError("the run records no corpus folder, so its audio cannot be located")
        if not self.audio_root.is_dir():
            raise RunDirError(f"the corpus folder `{self.audio_root}` is missing; "
                              f"{locate.repoint_hint(self.corpus_name or 'NAME')}")
        path = locate.confined_audio_path(stored, self.audio_root)
        if path.suffix.lower() not in AUDIO_MIME:
            raise RunDirError(f"audio path {stored!r} is not an audio file ({', '.join(AUDIO_MIME)}); refused")
        return path

    @property
    def labelled_tags(self) -> list[str]:
        """The tags the corpus annotates (all of them on a run's own corpus)."""
        return [t for t, ok in zip(self.tags, self.labelled) if ok]

    @property
    def partly_annotated(self) -> bool:
        """True when the corpus annotates some but not all of the model's tags."""
        return self.truth is not None and not bool(self.labelled.all())

    def annotated_only(self) -> Predictions:
        """The same clips restricted to the tags with ground truth (itself when every tag has it).

        Metrics, errors and outcomes mean nothing for a tag the corpus does not annotate, so the
        pages that show them work on this view. Needs annotations (``truth`` not None).
        """
        assert self.truth is not None, "annotated_only needs annotations"
        if self.labelled.all():
            return self
        cols = np.flatnonzero(self.labelled)
        probs, truth = self.probs[:, cols], self.truth[:, cols]
        for array in (probs, truth):
            array.flags.writeable = False
        return dataclasses.replace(self, tags=[self.tags[j] for j in cols], probs=probs, truth=truth,
                                   labelled=np.ones(len(cols), dtype=bool))

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


def _read_table(path: Path) -> pd.DataFrame:
    """A declared Parquet / CSV artifact, validated by the contract (`RunDirError` otherwise)."""
    return rd.read_table(path)


# A resource, not data: st.cache_data would unpickle a fresh copy of these arrays and frames
# on every script run (~80 ms at MagnaTagATune scale, a quarter of the 300 ms budget), so
# every session shares one read-only copy instead (the arrays are flagged non-writeable).
@st.cache_resource(show_spinner="Loading predictions…", max_entries=8)
def _predictions(path: str, file_stamp: Stamp) -> Predictions:
    frame = _read_table(Path(path))
    tags = [c[len(rd.PROB_PREFIX):] for c in frame.columns if c.startswith(rd.PROB_PREFIX)]
    probs = frame[[rd.prob_column(t) for t in tags]].to_numpy(dtype=np.float32)
    labelled = np.array([rd.true_column(t) in frame for t in tags], dtype=bool)
    truth = None
    if labelled.any():  # tags the corpus does not annotate get 0s, and `labelled` says which they are
        truth = np.zeros(probs.shape, dtype=np.uint8)
        for j in np.flatnonzero(labelled):
            truth[:, j] = frame[rd.true_column(tags[j])].to_numpy(dtype=np.uint8)
    tag_cols = {c for c in frame.columns if c.startswith((rd.PROB_PREFIX, rd.TRUE_PREFIX))}
    clips = frame[[c for c in frame.columns if c not in tag_cols]].copy()
    clips["file"] = [os.path.basename(p) for p in clips["audio_path"].tolist()]  # 50x faster than Path
    clips = clips.reset_index(drop=True)
    for array in (probs, truth, labelled):
        if array is not None:
            array.flags.writeable = False
    split = clips["split"].to_numpy()
    present = list(dict.fromkeys(split.tolist()))
    order = ["train", "valid", "test"]
    splits = [s for s in order if s in present] + sorted(set(present) - set(order))
    split_rows = {s: np.flatnonzero(split == s) for s in splits}
    rows = {c: i for i, c in enumerate(clips["clip_id"].tolist())}
    return Predictions(clips, tags, probs, truth, labelled, splits, rows, split_rows)


def load_predictions(path: str, file_stamp: Stamp, audio_root: str | Path | None = None,
                     corpus_name: str = "") -> Predictions:
    """Predictions of a run (``path`` is predictions.parquet; ``file_stamp`` keys the cache).

    ``audio_root`` is the corpus folder the audio paths are relative to (`RunInfo.corpus_root`)
    and ``corpus_name`` its name; the arrays are shared with every other caller.
    """
    preds = _predictions(path, file_stamp)
    return dataclasses.replace(preds, audio_root=Path(audio_root) if audio_root is not None else None,
                               corpus_name=corpus_name)


@st.cache_data(show_spinner=False, max_entries=16)
def load_per_tag(path: str, file_stamp: Stamp) -> pd.DataFrame:
    """per_tag.csv, with its ``threshold`` (tuned on the validation split) also as ``tuned_threshold``."""
    frame = _read_table(Path(path))
    frame["tuned_threshold"] = frame["threshold"].astype(np.float64)
    return frame


@st.cache_data(show_spinner=False, max_entries=16)
def load_history(path: str, file_stamp: Stamp) -> pd.DataFrame:
    """history.csv (one row per epoch)."""
    return _read_table(Path(path))


@st.cache_data(show_spinner=False, max_entries=16)
def load_json(path: str, file_stamp: Stamp) -> dict[str, Any]:
    """A declared JSON artifact, validated (metrics.json against `Metrics`, the others their keys)."""
    if Path(path).name == rd.METRICS:
        return rd.read_metrics(path).to_dict()
    return rd.read_json_file(path)


# Shared read-only (see load_predictions): per-clip tables are large; callers never modify them.
@st.cache_resource(show_spinner=False, max_entries=16)
def load_table(path: str, file_stamp: Stamp, required: tuple[str, ...] = ()) -> pd.DataFrame:
    """A declared Parquet artifact, validated against its columns (shared: do not modify it).

    ``required`` is kept for the pages' calls; the contract's declaration is what is checked.
    """
    return _read_table(Path(path))


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
    frame = _read_table(Path(path))

    def groups(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=np.int64)
        return starts, np.r_[starts[1:], len(ids)].astype(np.int64)

    ids = frame["clip_id"].to_numpy(dtype=object)
    starts, stops = groups(ids)
    ranked = bool(np.all(np.diff(frame["rank"].to_numpy())[np.setdiff1d(
        np.arange(max(len(ids) - 1, 0)), starts[1:] - 1)] > 0))
    if len(set(ids[starts].tolist())) != len(starts) or not ranked:  # the writer did not group by clip
        frame = frame.sort_values(["clip_id", "rank"], kind="stable")
        ids = frame["clip_id"].to_numpy(dtype=object)
        starts, stops = groups(ids)
    neighbor_ids = frame["neighbor_id"].to_numpy(dtype=object)
    sims = frame["similarity"].to_numpy(np.float32)
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
    array = rd.read_array(array_path, mmap=True)
    index = _read_table(Path(index_path))
    spans = dict(zip(index["clip_id"],
                     zip(index["offset"].astype(int).tolist(), index["n_frames"].astype(int).tolist())))
    return array, spans


def clip_taggram(run: RunInfo, clip_id: str) -> np.ndarray | None:
    """One clip's taggram [n_frames, n_tags] as float32, None when the run has none for it."""
    if not (run.file(rd.TAGGRAMS).is_file() and run.file(rd.TAGGRAMS_INDEX).is_file()):
        return None  # a score stage may skip taggrams (a baseline has none; the manifest says why)
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


def published_models() -> dict[str, tuple[Path, str]]:
    """The converted published models installed and intact (`pipeline.pretrained.build.installed_model`,
    checked at most once a minute): name -> (folder, dataset), the default first."""
    from pipeline.paths import pretrained_root

    return _published_models(str(pretrained_root()))


@st.cache_data(show_spinner=False, ttl=60)
def _published_models(root: str) -> dict[str, tuple[Path, str]]:
    from pipeline.pretrained.build import installed_model
    from pipeline.pretrained.catalog import MODELS

    folders = {name: installed_model(name, Path(root)) for name in MODELS}
    return {name: (folder, MODELS[name].dataset) for name, folder in folders.items() if folder is not None}


# ---------------------------------------------------------------------------------------------
# Headline metrics (the metrics.json schema is `pipeline.run.metrics.Metrics`)
# ---------------------------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=16)
def load_metrics(path: str, file_stamp: Stamp) -> Metrics:
    """metrics.json as `Metrics` (validated)."""
    return rd.read_metrics(path)


def headline_table(metrics: Metrics | dict[str, Any] | None) -> pd.DataFrame:
    """Headline ROC-AUC / PR-AUC (macro, micro, weighted) with 95% CI bounds.

    ``metrics`` is a `Metrics`, its dict form (metrics.json, or the manifest's ``metrics``, both
    validated on load) or None / {} for a run without evaluation (every figure NaN).

    Returns
    -------
    pd.DataFrame columns metric, average, value, low, high (NaN where absent)
    """
    if metrics is not None and not isinstance(metrics, Metrics):
        metrics = Metrics.from_dict(metrics) if metrics else None
    if metrics is None:
        metrics = Metrics(split="", headline={}, ci95={})
    return pd.DataFrame(metrics.headline_rows(), columns=["metric", "average", "value", "low", "high"])


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
    preds = preds.annotated_only()  # tags without ground truth have no AUC (they are left out, not NaN)
    rows = preds.rows(split)
    table = auc_per_tag(preds.truth[rows], preds.probs[rows])
    table.index = pd.Index(preds.tags, name="tag")
    return table


@st.cache_data(show_spinner=False, max_entries=32)
def annotation_cooccurrence(path: str, file_stamp: Stamp, split: str) -> np.ndarray:
    """P(column tag | row tag) of the annotations of one split [k, k] (the annotated tags, `annotated_only`)."""
    from dashboard.analysis import cooccurrence

    preds = load_predictions(path, file_stamp).annotated_only()
    return cooccurrence(preds.truth[preds.rows(split)])


def warm(run: RunInfo) -> None:
    """Load a run's large shared artifacts (first load), so page switches and selections stay quick.

    Errors are left for the page that needs the artifact to report.
    """
    jobs = []
    if run.has(rd.SCORE_STAGE):
        jobs.append((_predictions, (str(run.file(rd.PREDICTIONS)), run.stamp(rd.PREDICTIONS))))
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
    if run.has(rd.SCORE_STAGE):
        # Per-tag AUCs of every split but the evaluated one (per_tag.csv has those): a few hundred
        # ms at MagnaTagATune scale, better spent in the first load than when a user picks a split.
        evaluated = None
        if run.has("evaluate"):
            with contextlib.suppress(RunDirError):
                evaluated = load_metrics(str(run.file(rd.METRICS)), run.stamp(rd.METRICS)).split
        try:
            preds = load_predictions(str(run.file(rd.PREDICTIONS)), run.stamp(rd.PREDICTIONS))
            if preds.truth is not None:
                for split in [*preds.splits, "all"]:
                    if split != evaluated:
                        split_aucs(str(run.file(rd.PREDICTIONS)), run.stamp(rd.PREDICTIONS), split)
        except (RunDirError, OSError, ValueError, KeyError) as exc:
            log.info("not precomputing per-tag AUCs of %s: %s", run.path, exc)
