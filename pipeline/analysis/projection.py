"""Seeded 2-D projections (t-SNE, UMAP) and cosine nearest neighbours, shared by clips and tags.

Every projection is reproducible: the same vectors and seed give identical coordinates.
Vectors are L2-normalised first, so the Euclidean geometry both methods work in ranks
neighbours exactly as cosine similarity does (the similarity used everywhere else).

Cost (measured on one core, see docs/benchmarks.md): UMAP with a fixed ``random_state`` runs
single-threaded (umap-learn's price for reproducibility); t-SNE grows faster than UMAP
with the number of points, so above `TSNE_MAX_POINTS` points the caller skips it unless
asked. Inputs wider than ``pca_dims`` are reduced with a seeded PCA first (the usual
recipe for t-SNE on thousands of clips).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from pipeline.errors import ParameterError

log = logging.getLogger(__name__)

TSNE_MAX_POINTS = 30_000  # above this many points t-SNE is skipped unless forced (minutes of CPU time)
PCA_DIMS = 50  # reduce wider inputs to this many principal components before projecting


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero).

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)]
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _check_vectors(vectors: np.ndarray, name: str = "vectors") -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise ParameterError(f"{name} must be 2-D (n, d), got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ParameterError(f"{name} contains NaN or infinite values")
    return vectors


def pca_reduce(vectors: np.ndarray, n_components: int = PCA_DIMS, *, seed: int = 0) -> np.ndarray:
    """Seeded PCA to at most ``n_components`` dimensions (unchanged when already narrower)."""
    vectors = _check_vectors(vectors)
    n, d = vectors.shape
    n_components = min(n_components, n, d)
    if d <= n_components:
        return vectors
    from sklearn.decomposition import PCA

    return PCA(n_components=n_components, random_state=seed, svd_solver="randomized").fit_transform(vectors)


def _principal_coords(x: np.ndarray) -> np.ndarray:
    """Coordinates of the rows on their first two principal axes [n, 2] (zero where an axis is lacking)."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = np.zeros((len(x), 2))
    coords = centred @ vt[:2].T
    out[:, :coords.shape[1]] = coords
    return out


def _prepare(vectors: np.ndarray, pca_dims: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Normalised, PCA-reduced rows, or (rows, layout) for fewer than 4 points, where t-SNE and UMAP
    are undefined and the principal axes serve instead."""
    x = l2_normalize(_check_vectors(vectors))
    if len(x) < 4:
        return x, _principal_coords(x).astype(np.float32)
    return pca_reduce(x, pca_dims, seed=seed), None


def tsne_2d(vectors: np.ndarray, *, seed: int = 0, perplexity: float | None = None,
            pca_dims: int = PCA_DIMS) -> np.ndarray:
    """Seeded t-SNE of the (L2-normalised) rows into 2-D.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)]
    seed : random state of PCA and t-SNE (same seed, same coordinates)
    perplexity : default ``min(30, (n - 1) / 3)``, kept valid for small ``n``
    pca_dims : reduce to this many components first when ``d`` is larger

    Returns
    -------
    np.ndarray [shape=(n, 2), dtype=float32]
    """
    x, layout = _prepare(vectors, pca_dims, seed)
    if layout is not None:
        return layout
    from sklearn.manifold import TSNE

    n = len(x)
    if perplexity is None:
        perplexity = min(30.0, (n - 1) / 3.0)
    if not 0 < perplexity < n:
        raise ParameterError(f"perplexity must be in (0, {n}) for {n} points, got {perplexity}")
    tsne = TSNE(n_components=2, perplexity=perplexity, init=_tsne_init(x, seed), learning_rate="auto",
                random_state=seed, method="barnes_hut" if n > 200 else "exact")
    return tsne.fit_transform(x).astype(np.float32)


def _tsne_init(x: np.ndarray, seed: int) -> np.ndarray:
    """PCA initialisation (keeps the global layout, as in scikit-learn's ``init="pca"``) plus seeded jitter.

    Plain PCA initialisation is deterministic, which would make the seed meaningless; a
    jitter of a tenth of the initial spread lets another seed give another, equally valid
    layout while the same seed gives identical coordinates.
    """
    init = _principal_coords(x)
    scale = np.std(init[:, 0]) or 1.0
    init = init / scale * 1e-4  # scikit-learn's initial spread
    init += np.random.default_rng(seed).normal(scale=1e-5, size=init.shape)
    return init.astype(np.float32)


def umap_2d(vectors: np.ndarray, *, seed: int = 0, n_neighbors: int | None = None,
            min_dist: float = 0.1, pca_dims: int = PCA_DIMS) -> np.ndarray:
    """Seeded UMAP of the (L2-normalised) rows into 2-D.

    Setting ``random_state`` makes umap-learn run single-threaded; that is the price of
    identical coordinates for the same seed.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)]
    seed : random state (same seed, same coordinates)
    n_neighbors : default ``min(15, n - 1)``

    Returns
    -------
    np.ndarray [shape=(n, 2), dtype=float32]
    """
    x, layout = _prepare(vectors, pca_dims, seed)
    if layout is not None:
        return layout
    import umap

    n = len(x)
    if n_neighbors is None:
        n_neighbors = min(15, n - 1)
    if not 2 <= n_neighbors < n:
        raise ParameterError(f"n_neighbors must be in [2, {n - 1}] for {n} points, got {n_neighbors}")
    # Spectral initialisation fails on very small or disconnected graphs; random init is fine there.
    init = "spectral" if n > 2 * n_neighbors else "random"
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, metric="euclidean",
                        init=init, random_state=seed, n_jobs=1)
    with warnings.catch_warnings():
        # umap warns that random_state disables parallelism, and about tiny graphs; both expected here.
        warnings.simplefilter("ignore", UserWarning)
        coords = reducer.fit_transform(x)
    return np.asarray(coords, dtype=np.float32)


def project_2d(vectors: np.ndarray, *, seed: int = 0, tsne: bool | None = None,
               tsne_max_points: int = TSNE_MAX_POINTS) -> dict[str, np.ndarray | None]:
    """UMAP and t-SNE coordinates of the rows.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)]
    tsne : True forces t-SNE, False skips it, None runs it when ``n <= tsne_max_points``

    Returns
    -------
    dict with ``"umap"`` [shape=(n, 2)] and ``"tsne"`` [shape=(n, 2)] or None when skipped
    """
    n = len(vectors)
    run_tsne = n <= tsne_max_points if tsne is None else tsne
    if tsne is None and not run_tsne:
        log.info("skipping t-SNE for %d points (more than %d); pass tsne=True to force", n, tsne_max_points)
    return {"umap": umap_2d(vectors, seed=seed), "tsne": tsne_2d(vectors, seed=seed) if run_tsne else None}


def nearest_to_vector(embeddings: np.ndarray, vector: np.ndarray, k: int = 10,
                      exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``embeddings`` most cosine-similar to ``vector`` (pure numpy).

    Parameters
    ----------
    embeddings : np.ndarray [shape=(n, d)]
    vector : np.ndarray [shape=(d,)]
    k : number of neighbours (fewer when ``n`` is smaller)
    exclude : a row index to leave out (the query's own row)

    Returns
    -------
    indices : np.ndarray [shape=(k,), dtype=int64]  most similar first
    similarities : np.ndarray [shape=(k,), dtype=float32]  cosine similarity in [-1, 1]
    """
    embeddings = np.asarray(embeddings)
    vector = np.asarray(vector, dtype=np.float64).reshape(-1)
    if embeddings.ndim != 2 or embeddings.shape[1] != vector.shape[0]:
        raise ParameterError(f"vector has {vector.shape[0]} dimensions but embeddings have shape {embeddings.shape}")
    if k < 1:
        raise ParameterError(f"k must be >= 1, got {k}")
    sims = l2_normalize(embeddings) @ l2_normalize(vector[None, :])[0]
    if exclude is not None:
        sims[exclude] = -np.inf
    k = min(k, len(sims) - (exclude is not None))
    top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
    # Stable tie-break by row index so the order is reproducible.
    order = top[np.lexsort((top, -sims[top]))]
    return order.astype(np.int64), sims[order].astype(np.float32)


def cosine_neighbors(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows by cosine similarity (itself excluded).

    Uses scikit-learn's brute-force `NearestNeighbors` (exact, chunked over rows).

    Parameters
    ----------
    vectors : np.ndarray [shape=(n, d)]
    k : neighbours per row; at most ``n - 1``

    Returns
    -------
    indices : np.ndarray [shape=(n, k), dtype=int64]  most similar first
    similarities : np.ndarray [shape=(n, k), dtype=float32]
    """
    x = l2_normalize(_check_vectors(vectors)).astype(np.float32)  # float32 halves the cost of the search
    n = len(x)
    if not 1 <= k <= n - 1:
        raise ParameterError(f"k must be in [1, {n - 1}] for {n} vectors, got {k}")
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(x)
    dist, idx = nn.kneighbors(x)
    # Drop each row's own index (usually first, but not always when vectors are duplicated).
    out_idx = np.empty((n, k), dtype=np.int64)
    out_sim = np.empty((n, k), dtype=np.float32)
    for i in range(n):
        keep = idx[i] != i
        row_idx, row_dist = idx[i][keep][:k], dist[i][keep][:k]
        out_idx[i], out_sim[i] = row_idx, 1.0 - row_dist
    return out_idx, out_sim
