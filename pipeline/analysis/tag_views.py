"""Tag embeddings in several views, their projections, clusters, and how far the views agree.

Views (each a vector per tag; cosine similarity is the similarity everywhere):

``cooccurrence``
    gensim Word2Vec (skip-gram) trained on the train clips' tag lists: tags annotated on the
    same clips end up close. The context window covers the whole list and is not shrunk,
    so the order of tags inside a list does not matter. Always available.
``semantic``
    Pretrained word vectors of the tag names (GoogleNews word2vec, GloVe, any word2vec file,
    or a gensim-data name when online): what the words mean. Multi-word and camel-case tags
    are looked up as a phrase first (GoogleNews holds phrases such as ``hip_hop``), then as
    the mean of their words; tags not in the vocabulary are reported and left out.
``acoustic``
    The trained model's output layer: each tag's weight row over the penultimate embedding,
    i.e. the direction in the model's sound space that predicts the tag.
``prediction``
    The model's predicted scores across clips: each tag's vector is its z-scored logit over
    every clip, so cosine similarity is the Pearson correlation of the tags' predicted scores
    (which tags the model hears together, whatever the annotators wrote).

View agreement is the neighbourhood overlap at k: for each tag the share of its k nearest
tags in one view that are also among its k nearest in the other, over the tags both views
hold; 1 means identical neighbourhoods, and ``k / (n - 1)`` is what random neighbours give.
"""

from __future__ import annotations

import logging
import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline.analysis.projection import cosine_neighbors, l2_normalize, tsne_2d, umap_2d
from pipeline.errors import DataFormatError, DownloadError, ParameterError

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

log = logging.getLogger(__name__)

VIEWS: tuple[str, ...] = ("cooccurrence", "semantic", "acoustic", "prediction")
AGREEMENT_K = 5  # neighbourhood size of the view-agreement figure
# Words a phrase may lack in a vectors file without the tag counting as missing (GoogleNews
# dropped these stop words; the content words still carry the meaning).
STOP_WORDS = frozenset({"a", "an", "and", "the", "of", "to", "in", "on", "with", "n"})


@dataclass
class TagView:
    """One view's tag vectors.

    Attributes
    ----------
    name : one of `VIEWS`
    tags : tags the view holds (a subset of the vocabulary, vocabulary order)
    vectors : np.ndarray [shape=(len(tags), d), dtype=float32]
    source : where the vectors come from (a file, a model layer, ...)
    missing : vocabulary tags the view could not place
    details : view-specific facts for tag_views.json (e.g. how each tag was matched)
    """

    name: str
    tags: list[str]
    vectors: np.ndarray
    source: str
    missing: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def _stable_hash(text: str) -> int:
    """A hash that, unlike Python's salted ``hash``, is the same in every process (gensim seeds vectors with it)."""
    return zlib.crc32(text.encode("utf-8"))


# ----------------------------------------------------------------------------- cooccurrence
def cooccurrence_view(tag_lists: list[list[str]], tags: list[str], *, seed: int = 0, dim: int = 32,
                      epochs: int | None = None) -> TagView:
    """Word2Vec (skip-gram) vectors of the tags, trained on clips' tag lists.

    Parameters
    ----------
    tag_lists : each clip's tags (the "sentences"); use the train split's clips
    tags : the vocabulary (order of the output)
    seed : Word2Vec seed; with one worker and a process-independent hash, training is reproducible
    dim : vector size
    epochs : default: enough passes to see about 100,000 tag lists (5 to 200)
    """
    from gensim.models import Word2Vec

    sentences = [list(s) for s in tag_lists if len(s) >= 1]
    if not sentences:
        raise ParameterError("cooccurrence view: no clip has any tag")
    counts = Counter(t for s in sentences for t in s)
    present = [t for t in tags if counts[t] > 0]
    # Fixed seeded order of the lists, so reruns see them identically.
    order = np.random.default_rng(seed).permutation(len(sentences))
    sentences = [sentences[i] for i in order]
    window = max(len(s) for s in sentences)
    if epochs is None:
        epochs = int(np.clip(math.ceil(100_000 / len(sentences)), 5, 200))
    gensim_log = logging.getLogger("gensim")
    level = gensim_log.level
    gensim_log.setLevel(max(level, logging.WARNING))  # gensim logs every epoch at INFO
    try:
        model = Word2Vec(sentences=sentences, vector_size=dim, window=max(window, 1), shrink_windows=False,
                         min_count=1, sample=0, sg=1, negative=5, epochs=epochs, seed=seed, workers=1,
                         hashfxn=_stable_hash)
    finally:
        gensim_log.setLevel(level)
    vectors = np.stack([model.wv[t] for t in present]).astype(np.float32) if present else np.zeros((0, dim), np.float32)
    missing = [t for t in tags if counts[t] == 0]
    if missing:
        log.info("cooccurrence view: %d tags never annotated in the training lists: %s", len(missing), missing)
    return TagView("cooccurrence", present, vectors, f"gensim Word2Vec skip-gram on {len(sentences)} tag lists",
                   missing, {"epochs": epochs, "window": window, "dim": dim})


# ----------------------------------------------------------------------------- semantic
def _looks_like_word2vec_header(first_line: str) -> bool:
    parts = first_line.split()
    return len(parts) == 2 and all(p.isdigit() for p in parts)


def load_word_vectors(spec: str | Path, *, limit: int | None = None) -> tuple[KeyedVectors, str]:
    """Load pretrained word vectors from a file or, when online, a gensim-data name.

    Parameters
    ----------
    spec : a ``.bin`` word2vec file (GoogleNews-vectors-negative300.bin), a word2vec or GloVe
        text file (GloVe's header-less format is detected), a gensim ``.kv`` file, or a
        gensim-data name such as ``glove-wiki-gigaword-100`` (downloads; needs the internet)
    limit : read only the first ``limit`` vectors of a file (GoogleNews is sorted by frequency)

    Returns
    -------
    (vectors, source) where source names the file or dataset
    """
    from gensim.models import KeyedVectors

    path = Path(spec).expanduser()
    if path.is_file():
        try:
            if path.suffix == ".kv":
                return KeyedVectors.load(str(path), mmap="r"), str(path)
            if path.suffix in (".bin", ".gz") and path.name.endswith((".bin", ".bin.gz")):
                return KeyedVectors.load_word2vec_format(str(path), binary=True, limit=limit), str(path)
            with open(path, encoding="utf-8", errors="replace") as fh:
                header = _looks_like_word2vec_header(fh.readline())
            return (KeyedVectors.load_word2vec_format(str(path), binary=False, limit=limit, no_header=not header),
                    str(path))
        except (ValueError, UnicodeDecodeError, EOFError, OSError) as exc:
            raise DataFormatError(f"{path}: not a word-vectors file gensim can read: {exc}") from exc
    if any(sep in str(spec) for sep in ("/", "\\")) or path.suffix in (".bin", ".txt", ".vec", ".kv", ".gz"):
        raise ParameterError(f"--word-vectors: no such file: {spec}")
    import gensim.downloader

    try:
        return gensim.downloader.load(str(spec)), f"gensim-data:{spec}"
    except ValueError as exc:
        raise ParameterError(f"--word-vectors: {spec!r} is neither a file nor a gensim-data name: {exc}") from exc
    except OSError as exc:
        raise DownloadError(f"--word-vectors: cannot download gensim-data {spec!r} (offline?): {exc}") from exc


def tag_words(tag: str) -> list[str]:
    """Split a tag name into words: spaces, ``_``, ``-``, ``/``, ``&`` and camel-case boundaries.

    >>> tag_words("HipHop"), tag_words("no vocals"), tag_words("new-age")
    (['Hip', 'Hop'], ['no', 'vocals'], ['new', 'age'])
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", tag)
    return [w for w in re.split(r"[\s_\-/&]+", spaced) if w]


def _lookup(vectors: KeyedVectors, candidates: list[str]) -> str | None:
    for key in candidates:
        if key in vectors.key_to_index:
            return key
    return None


def _case_variants(word: str) -> list[str]:
    return list(dict.fromkeys([word, word.lower(), word.capitalize(), word.upper()]))


def tag_vector(vectors: KeyedVectors, tag: str) -> tuple[np.ndarray | None, str]:
    """One tag's vector: the phrase if the vocabulary holds it, else the mean of its words.

    Returns ``(vector or None, how)`` where ``how`` says what was matched (``"hip_hop"``,
    ``"mean(no, vocals)"``) or which words are missing.
    """
    words = tag_words(tag)
    if not words:
        return None, "empty tag name"
    phrase = "_".join(words)
    key = _lookup(vectors, [tag, *_case_variants(phrase), "_".join(w.capitalize() for w in words)])
    if key is not None:
        return np.asarray(vectors[key], dtype=np.float32), key
    if len(words) == 1:
        return None, f"{words[0]!r} not in vocabulary"
    found, lacking = [], []
    for word in words:
        key = _lookup(vectors, _case_variants(word))
        if key is not None:
            found.append(key)
        elif word.lower() not in STOP_WORDS:
            lacking.append(word)
    if lacking or not found:
        return None, f"not in vocabulary: {', '.join(lacking or words)}"
    return np.mean([vectors[k] for k in found], axis=0).astype(np.float32), f"mean({', '.join(found)})"


def semantic_view(tags: list[str], vectors: KeyedVectors, source: str) -> TagView:
    """Pretrained word vectors of the tag names; tags the vocabulary lacks are reported as missing."""
    present, rows, matched, missing = [], [], {}, {}
    for tag in tags:
        vec, how = tag_vector(vectors, tag)
        if vec is None:
            missing[tag] = how
        else:
            present.append(tag)
            rows.append(vec)
            matched[tag] = how
    if missing:
        log.info("semantic view: %d of %d tags not in %s: %s", len(missing), len(tags), source, sorted(missing))
    array = np.stack(rows).astype(np.float32) if rows else np.zeros((0, vectors.vector_size), np.float32)
    return TagView("semantic", present, array, source, list(missing),
                   {"matched": matched, "missing_reason": missing, "dim": int(vectors.vector_size)})


# ----------------------------------------------------------------------------- acoustic
def acoustic_view(weights: np.ndarray, tags: list[str], source: str = "classifier weights") -> TagView:
    """The model's output-layer weight rows, one per tag.

    Parameters
    ----------
    weights : np.ndarray [shape=(n_tags, D)]  rows of the final ``nn.Linear(D, n_tags)``
    """
    weights = np.asarray(weights, dtype=np.float32)
    if weights.shape[0] != len(tags):
        raise ParameterError(f"acoustic view: weights have {weights.shape[0]} rows for {len(tags)} tags")
    return TagView("acoustic", list(tags), weights, source, [], {"dim": int(weights.shape[1])})


def prediction_view(probabilities: np.ndarray, tags: list[str], source: str = "predictions.parquet") -> TagView:
    """Each tag's z-scored predicted logit across clips (cosine = correlation of predicted scores).

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_clips, n_tags)]  predicted probabilities
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-6, 1 - 1e-6)
    if p.ndim != 2 or p.shape[1] != len(tags):
        raise ParameterError(f"prediction view: probabilities of shape {p.shape} for {len(tags)} tags")
    logits = np.log(p) - np.log1p(-p)
    std = logits.std(axis=0)
    keep = std > 1e-9  # a tag predicted identically for every clip has no correlation
    z = (logits[:, keep] - logits[:, keep].mean(axis=0)) / std[keep]
    present = [t for t, k in zip(tags, keep) if k]
    missing = [t for t, k in zip(tags, keep) if not k]
    return TagView("prediction", present, z.T.astype(np.float32), source, missing,
                   {"dim": int(p.shape[0]), "n_clips": int(p.shape[0])})


# ----------------------------------------------------------------------------- clusters, agreement
def cluster_vectors(vectors: np.ndarray, *, seed: int = 0, k: int | None = None,
                    max_k: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """KMeans on the L2-normalised rows (cosine geometry), ``k`` chosen by silhouette when not given.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)]
    k : number of clusters; None tries ``ceil(sqrt(n) / 2)`` to ``max_k`` and keeps the best
        silhouette (a window around the usual sqrt(n): silhouette alone tends to pick 2 clusters,
        too coarse to colour a map by)
    max_k : default ``ceil(1.5 * sqrt(n))``, at most ``n - 1``

    Returns
    -------
    labels : np.ndarray [shape=(n,), dtype=int64]  cluster ids numbered by first appearance
    info : {"k": ..., "silhouette": ... or None}
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    x = l2_normalize(vectors)
    n = len(x)
    if n < 3:
        return np.zeros(n, dtype=np.int64), {"k": 1 if n else 0, "silhouette": None}
    # Tags with identical vectors (a view learnt from a handful of clips) cannot be told apart:
    # no more clusters than distinct rows, so KMeans is never asked for empty clusters.
    distinct = len(np.unique(np.round(x, 6), axis=0))
    if k is not None:
        if not 1 <= k <= n:
            raise ParameterError(f"k must be in [1, {n}] for {n} tags, got {k}")
        candidates = [k]
    elif distinct < 2:
        return np.zeros(n, dtype=np.int64), {"k": 1, "silhouette": None}
    else:
        max_k = min(max_k or math.ceil(1.5 * math.sqrt(n)), n - 1, distinct)
        min_k = min(max(2, math.ceil(math.sqrt(n) / 2)), max_k)
        candidates = list(range(min_k, max(max_k, 2) + 1))
    best: tuple[float, np.ndarray, int] | None = None
    for kk in candidates:
        labels = KMeans(n_clusters=kk, n_init=10, random_state=seed).fit_predict(x)
        n_found = len(np.unique(labels))
        score = silhouette_score(x, labels, metric="cosine") if 1 < n_found < n else -1.0
        if best is None or score > best[0]:
            best = (float(score), labels, kk)
    assert best is not None
    score, labels, kk = best
    # Renumber by first appearance so ids are stable for identical partitions.
    _, first = np.unique(labels, return_index=True)
    remap = {old: new for new, old in enumerate(labels[np.sort(first)])}
    return np.array([remap[v] for v in labels], dtype=np.int64), {"k": kk, "silhouette": score}


def neighbour_sets(vectors: np.ndarray, k: int) -> list[set[int]]:
    """Each row's ``k`` nearest other rows (cosine) as a set of row indices."""
    idx, _ = cosine_neighbors(vectors, k)
    return [set(map(int, row)) for row in idx]


def neighbourhood_overlap(a: TagView, b: TagView, k: int = AGREEMENT_K) -> dict[str, Any] | None:
    """Overlap at ``k`` of two views over the tags both hold; None when they share fewer than 3 tags.

    Returns ``{"n_tags", "k", "mean", "chance", "per_tag": {tag: overlap}}``, overlaps in [0, 1].
    """
    common = [t for t in a.tags if t in set(b.tags)]
    if len(common) < 3:
        return None
    k = min(k, len(common) - 1)
    ia = {t: i for i, t in enumerate(a.tags)}
    ib = {t: i for i, t in enumerate(b.tags)}
    na = neighbour_sets(a.vectors[[ia[t] for t in common]], k)
    nb = neighbour_sets(b.vectors[[ib[t] for t in common]], k)
    per_tag = {t: len(na[i] & nb[i]) / k for i, t in enumerate(common)}
    return {"n_tags": len(common), "k": k, "mean": float(np.mean(list(per_tag.values()))),
            "chance": k / (len(common) - 1), "per_tag": per_tag}


def view_agreement(views: dict[str, TagView], k: int = AGREEMENT_K) -> dict[str, Any]:
    """Neighbourhood overlap for every pair of views, per tag and overall.

    Returns ``{"k", "pairs": [{"views": [a, b], "n_tags", "k", "mean", "chance", "per_tag"}],
    "per_tag": {tag: mean overlap over the pairs that hold it}}``.
    """
    names = [v for v in VIEWS if v in views] + [v for v in views if v not in VIEWS]
    pairs, per_tag = [], {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            result = neighbourhood_overlap(views[a], views[b], k)
            if result is None:
                continue
            pairs.append({"views": [a, b], **result})
            for tag, value in result["per_tag"].items():
                per_tag.setdefault(tag, []).append(value)
    return {"k": k, "pairs": pairs, "per_tag": {t: float(np.mean(v)) for t, v in per_tag.items()}}


# ----------------------------------------------------------------------------- everything
@dataclass
class TagViewsResult:
    """What the embed stage writes for tags: npz arrays, the projections table and tag_views.json."""

    views: dict[str, TagView]
    projections: pd.DataFrame
    report: dict[str, Any]

    def npz_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for tag_embeddings.npz: ``<view>`` [n, d] and ``<view>:tags`` names."""
        arrays: dict[str, np.ndarray] = {}
        for name, view in self.views.items():
            arrays[name] = view.vectors.astype(np.float32)
            arrays[f"{name}:tags"] = np.array(view.tags, dtype=str)
        return arrays


PROJECTION_COLUMNS = ("view", "tag", "tsne_x", "tsne_y", "umap_x", "umap_y", "cluster", "frequency")


def build_tag_views(views: list[TagView], tags: list[str], frequency: np.ndarray, *, seed: int = 0,
                    agreement_k: int = AGREEMENT_K, unavailable: dict[str, str] | None = None) -> TagViewsResult:
    """Project, cluster and compare the given views.

    Parameters
    ----------
    views : the views built (an empty view counts as unavailable)
    tags : the full vocabulary
    frequency : np.ndarray [shape=(len(tags),)]  clips annotated with each tag
    unavailable : view name -> why it was not built (e.g. no word vectors given)
    """
    freq = {t: int(f) for t, f in zip(tags, frequency)}
    built = {v.name: v for v in views if len(v.tags) > 0}
    frames, report_views = [], {}
    for name in [*VIEWS, *(v for v in built if v not in VIEWS)]:
        if name not in built:
            given = next((v for v in views if v.name == name), None)
            why = (unavailable or {}).get(name) or ("no tag could be placed" if given else "not built")
            report_views[name] = {"available": False, "reason": why, "source": given.source if given else None,
                                  "missing": given.missing if given else [], **(given.details if given else {})}
            continue
        view = built[name]
        log.info("tag view %s: projecting and clustering %d tags", name, len(view.tags))
        tsne, umap = tsne_2d(view.vectors, seed=seed), umap_2d(view.vectors, seed=seed)
        clusters, info = cluster_vectors(view.vectors, seed=seed)
        frames.append(pd.DataFrame({
            "view": name, "tag": view.tags, "tsne_x": tsne[:, 0], "tsne_y": tsne[:, 1],
            "umap_x": umap[:, 0], "umap_y": umap[:, 1], "cluster": clusters,
            "frequency": [freq.get(t, 0) for t in view.tags]}))
        report_views[name] = {"available": True, "source": view.source, "n_tags": len(view.tags),
                              "dim": int(view.vectors.shape[1]), "missing": view.missing,
                              "clusters": info["k"], "silhouette": info["silhouette"], **view.details}
    projections = (pd.concat(frames, ignore_index=True) if frames
                   else pd.DataFrame({c: pd.Series(dtype=float) for c in PROJECTION_COLUMNS}))
    projections = projections.astype({"view": str, "tag": str, "cluster": np.int64, "frequency": np.int64})
    report = {"views": report_views, "agreement": view_agreement(built, agreement_k), "seed": seed}
    return TagViewsResult(built, projections[list(PROJECTION_COLUMNS)], report)
