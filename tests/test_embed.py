"""The embed stage: seeded projections, cosine neighbours, and every artifact's schema on run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.analysis.projection import cosine_neighbors, nearest_to_vector, project_2d, tsne_2d, umap_2d
from pipeline.errors import ParameterError, RunDirError
from pipeline.run import rundir as rd

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- projections, neighbours
def _blobs(n_per: int = 15, dim: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (3, dim))
    labels = np.repeat(np.arange(3), n_per)
    return centres[labels] + rng.normal(0, 0.3, (len(labels), dim)), labels


def test_projections_seeded_and_finite():
    x, _ = _blobs()
    a, b, c = project_2d(x, seed=7), project_2d(x, seed=7), project_2d(x, seed=8)
    for method in ("umap", "tsne"):
        assert a[method].shape == (len(x), 2) and np.isfinite(a[method]).all()
        assert np.array_equal(a[method], b[method])
        assert not np.allclose(a[method], c[method])


def test_projection_keeps_clusters_apart():
    x, labels = _blobs()
    for coords in (tsne_2d(x, seed=0), umap_2d(x, seed=0)):
        centroids = np.stack([coords[labels == g].mean(axis=0) for g in range(3)])
        spread = max(np.linalg.norm(coords[labels == g] - centroids[g], axis=1).mean() for g in range(3))
        gaps = [np.linalg.norm(centroids[i] - centroids[j]) for i in range(3) for j in range(i + 1, 3)]
        assert min(gaps) > 2 * spread


def test_projection_small_inputs_and_skip():
    for n in (1, 2, 3):
        out = project_2d(np.arange(n * 4, dtype=float).reshape(n, 4) ** 2)
        assert out["umap"].shape == (n, 2) and np.isfinite(out["tsne"]).all()
    assert project_2d(_blobs()[0], tsne=False)["tsne"] is None
    assert project_2d(_blobs()[0], tsne_max_points=10)["tsne"] is None
    with pytest.raises(ParameterError, match="NaN"):
        umap_2d(np.full((5, 3), np.nan))


def test_cosine_neighbors_exclude_self_and_rank_by_similarity():
    x, labels = _blobs()
    x[1] = x[0]  # an exact duplicate must not push a row's own index out
    idx, sim = cosine_neighbors(x, 4)
    assert idx.shape == (len(x), 4)
    assert all(i not in row for i, row in enumerate(idx))
    assert (np.diff(sim, axis=1) <= 1e-6).all()
    assert (labels[idx] == labels[:, None]).all()
    assert idx[0, 0] == 1 and sim[0, 0] == pytest.approx(1.0)
    with pytest.raises(ParameterError):
        cosine_neighbors(x, len(x))


def test_tag_lists_come_from_annotations_else_from_predictions():
    from pipeline.analysis.embed import ANNOTATED, PREDICTED, tag_lists
    from pipeline.scoring.results import Predictions

    frame = pd.DataFrame({"clip_id": ["a", "b", "c"], "split": ["train", "train", "test"]})
    probs = np.array([[0.9, 0.6, 0.2], [0.3, 0.4, 0.1], [0.1, 0.2, 0.7]], np.float32)
    bare = Predictions(frame, ["x", "y", "z"], probs, np.zeros((3, 3), np.uint8), np.zeros(3, bool))
    # no annotations: each clip's predicted tags (p >= 0.5), and at least its most probable one
    assert tag_lists(bare) == ([["x", "y"], ["y"], ["z"]], PREDICTED)
    truth = np.array([[0, 0, 1], [1, 0, 0], [1, 0, 1]], np.uint8)
    labelled = Predictions(frame, ["x", "y", "z"], probs, truth, np.array([True, False, True]))
    assert tag_lists(labelled) == ([["z"], ["x"]], ANNOTATED)  # the train clips' annotations


def test_nearest_to_vector_pure_numpy():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
    idx, sim = nearest_to_vector(emb, np.array([2.0, 0.1]), k=2)
    assert idx.tolist() == [0, 2]
    assert sim[0] == pytest.approx(2 / np.hypot(2, 0.1), rel=1e-5)
    idx, _ = nearest_to_vector(emb, emb[0], k=10, exclude=0)
    assert idx.tolist() == [2, 1, 3]
    with pytest.raises(ParameterError, match="dimensions"):
        nearest_to_vector(emb, np.ones(3))


# ----------------------------------------------------------------------------- run directories
TAGS = ["rock", "guitar", "piano", "classical", "techno", "synth", "slow", "fast"]


def _write_run(path: Path, *, n: int = 48, seed: int = 0) -> tuple[rd.RunDir, np.ndarray]:
    """A run directory whose score stage is done, of a classical baseline (no network needed)."""
    import torch

    rng = np.random.default_rng(seed)
    styles = rng.integers(0, 3, n)
    pattern = np.array([[1, 1, 0, 0, 0, 0, 0, 1], [0, 0, 1, 1, 0, 0, 1, 0], [0, 0, 0, 0, 1, 1, 0, 1]])
    truth = pattern[styles].astype(np.uint8)
    annotated = truth.copy()
    annotated[(truth == 1) & (rng.random(truth.shape) < 0.2)] = 0
    probs = np.clip(0.8 * truth + rng.normal(0.1, 0.08, truth.shape), 0.001, 0.999)
    split = np.array(["train"] * (n // 2) + ["valid"] * (n // 4) + ["test"] * (n - n // 2 - n // 4))
    frame = pd.DataFrame({"clip_id": [f"{i:05d}" for i in range(n)], "split": split,
                          "audio_path": [f"0/clip{i}.mp3" for i in range(n)]})
    for j, tag in enumerate(TAGS):
        frame[rd.prob_column(tag)] = probs[:, j].astype(np.float32)
        frame[rd.true_column(tag)] = annotated[:, j]
    run = rd.RunDir(path)
    path.mkdir(parents=True)
    run.update_manifest(tags=TAGS)
    torch.save({"kind": "baseline", "model_name": "knn", "model_kwargs": {}, "tags": TAGS, "features": {},
                "normalizer": {}, "chunk_frames": 1}, path / rd.CHECKPOINT)
    frame.to_parquet(path / rd.PREDICTIONS, index=False)
    np.save(path / rd.CLIP_EMBEDDINGS, np.log(probs / (1 - probs)).astype(np.float32))  # a baseline's: logits
    files = [rd.PREDICTIONS, rd.CLIP_EMBEDDINGS]
    run.mark_stage("score", files=tuple(files), checksums={f: {"sha256": _sha256(path / f)} for f in files},
                   embedding={"source": "predicted tag logits (baseline run: no network)"})
    return run, truth


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_embed_artifacts(run: rd.RunDir, predictions: pd.DataFrame, tags: list[str], *, neighbors: int) -> None:
    """Every embed-stage file exists, parses and keeps the contract of pipeline/run/rundir.py."""
    assert run.stage_done("embed")
    n = len(predictions)
    ids = predictions["clip_id"].astype(str).tolist()

    emb = np.load(run / rd.CLIP_EMBEDDINGS)
    assert emb.dtype == np.float32 and emb.ndim == 2 and emb.shape[0] == n and np.isfinite(emb).all()
    proj = pd.read_parquet(run / rd.CLIP_PROJECTIONS)
    assert list(proj.columns) == ["clip_id", "split", "umap_x", "umap_y", "tsne_x", "tsne_y"]
    assert proj["clip_id"].tolist() == ids and proj["split"].tolist() == predictions["split"].tolist()
    assert np.isfinite(proj[["umap_x", "umap_y", "tsne_x", "tsne_y"]].to_numpy()).all()

    nb = pd.read_parquet(run / rd.CLIP_NEIGHBORS)
    assert list(nb.columns) == ["clip_id", "rank", "neighbor_id", "similarity"]
    k = min(neighbors, n - 1)
    assert len(nb) == n * k and (nb.groupby("clip_id").size() == k).all()
    assert (nb["clip_id"] != nb["neighbor_id"]).all()
    assert set(nb["neighbor_id"]) <= set(ids)
    assert nb.groupby("clip_id")["rank"].apply(lambda r: sorted(r) == list(range(1, k + 1))).all()
    assert nb["similarity"].between(-1.0001, 1.0001).all()
    assert (nb.sort_values(["clip_id", "rank"]).groupby("clip_id")["similarity"].diff().dropna() <= 1e-6).all()

    with np.load(run / rd.TAG_EMBEDDINGS) as npz:
        arrays = {key: npz[key] for key in npz.files}
    report = json.loads((run / rd.TAG_VIEWS).read_text())
    tp = pd.read_parquet(run / rd.TAG_PROJECTIONS)
    assert list(tp.columns) == ["view", "tag", "tsne_x", "tsne_y", "umap_x", "umap_y", "cluster", "frequency"]
    assert np.isfinite(tp[["tsne_x", "tsne_y", "umap_x", "umap_y"]].to_numpy()).all()
    assert (tp["cluster"] >= 0).all() and (tp["frequency"] >= 0).all()
    available = [v for v, info in report["views"].items() if info["available"]]
    assert "cooccurrence" in available and "prediction" in available
    assert set(tp["view"]) == set(available)
    for view in available:
        names = arrays[f"{view}:tags"].tolist()
        assert arrays[view].shape[0] == len(names) and set(names) <= set(tags)
        assert tp[tp.view == view]["tag"].tolist() == names
        assert report["views"][view]["n_tags"] == len(names)
    for pair in report["agreement"]["pairs"]:
        assert 0.0 <= pair["mean"] <= 1.0 and all(0.0 <= v <= 1.0 for v in pair["per_tag"].values())

    issues = pd.read_parquet(run / rd.LABEL_ISSUES)
    assert list(issues.columns) == ["clip_id", "split", "tag", "annotated", "probability", "score", "rank", "kind",
                                    "flagged"]
    assert set(issues["split"]) <= {"valid", "test"}
    assert set(issues["tag"]) <= set(tags) and set(issues["clip_id"]) <= set(ids)
    assert issues["probability"].between(0, 1).all() and issues["score"].between(0, 1).all()
    assert issues["rank"].tolist() == list(range(1, len(issues) + 1))
    assert issues["score"].is_monotonic_decreasing
    assert ((issues["kind"] == "missing") == (issues["annotated"] == 0)).all()


def test_embed_stage_on_a_baseline_run(tmp_path: Path):
    from pipeline.analysis.embed import EmbedConfig, run_embed, similar_clips

    run, _ = _write_run(tmp_path / "run")
    stage = run_embed(run.path, EmbedConfig(neighbors=5), progress=False)
    predictions = pd.read_parquet(run / rd.PREDICTIONS)
    check_embed_artifacts(run, predictions, TAGS, neighbors=5)
    assert stage["rebuilt"] == ["clips", "tags", "issues"]
    assert stage["clips"]["source"].startswith("predicted tag logits")
    report = json.loads((run / rd.TAG_VIEWS).read_text())
    assert report["views"]["acoustic"]["available"] is False and "baseline" in report["views"]["acoustic"]["reason"]
    assert report["views"]["semantic"]["available"] is False

    # Idempotent: nothing rebuilt, files untouched.
    before = {f: (run / f).stat().st_mtime_ns for f in rd.STAGE_FILES["embed"]}
    again = run_embed(run.path, EmbedConfig(neighbors=5), progress=False)
    assert again["rebuilt"] == [] and again["keys"] == stage["keys"]
    assert {f: (run / f).stat().st_mtime_ns for f in rd.STAGE_FILES["embed"]} == before
    # A changed option rebuilds only the part that depends on it.
    third = run_embed(run.path, EmbedConfig(neighbors=3), progress=False)
    assert third["rebuilt"] == ["clips"]
    assert (run / rd.TAG_VIEWS).stat().st_mtime_ns == before[rd.TAG_VIEWS]
    check_embed_artifacts(run, predictions, TAGS, neighbors=3)

    sim = similar_clips(run.path, "00000", k=3)
    assert list(sim.columns) == ["rank", "neighbor_id", "similarity"] and len(sim) == 3
    assert "00000" not in sim["neighbor_id"].tolist()
    more = similar_clips(run.path, "00000", k=6)  # more than stored: searched in the embeddings
    assert len(more) == 6 and more["neighbor_id"].tolist()[:3] == sim["neighbor_id"].tolist()
    with pytest.raises(ParameterError, match="unknown clip"):
        similar_clips(run.path, "nope", k=20)


def test_embed_same_seed_same_coordinates(tmp_path: Path):
    from pipeline.analysis.embed import EmbedConfig, run_embed

    coords = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        run, _ = _write_run(tmp_path / name)
        run_embed(run.path, EmbedConfig(seed=seed), progress=False)
        coords.append((pd.read_parquet(run / rd.CLIP_PROJECTIONS), pd.read_parquet(run / rd.TAG_PROJECTIONS)))
    assert coords[0][0].equals(coords[1][0]) and coords[0][1].equals(coords[1][1])
    columns = ["umap_x", "umap_y", "tsne_x", "tsne_y"]
    assert not np.allclose(coords[0][0][columns].to_numpy(), coords[2][0][columns].to_numpy())


def test_semantic_view_added_then_kept(tmp_path: Path):
    from pipeline.analysis.embed import EmbedConfig, run_embed

    run, _ = _write_run(tmp_path / "run")
    run_embed(run.path, EmbedConfig(), progress=False)
    rng = np.random.default_rng(0)
    vectors = tmp_path / "vectors.txt"
    words = ["rock", "guitar", "piano", "classical", "techno", "synth"]
    vectors.write_text(f"{len(words)} 5\n" + "".join(f"{w} {' '.join(map(str, rng.normal(size=5)))}\n"
                                                     for w in words), encoding="utf-8")
    stage = run_embed(run.path, EmbedConfig(word_vectors=str(vectors)), progress=False)
    assert stage["rebuilt"] == ["tags"] and "semantic" in stage["tags"]["views"]
    report = json.loads((run / rd.TAG_VIEWS).read_text())
    assert report["views"]["semantic"]["missing"] == ["slow", "fast"]
    # A rerun without --word-vectors keeps them (and rebuilds nothing); "" drops them.
    assert run_embed(run.path, EmbedConfig(), progress=False)["config"]["word_vectors"] == str(vectors)
    dropped = run_embed(run.path, EmbedConfig(word_vectors=""), progress=False)
    assert dropped["rebuilt"] == ["tags"] and "semantic" not in dropped["tags"]["views"]


def test_embed_requires_the_score_stage(tmp_path: Path):
    from pipeline.analysis.embed import run_embed

    run = rd.RunDir(tmp_path / "run")
    (tmp_path / "run").mkdir()
    run.update_manifest(tags=TAGS)
    with pytest.raises(RunDirError, match="stage 'score' is missing.*python -m pipeline score"):
        run_embed(run.path)


def test_embed_command_help_and_errors(tmp_path: Path):
    from test_cli_errors import run_cli  # the command's entry point, in this process

    shown = run_cli("embed", "--help")
    assert shown.returncode == 0, shown.stderr
    for option in ("--word-vectors", "--seed", "--neighbors", "--no-tsne", "--issue-splits", "--force"):
        assert option in shown.stdout
    bad = run_cli("embed", tmp_path / "missing")
    assert bad.returncode == 2 and "not a run directory" in bad.stderr


# ----------------------------------------------------------------------------- a real tiny run
@pytest.fixture(scope="module")
def embedded(tiny_run: Path) -> dict:
    from pipeline.analysis.embed import EmbedConfig, run_embed

    return run_embed(tiny_run, EmbedConfig(neighbors=5), progress=False)


@pytest.mark.slow
def test_embed_artifacts_of_a_trained_run(tiny_run: Path, embedded: dict):
    import torch

    from pipeline.scoring.chunks import chunk_clip
    from pipeline.scoring.inference import feature_cache, load_run
    from pipeline.sources.loader import corpus_from_record

    run = rd.RunDir(tiny_run)
    predictions = pd.read_parquet(run / rd.PREDICTIONS)
    tags = run.manifest()["tags"]
    check_embed_artifacts(run, predictions, tags, neighbors=5)
    assert embedded["clips"]["source"].startswith("penultimate layer")

    # The stored embedding of a clip is the mean of model.embed over its chunks.
    run_model = load_run(tiny_run)
    corpus = corpus_from_record(run.manifest()["corpus"])
    cache = feature_cache(run_model, corpus)
    clip = predictions["clip_id"].iloc[3]
    chunks = chunk_clip(np.asarray(cache.read(clip)), run_model.chunk_frames, normalizer=run_model.normalizer)
    with torch.no_grad():
        expected = run_model.model.embed(torch.from_numpy(chunks)).mean(dim=0).numpy()
    emb = np.load(run / rd.CLIP_EMBEDDINGS)
    assert emb.shape[1] == run_model.model.embedding_dim
    np.testing.assert_allclose(emb[3], expected, rtol=1e-4, atol=1e-5)

    # The acoustic view is the output layer's weight rows.
    with np.load(run / rd.TAG_EMBEDDINGS) as npz:
        np.testing.assert_allclose(npz["acoustic"], run_model.model.classifier.weight.detach().numpy(), rtol=1e-6)
        assert npz["acoustic:tags"].tolist() == tags
    report = json.loads((run / rd.TAG_VIEWS).read_text())
    assert {"cooccurrence", "acoustic", "prediction"} <= {v for v, i in report["views"].items() if i["available"]}

    # The demo corpus keeps its truth: the label issues are scored against it.
    truth = embedded["issues"]["truth"]
    assert truth["n_missing"] > 0 and 0.0 <= truth["precision@50"] <= 1.0 and truth["n_wrong"] == 0


@pytest.mark.slow
def test_embed_command_is_idempotent(tiny_run: Path, embedded: dict):
    before = {f: (tiny_run / f).stat().st_mtime_ns for f in rd.STAGE_FILES["embed"]}
    from test_cli_errors import run_cli  # the command's entry point, in this process

    proc = run_cli("embed", tiny_run, "--neighbors", "5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "up to date" in proc.stdout
    assert {f: (tiny_run / f).stat().st_mtime_ns for f in rd.STAGE_FILES["embed"]} == before


@pytest.mark.slow
def test_an_audio_file_finds_itself_among_the_corpus_clips(tiny_run: Path, embedded: dict):
    from pipeline.analysis.embed import embed_audio_file, nearest_clips_to_vector
    from pipeline.scoring.inference import load_run

    predictions = pd.read_parquet(tiny_run / rd.PREDICTIONS)
    corpus_root = Path(rd.RunDir(tiny_run).manifest()["corpus"]["root"])
    run_model = load_run(tiny_run)
    for row in (0, 5):
        clip, audio = predictions["clip_id"].iloc[row], predictions["audio_path"].iloc[row]
        path = corpus_root / audio  # relative to the corpus root
        vector = embed_audio_file(tiny_run, path, run_model=run_model)
        nearest = nearest_clips_to_vector(tiny_run, vector, k=3)
        assert list(nearest.columns) == ["rank", "clip_id", "similarity"]
        assert nearest["clip_id"].iloc[0] == clip and nearest["similarity"].iloc[0] > 0.99
