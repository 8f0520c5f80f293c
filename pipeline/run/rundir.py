"""The run-directory contract: the only thing the dashboard reads.

A run directory (``data/runs/<name>/``) is filled by stages, each writing its files
atomically and then recording itself in ``manifest.json``. A file counts only once the
manifest lists its stage as done, so a partial run is detected, never half-loaded. This
module is light (no torch) so the dashboard can import it.

Files (schema version `SCHEMA_VERSION`)
--------------------------------------
manifest.json          schema_version, name, corpus, tags, split sizes, model, features,
                       resolved config, headline metrics, stages {stage: {finished, files}}
checkpoint.pt, last.pt best-on-validation and last state (state_dict + config), loadable
                       with ``torch.load(weights_only=True)``
history.csv            epoch, train_loss, valid_roc_auc, valid_pr_auc, lr, seconds
metrics.json           headline ROC-AUC / PR-AUC (macro, micro, weighted) with 95% CIs
per_tag.csv            tag, support, roc_auc, pr_auc, precision, recall, f1, threshold, ...
predictions.parquet    clip_id, split, audio_path (relative to the corpus root), ``prob:<tag>`` per
                       tag and ``true:<tag>`` per tag the corpus labels (score stage info
                       ``labelled_tags``; every tag on the run's own corpus)
taggrams.npy           float16 [total_frames, n_tags], clips stacked along time
taggrams_index.parquet clip_id, offset, n_frames (rows of taggrams.npy per clip)
clip_embeddings.npy    float32 [n_clips, D], rows aligned with predictions.parquet (score stage:
                       penultimate layer, mean over a clip's chunks; a baseline run: tag logits)
output_weights.npy     float32 [n_tags, D], the output layer's weight rows (network runs; the
                       embed stage's acoustic tag view)
clip_embeddings.parquet clip_id, split, umap_x, umap_y, tsne_x, tsne_y (same rows as
                       predictions.parquet; tsne_* are NaN when t-SNE was skipped: --no-tsne or
                       more clips than --tsne-max-clips; stage info ``clips.tsne`` says which)
clip_neighbors.parquet clip_id, rank (1 = nearest), neighbor_id, similarity (cosine, k nearest,
                       the clip itself excluded); query helpers in pipeline.analysis.embed
tag_embeddings.npz     one array per available view [n_tags_in_view, D]; ``<view>:tags`` names.
                       Views (pipeline.analysis.tag_views.VIEWS): cooccurrence, semantic (only with word
                       vectors), acoustic (network runs only), prediction
tag_projections.parquet view, tag, tsne_x, tsne_y, umap_x, umap_y, cluster, frequency (one row
                       per tag of each available view; frequency = clips annotated with the tag)
tag_views.json         {"views": {view: {available, source, missing [tags], reason (if not
                       available), n_tags, dim, clusters, silhouette, ...}}, "agreement": {k,
                       pairs: [{views: [a, b], n_tags, k, mean, chance, per_tag: {tag: overlap}}],
                       per_tag: {tag: mean overlap}}, "seed", "word_vectors"}; overlaps in [0, 1]
label_issues.parquet   clip_id, split, tag, annotated (0/1), probability, score (in [0, 1],
                       higher = likelier wrong), rank (1 = likeliest), kind ("missing": annotated
                       0 / "wrong": annotated 1), flagged (cleanlab's confident-learning cut);
                       valid and test clips by default (out-of-sample)
model.onnx             the best checkpoint exported for fast CPU tagging (network runs)
tagger.json            what tagging needs besides the network: tags, features, normaliser,
                       chunk length, taggram plan (pipeline.scoring.tagger)
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from pipeline.errors import RunDirError
from pipeline.io import read_json, write_json

SCHEMA_VERSION = 1

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

PROB_PREFIX = "prob:"  # predictions.parquet column of a tag's probability
TRUE_PREFIX = "true:"  # predictions.parquet column of a tag's ground truth (0/1)

# The stages that fill a run, in order, and the files each one writes.
STAGE_FILES: dict[str, tuple[str, ...]] = {
    "train": (CHECKPOINT, LAST_CHECKPOINT, HISTORY),
    # every (model, corpus) is scored once; evaluate and embed read what this stage wrote
    "score": (PREDICTIONS, TAGGRAMS, TAGGRAMS_INDEX, CLIP_EMBEDDINGS, OUTPUT_WEIGHTS, ONNX_MODEL, TAGGER),
    "evaluate": (METRICS, PER_TAG),
    "embed": (CLIP_PROJECTIONS, CLIP_NEIGHBORS, TAG_EMBEDDINGS, TAG_PROJECTIONS, TAG_VIEWS, LABEL_ISSUES),
}



def prob_column(tag: str) -> str:
    return f"{PROB_PREFIX}{tag}"


def true_column(tag: str) -> str:
    return f"{TRUE_PREFIX}{tag}"


class RunDir:
    """A run directory: paths of its files, its manifest, and which stages are complete."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        return (self.path / MANIFEST).is_file()

    def manifest(self) -> dict[str, Any]:
        """The manifest; a missing, unreadable or newer-schema manifest is a `RunDirError`."""
        path = self.path / MANIFEST
        if not path.is_file():
            raise RunDirError(f"{self.path} is not a run directory (no {MANIFEST})")
        try:
            manifest = read_json(path)
        except ValueError as exc:
            raise RunDirError(f"{path}: unreadable manifest: {exc}") from exc
        version = manifest.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RunDirError(f"{path}: schema version {version!r}, this toolkit reads {SCHEMA_VERSION}")
        return manifest

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the manifest (creating it) and write it atomically."""
        path = self.path / MANIFEST
        manifest = read_json(path) if path.is_file() else {"schema_version": SCHEMA_VERSION, "name": self.name}
        manifest.update(fields)
        manifest["schema_version"] = SCHEMA_VERSION
        write_json(path, manifest)
        return manifest

    def mark_stage(self, stage: str, files: tuple[str, ...] | None = None, **info: Any) -> None:
        """Record ``stage`` as finished (call after its files are in place)."""
        files = STAGE_FILES[stage] if files is None else files
        missing = [f for f in files if not (self.path / f).exists()]
        assert not missing, f"stage {stage} marked done but {missing} are missing"
        manifest = read_json(self.path / MANIFEST) if (self.path / MANIFEST).is_file() else {}
        stages = dict(manifest.get("stages", {}))
        stages[stage] = {"finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                         "files": list(files), **info}
        self.update_manifest(stages=stages)

    def stage_done(self, stage: str) -> bool:
        """True when the manifest lists ``stage`` as finished and all its files exist."""
        try:
            entry = self.manifest().get("stages", {}).get(stage)
        except RunDirError:
            return False
        return bool(entry) and all((self.path / f).exists() for f in entry.get("files", []))

    def missing_stages(self) -> list[str]:
        """Stages (in order) not complete in this run directory."""
        return [s for s in STAGE_FILES if not self.stage_done(s)]

    def require(self, stage: str) -> None:
        """Raise a clear `RunDirError` unless ``stage`` is complete."""
        self.manifest()
        if not self.stage_done(stage):
            raise RunDirError(
                f"{self.path}: stage {stage!r} is missing or incomplete; "
                f"run 'python -m pipeline {stage} {self.path}'")


def list_runs(root: str | Path) -> list[RunDir]:
    """Run directories directly under ``root`` (those with a manifest), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((RunDir(p) for p in root.iterdir() if (p / MANIFEST).is_file()), key=lambda r: r.name)
