"""The run directory: every stage writes through `RunDir`, every reader reads through it.

A run directory (``data/runs/<name>/``) is filled by stages (`STAGE_FILES`, in the order data
flows: train, score, evaluate, embed), each writing its files atomically and then recording
itself in ``manifest.json``. A file counts only once the manifest lists its stage as done, so
a partial run is detected, never half-loaded. Files are declared in `pipeline.run.files`
(names, stages, columns and dtypes), the manifest in `pipeline.run.manifest`, metrics.json in
`pipeline.run.metrics`; writers validate before writing and readers after reading, and a file
that does not match raises a `RunDirError` naming the file, what was expected and what was met.
This module is light (no torch; pandas only when a table is read or written) so the dashboard
and the fast tagging path can import it.

Files (schema version `SCHEMA_VERSION`)
--------------------------------------
manifest.json          `Manifest`: schema_version, name, corpus (name, root, source, label config,
                       split sizes), tags, model (name, kwargs, input), features, training config,
                       headline metrics, stages {stage: {finished, files, **info}}
checkpoint.pt, last.pt best-on-validation and last state (state_dict + config), loadable
                       with ``torch.load(weights_only=True)``
history.csv            epoch, train_loss, valid_roc_auc, valid_pr_auc, lr, seconds
predictions.parquet    clip_id, split, audio_path (relative to the corpus root), ``prob:<tag>``
                       and ``true:<tag>`` per tag
taggrams.npy           float16 [total_frames, n_tags], clips stacked along time
taggrams_index.parquet clip_id, offset, n_frames (rows of taggrams.npy per clip)
clip_embeddings.npy    float32 [n_clips, D], rows aligned with predictions.parquet (penultimate
                       layer, mean over a clip's chunks; a baseline run: tag logits)
output_weights.npy     float32 [n_tags, D], the output layer's weight rows (network runs; the
                       embed stage's acoustic tag view)
model.onnx, tagger.json the exported network and what tagging needs besides it (pipeline.scoring.tagger)
metrics.json           `Metrics`: headline ROC-AUC / PR-AUC (macro, micro, weighted) with 95% CIs
per_tag.csv            tag, support, roc_auc, pr_auc, precision, recall, f1, threshold (tuned on the
                       validation split), precision_tuned, recall_tuned, f1_tuned
clip_embeddings.parquet clip_id, split, umap_x, umap_y, tsne_x, tsne_y (tsne_* NaN when skipped)
clip_neighbors.parquet clip_id, rank (1 = nearest), neighbor_id, similarity (cosine)
tag_embeddings.npz     one array per available view [n_tags_in_view, D]; ``<view>:tags`` names
tag_projections.parquet view, tag, tsne_x, tsne_y, umap_x, umap_y, cluster, frequency
tag_views.json         {"views": {view: {available, source, missing, ...}}, "agreement": ..., "seed"}
label_issues.parquet   clip_id, split, tag, annotated, probability, score, rank, kind, flagged
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import RunDirError
from pipeline.io import (
    atomic_path,
    json_default,
    read_json,
    remove_stale_temps,
    save_npy,
    save_npz,
    write_csv,
    write_json,
    write_parquet,
)
from pipeline.run import locate
from pipeline.run.files import (  # noqa: F401  (re-exported: the names every stage imports from here)
    ARRAYS,
    BASELINE_FILE,
    CHECKPOINT,
    CLIP_EMBEDDINGS,
    CLIP_NEIGHBORS,
    CLIP_PROJECTIONS,
    HISTORY,
    JSONS,
    LABEL_ISSUES,
    LAST_CHECKPOINT,
    MANIFEST,
    METRICS,
    ONNX_MODEL,
    OUTPUT_WEIGHTS,
    PER_TAG,
    PREDICTIONS,
    PROB_PREFIX,
    SCHEMA_VERSION,
    SCORE_STAGE,
    STAGE_COMMANDS,
    STAGE_FILES,
    TABLES,
    TAG_EMBEDDINGS,
    TAG_PROJECTIONS,
    TAG_VIEWS,
    TAGGER,
    TAGGRAMS,
    TAGGRAMS_INDEX,
    TENSORBOARD,
    TRUE_PREFIX,
    prob_column,
    rebuild_command,
    true_column,
    validate_array,
    validate_frame,
    validate_json,
)
from pipeline.run.manifest import Manifest, StageState
from pipeline.run.metrics import Metrics

if TYPE_CHECKING:
    import pandas as pd


# ---------------------------------------------------------------------------------------------
# Path-level readers (the dashboard's cached loaders key on paths)
# ---------------------------------------------------------------------------------------------
def read_table(path: str | Path, name: str | None = None) -> pd.DataFrame:
    """A declared Parquet / CSV file (``name`` defaults to the file's), validated against its spec."""
    import pandas as pd

    path = Path(path)
    spec = TABLES[name or path.name]
    if not path.is_file():
        raise RunDirError(f"{path} does not exist")
    try:
        if spec.csv:
            # Declared string columns stay strings (a tag called "NA" or "1990s" is a name, not a value).
            text = [c.name for c in spec.fixed if c.kind == "str"]
            frame = pd.read_csv(path, dtype={c: str for c in text}, keep_default_na=False,
                                na_values={c.name: ["", "nan", "NaN"] for c in spec.fixed if c.kind != "str"})
        else:
            frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable {'CSV' if spec.csv else 'Parquet'} file ({exc})") from exc
    validate_frame(spec, frame, where=path)
    return frame


def read_array(path: str | Path, name: str | None = None, *, mmap: bool = False) -> np.ndarray:
    """A declared ``.npy`` array (memory-mapped when ``mmap``), validated; never unpickled."""
    path = Path(path)
    spec = ARRAYS[name or path.name]
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable array ({exc})") from exc
    validate_array(spec, array, where=path)
    return array


def read_json_file(path: str | Path, name: str | None = None) -> dict[str, Any]:
    """A declared JSON file (tag_views.json, tagger.json), validated for its top-level keys."""
    path = Path(path)
    spec = JSONS[name or path.name]
    obj = _load_json(path)
    validate_json(spec, obj, where=path)
    return obj


def read_metrics(path: str | Path) -> Metrics:
    """metrics.json as `Metrics` (validated)."""
    path = Path(path)
    return Metrics.from_dict(_load_json(path), where=path)


def read_manifest(path: str | Path) -> Manifest:
    """The manifest of the run folder ``path`` as `Manifest` (validated)."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise RunDirError(f"{Path(path)} is not a run directory (no {MANIFEST})")
    return Manifest.from_dict(_load_json(file, what="manifest"), where=file)


def _load_json(path: Path, what: str = "JSON") -> Any:
    if not path.is_file():
        raise RunDirError(f"{path} does not exist")
    try:
        return read_json(path)
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        raise RunDirError(f"{path}: unreadable {what}: {type(exc).__name__}: {exc}") from exc


class RunDir:
    """A run directory: paths of its files, its manifest, which stages are complete, typed I/O."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return (self.path / MANIFEST).is_file()

    # -- the manifest -------------------------------------------------------------------------
    def read_manifest(self) -> Manifest:
        """The validated manifest; a missing, unreadable, invalid or other-schema one is a `RunDirError`."""
        return read_manifest(self.path)

    def manifest(self) -> dict[str, Any]:
        """The validated manifest as its JSON object (what stages index by key)."""
        return self.read_manifest().to_dict()

    def _raw_manifest(self) -> dict[str, Any]:
        """What is on disk, for a writer to merge into (a run being rebuilt may hold an old manifest)."""
        path = self.path / MANIFEST
        if not path.is_file():
            return {}
        obj = _load_json(path, what="manifest")
        return obj if isinstance(obj, dict) and obj.get("schema_version") == SCHEMA_VERSION else {}

    def _write_manifest(self, obj: dict[str, Any]) -> Manifest:
        obj = {**obj, "schema_version": SCHEMA_VERSION}
        obj.setdefault("name", self.name)
        # Validate exactly what will be on disk (tuples, paths and numpy values as JSON holds them).
        manifest = Manifest.from_dict(json.loads(json.dumps(obj, default=json_default)),
                                      where=self.path / MANIFEST)
        write_json(self.path / MANIFEST, manifest.to_dict())
        return manifest

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` (top-level keys of `Manifest`) into the manifest, validate it, write it atomically.

        A `Metrics` or `Manifest` sub-record may be passed as itself; a value of the wrong shape is
        a `RunDirError` and nothing is written.
        """
        fields = {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in fields.items()}
        return self._write_manifest({**self._raw_manifest(), **fields}).to_dict()

    def mark_stage(self, stage: str, files: tuple[str, ...] | list[str] | None = None, **info: Any) -> None:
        """Record ``stage`` as finished (call after its files are in place)."""
        files = STAGE_FILES[stage] if files is None else tuple(files)
        missing = [f for f in files if not (self.path / f).exists()]
        assert not missing, f"stage {stage} marked done but {missing} are missing"
        manifest = self._raw_manifest()
        stages = dict(manifest.get("stages") or {})
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        stages[stage] = StageState(now, list(files), info).to_dict()
        self._write_manifest({**manifest, "stages": stages})

    def clear_stage(self, stage: str) -> None:
        """Forget ``stage`` before rewriting its files: a run killed half-way reads as incomplete."""
        manifest = self._raw_manifest()
        stages = dict(manifest.get("stages") or {})
        if stages.pop(stage, None) is not None:
            self._write_manifest({**manifest, "stages": stages})

    def stage_done(self, stage: str) -> bool:
        """True when the manifest lists ``stage`` as finished and all its files exist."""
        try:
            entry = self.read_manifest().stage(stage)
        except RunDirError:
            return False
        return entry is not None and all((self.path / f).exists() for f in entry.files)

    def missing_stages(self) -> list[str]:
        """Stages (in order) not complete in this run directory."""
        return [s for s in STAGE_FILES if not self.stage_done(s)]

    def corpus_root(self, override: str | None = None) -> Path | None:
        """The run's corpus folder (re-pointed by ``override`` / $MUSICTAG_CORPUS_ROOT); None when unrecorded."""
        corpus = self.read_manifest().corpus
        return locate.corpus_root(corpus.name, corpus.root, override) if corpus else None

    def rebuild_command(self, stage: str) -> str:
        """The command that rebuilds ``stage`` of this run (with its corpus folder when recorded)."""
        try:
            corpus = self.corpus_root()
        except RunDirError:
            corpus = None
        return rebuild_command(stage, self.path, corpus)

    def require(self, stage: str) -> None:
        """Raise a clear `RunDirError` unless ``stage`` is complete; the message says which command builds it."""
        self.read_manifest()
        if not self.stage_done(stage):
            raise RunDirError(f"{self.path}: stage {stage!r} is missing or incomplete; "
                              f"run '{self.rebuild_command(stage)}'")

    def start_writing(self) -> None:
        """Call where a stage starts writing: removes the temp files that killed writers left here."""
        if self.path.is_dir():
            remove_stale_temps(self.path)

    # -- typed writers: validate, then write atomically --------------------------------------
    def write_table(self, name: str, frame: pd.DataFrame, **csv_kwargs: Any) -> None:
        """Write declared table ``name`` after checking its columns and dtypes.

        predictions.parquet's ``audio_path`` is stored relative to the corpus root the manifest
        records (absolute paths under it are made relative; any path outside it is refused).
        """
        spec = TABLES[name]
        if name == PREDICTIONS and "audio_path" in frame:
            root = self.corpus_root()
            if root is None:
                raise RunDirError(f"{self.path / MANIFEST}: no corpus recorded, so {name}'s audio paths "
                                  "cannot be stored relative to it (write the manifest's corpus first)")
            frame = frame.assign(audio_path=locate.relative_audio_paths(frame["audio_path"].astype(str), root))
        validate_frame(spec, frame, where=self.path / name)
        if spec.csv:
            write_csv(self.path / name, frame, **csv_kwargs)
        else:
            write_parquet(self.path / name, frame)

    def write_array(self, name: str, array: np.ndarray) -> None:
        """Write declared array ``name`` (.npy) after checking its dtype and rank."""
        validate_array(ARRAYS[name], array, where=self.path / name)
        save_npy(self.path / name, array)

    def write_arrays(self, name: str, **arrays: np.ndarray) -> None:
        """Write an ``.npz`` of named arrays (tag_embeddings.npz); object arrays are refused (they would need pickle)."""
        for key, array in arrays.items():
            if not isinstance(array, np.ndarray) or array.dtype.hasobject:
                raise RunDirError(f"{self.path / name}: array {key!r} should be numeric or text, found "
                                  f"{getattr(array, 'dtype', type(array).__name__)}")
        save_npz(self.path / name, **arrays)

    def write_metrics(self, metrics: Metrics | dict[str, Any]) -> Metrics:
        """Write metrics.json (a `Metrics`, or its dict form, validated first)."""
        record = metrics if isinstance(metrics, Metrics) else Metrics.from_dict(
            json.loads(json.dumps(metrics, default=json_default)), where=self.path / METRICS)
        write_json(self.path / METRICS, record.to_dict())
        return record

    def write_json(self, name: str, obj: dict[str, Any]) -> None:
        """Write a declared JSON file (tag_views.json, tagger.json) after checking its top-level keys."""
        validate_json(JSONS[name], obj, where=self.path / name)
        write_json(self.path / name, obj)

    def open_array(self, name: str, shape: tuple[int, ...]) -> Any:
        """A context manager yielding a writable memory map for declared array ``name``, moved into place on exit.

        For arrays too large to hold in memory (MagnaTagATune's taggrams): fill it, then leave the block.
        """
        return _ArrayWriter(self.path / name, ARRAYS[name].dtype, shape)

    # -- typed readers ------------------------------------------------------------------------
    def read_table(self, name: str) -> pd.DataFrame:
        return read_table(self.path / name, name)

    def read_array(self, name: str, *, mmap: bool = False) -> np.ndarray:
        return read_array(self.path / name, name, mmap=mmap)

    def read_metrics(self) -> Metrics:
        return read_metrics(self.path / METRICS)

    def read_json(self, name: str) -> dict[str, Any]:
        return read_json_file(self.path / name, name)

    def audio_file(self, stored: str, override: str | None = None) -> Path:
        """The audio file a stored ``audio_path`` names, confined under the corpus root (`RunDirError` otherwise)."""
        root = self.corpus_root(override)
        if root is None:
            raise RunDirError(f"{self.path / MANIFEST}: no corpus recorded, so no audio file can be located")
        return locate.confined_audio_path(stored, root)


class _ArrayWriter:
    """`RunDir.open_array`: a ``.npy`` memory map at a temporary name, moved into place on success."""

    def __init__(self, path: Path, dtype: str, shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.shape = path, dtype, shape

    def __enter__(self) -> np.ndarray:
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(self.dtype), shape=self.shape)
        return self._array

    def __exit__(self, *exc: Any) -> bool | None:
        self._array.flush()
        del self._array
        return self._ctx.__exit__(*exc)


def list_runs(root: str | Path) -> list[RunDir]:
    """Run directories directly under ``root`` (those with a manifest), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((RunDir(p) for p in root.iterdir() if (p / MANIFEST).is_file()), key=lambda r: r.name)
