"""A synthetic run directory of any size, for the dashboard's benchmark and for development.

``build_synthetic_run(out, n_clips=25863)`` writes a run directory at MagnaTagATune scale in
seconds, without a corpus or a model, through the writers of `pipeline.run.rundir.RunDir` (so
every file is validated against the contract exactly as a real stage's is):

- labels drawn from latent "styles" (so tags co-occur as they do in real annotations), with a
  share of true tags dropped from the annotations, like human taggers do;
- probabilities correlated with the full truth (per-tag ROC-AUC about 0.8-0.97), so the model
  looks right, wrong, and right where the annotation is wrong;
- metrics.json and per_tag.csv computed from those predictions with `pipeline.analysis.metrics` (the
  same functions evaluation uses), thresholds tuned on the validation split;
- taggrams that wander over time around each clip's probabilities, clip embeddings with 2-D
  projections and cosine neighbours, tag views (co-occurrence, acoustic, prediction) with
  projections and clusters, label issues ranked by disagreement;
- a handful of short real audio files (tones and chords, mp3 or wav) shared by all rows, in an
  ``audio/`` folder that is the run's corpus root (audio paths are stored relative to it).

- a real ONNX model with its tagger.json (`pipeline.scoring.tagger.OnnxTagger` loads it): a linear map
  of the log-mel frames, averaged over 0.5 s windows, with random weights, so "Tag a file"
  works end to end (its tags mean nothing).

It is benchmark and development data, never a result: the manifest's ``synthetic`` flag and the
corpus and model names say so. Its train stage lists only history.csv (there is no checkpoint).

Command line: ``python -m benchmarks.synthetic_run OUT [--clips N] [--tags K] [--seed S]``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from pipeline.errors import ParameterError
from pipeline.features.extract import FeatureConfig
from pipeline.io import atomic_path
from pipeline.run import rundir as rd
from pipeline.run.files import INSIDE_FILES
from pipeline.run.metrics import Metrics

log = logging.getLogger(__name__)

MTT_CLIPS = 25863  # MagnaTagATune's clip count: the benchmark's default scale
SAMPLE_RATE = FeatureConfig.sample_rate
HOP_LENGTH = FeatureConfig.hop_length
FEATURES = FeatureConfig().to_dict()
ALL_STAGES: tuple[str, ...] = tuple(rd.STAGE_FILES)
# What this builder can honestly write for each stage: the contract's files, but no network's
# checkpoints or output-layer weights (it has no trained network).
_NO_NETWORK = (rd.CHECKPOINT, rd.LAST_CHECKPOINT, rd.OUTPUT_WEIGHTS, *INSIDE_FILES)
SYNTHETIC_STAGE_FILES: dict[str, tuple[str, ...]] = {
    stage: tuple(f for f in files if f not in _NO_NETWORK) for stage, files in rd.STAGE_FILES.items()}
AUDIO_DIR = "audio"  # inside the run directory: the synthetic corpus root (ignored by the run contract)


def _default_tags(n_tags: int) -> list[str]:
    from pipeline.sources.mtt_tags import MTT_TAGS, TOP50_TAGS

    pool = list(TOP50_TAGS) + [t for t in MTT_TAGS if t not in TOP50_TAGS]
    if n_tags <= len(pool):
        return pool[:n_tags]
    return pool + [f"tag {i}" for i in range(len(pool), n_tags)]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def write_tone(path: Path, seconds: float, freqs: Sequence[float], *, sample_rate: int = SAMPLE_RATE,
               seed: int = 0, silent: bool = False) -> Path:
    """Write a short chord with a pulsing envelope (or silence) as wav or mp3 (by suffix)."""
    n = max(int(round(seconds * sample_rate)), 1)
    t = np.arange(n) / sample_rate
    if silent:
        y = np.zeros(n, dtype=np.float32)
    else:
        rng = np.random.default_rng(seed)
        y = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) / (i + 1) for i, f in enumerate(freqs))
        beat = 0.55 + 0.45 * np.cos(2 * np.pi * (1.5 + seed % 3) * t) ** 2  # a pulse the ear can follow
        fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
        y = (0.25 * y * beat * fade + 0.01 * rng.standard_normal(n)).astype(np.float32)
    suffix = path.suffix.lower()
    if suffix == ".mp3":
        import lameenc

        encoder = lameenc.Encoder()
        encoder.set_bit_rate(32)
        encoder.set_in_sample_rate(sample_rate)
        encoder.set_channels(1)
        encoder.set_quality(7)
        pcm = (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()
        data = encoder.encode(pcm) + encoder.flush()
        with atomic_path(path) as tmp:
            tmp.write_bytes(bytes(data))
    elif suffix in (".wav", ".flac"):
        import soundfile as sf

        with atomic_path(path) as tmp:
            sf.write(tmp, y, sample_rate, subtype="PCM_16", format=suffix[1:].upper())
    else:
        raise ParameterError(f"audio format must be .mp3, .wav or .flac, got {path.name!r}")
    return path


def _labels(rng: np.random.Generator, n: int, k: int, n_styles: int) -> tuple[np.ndarray, np.ndarray]:
    """(style per clip, full truth [n, k]) with MTT-like tag frequencies (about 20% down to 2%)."""
    style = rng.integers(0, n_styles, n)
    freq = 0.02 + 0.18 * np.arange(1, k + 1, dtype=np.float64) ** -0.7
    affinity = rng.normal(0.0, 1.6, (n_styles, k))  # how much each style carries each tag
    logits = np.log(freq / (1 - freq))[None, :] + affinity[style] - 0.8
    truth = (rng.random((n, k)) < _sigmoid(logits)).astype(np.uint8)
    return style, truth


def _split(n: int) -> np.ndarray:
    """MTT's folder split proportions: 12/16 train, 1/16 valid, 3/16 test, interleaved by clip."""
    names = np.array(["train"] * 12 + ["valid"] + ["test"] * 3, dtype=object)
    return names[np.arange(n) % 16]


def _projections(vectors: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two cheap, deterministic 2-D layouts (PCA and a warped PCA) standing in for UMAP and t-SNE."""
    x = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(x[: min(len(x), 5000)], full_matrices=False)
    pcs = x @ vt[:3].T
    pcs /= np.maximum(pcs.std(axis=0), 1e-9)
    umap = pcs[:, :2] * 3.0
    rng = np.random.default_rng(seed)
    tsne = np.tanh(pcs[:, :2] / 1.5) * 20.0 + pcs[:, 2:3] * 2.0 + rng.normal(0, 0.5, (len(x), 2))
    return umap.astype(np.float32), tsne.astype(np.float32)


def _kmeans(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(vectors)))
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(vectors).astype(np.int64)


def build_synthetic_run(out: str | Path, *, n_clips: int = 2000, n_tags: int = 50, tags: Sequence[str] | None = None,
                        seed: int = 0, stages: Sequence[str] = ALL_STAGES, seconds: float = 29.1,
                        frame_rate: float = 2.0, n_audio: int = 4, audio_format: str = "mp3",
                        audio_seconds: float | None = None, embedding_dim: int = 32, neighbors: int = 10,
                        label_dropout: float = 0.15, n_bootstrap: int = 200,
                        audio_files: Sequence[str | Path] | None = None) -> rd.RunDir:
    """Write a synthetic run directory at ``out`` (created or overwritten file by file).

    Parameters
    ----------
    n_clips, n_tags : size of the prediction matrix (``tags`` overrides the MTT-ordered names)
    stages : which stages to write (in contract order); the others are left out, as in a partial run
    seconds : clip duration the taggrams cover (MTT clips are 29.1 s)
    frame_rate : taggram frames per second
    n_audio : distinct audio files written and shared by all rows (clip i plays file i % n_audio)
    audio_format : "mp3" (like MTT) or "wav"
    audio_seconds : length of those files (default ``seconds``)
    audio_files : existing audio files to point the rows at instead (e.g. a few real recordings)
    label_dropout : share of true tags left out of the annotations
    n_bootstrap : resamples of the headline confidence intervals
    """
    tags = list(tags) if tags is not None else _default_tags(n_tags)
    n, k = int(n_clips), len(tags)
    if n < 16:
        raise ParameterError(f"n_clips must be >= 16 (every split needs clips), got {n_clips}")
    if k < 2 or len(set(tags)) != k:
        raise ParameterError(f"need at least 2 distinct tags, got {k}")
    unknown = [s for s in stages if s not in rd.STAGE_FILES]
    if unknown:
        raise ParameterError(f"unknown stage(s) {unknown}; stages are {list(rd.STAGE_FILES)}")
    if audio_format not in ("mp3", "wav"):
        raise ParameterError(f"audio_format must be 'mp3' or 'wav', got {audio_format!r}")
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    run = rd.RunDir(out)
    rng = np.random.default_rng(seed)

    # ---- corpus: labels, annotations with dropped tags, split, audio
    style, full = _labels(rng, n, k, n_styles=8)
    annotated = full * (rng.random((n, k)) >= label_dropout).astype(np.uint8)
    split = _split(n)
    clip_ids = np.array([f"syn{i:06d}" for i in range(n)], dtype=object)
    audio_dir = out / AUDIO_DIR
    if audio_files:
        files = [Path(f).expanduser().resolve() for f in audio_files]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ParameterError(f"audio_files: no such file(s): {', '.join(missing)}")
    else:
        files = []
        for j in range(n_audio):
            root = 110.0 * 2 ** (j * 5 / 12)
            path = audio_dir / f"synthetic-{j:02d}.{audio_format}"
            files.append(write_tone(path, audio_seconds or seconds, (root, root * 1.5, root * 2.0), seed=seed + j))
    corpus_root = Path(os.path.commonpath([f.parent for f in files]))
    names = [f.relative_to(corpus_root).as_posix() for f in files]
    audio_path = np.array([names[i % len(names)] for i in range(n)], dtype=object)

    # ---- model outputs: probabilities correlated with the full truth
    strength = rng.uniform(1.4, 2.9, k)
    bias = rng.uniform(-3.0, -1.8, k)
    style_effect = rng.normal(0, 0.4, (8, k))
    logits = bias + strength * full + style_effect[style] + rng.normal(0, 1.0, (n, k))
    probs = _sigmoid(logits).astype(np.float32)
    # Clip embeddings: a tag-driven part plus noise, so neighbours share tags.
    tag_dirs = rng.normal(0, 1, (k, embedding_dim)).astype(np.float32)
    emb = (full.astype(np.float32) @ tag_dirs) + rng.normal(0, 0.8, (n, embedding_dim)).astype(np.float32)

    split_sizes = {s: int((split == s).sum()) for s in ("train", "valid", "test")}
    run.update_manifest(
        name=out.name, synthetic=True,
        description="Synthetic benchmark / development data: random labels and predictions, no model was trained.",
        corpus={"name": f"synthetic-{n}", "root": str(corpus_root), "source": "synthetic", "labels": {},
                "n_clips": n, "split_sizes": split_sizes},
        tags=tags, split_sizes=split_sizes,
        model={"name": "synthetic", "kwargs": {"seed": seed}, "params": 0, "kind": "synthetic"},
        features=FEATURES,
        config={"synthetic": {"n_clips": n, "n_tags": k, "seed": seed, "seconds": seconds,
                              "frame_rate": frame_rate, "label_dropout": label_dropout}})

    if "train" in stages:
        _write_history(run, rng)
        run.mark_stage("train", SYNTHETIC_STAGE_FILES["train"], synthetic=True, note="no checkpoint: nothing was trained")
    if rd.SCORE_STAGE in stages:
        frame = pd.DataFrame({"clip_id": clip_ids, "split": split, "audio_path": audio_path})
        tag_cols = {}
        for j, tag in enumerate(tags):
            tag_cols[rd.prob_column(tag)] = probs[:, j]
            tag_cols[rd.true_column(tag)] = annotated[:, j]
        run.write_table(rd.PREDICTIONS, pd.concat([frame, pd.DataFrame(tag_cols)], axis=1))
        _write_taggrams(run, clip_ids, logits, seconds, frame_rate, rng)
        run.write_array(rd.CLIP_EMBEDDINGS, emb)
        _write_tagger(run, tags, seed)
        run.mark_stage(rd.SCORE_STAGE, SYNTHETIC_STAGE_FILES[rd.SCORE_STAGE], synthetic=True, n_clips=n,
                       taggram={"mode": "synthetic", "fps": frame_rate, "hop_s": 1.0 / frame_rate})
    if "evaluate" in stages:
        _write_evaluation(run, tags, annotated, probs, split, n_bootstrap, seed)
    if "embed" in stages:
        _write_embed(run, tags, clip_ids, split, full, annotated, probs, emb, tag_dirs, neighbors, seed)
    log.info("synthetic run written to %s (%d clips x %d tags)", out, n, k)
    return run


def _write_history(run: rd.RunDir, rng: np.random.Generator, epochs: int = 30) -> None:
    e = np.arange(1, epochs + 1)
    loss = 0.12 + 0.16 * np.exp(-e / 6) + rng.normal(0, 0.004, epochs)
    roc = 0.90 - 0.20 * np.exp(-e / 5) + rng.normal(0, 0.004, epochs)
    pr = 0.45 - 0.30 * np.exp(-e / 5) + rng.normal(0, 0.006, epochs)
    lr = np.where(e <= 20, 1e-3, np.where(e <= 25, 1e-4, 1e-5))
    history = pd.DataFrame({"epoch": e, "train_loss": loss, "valid_roc_auc": roc, "valid_pr_auc": pr,
                            "lr": lr, "seconds": rng.uniform(40, 50, epochs)})
    run.write_table(rd.HISTORY, history)


def _write_evaluation(run: rd.RunDir, tags: list[str], truth: np.ndarray, probs: np.ndarray, split: np.ndarray,
                      n_bootstrap: int, seed: int) -> None:
    from pipeline.analysis.metrics import evaluate_scores, tune_thresholds

    valid, test = split == "valid", split == "test"
    thresholds = tune_thresholds(truth[valid], probs[valid])
    evaluation = evaluate_scores(truth[test], probs[test], tags, thresholds=thresholds,
                                 n_bootstrap=n_bootstrap, seed=seed)
    run.write_table(rd.PER_TAG, evaluation.per_tag, float_format="%.6g")
    metrics = run.write_metrics(Metrics.from_evaluation(evaluation, split="test", synthetic=True,
                                                        thresholds_tuned_on="valid", bootstrap_seed=seed,
                                                        model="synthetic"))
    run.mark_stage("evaluate", SYNTHETIC_STAGE_FILES["evaluate"], synthetic=True, split="test")
    run.update_manifest(metrics=metrics)


def _write_taggrams(run: rd.RunDir, clip_ids: np.ndarray, logits: np.ndarray, seconds: float,
                    frame_rate: float, rng: np.random.Generator, chunk: int = 2048) -> None:
    """Frame-level activations: each clip's logits plus a slow random walk over time."""
    n, k = logits.shape
    frames = max(1, int(round(seconds * frame_rate)))
    # Vary the clip lengths a little (MTT has a few short clips).
    n_frames = np.full(n, frames, dtype=np.int64)
    short = rng.random(n) < 0.01
    n_frames[short] = np.maximum(1, (frames * rng.uniform(0.3, 0.9, short.sum())).astype(np.int64))
    offsets = np.concatenate([[0], np.cumsum(n_frames)[:-1]])
    out = np.empty((int(n_frames.sum()), k), dtype=np.float16)
    for start in tqdm(range(0, n, chunk), desc="synthetic taggrams", unit="chunk", disable=n < 4 * chunk):
        stop = min(start + chunk, n)
        walk = np.cumsum(rng.normal(0, 0.45, (stop - start, frames, k)), axis=1)
        walk -= walk.mean(axis=1, keepdims=True)
        block = 1.0 / (1.0 + np.exp(-(logits[start:stop, None, :] + walk)))
        for i in range(start, stop):
            out[offsets[i]:offsets[i] + n_frames[i]] = block[i - start, : n_frames[i]]
    run.write_array(rd.TAGGRAMS, out)
    run.write_table(rd.TAGGRAMS_INDEX, pd.DataFrame({"clip_id": clip_ids, "offset": offsets, "n_frames": n_frames}))


ONNX_OPSET = 17
TAGGER_CHUNK_FRAMES = 188  # 3 s of 62.5 frames a second
TAGGER_POOL = 32  # input frames per output frame (0.51 s)


def _write_tagger(run: rd.RunDir, tags: list[str], seed: int) -> None:
    """A real (random-weight) ONNX tagger and its tagger.json, in `pipeline.scoring.tagger`'s format.

    Graph: features (B, n_mels, T) -> W @ x (B, n_tags, T) -> average over windows of
    `TAGGER_POOL` frames -> frame_logits (B, T', n_tags); logits = their mean over time.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from pipeline.features.extract import FeatureConfig, Normalizer
    from pipeline.scoring.tagger import INPUT_NAME, OUTPUT_NAMES, TAGGER_FORMAT, plan_taggram

    features = FeatureConfig.from_dict(FEATURES)
    rng = np.random.default_rng(seed + 1)
    k = len(tags)
    weights = rng.normal(0, 0.12, (k, features.n_mels)).astype(np.float32)
    bias = rng.uniform(-3.0, 0.0, (1, 1, k)).astype(np.float32)
    logits, frame_logits = OUTPUT_NAMES  # (B, n_tags), (B, T', n_tags)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["W", INPUT_NAME], ["projected"]),
         helper.make_node("AveragePool", ["projected"], ["pooled"], kernel_shape=[TAGGER_POOL], strides=[TAGGER_POOL]),
         helper.make_node("Transpose", ["pooled"], ["frames"], perm=[0, 2, 1]),
         helper.make_node("Add", ["frames", "b"], [frame_logits]),
         helper.make_node("ReduceMean", [frame_logits], [logits], axes=[1], keepdims=0)],
        "synthetic_linear_tagger",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", features.n_mels, "time"])],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["batch", k]),
         helper.make_tensor_value_info(frame_logits, TensorProto.FLOAT, ["batch", "frames", k])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
                              producer_name="benchmarks.synthetic_run")
    model.ir_version = 8  # readable by every onnxruntime this project supports
    onnx.checker.check_model(model)
    with atomic_path(run / rd.ONNX_MODEL) as tmp:
        tmp.write_bytes(model.SerializeToString())
    plan = plan_taggram(TAGGER_POOL, chunk_frames=TAGGER_CHUNK_FRAMES, input_fps=features.frames_per_second)
    run.write_json(rd.TAGGER, {
        "format": TAGGER_FORMAT, "onnx": rd.ONNX_MODEL, "onnx_error": None, "model_name": "synthetic",
        "synthetic": True, "tags": list(tags), "features": features.to_dict(),
        "normalizer": Normalizer("per_spec").to_dict(), "chunk_frames": TAGGER_CHUNK_FRAMES, "aggregate": "mean",
        "taggram": plan.to_dict(), "input": INPUT_NAME, "outputs": list(OUTPUT_NAMES)})


def _write_embed(run: rd.RunDir, tags: list[str], clip_ids: np.ndarray, split: np.ndarray, full: np.ndarray,
                 annotated: np.ndarray, probs: np.ndarray, emb: np.ndarray, tag_dirs: np.ndarray, n_neighbors: int,
                 seed: int) -> None:
    from pipeline.analysis.projection import cosine_neighbors
    from pipeline.analysis.tag_views import TagView, view_agreement

    n, k = full.shape
    umap, tsne = _projections(emb, seed)
    run.write_table(rd.CLIP_PROJECTIONS, pd.DataFrame({
        "clip_id": clip_ids, "split": split, "umap_x": umap[:, 0], "umap_y": umap[:, 1],
        "tsne_x": tsne[:, 0], "tsne_y": tsne[:, 1]}))
    idx, sims = cosine_neighbors(emb, min(n_neighbors, n - 1))
    kk = idx.shape[1]
    run.write_table(rd.CLIP_NEIGHBORS, pd.DataFrame({
        "clip_id": np.repeat(clip_ids, kk), "rank": np.tile(np.arange(1, kk + 1), n),
        "neighbor_id": clip_ids[idx.ravel()], "similarity": sims.ravel()}))

    # Tag views: co-occurrence (PMI + SVD of the annotations), acoustic (the tag directions),
    # prediction (correlation of predicted logits). No semantic view: no word vectors are given.
    a = annotated.astype(np.float64)
    counts = a.T @ a + 1.0
    total = counts.sum()
    pmi = np.log(counts * total / np.outer(counts.sum(1), counts.sum(0)))
    u, s, _ = np.linalg.svd(pmi)
    views = {
        "cooccurrence": TagView("cooccurrence", list(tags), (u[:, :16] * s[:16]).astype(np.float32),
                                "synthetic: PMI + SVD of the annotations"),
        "acoustic": TagView("acoustic", list(tags), tag_dirs, "synthetic: random tag directions"),
    }
    logit = np.log(np.clip(probs, 1e-6, 1 - 1e-6)) - np.log1p(-np.clip(probs, 1e-6, 1 - 1e-6))
    z = (logit - logit.mean(0)) / np.maximum(logit.std(0), 1e-9)
    views["prediction"] = TagView("prediction", list(tags), z.T[:, : min(n, 4096)].astype(np.float32),
                                  "synthetic: predicted logits across clips")
    frequency = annotated.sum(axis=0).astype(np.int64)
    frames, report = [], {}
    n_clusters = max(2, min(8, int(math.sqrt(k))))
    for name, view in views.items():
        v = view.vectors / np.maximum(np.linalg.norm(view.vectors, axis=1, keepdims=True), 1e-9)
        umap_t, tsne_t = _projections(v, seed)
        clusters = _kmeans(v, n_clusters, seed)
        frames.append(pd.DataFrame({"view": name, "tag": view.tags, "tsne_x": tsne_t[:, 0], "tsne_y": tsne_t[:, 1],
                                    "umap_x": umap_t[:, 0], "umap_y": umap_t[:, 1], "cluster": clusters,
                                    "frequency": frequency}))
        report[name] = {"available": True, "source": view.source, "n_tags": k, "dim": int(view.vectors.shape[1]),
                        "missing": [], "clusters": n_clusters, "silhouette": None}
    report["semantic"] = {"available": False, "reason": "synthetic run: no word vectors given", "source": None,
                          "missing": list(tags)}
    run.write_arrays(rd.TAG_EMBEDDINGS, **{name: v.vectors for name, v in views.items()},
             **{f"{name}:tags": np.array(v.tags, dtype=str) for name, v in views.items()})
    run.write_table(rd.TAG_PROJECTIONS, pd.concat(frames, ignore_index=True))
    run.write_json(rd.TAG_VIEWS, {"views": report, "agreement": view_agreement(views), "seed": seed,
                                    "synthetic": True})

    # Label issues: confident disagreements between annotation and prediction, on the
    # out-of-sample (valid and test) clips as the embed stage does.
    score = np.abs(annotated.astype(np.float32) - probs)
    score[~np.isin(split, ("valid", "test"))] = 0.0
    flat = np.flatnonzero(score.ravel() >= 0.5)
    top = flat[np.argsort(-score.ravel()[flat], kind="stable")][: max(50, n * k // 50)]
    rows, cols = np.divmod(top, k)
    ann = annotated[rows, cols]
    run.write_table(rd.LABEL_ISSUES, pd.DataFrame({
        "clip_id": clip_ids[rows], "split": split[rows], "tag": np.array(tags, dtype=object)[cols],
        "annotated": ann.astype(np.int64), "probability": probs[rows, cols],
        "score": score[rows, cols], "rank": np.arange(1, len(top) + 1),
        "kind": np.where(ann == 1, "wrong", "missing"), "flagged": score[rows, cols] >= 0.8}))
    run.mark_stage("embed", SYNTHETIC_STAGE_FILES["embed"], synthetic=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.synthetic_run",
                                     description="Write a synthetic run directory (benchmark / development data).")
    parser.add_argument("out", type=Path, help="run directory to write (e.g. data/runs/synthetic)")
    parser.add_argument("--clips", type=int, default=2000, help="number of clips (MagnaTagATune: 25863)")
    parser.add_argument("--tags", type=int, default=50, help="number of tags (MTT's top-50 names first)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--stages", nargs="+", default=list(ALL_STAGES), choices=list(ALL_STAGES),
                        help="stages to write (leave some out for a partial run)")
    parser.add_argument("--audio-format", choices=("mp3", "wav"), default="mp3", help="format of the audio files")
    parser.add_argument("--audio", type=Path, nargs="+", default=None, metavar="FILE",
                        help="existing audio files for the rows to play instead of generated tones")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build_synthetic_run(args.out, n_clips=args.clips, n_tags=args.tags, seed=args.seed, stages=args.stages,
                        audio_format=args.audio_format, audio_files=args.audio)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
