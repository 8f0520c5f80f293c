"""Tag embeddings: co-occurrence, semantic (from a vectors file written here), acoustic and prediction
views; their projections, clusters and agreement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.analysis.tag_views import (
    acoustic_view,
    build_tag_views,
    cluster_vectors,
    cooccurrence_view,
    load_word_vectors,
    neighbour_sets,
    neighbourhood_overlap,
    prediction_view,
    semantic_view,
    tag_vector,
    tag_words,
    view_agreement,
)
from pipeline.errors import DataFormatError, ParameterError

TAGS = ["rock", "guitar", "drums", "classical", "violin", "strings", "techno", "synth", "beat", "ambient",
        "slow", "quiet"]
GROUPS = [["rock", "guitar", "drums"], ["classical", "violin", "strings"], ["techno", "synth", "beat"],
          ["ambient", "slow", "quiet"]]


def _tag_lists(n: int = 240, seed: int = 0) -> list[list[str]]:
    """Clips annotated from one of four groups whose tags always travel together."""
    rng = np.random.default_rng(seed)
    lists = []
    for _ in range(n):
        group = GROUPS[rng.integers(len(GROUPS))]
        lists.append([t for t in group if rng.random() < 0.9] or [group[0]])
    return lists


def _group_vectors(noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """Vectors for TAGS where each group points in its own direction."""
    rng = np.random.default_rng(seed)
    centres = np.eye(len(GROUPS), 8) * 3
    return np.stack([centres[next(g for g, grp in enumerate(GROUPS) if t in grp)] + rng.normal(0, noise, 8)
                     for t in TAGS])


def _same_group(a: str, b: str) -> bool:
    return any(a in g and b in g for g in GROUPS)


def test_cooccurring_tags_are_neighbours():
    view = cooccurrence_view(_tag_lists(), TAGS, seed=0)
    assert view.tags == TAGS and view.missing == []
    assert view.vectors.shape == (len(TAGS), 32) and np.isfinite(view.vectors).all()
    for i, near in enumerate(neighbour_sets(view.vectors, 2)):
        assert all(_same_group(TAGS[i], TAGS[j]) for j in near), (TAGS[i], [TAGS[j] for j in near])


def test_cooccurrence_is_seeded_and_reports_unused_tags():
    lists = _tag_lists()
    a = cooccurrence_view(lists, [*TAGS, "opera"], seed=3)
    b = cooccurrence_view(lists, [*TAGS, "opera"], seed=3)
    c = cooccurrence_view(lists, [*TAGS, "opera"], seed=4)
    assert np.array_equal(a.vectors, b.vectors)
    assert not np.allclose(a.vectors, c.vectors)
    assert a.missing == ["opera"] and "opera" not in a.tags


def test_cooccurrence_without_tags_is_an_error():
    with pytest.raises(ParameterError, match="no clip has any tag"):
        cooccurrence_view([[], []], TAGS)


def _write_vectors(path: Path, words: dict[str, np.ndarray], header: bool = True) -> Path:
    dim = len(next(iter(words.values())))
    lines = [f"{len(words)} {dim}"] if header else []
    lines += [f"{w} " + " ".join(f"{x:.5f}" for x in v) for w, v in words.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def vectors_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    words = {w: rng.normal(size=6) for w in ("rock", "guitar", "no", "vocals", "hip_hop", "electronic", "the")}
    words["Piano"] = rng.normal(size=6)
    return _write_vectors(tmp_path / "tiny.txt", words)


def test_tag_words_splits_phrases_and_camel_case():
    assert tag_words("no vocals") == ["no", "vocals"]
    assert tag_words("HipHop") == ["Hip", "Hop"]
    assert tag_words("new-age") == ["new", "age"]
    assert tag_words("hard_rock") == ["hard", "rock"]


def test_semantic_view_from_a_vectors_file(vectors_file: Path):
    kv, source = load_word_vectors(vectors_file)
    tags = ["rock", "no vocals", "hip hop", "HipHop", "piano", "the guitar", "sitar", "new age"]
    view = semantic_view(tags, kv, source)
    assert view.tags == ["rock", "no vocals", "hip hop", "HipHop", "piano", "the guitar"]
    assert view.missing == ["sitar", "new age"]
    assert view.vectors.shape == (6, 6)
    # A multi-word tag absent as a phrase is the mean of its words.
    np.testing.assert_allclose(view.vectors[1], (kv["no"] + kv["vocals"]) / 2, rtol=1e-5)
    # A phrase the file holds ("hip_hop") is used as such, for spaced and camel-case spellings.
    np.testing.assert_allclose(view.vectors[2], kv["hip_hop"], rtol=1e-5)
    np.testing.assert_allclose(view.vectors[3], kv["hip_hop"], rtol=1e-5)
    # Case fallback, and a stop word the file lacks does not make the tag missing.
    np.testing.assert_allclose(view.vectors[4], kv["Piano"], rtol=1e-5)
    assert view.details["matched"]["the guitar"] == "mean(the, guitar)"
    assert "new" in view.details["missing_reason"]["new age"]


def test_glove_file_without_header(tmp_path: Path):
    path = _write_vectors(tmp_path / "glove.6B.tiny.txt", {"rock": np.ones(4), "jazz": np.arange(4.0)}, header=False)
    kv, _ = load_word_vectors(path)
    assert set(kv.key_to_index) == {"rock", "jazz"}
    vec, how = tag_vector(kv, "Jazz")
    np.testing.assert_allclose(vec, np.arange(4.0))
    assert how == "jazz"


def test_word_vectors_errors(tmp_path: Path):
    with pytest.raises(ParameterError, match="no such file"):
        load_word_vectors(tmp_path / "absent.bin")
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3\nrock 1 2\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="bad.txt"):
        load_word_vectors(bad)


def test_acoustic_and_prediction_views():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, 5))
    view = acoustic_view(weights, ["a", "b", "c"])
    assert view.tags == ["a", "b", "c"] and view.vectors.shape == (3, 5)
    with pytest.raises(ParameterError):
        acoustic_view(weights, ["a", "b"])
    logits = rng.normal(size=200)
    logits = np.column_stack([logits, logits + rng.normal(0, 0.3, 200), -logits, np.zeros(200)])
    pred = prediction_view(1 / (1 + np.exp(-logits)), ["a", "b", "c", "flat"])
    assert pred.missing == ["flat"] and pred.vectors.shape == (3, 200)
    unit = pred.vectors / np.linalg.norm(pred.vectors, axis=1, keepdims=True)
    # Cosine of the view's vectors = correlation of the predicted logits.
    np.testing.assert_allclose(unit @ unit.T, np.corrcoef(logits[:, :3].T), atol=1e-4)


def test_clusters_recover_groups():
    labels, info = cluster_vectors(_group_vectors(), seed=0)
    assert info["k"] == 4 and info["silhouette"] > 0.5
    for i, a in enumerate(TAGS):
        for j, b in enumerate(TAGS):
            assert (labels[i] == labels[j]) == _same_group(a, b)
    fixed, info = cluster_vectors(_group_vectors(), seed=0, k=2)
    assert info["k"] == 2 and set(fixed) == {0, 1}
    tiny, _ = cluster_vectors(np.ones((2, 3)))
    assert list(tiny) == [0, 0]


def test_clusters_never_outnumber_distinct_vectors():
    import warnings

    # a prediction view learnt from two clips: every tag's vector is one of two directions
    vectors = np.repeat(np.array([[1.0, 0.0], [0.0, 1.0]]), [6, 4], axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # KMeans warns when asked for more clusters than distinct points
        labels, info = cluster_vectors(vectors, seed=0)
        same, same_info = cluster_vectors(np.ones((5, 3)), seed=0)
    assert info["k"] == 2 and labels.tolist() == [0] * 6 + [1] * 4
    assert same.tolist() == [0] * 5 and same_info["k"] == 1


def test_agreement_identical_and_unrelated_views():
    vectors = _group_vectors()
    same = neighbourhood_overlap(acoustic_view(vectors, TAGS), acoustic_view(vectors * 2, TAGS), k=3)
    assert same["mean"] == 1.0 and set(same["per_tag"].values()) == {1.0}
    shuffled = acoustic_view(np.random.default_rng(1).normal(size=vectors.shape), TAGS)
    other = neighbourhood_overlap(acoustic_view(vectors, TAGS), shuffled, k=3)
    assert 0.0 <= other["mean"] < 1.0 and other["chance"] == pytest.approx(3 / 11)
    # Only tags both views hold are compared.
    partial = acoustic_view(vectors[:3], TAGS[:3])
    assert neighbourhood_overlap(acoustic_view(vectors, TAGS), partial)["n_tags"] == 3


def test_build_tag_views_end_to_end(vectors_file: Path):
    kv, source = load_word_vectors(vectors_file)
    views = [cooccurrence_view(_tag_lists(), TAGS, seed=0), semantic_view(TAGS, kv, source),
             acoustic_view(_group_vectors(), TAGS)]
    freq = np.arange(len(TAGS))
    result = build_tag_views(views, TAGS, freq, seed=0)
    proj = result.projections
    assert list(proj.columns) == ["view", "tag", "tsne_x", "tsne_y", "umap_x", "umap_y", "cluster", "frequency"]
    assert set(proj["view"]) == {"cooccurrence", "semantic", "acoustic"}
    assert len(proj[proj.view == "cooccurrence"]) == len(TAGS)
    assert set(proj[proj.view == "semantic"]["tag"]) == {"rock", "guitar"}
    assert np.isfinite(proj[["tsne_x", "tsne_y", "umap_x", "umap_y"]].to_numpy()).all()
    assert (proj["cluster"] >= 0).all()
    assert proj.set_index(["view", "tag"]).loc[("acoustic", "slow"), "frequency"] == TAGS.index("slow")
    report = result.report
    assert report["views"]["semantic"]["available"] is True
    assert "sitar" not in report["views"]["semantic"]["missing"] and "drums" in report["views"]["semantic"]["missing"]
    assert report["views"]["prediction"]["available"] is False
    for pair in report["agreement"]["pairs"]:
        assert 0.0 <= pair["mean"] <= 1.0
        assert all(0.0 <= v <= 1.0 for v in pair["per_tag"].values())
    pairs = {tuple(p["views"]) for p in report["agreement"]["pairs"]}
    assert ("cooccurrence", "acoustic") in pairs
    # The semantic view holds 2 tags: too few to compare neighbourhoods.
    assert not any("semantic" in p for p in pairs)
    arrays = result.npz_arrays()
    assert arrays["cooccurrence"].shape == (len(TAGS), 32) and list(arrays["semantic:tags"]) == ["rock", "guitar"]

    again = build_tag_views(views, TAGS, freq, seed=0).projections
    assert again.equals(proj)
    other = build_tag_views(views, TAGS, freq, seed=1).projections
    assert not np.allclose(other[["umap_x", "umap_y"]].to_numpy(), proj[["umap_x", "umap_y"]].to_numpy())


def test_view_agreement_overall_per_tag():
    vectors = _group_vectors()
    views = {"acoustic": acoustic_view(vectors, TAGS), "cooccurrence": cooccurrence_view(_tag_lists(), TAGS)}
    result = view_agreement(views, k=2)
    assert result["k"] == 2 and len(result["pairs"]) == 1
    assert result["pairs"][0]["views"] == ["cooccurrence", "acoustic"]
    # Both views group the same tags: neighbourhoods agree completely.
    assert result["pairs"][0]["mean"] == 1.0
    assert set(result["per_tag"]) == set(TAGS)
