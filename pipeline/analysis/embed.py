"""The embed stage: clip maps and neighbours, tag views, label issues, into the run directory.

Everything here is built from what the score stage wrote (`pipeline.scoring.results`); no
network runs, so the maps, views and issues describe the very scores evaluation measured. Three
parts, each rebuilt only when what it depends on changed (the stage records a key per part in
the manifest, made of the score files' digests and the part's options):

- clips: seeded UMAP and t-SNE coordinates of clip_embeddings.npy (the penultimate layer, mean
  over a clip's chunks; a classical baseline's predicted tag logits) and each clip's k nearest
  clips by cosine similarity.
- tags: the co-occurrence, semantic, acoustic (output_weights.npy) and prediction views of
  `pipeline.analysis.tag_views`, projected, clustered and compared. The co-occurrence view learns
  from the train clips' annotations (the ``true:`` columns of predictions.parquet, so the corpus
  folder is not needed); on a corpus without annotations it learns from the model's predicted
  tags instead (co-activation, `tag_lists`), and tags are sized by how often they are predicted.
- issues: `pipeline.analysis.label_issues` on the out-of-sample (valid and test) predictions of
  the tags the corpus labels, scored against the corpus's ``truth.csv`` when it has one (the
  demo corpus); without annotations there is nothing to doubt, and the part records why
  (``issues.skipped``) beside an empty label_issues.parquet.

Files are those of ``STAGE_FILES["embed"]`` in `pipeline.run.rundir`, each written atomically;
the stage is recorded in the manifest only when all are in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.analysis.label_issues import DEFAULT_METHOD, DEFAULT_SPLITS, ISSUE_COLUMNS, MAX_ISSUES, METHODS
from pipeline.analysis.metrics import GLOBAL_THRESHOLD
from pipeline.analysis.projection import TSNE_MAX_POINTS, cosine_neighbors, nearest_to_vector, project_2d
from pipeline.errors import ParameterError, RunDirError
from pipeline.run import rundir as rd
from pipeline.run.files import SKIPPED
from pipeline.scoring.results import (
    Predictions,
    read_clip_embeddings,
    read_output_weights,
    read_predictions,
    rescore_hint,
    score_entry,
)

log = logging.getLogger(__name__)

DEFAULT_NEIGHBORS = 10
PARTS: tuple[str, ...] = ("clips", "tags", "issues")
CLIP_PROJECTION_COLUMNS = rd.TABLES[rd.CLIP_PROJECTIONS].column_names  # declared by the run contract
NEIGHBOR_COLUMNS = rd.TABLES[rd.CLIP_NEIGHBORS].column_names


@dataclass
class EmbedConfig:
    """Options of the embed stage (``python -m pipeline embed --help`` documents each)."""

    seed: int = 0  # seed of every projection, clustering and the co-occurrence Word2Vec
    neighbors: int = DEFAULT_NEIGHBORS  # nearest clips stored per clip
    tsne: bool | None = None  # clip t-SNE: True forces, False skips, None runs it up to tsne_max_clips
    tsne_max_clips: int = TSNE_MAX_POINTS  # clip count above which t-SNE is skipped unless forced
    # pretrained word vectors for the semantic view (file or gensim-data name); None keeps the ones the
    # stage used last time (none at first), "" drops them
    word_vectors: str | None = None
    word_vectors_limit: int | None = None  # read only the first N vectors of the file
    agreement_k: int = 5  # neighbourhood size of the view-agreement figure
    issue_method: str = DEFAULT_METHOD  # label-issue score (see pipeline.analysis.label_issues.METHODS)
    issue_splits: tuple[str, ...] | None = DEFAULT_SPLITS  # splits scored for label issues (None: all)
    max_issues: int | None = MAX_ISSUES  # label issues kept, highest scores first

    def __post_init__(self) -> None:
        if self.neighbors < 1:
            raise ParameterError(f"neighbors must be >= 1, got {self.neighbors}")
        if self.agreement_k < 1:
            raise ParameterError(f"agreement_k must be >= 1, got {self.agreement_k}")
        if self.issue_method not in METHODS:
            raise ParameterError(f"issue_method must be one of {METHODS}, got {self.issue_method!r}")
        if self.max_issues is not None and self.max_issues < 1:
            raise ParameterError(f"max_issues must be >= 1 or None, got {self.max_issues}")
        if self.issue_splits is not None:
            self.issue_splits = tuple(self.issue_splits)


# ----------------------------------------------------------------------------- keys (idempotence)
def _file_stamp(path: Path) -> list[Any]:
    """What identifies a file's version cheaply: name, size and modification time."""
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def _word_vectors_stamp(spec: str | None) -> Any:
    if spec is None:
        return None
    path = Path(spec).expanduser()
    return _file_stamp(path) + [str(path.resolve())] if path.is_file() else spec


def part_keys(run: rd.RunDir, config: EmbedConfig) -> dict[str, str]:
    """A key per part from its inputs (the score files' digests) and options; an unchanged key is reused."""
    digests = {f: d.get("sha256") for f, d in (score_entry(run).get("checksums") or {}).items()}
    predictions, embeddings = digests.get(rd.PREDICTIONS), digests.get(rd.CLIP_EMBEDDINGS)
    inputs = {
        "clips": [embeddings, config.seed, config.neighbors, config.tsne, config.tsne_max_clips],
        "tags": [predictions, digests.get(rd.OUTPUT_WEIGHTS), config.seed, _word_vectors_stamp(config.word_vectors),
                 config.word_vectors_limit, config.agreement_k],
        "issues": [predictions, config.issue_method, config.issue_splits, config.max_issues],
    }
    return {part: hashlib.sha1(json.dumps(v, default=str).encode()).hexdigest()[:16] for part, v in inputs.items()}


# ----------------------------------------------------------------------------- parts
def build_clip_part(run: rd.RunDir, config: EmbedConfig, scores: Predictions, source: str) -> dict[str, Any]:
    """Write clip_embeddings.parquet and clip_neighbors.parquet; return the part's facts."""
    clip_ids = scores.clip_ids
    embeddings = np.asarray(read_clip_embeddings(run, len(clip_ids)), dtype=np.float32)
    n = len(clip_ids)
    run_tsne = n <= config.tsne_max_clips if config.tsne is None else config.tsne
    log.info("projecting %d clip embeddings (UMAP%s)", n, " and t-SNE" if run_tsne else "; t-SNE skipped")
    t0 = time.perf_counter()
    coords = project_2d(embeddings, seed=config.seed, tsne=run_tsne)
    t_project = time.perf_counter() - t0
    tsne = coords["tsne"] if coords["tsne"] is not None else np.full((n, 2), np.nan, dtype=np.float32)
    projections = pd.DataFrame({
        "clip_id": clip_ids, "split": scores.split.tolist(),
        "umap_x": coords["umap"][:, 0], "umap_y": coords["umap"][:, 1], "tsne_x": tsne[:, 0], "tsne_y": tsne[:, 1]})
    k = min(config.neighbors, n - 1)
    if k >= 1:
        idx, sim = cosine_neighbors(embeddings, k)
        ids = np.asarray(clip_ids, dtype=object)
        neighbors = pd.DataFrame({
            "clip_id": np.repeat(ids, k).astype(str), "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), n),
            "neighbor_id": ids[idx.ravel()].astype(str), "similarity": sim.ravel()})
    else:
        neighbors = pd.DataFrame({"clip_id": pd.Series(dtype=str), "rank": pd.Series(dtype=np.int64),
                                  "neighbor_id": pd.Series(dtype=str), "similarity": pd.Series(dtype=np.float32)})
    run.write_table(rd.CLIP_PROJECTIONS, projections[list(CLIP_PROJECTION_COLUMNS)])
    run.write_table(rd.CLIP_NEIGHBORS, neighbors[list(NEIGHBOR_COLUMNS)])
    return {"n_clips": n, "dim": int(embeddings.shape[1]), "source": source, "tsne": bool(run_tsne),
            "neighbors": k, "seconds": {"project": round(t_project, 2)}}


ANNOTATED, PREDICTED = "annotations", "predictions"  # what the co-occurrence view and tag sizes come from
FREQUENCY_NOTE = {ANNOTATED: f"clips annotated with the tag ({rd.TRUE_PREFIX}<tag> columns)",
                  PREDICTED: f"clips the model predicts the tag for (p >= {GLOBAL_THRESHOLD:g}); the corpus has no "
                             "annotations"}


def tag_lists(scores: Predictions) -> tuple[list[list[str]], str]:
    """Each clip's tag list for the co-occurrence view, and what it comes from (`ANNOTATED` / `PREDICTED`).

    With annotations: the train clips' annotated tags (every clip's when there is no train
    split). Without any (a folder of a user's own music): every clip's predicted tags at the
    global threshold, and at least its most probable tag, so that the view shows which tags
    the model hears together (co-activation) rather than nothing.
    """
    tag_array = np.asarray(scores.tags, dtype=object)
    if scores.labelled.any():
        train = scores.split == "train"
        if not train.any():
            log.warning("no train clips in predictions; the co-occurrence view learns from every clip")
        rows = np.flatnonzero(train) if train.any() else np.arange(len(scores.frame))
        return [list(tag_array[scores.truth[i].astype(bool)]) for i in rows], ANNOTATED
    predicted = scores.probs >= GLOBAL_THRESHOLD  # (n, k)
    if len(predicted):
        predicted[np.arange(len(predicted)), scores.probs.argmax(axis=1)] = True
    return [list(tag_array[row]) for row in predicted], PREDICTED


def build_tag_part(run: rd.RunDir, config: EmbedConfig, scores: Predictions) -> dict[str, Any]:
    """Write tag_embeddings.npz, tag_projections.parquet and tag_views.json; return the part's facts."""
    from pipeline.analysis.tag_views import (
        acoustic_view,
        build_tag_views,
        cooccurrence_view,
        load_word_vectors,
        prediction_view,
        semantic_view,
    )

    t0 = time.perf_counter()
    tags, probs = scores.tags, scores.probs
    views, unavailable = [], {}
    lists, basis = tag_lists(scores)
    if any(lists):
        view = cooccurrence_view(lists, tags, seed=config.seed)
        if basis == PREDICTED:
            view = replace(view, source=f"co-activation: {view.source} of the model's predicted tags "
                                        f"(p >= {GLOBAL_THRESHOLD:g}, at least each clip's top tag); "
                                        "the corpus has no annotations")
        views.append(view)
    else:
        unavailable["cooccurrence"] = "no clip has any annotated tag"
    if config.word_vectors:
        vectors, source = load_word_vectors(config.word_vectors, limit=config.word_vectors_limit)
        views.append(semantic_view(tags, vectors, source))
    else:
        unavailable["semantic"] = "no word vectors given (python -m pipeline embed RUN --word-vectors FILE)"
    weights = read_output_weights(run)
    if weights is not None:
        views.append(acoustic_view(weights, tags, source="output-layer weights (classifier.weight rows)"))
    else:
        unavailable["acoustic"] = "the run has no network output layer (classical baseline)"
    views.append(prediction_view(probs, tags, source="correlation of predicted logits across all clips"))
    # Tags are sized by their annotated clips; where nothing is annotated, by their predicted clips.
    frequency = (scores.truth.sum(axis=0) if basis == ANNOTATED
                 else (probs >= GLOBAL_THRESHOLD).sum(axis=0))
    result = build_tag_views(views, tags, frequency, seed=config.seed, agreement_k=config.agreement_k,
                             unavailable=unavailable)
    run.write_arrays(rd.TAG_EMBEDDINGS, **result.npz_arrays())
    run.write_table(rd.TAG_PROJECTIONS, result.projections)
    run.write_json(rd.TAG_VIEWS, {**result.report, "word_vectors": config.word_vectors, "basis": basis,
                                  "frequency": FREQUENCY_NOTE[basis],
                                  "annotated_tags": scores.labelled_tags})
    return {"basis": basis, "views": [v for v, info in result.report["views"].items() if info["available"]],
            "agreement": {"-".join(p["views"]): round(p["mean"], 4) for p in result.report["agreement"]["pairs"]},
            "seconds": round(time.perf_counter() - t0, 2)}


def build_issue_part(run: rd.RunDir, config: EmbedConfig, scores: Predictions) -> dict[str, Any]:
    """Write label_issues.parquet (tags the corpus labels); score it against the corpus's truth.csv if any."""
    from pipeline.analysis.label_issues import find_label_issues

    t0 = time.perf_counter()
    clip_ids, split = scores.clip_ids, scores.split
    cols = np.flatnonzero(scores.labelled)
    tags, probs, annotated = scores.labelled_tags, scores.probs[:, cols], scores.truth[:, cols]
    if tags:
        issues = find_label_issues(clip_ids, split, tags, annotated, probs, splits=config.issue_splits,
                                   method=config.issue_method, max_issues=config.max_issues)
    else:  # a corpus without labels for any of the model's tags has no annotation to doubt
        log.info("the corpus labels none of the model's tags: no label issues")
        issues = pd.DataFrame({c: pd.Series(dtype=object) for c in ISSUE_COLUMNS})
    run.write_table(rd.LABEL_ISSUES, issues)
    scored_splits = sorted(set(issues["split"])) if len(issues) else []
    info: dict[str, Any] = {"method": config.issue_method, "splits": scored_splits, "n_issues": len(issues),
                            "n_flagged": int(issues["flagged"].sum()) if len(issues) else 0, "n_tags": len(tags)}
    if not tags:
        info[SKIPPED] = (f"the corpus annotates none of the model's {len(scores.tags)} tags, so there is no "
                         "annotation to doubt")
    truth_score = score_issues_against_corpus_truth(run, issues, clip_ids, split, tags, annotated)
    if truth_score is not None:
        info["truth"] = truth_score
        log.info("label issues vs truth.csv: precision@50 %.3f, precision@200 %.3f (base rate %.3f)",
                 truth_score["precision@50"], truth_score["precision@200"], truth_score["base_rate"])
    info["seconds"] = round(time.perf_counter() - t0, 2)
    return info


def score_issues_against_corpus_truth(run: rd.RunDir, issues: pd.DataFrame, clip_ids: list[str], split: np.ndarray,
                                      tags: list[str], annotated: np.ndarray) -> dict[str, Any] | None:
    """Precision / recall of ``issues`` against the corpus's truth.csv over the scored clips; None without one."""
    from pipeline.analysis.label_issues import run_truth, score_against_truth

    scored = sorted(set(issues["split"])) if len(issues) else []
    rows = np.flatnonzero(np.isin(split, scored))
    ids = [clip_ids[i] for i in rows]
    try:
        truth = run_truth(run, ids, tags)
    except RunDirError:
        return None
    if truth is None:
        return None
    return score_against_truth(issues, truth, annotated[rows], ids, tags)


# ----------------------------------------------------------------------------- the stage
def run_embed(run_dir: str | Path, config: EmbedConfig | None = None, *, force: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Build (or reuse) the embed stage of a run whose score stage is complete.

    Parameters
    ----------
    config : options (defaults: `EmbedConfig()`)
    force : rebuild every part even when its inputs and options are unchanged

    Returns
    -------
    the stage's manifest entry (per-part facts and timings), ``rebuilt`` listing the parts this
    call built (empty when everything was up to date)
    """
    config = EmbedConfig(**asdict(config)) if config is not None else EmbedConfig()
    run = rd.RunDir(run_dir)
    run.require("score")
    run.start_writing()
    previous = run.manifest().get("stages", {}).get("embed", {}) if run.stage_done("embed") else {}
    if config.word_vectors is None:
        # Word vectors are a large external file: a rerun without --word-vectors keeps the semantic view.
        config.word_vectors = (previous.get("config") or {}).get("word_vectors")
        if config.word_vectors:
            log.info("keeping the word vectors used before: %s", config.word_vectors)
    config.word_vectors = config.word_vectors or None
    keys = part_keys(run, config)
    old_keys = previous.get("keys", {})
    todo = [p for p in PARTS if force or old_keys.get(p) != keys[p]]
    if not todo:
        log.info("%s: embed stage is up to date (use --force to rebuild)", run.path)
        return {**previous, "rebuilt": []}

    scores = read_predictions(run)
    manifest_tags = run.manifest().get("tags")
    if manifest_tags and list(manifest_tags) != scores.tags:
        raise RunDirError(f"{run / rd.PREDICTIONS}: its tags differ from the manifest's; rerun '{rescore_hint(run)}'")
    facts = {p: previous.get(p) for p in PARTS}
    log.info("%s: building embed parts %s (reusing %s)", run.path, todo, [p for p in PARTS if p not in todo])
    if "clips" in todo:
        source = (score_entry(run).get("embedding") or {}).get("source", "clip_embeddings.npy")
        facts["clips"] = build_clip_part(run, config, scores, source)
    if "tags" in todo:
        facts["tags"] = build_tag_part(run, config, scores)
    if "issues" in todo:
        facts["issues"] = build_issue_part(run, config, scores)
    run.mark_stage("embed", keys=keys, config=asdict(config), rebuilt=todo, **facts)
    return run.manifest()["stages"]["embed"]


# ----------------------------------------------------------------------------- queries (dashboard)
def load_clip_embeddings(run_dir: str | Path) -> tuple[np.ndarray, list[str]]:
    """A run's clip embeddings [n, D] and their clip ids (rows aligned); needs the embed stage."""
    run = rd.RunDir(run_dir)
    run.require("embed")
    ids = pd.read_parquet(run / rd.CLIP_PROJECTIONS, columns=["clip_id"])["clip_id"].astype(str).tolist()
    return read_clip_embeddings(run, len(ids)), ids


def similar_clips(run_dir: str | Path, clip_id: str, k: int = DEFAULT_NEIGHBORS) -> pd.DataFrame:
    """The ``k`` clips most similar to ``clip_id`` (cosine on clip embeddings), itself excluded.

    Reads the precomputed clip_neighbors.parquet when it holds ``k`` neighbours, else searches
    the embeddings. Returns columns ``rank, neighbor_id, similarity``.
    """
    if k < 1:
        raise ParameterError(f"k must be >= 1, got {k}")
    run = rd.RunDir(run_dir)
    run.require("embed")
    stored = pd.read_parquet(run / rd.CLIP_NEIGHBORS, filters=[("clip_id", "==", str(clip_id))])
    if len(stored) >= k:
        return stored.sort_values("rank").head(k)[["rank", "neighbor_id", "similarity"]].reset_index(drop=True)
    embeddings, ids = load_clip_embeddings(run.path)
    try:
        row = ids.index(str(clip_id))
    except ValueError:
        raise ParameterError(f"unknown clip {clip_id!r} in {run.path}") from None
    idx, sim = nearest_to_vector(embeddings, embeddings[row], k, exclude=row)
    return pd.DataFrame({"rank": np.arange(1, len(idx) + 1, dtype=np.int64),
                         "neighbor_id": [ids[i] for i in idx], "similarity": sim})


def embed_audio_file(run_dir: str | Path, path: str | Path, *, run_model: Any = None) -> np.ndarray:
    """The embedding [D] of any audio file (e.g. an upload), comparable with the run's clip embeddings.

    Computed by `pipeline.scoring.inference.RunModel.embed`, the score stage's own pass. Pass a
    loaded ``run_model`` (`pipeline.scoring.inference.load_run`) to avoid reloading it per file;
    a broken file raises `pipeline.errors.AudioDecodeError`.
    """
    if run_model is None:
        from pipeline.scoring.inference import load_run

        run_model = load_run(run_dir)
    return run_model.embed(run_model.features_of(path))


def nearest_clips_to_vector(run_dir: str | Path, vector: np.ndarray, k: int = DEFAULT_NEIGHBORS) -> pd.DataFrame:
    """The ``k`` corpus clips nearest to an embedding (e.g. an uploaded file's): ``rank, clip_id, similarity``."""
    embeddings, ids = load_clip_embeddings(run_dir)
    idx, sim = nearest_to_vector(embeddings, vector, k)
    return pd.DataFrame({"rank": np.arange(1, len(idx) + 1, dtype=np.int64), "clip_id": [ids[i] for i in idx],
                         "similarity": sim})
