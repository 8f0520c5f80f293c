"""Every file of a run directory, declared once: its name, the stage that writes it, its shape.

Tables declare their columns and the kind of each (`Column`); arrays their dtype and rank.
`validate_frame` and `validate_array` check a value against its declaration and raise a
`RunDirError` naming the file, what was expected and what was met. Readers and writers
(`pipeline.run.rundir.RunDir`) call them, so a file that passed a writer passes every reader.
This module is light (numpy; pandas only when a table is checked) so the dashboard and the
fast tagging path (which never imports pandas) can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import RunDirError

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 2  # 2: a "score" stage replaces "predict"; audio paths relative to the corpus root

MANIFEST = "manifest.json"
CHECKPOINT = "checkpoint.pt"
LAST_CHECKPOINT = "last.pt"
HISTORY = "history.csv"
METRICS = "metrics.json"
PER_TAG = "per_tag.csv"
PREDICTIONS = "predictions.parquet"
TAGGRAMS = "taggrams.npy"
TAGGRAMS_INDEX = "taggrams_index.parquet"
CLIP_EMBEDDINGS = "clip_embeddings.npy"
OUTPUT_WEIGHTS = "output_weights.npy"
CLIP_PROJECTIONS = "clip_embeddings.parquet"
CLIP_NEIGHBORS = "clip_neighbors.parquet"
TAG_EMBEDDINGS = "tag_embeddings.npz"
TAG_PROJECTIONS = "tag_projections.parquet"
TAG_VIEWS = "tag_views.json"
LABEL_ISSUES = "label_issues.parquet"
ONNX_MODEL = "model.onnx"
TAGGER = "tagger.json"
TENSORBOARD = "tensorboard"  # folder of the optional TensorBoard log of training
BASELINE_FILE = "baseline.npz"  # a classical baseline's fitted arrays + JSON (never a pickle), beside checkpoint.pt
# Inside the model (pipeline.inspect): written by the score stage for a network run
INSPECT = "inspect.json"
INSPECT_ONNX = "inspect.onnx"
CHANNEL_INDEX = "channel_index.parquet"
CHANNEL_ACTIVATIONS = "channel_activations.npy"
CHANNEL_TAGS = "channel_tags.npy"
CHANNEL_SPECTRA = "channel_spectra.npy"
FILTERS = "filters.npz"
INSIDE_FILES: tuple[str, ...] = (INSPECT, INSPECT_ONNX, CHANNEL_INDEX, CHANNEL_ACTIVATIONS, CHANNEL_TAGS,
                                 CHANNEL_SPECTRA, FILTERS)

PROB_PREFIX = "prob:"  # predictions.parquet column of a tag's probability
TRUE_PREFIX = "true:"  # predictions.parquet column of a tag's ground truth (0/1)

# The stages that fill a run, in the order data flows, and the files each one writes. One
# scoring pass writes the clip probabilities, taggrams, embeddings and the exported model;
# evaluate and embed only read what it wrote.
STAGE_FILES: dict[str, tuple[str, ...]] = {
    "train": (CHECKPOINT, LAST_CHECKPOINT, HISTORY),
    "score": (PREDICTIONS, TAGGRAMS, TAGGRAMS_INDEX, CLIP_EMBEDDINGS, OUTPUT_WEIGHTS, ONNX_MODEL, TAGGER,
              *INSIDE_FILES),
    "evaluate": (METRICS, PER_TAG),
    "embed": (CLIP_PROJECTIONS, CLIP_NEIGHBORS, TAG_EMBEDDINGS, TAG_PROJECTIONS, TAG_VIEWS, LABEL_ISSUES),
}
SCORE_STAGE = "score"  # the stage whose files every page reads (one name to change if it is renamed)
# A stage that had nothing to compute records why under this key of its manifest entry and lists
# no files: evaluate on a corpus that annotates none of the model's tags (no ground truth, so no
# metrics.json / per_tag.csv rather than NaN figures); the embed stage's label-issue part records
# it in its own entry (``issues.skipped``) and writes an empty label_issues.parquet.
SKIPPED = "skipped"

# The command that (re)builds each stage of the run at {run}; {corpus} is the corpus folder.
STAGE_COMMANDS: dict[str, str] = {
    "train": "python -m pipeline train --corpus {corpus} --out {run} --force",
    "score": "python -m pipeline score {run}",
    "evaluate": "python -m pipeline evaluate {run}",
    "embed": "python -m pipeline embed {run}",
}


# The record of the verdicts a run's labels were corrected with (`pipeline.review.corrections`): the
# manifest's ``corrections`` (``train --corrections``) and the evaluate stage's entry and metrics.json
# (``evaluate --corrections``), so a reader can tell which labels a model learnt and a metric is against.
CORRECTIONS_KEYS: dict[str, type] = {
    "file": str,  # the verdicts CSV, resolved
    "sha256": str,  # of that file
    "rows": int,  # verdicts in it
    "applied": int,  # consensus labels whose clip and tag the run has
    "changed": int,  # of those, labels that differ from the annotation
    "unknown_clips": int,  # clips the verdicts name that the run lacks
    "unknown_tags": int,  # tags the verdicts name that the run lacks
    "disagreements": int,  # pairs the reviewers disagree on (not applied)
    "reviewers": list,  # their names
}


def validate_corrections(obj: Any, *, where: str | Path, key: str = "corrections") -> dict[str, Any]:
    """``obj`` when it is a corrections record (`CORRECTIONS_KEYS`), else a `RunDirError` naming the key."""
    if not isinstance(obj, dict):
        raise RunDirError(f"{where}: {key} should be an object, found {type(obj).__name__}")
    for name, kind in CORRECTIONS_KEYS.items():
        value = obj.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RunDirError(f"{where}: {key}.{name} should be {kind.__name__}, found {value!r}")
    if not all(isinstance(r, str) for r in obj["reviewers"]):
        raise RunDirError(f"{where}: {key}.reviewers should be a list of names, found {obj['reviewers']!r}")
    return obj


def prob_column(tag: str) -> str:
    """predictions.parquet column of ``tag``'s probability."""
    return f"{PROB_PREFIX}{tag}"


def true_column(tag: str) -> str:
    """predictions.parquet column of ``tag``'s annotation (0/1)."""
    return f"{TRUE_PREFIX}{tag}"


def rebuild_command(stage: str, run: str | Path, corpus: str | Path | None = None) -> str:
    """The shell command that rebuilds ``stage`` of the run at ``run`` (``train`` rebuilds everything)."""
    template = STAGE_COMMANDS.get(stage, STAGE_COMMANDS["train"])
    return template.format(run=run, corpus=corpus if corpus is not None else "CORPUS")


# ---------------------------------------------------------------------------------------------
# Declarations
# ---------------------------------------------------------------------------------------------
KINDS = ("str", "int", "float", "bool", "prob", "binary")  # prob: float in [0, 1]; binary: integer 0/1


@dataclass(frozen=True)
class Column:
    """One column of a table: its name (or ``prefix`` for a column per tag) and kind (`KINDS`)."""

    name: str
    kind: str
    prefix: bool = False  # ``name`` is a prefix: one column per tag (``prob:<tag>``)
    optional: bool = False  # may be absent (all the prefix columns at once, for a prefix)

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind


@dataclass(frozen=True)
class TableSpec:
    """A Parquet or CSV file: its name, the stage that writes it and its columns in order."""

    name: str
    stage: str
    columns: tuple[Column, ...]
    doc: str = ""

    @property
    def fixed(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if not c.prefix)

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names of the fixed columns (prefix columns depend on the tags)."""
        return tuple(c.name for c in self.fixed)

    @property
    def csv(self) -> bool:
        return self.name.endswith(".csv")


@dataclass(frozen=True)
class ArraySpec:
    """A ``.npy`` array: its name, stage, dtype and number of dimensions."""

    name: str
    stage: str
    dtype: str
    ndim: int
    doc: str = ""


@dataclass(frozen=True)
class JsonSpec:
    """A JSON file: its name, stage and the keys its top-level object must hold."""

    name: str
    stage: str
    required: tuple[str, ...] = field(default=())
    doc: str = ""


def _cols(*pairs: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(n, k) for n, k in pairs)


PREDICTIONS_SPEC = TableSpec(PREDICTIONS, "score", (
    *_cols(("clip_id", "str"), ("split", "str"), ("audio_path", "str")),
    Column(PROB_PREFIX, "prob", prefix=True),
    Column(TRUE_PREFIX, "binary", prefix=True, optional=True),
), "one row per scored clip; audio_path relative to the corpus root; true:<tag> absent for unannotated audio")
PER_TAG_SPEC = TableSpec(PER_TAG, "evaluate", (
    *_cols(("tag", "str"), ("support", "int"), ("roc_auc", "float"), ("pr_auc", "float"), ("precision", "float"),
           ("recall", "float"), ("f1", "float"), ("threshold", "float"), ("precision_tuned", "float"),
           ("recall_tuned", "float"), ("f1_tuned", "float")),
), "one row per tag; precision / recall / f1 at 0.5, *_tuned at ``threshold`` (tuned on the validation split)")
HISTORY_SPEC = TableSpec(HISTORY, "train", _cols(
    ("epoch", "int"), ("train_loss", "float"), ("valid_roc_auc", "float"), ("valid_pr_auc", "float"),
    ("lr", "float"), ("seconds", "float")), "one row per epoch")
TAGGRAMS_INDEX_SPEC = TableSpec(TAGGRAMS_INDEX, "score", _cols(
    ("clip_id", "str"), ("offset", "int"), ("n_frames", "int")), "rows of taggrams.npy per clip")
CLIP_PROJECTIONS_SPEC = TableSpec(CLIP_PROJECTIONS, "embed", _cols(
    ("clip_id", "str"), ("split", "str"), ("umap_x", "float"), ("umap_y", "float"), ("tsne_x", "float"),
    ("tsne_y", "float")), "same rows as clip_embeddings.npy; tsne_* NaN when t-SNE was skipped")
CLIP_NEIGHBORS_SPEC = TableSpec(CLIP_NEIGHBORS, "embed", _cols(
    ("clip_id", "str"), ("rank", "int"), ("neighbor_id", "str"), ("similarity", "float")),
    "k nearest clips (cosine) of each clip, rank 1 the nearest, the clip itself excluded")
TAG_PROJECTIONS_SPEC = TableSpec(TAG_PROJECTIONS, "embed", _cols(
    ("view", "str"), ("tag", "str"), ("tsne_x", "float"), ("tsne_y", "float"), ("umap_x", "float"),
    ("umap_y", "float"), ("cluster", "int"), ("frequency", "int")), "one row per tag of each available view")
LABEL_ISSUES_SPEC = TableSpec(LABEL_ISSUES, "embed", _cols(
    ("clip_id", "str"), ("split", "str"), ("tag", "str"), ("annotated", "binary"), ("probability", "prob"),
    ("score", "prob"), ("rank", "int"), ("kind", "str"), ("flagged", "bool")),
    "likely label errors, rank 1 the likeliest; kind 'missing' (annotated 0) or 'wrong' (annotated 1)")
CHANNEL_INDEX_SPEC = TableSpec(CHANNEL_INDEX, "score", _cols(
    ("layer", "str"), ("channel", "int"), ("column", "int"), ("spread", "float"), ("mean", "float")),
    "the channels precomputed per layer: column of channel_activations.npy (row of channel_tags.npy and "
    "channel_spectra.npy); spread and mean of their clip means over the corpus")

TAGGRAMS_SPEC = ArraySpec(TAGGRAMS, "score", "float16", 2, "[total_frames, n_tags], clips stacked along time")
CLIP_EMBEDDINGS_SPEC = ArraySpec(CLIP_EMBEDDINGS, "score", "float32", 2,
                                 "[n_clips, D] penultimate layer, rows aligned with predictions.parquet")
OUTPUT_WEIGHTS_SPEC = ArraySpec(OUTPUT_WEIGHTS, "score", "float32", 2,
                                "[n_tags, D] output-layer weight rows (the acoustic tag view)")
CHANNEL_ACTIVATIONS_SPEC = ArraySpec(CHANNEL_ACTIVATIONS, "score", "float32", 2,
                                     "[n_clips, n_channels] each precomputed channel's mean activation per clip, "
                                     "rows aligned with predictions.parquet")
CHANNEL_TAGS_SPEC = ArraySpec(CHANNEL_TAGS, "score", "float32", 2,
                              "[n_channels, n_tags] Pearson correlation of a channel's clip means with each tag "
                              "(NaN where undefined)")
CHANNEL_SPECTRA_SPEC = ArraySpec(CHANNEL_SPECTRA, "score", "float32", 2,
                                 "[n_channels, n_bins] the input spectrum weighted by each channel's activation, "
                                 "over the corpus (inspect.json's spectrum axis)")

METRICS_SPEC = JsonSpec(METRICS, "evaluate", ("split", "headline", "ci95"), "see pipeline.run.metrics")
TAG_VIEWS_SPEC = JsonSpec(TAG_VIEWS, "embed", ("views",), "views, agreement, seed")
TAGGER_SPEC = JsonSpec(TAGGER, "score", ("tags", "features"), "see pipeline.scoring.tagger")
INSPECT_SPEC = JsonSpec(INSPECT, "score", ("layers", "chunk_frames", "features", "normalizer", "spectrum"),
                        "see pipeline.inspect.maps")

TABLES: dict[str, TableSpec] = {s.name: s for s in (
    PREDICTIONS_SPEC, PER_TAG_SPEC, HISTORY_SPEC, TAGGRAMS_INDEX_SPEC, CLIP_PROJECTIONS_SPEC, CLIP_NEIGHBORS_SPEC,
    TAG_PROJECTIONS_SPEC, LABEL_ISSUES_SPEC, CHANNEL_INDEX_SPEC)}
ARRAYS: dict[str, ArraySpec] = {s.name: s for s in (TAGGRAMS_SPEC, CLIP_EMBEDDINGS_SPEC, OUTPUT_WEIGHTS_SPEC,
                                                    CHANNEL_ACTIVATIONS_SPEC, CHANNEL_TAGS_SPEC, CHANNEL_SPECTRA_SPEC)}
JSONS: dict[str, JsonSpec] = {s.name: s for s in (METRICS_SPEC, TAG_VIEWS_SPEC, TAGGER_SPEC, INSPECT_SPEC)}


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def _kind_ok(series: pd.Series, kind: str) -> str | None:
    """None when ``series`` holds values of ``kind``, else a short description of what it holds."""
    import pandas as pd

    dtype = series.dtype
    if len(series) == 0 and pd.api.types.is_object_dtype(dtype):
        return None  # an empty table (no label issues found, say): Parquet keeps no values to type
    if kind == "str":
        # infer_dtype looks at every value (in C): "string" only when all are str (no None, no numbers).
        return None if pd.api.types.infer_dtype(series, skipna=False) == "string" else f"dtype {dtype}"
    if kind == "bool":
        return None if pd.api.types.is_bool_dtype(dtype) else f"dtype {dtype}"
    if kind in ("int", "binary"):
        if not pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            return f"dtype {dtype}"
        if kind == "binary" and len(series) and not series.isin((0, 1)).all():
            return f"values {sorted(set(series.unique().tolist()) - {0, 1})[:3]}"
        return None
    # float and prob: integers are exact floats, so a column of whole numbers passes
    if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return f"dtype {dtype}"
    if kind == "prob":
        values = series.to_numpy(dtype=np.float64)
        bad = values[np.isfinite(values) & ((values < 0) | (values > 1))]
        if bad.size:
            return f"values outside [0, 1] (e.g. {bad[0]:.4g})"
    return None


def validate_frame(spec: TableSpec, frame: pd.DataFrame, *, where: str | Path | None = None) -> None:
    """Raise a `RunDirError` unless ``frame`` has every declared column, each of its declared kind.

    Columns beyond the declaration are allowed (a newer writer may add some); the error names
    the file (``where``, else the spec's name), the column, the kind expected and what was met.
    """
    import pandas as pd

    where = where or spec.name
    if not isinstance(frame, pd.DataFrame):
        raise RunDirError(f"{where}: expected a table, got {type(frame).__name__}")
    for column in spec.columns:
        names = ([c for c in frame.columns if isinstance(c, str) and c.startswith(column.name)]
                 if column.prefix else [column.name] if column.name in frame.columns else [])
        if not names:
            if column.optional:
                continue
            what = f"'{column.name}<tag>' columns" if column.prefix else f"column '{column.name}'"
            raise RunDirError(f"{where}: expected {what} ({column.kind}), found columns "
                              f"{_preview([str(c) for c in frame.columns])}")
        for name in names:
            problem = _kind_ok(frame[name], column.kind)
            if problem is not None:
                raise RunDirError(f"{where}: column '{name}' should be {column.kind}, found {problem}")
    if spec is PREDICTIONS_SPEC:
        _validate_predictions(frame, where)


def _validate_predictions(frame: pd.DataFrame, where: str | Path) -> None:
    if not frame["clip_id"].is_unique:
        dup = frame["clip_id"][frame["clip_id"].duplicated()].iloc[0]
        raise RunDirError(f"{where}: clip_id should be unique, found {dup!r} twice")
    tags = [c[len(PROB_PREFIX):] for c in frame.columns if str(c).startswith(PROB_PREFIX)]
    truth = [c[len(TRUE_PREFIX):] for c in frame.columns if str(c).startswith(TRUE_PREFIX)]
    # A corpus may label only some of the model's tags (a run scored on another corpus), so the
    # true:<tag> columns are the labelled tags, in the order of the prob:<tag> columns.
    labelled = set(truth)
    if truth != [t for t in tags if t in labelled]:
        raise RunDirError(f"{where}: true:<tag> columns should be prob:<tag> tags, in their order "
                          f"{_preview(tags)}, found {_preview(truth)}")


def validate_array(spec: ArraySpec, array: np.ndarray, *, where: str | Path | None = None) -> None:
    """Raise a `RunDirError` unless ``array`` has the declared dtype and number of dimensions."""
    where = where or spec.name
    if not isinstance(array, np.ndarray):
        raise RunDirError(f"{where}: expected an array, got {type(array).__name__}")
    if array.dtype != np.dtype(spec.dtype) or array.ndim != spec.ndim:
        raise RunDirError(f"{where}: expected a {spec.ndim}-D {spec.dtype} array, found a {array.ndim}-D "
                          f"{array.dtype} array")


def validate_json(spec: JsonSpec, obj: Any, *, where: str | Path | None = None) -> None:
    """Raise a `RunDirError` unless ``obj`` is an object holding the declared keys."""
    where = where or spec.name
    if not isinstance(obj, dict):
        raise RunDirError(f"{where}: expected a JSON object, found {type(obj).__name__}")
    missing = [k for k in spec.required if k not in obj]
    if missing:
        raise RunDirError(f"{where}: expected key(s) {', '.join(missing)}, found {_preview(list(obj))}")


def _preview(names: Sequence[str], n: int = 6) -> str:
    shown = ", ".join(names[:n])
    return f"[{shown}{', ...' if len(names) > n else ''}]"


def stage_of(name: str) -> str | None:
    """The stage that writes file ``name`` (None for files outside the contract)."""
    return next((stage for stage, files in STAGE_FILES.items() if name in files), None)
