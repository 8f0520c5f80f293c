"""The score stage: every clip of a corpus scored once by a run's model, and the exported tagger.

``python -m pipeline score RUN`` scores the run's own corpus in place; ``python -m pipeline score
RUN --corpus DIR --out NEW_RUN`` scores any corpus with the run's model into a new run folder
(`prepare_scored_copy`). Either way it writes, from one pass per clip (`pipeline.scoring.network`):

- ``predictions.parquet``: one row per clip that has features (clips whose audio failed to
  decode are listed in the stage's manifest entry): ``clip_id``, ``split``, ``audio_path``
  (relative to the corpus root), ``prob:<tag>`` (float32 in [0, 1]) and ``true:<tag>`` (uint8)
  for each of the model's tags the corpus labels (``labelled_tags`` in the stage entry): under its
  own name, or a name it maps onto across vocabularies (`pipeline.sources.vocab.shared_tags`: MTT's
  "woman" scored against the demo's merged "female"), recorded as ``tag_map`` (model tag -> corpus tag);
- ``taggrams.npy`` (float16 [total_frames, n_tags]) and ``taggrams_index.parquet`` (``clip_id``,
  ``offset``, ``n_frames``): taggrams by shift and stitch (`pipeline.scoring.taggram`), the plan
  recorded under ``taggram``;
- ``clip_embeddings.npy`` (float32 [n_clips, D], rows of predictions.parquet): the mean over a
  clip's chunks of the penultimate layer (``model.embed``); a classical baseline's clips get
  their predicted tag logits; and ``output_weights.npy`` (the output layer's rows, [n_tags, D]);
- ``model.onnx`` and ``tagger.json`` for the torch-free tagger (`pipeline.scoring.export`).

Evaluate and embed read these files and run no network, so every number on every page comes
from the same scores.

Why torch, not ONNX Runtime, is the scoring path: torch runs on CUDA (or MPS) when present,
which matters at MagnaTagATune scale, and it gives the penultimate embedding of every model of
the zoo (the exported graph has only the logits and frame logits); one pass over the corpus
now replaces the three network passes of predict, evaluate and embed, so the CPU speed-up ONNX
Runtime has on a single pass (docs/benchmarks.md, "Tagging speed") no longer pays for a second
path. The ONNX model stays for ``python -m pipeline tag`` and the dashboard, which must start
without torch; the export is checked against torch on two input shapes when it is written.

Idempotence and repair: the stage entry keeps a key (checkpoint digest, corpus root, options)
and the size and SHA-256 of every file it wrote. A rerun whose key matches and whose files
all still match their digests does nothing; a file that is missing, truncated, empty or
altered (a broken model.onnx included) is reported and the stage recomputed. Recomputing
forgets the evaluate and embed stages first, since they were built from the old scores.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ParameterError, RunDirError
from pipeline.io import atomic_path, sha256_file
from pipeline.run import rundir as rd
from pipeline.scoring.chunks import check_aggregate
from pipeline.scoring.inference import (
    BASELINE_FILE,
    DEFAULT_TAGGRAM_HOP_S,
    RunModel,
    feature_cache,
    is_baseline_checkpoint,
    load_checkpoint,
    load_run,
)
from pipeline.scoring.tagger import INPUT_NAME, OUTPUT_NAMES, TAGGER_FORMAT
from pipeline.scoring.taggram import TaggramPlan
from pipeline.sources.corpus import Corpus, corpus_record
from pipeline.sources.loader import corpus_from_record, load_corpus
from pipeline.sources.vocab import shared_tags

log = logging.getLogger(__name__)

STAGE = "score"
DOWNSTREAM = ("evaluate", "embed")  # stages built from the scores, forgotten when they are recomputed
DEFAULT_BATCH_CLIPS = 16  # clips of equal length per forward pass
ORIGIN_KEY = "origin"  # manifest field of a run made by scoring another run's model on a corpus


def file_digests(run: rd.RunDir, files: list[str]) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of each of ``files`` (what a later run checks them against)."""
    return {f: {"size": (run / f).stat().st_size, "sha256": sha256_file(run / f)} for f in files}


def damaged_files(run: rd.RunDir, entry: dict[str, Any]) -> list[str]:
    """The stage's files that are missing or differ from the size and digest it recorded, with why."""
    problems = []
    recorded = entry.get("checksums") or {}
    for name in entry.get("files", []):
        path = run / name
        want = recorded.get(name)
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif want is None:
            problems.append(f"{name} has no recorded digest")
        elif path.stat().st_size != want["size"]:
            problems.append(f"{name} has {path.stat().st_size} bytes, {want['size']} were written")
        elif sha256_file(path) != want["sha256"]:
            problems.append(f"{name} differs from what was written (SHA-256)")
    return problems


# --------------------------------------------------------------------------------------------
# a model scored on another corpus: a new run folder


def prepare_scored_copy(source_dir: str | Path, corpus_dir: str | Path, out_dir: str | Path, *,
                        tags_csv: str | Path | None = None) -> rd.RunDir:
    """A new run folder holding ``source_dir``'s model, to be scored on the corpus in ``corpus_dir``.

    Copies the checkpoint (and a baseline's estimator, and the training history) and writes a
    manifest recording the corpus and where the model came from (``origin``: run, checkpoint
    SHA-256). The corpus keeps every tag and clip it has (no top-N) so that its labels can be
    matched to the model's tags by name (`pipeline.sources.vocab.shared_tags`). An ``out_dir``
    made earlier from the same model and corpus is reused; any other existing folder is refused.
    """
    from pipeline.sources.labels import LabelConfig

    source = rd.RunDir(source_dir)
    source.require("train")
    out = rd.RunDir(out_dir)
    if out.path.resolve() == source.path.resolve():
        raise ParameterError(f"--out {out.path} is the run itself; without --corpus the run's own corpus is scored")
    if out.path.exists() and not out.path.is_dir():
        raise ParameterError(f"--out {out.path} is a file, not a folder")
    checkpoint_sha = sha256_file(source / rd.CHECKPOINT)
    # Every tag (matched to the model's by name) and every clip: a clip without any of the model's tags
    # is a negative of each, as in musicnn's own MTT evaluation, whose test list keeps such clips.
    labels = LabelConfig(top_n=None, drop_untagged=False)
    corpus = load_corpus(corpus_dir, labels, tags_csv=tags_csv)
    origin = {"run": str(source.path.resolve()), "name": source.name, "checkpoint_sha256": checkpoint_sha}
    if out.exists():
        manifest = out.manifest()
        same = (manifest.get(ORIGIN_KEY, {}).get("checkpoint_sha256") == checkpoint_sha
                and str(manifest.get("corpus", {}).get("root")) == str(corpus.root))
        if not same:
            raise RunDirError(f"--out {out.path} already holds another run; choose a new folder or delete it")
        if out.stage_done("train"):
            return out
        # else a copy killed before it was recorded: copy again
    elif out.path.is_dir() and any(out.path.iterdir()):
        raise ParameterError(f"--out {out.path} is a folder that is not empty and not a run; choose a new folder")
    ckpt = load_checkpoint(source.path)  # refuses a broken checkpoint before anything is written
    files = [rd.CHECKPOINT] + [f for f in (rd.HISTORY, BASELINE_FILE) if (source / f).is_file()]
    if is_baseline_checkpoint(ckpt) and BASELINE_FILE not in files:
        raise RunDirError(f"{source.path}: baseline run without {BASELINE_FILE}; retrain it")
    out.path.mkdir(parents=True, exist_ok=True)
    for name in files:
        with atomic_path(out / name) as tmp:
            shutil.copyfile(source / name, tmp)
    manifest = source.manifest()
    keep = {k: v for k, v in manifest.items()
            if k not in ("schema_version", "name", "stages", "metrics", "corpus", "split_sizes", ORIGIN_KEY)}
    out.update_manifest(**keep, corpus=corpus_record(corpus, labels), split_sizes=corpus.split_sizes(),
                        **{ORIGIN_KEY: origin})
    out.mark_stage("train", tuple(files), copied_from=origin)
    log.info("%s: %s's model, to score %d clips of %s", out.path, source.name, len(corpus), corpus.root)
    return out


# --------------------------------------------------------------------------------------------
# the writes of the stage (each atomic)


class TaggramWriter:
    """taggrams.npy laid out from the clips' lengths and filled through a memory map, batch by batch.

    Each clip's taggram length (``ceil(T / hop)``) is known from the cache before any model
    runs, so MagnaTagATune's taggrams never sit in memory all at once. Use it as a context
    manager: the file is moved into place only when the block completes.
    """

    def __init__(self, path: Path, n_frames: np.ndarray, n_tags: int) -> None:
        self.path, self.n_tags = path, n_tags
        self.offsets = np.concatenate([[0], np.cumsum(n_frames)[:-1]]).astype(np.int64)
        self.n_frames = n_frames
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> TaggramWriter:
        tmp = self._stack.enter_context(atomic_path(self.path))
        self.array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                               shape=(int(self.n_frames.sum()), self.n_tags))
        return self

    def put(self, row: int, taggram: np.ndarray) -> None:
        self.array[self.offsets[row]:self.offsets[row] + self.n_frames[row]] = taggram

    def __exit__(self, *exc: Any) -> bool | None:
        self.array.flush()
        del self.array  # close the memory map before the file is moved (or removed)
        return self._stack.__exit__(*exc)


def write_taggram_index(run: rd.RunDir, clip_ids: list[str], writer: TaggramWriter) -> None:
    import pandas as pd

    run.write_table(rd.TAGGRAMS_INDEX,
                    pd.DataFrame({"clip_id": clip_ids, "offset": writer.offsets, "n_frames": writer.n_frames}))


def write_predictions(run: rd.RunDir, corpus: Corpus, rows: np.ndarray, probs: np.ndarray, tags: list[str],
                      tag_map: dict[str, str]) -> None:
    """predictions.parquet: ids, split, audio path relative to the corpus root, probabilities, annotations.

    ``tag_map`` (model tag -> corpus tag) says which corpus column is each labelled model tag's truth.
    """
    import pandas as pd

    columns: dict[str, Any] = {
        "clip_id": [corpus.clip_ids[i] for i in rows],
        "split": [str(corpus.split[i]) for i in rows],
        "audio_path": [corpus.rel_paths[i] for i in rows],
    }
    for j, tag in enumerate(tags):
        columns[rd.prob_column(tag)] = np.clip(probs[:, j], 0.0, 1.0).astype(np.float32)
    for tag in (t for t in tags if t in tag_map):
        columns[rd.true_column(tag)] = corpus.labels[rows, corpus.tags.index(tag_map[tag])].astype(np.uint8)
    run.write_table(rd.PREDICTIONS, pd.DataFrame(columns))


def write_embeddings(run: rd.RunDir, embeddings: np.ndarray, output_weights: np.ndarray | None) -> None:
    """clip_embeddings.npy and (for a network) output_weights.npy."""
    run.write_array(rd.CLIP_EMBEDDINGS, embeddings.astype(np.float32))
    if output_weights is not None:
        run.write_array(rd.OUTPUT_WEIGHTS, output_weights.astype(np.float32))


def write_tagger(run: rd.RunDir, run_model: RunModel, *, plan: TaggramPlan, aggregate: str,
                 checkpoint_sha256: str) -> dict[str, Any]:
    """model.onnx (checked against torch) and tagger.json; returns the export's facts for the manifest."""
    from pipeline.scoring.export import export_onnx

    assert run_model.model is not None
    tagger: dict[str, Any] = {
        "format": TAGGER_FORMAT, "onnx": None, "onnx_error": None, "model_name": run_model.checkpoint["model_name"],
        "tags": run_model.tags, "features": run_model.features.to_dict(),
        "normalizer": run_model.normalizer.to_dict(), "chunk_frames": run_model.chunk_frames,
        "chunk_tail": run_model.chunk_tail, "aggregate": aggregate, "taggram": plan.to_dict(), "input": INPUT_NAME, "outputs": list(OUTPUT_NAMES),
        "checkpoint_sha256": checkpoint_sha256,
    }
    try:
        exported: dict[str, Any] = export_onnx(run_model.model, run / rd.ONNX_MODEL, n_bins=run_model.features.n_bins,
                                               chunk_frames=run_model.chunk_frames)
        tagger["onnx"] = rd.ONNX_MODEL
        log.info("exported %s with the %s exporter (max |ONNX - torch| = %.1e)", rd.ONNX_MODEL,
                 exported["exporter"], exported["max_abs_diff"])
    except RuntimeError as exc:
        # Tagging then falls back to the torch checkpoint (slower start); everything else stands.
        (run / rd.ONNX_MODEL).unlink(missing_ok=True)
        tagger["onnx_error"] = str(exc)
        exported = {"error": str(exc)}
        log.warning("could not export %s to ONNX: %s", run_model.checkpoint["model_name"], exc)
    run.write_json(rd.TAGGER, tagger)
    return exported


# --------------------------------------------------------------------------------------------
# the pass


def _failed_clips(corpus: Corpus, cache: Any, missing: np.ndarray) -> list[dict[str, str]]:
    """Clip id, audio path and (where the cache recorded it) reason of each clip without features."""
    failures = cache.failures  # clip_id, path, reason, source
    reasons = dict(zip(failures["clip_id"], failures["reason"])) if len(failures) else {}
    return [{"clip_id": corpus.clip_ids[i], "audio_path": corpus.rel_paths[i],
             "reason": str(reasons.get(corpus.clip_ids[i], "no features (see the feature cache's report)"))}
            for i in missing]


def score_cache(run: rd.RunDir, run_model: RunModel, cache: Any, clip_ids: list[str], plan: TaggramPlan | None, *,
                aggregate: str, batch_clips: int, progress: bool, recorder: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (n, n_tags) and embeddings (n, D) of ``clip_ids``; taggrams go into taggrams.npy + index.

    Clips of equal length share a forward pass; each batch goes once through
    `RunModel.score` (chunk probabilities and embeddings, and the taggram passes). A
    ``recorder`` (`pipeline.inspect.precompute.ChannelRecorder`) is told each batch's rows.
    """
    from tqdm.auto import tqdm

    lengths = np.array([cache.n_frames(c) for c in clip_ids], dtype=np.int64)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, length in enumerate(lengths):
        by_length[int(length)].append(i)
    probs: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    writer: TaggramWriter | None = None
    if plan is not None:
        writer = TaggramWriter(run / rd.TAGGRAMS, np.array([plan.n_frames(t) for t in lengths], dtype=np.int64),
                               len(run_model.tags))
    bar = tqdm(total=len(clip_ids), desc="score", unit="clip", disable=not progress)
    with writer if writer is not None else contextlib.nullcontext(), bar:
        for length in sorted(by_length):
            group = by_length[length]
            n_chunks = max(1, -(-length // max(run_model.chunk_frames, 1)))
            for start in range(0, len(group), batch_clips):
                rows = group[start:start + batch_clips]
                feats = [np.asarray(cache.read(clip_ids[i]), dtype=np.float32) for i in rows]  # (T, n_bins) each
                scores = run_model.score(feats, aggregate=aggregate, plan=plan,
                                         max_batch=len(rows) * max(n_chunks, plan.shifts if plan else 1))
                assert scores.embeddings is not None
                if recorder is not None:
                    recorder.clips_done(rows)
                if probs is None:
                    probs = np.zeros((len(clip_ids), scores.probs.shape[1]), np.float32)
                    embeddings = np.zeros((len(clip_ids), scores.embeddings.shape[1]), np.float32)
                assert embeddings is not None
                probs[rows] = scores.probs
                embeddings[rows] = scores.embeddings
                if writer is not None:
                    assert scores.taggrams is not None
                    for i, gram in zip(rows, scores.taggrams):
                        writer.put(i, gram)
                bar.update(len(rows))
    if writer is not None:
        write_taggram_index(run, clip_ids, writer)
    assert probs is not None and embeddings is not None
    return probs, embeddings


def _forget(run: rd.RunDir, stages: tuple[str, ...]) -> None:
    manifest = run.manifest()
    kept = {k: v for k, v in manifest.get("stages", {}).items() if k not in stages}
    if kept != manifest.get("stages", {}):
        run.update_manifest(stages=kept)


def score_run(run_dir: str | Path, *, corpus_dir: str | Path | None = None, out_dir: str | Path | None = None,
              tags_csv: str | Path | None = None, aggregate: str = "mean",
              batch_clips: int = DEFAULT_BATCH_CLIPS, taggram_hop_s: float = DEFAULT_TAGGRAM_HOP_S,
              device: str | None = None, workers: int | None = None, force: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Run the score stage (see the module docstring); returns its manifest entry.

    Parameters
    ----------
    corpus_dir, out_dir : score the corpus in ``corpus_dir`` with the run's model into the new
        run folder ``out_dir`` (both or neither); without them the run's own corpus is scored in place
    tags_csv : for a folder ``corpus_dir``, its tags CSV (default ``tags.csv`` in the folder, when present)
    aggregate : how a clip's chunk probabilities are combined: ``mean`` or ``max``
    batch_clips : clips of equal length per forward pass
    taggram_hop_s : the taggram hop wanted, in seconds (a model whose own frames are finer keeps them)
    device : ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``
    workers : feature-cache workers, if the cache must be built
    force : recompute even when the stage is up to date
    """
    check_aggregate(aggregate)
    if batch_clips < 1:
        raise ParameterError(f"batch size must be >= 1 clip, got {batch_clips}")
    if not taggram_hop_s > 0:
        raise ParameterError(f"taggram hop must be > 0 seconds, got {taggram_hop_s}")
    if (corpus_dir is None) != (out_dir is None):
        raise ParameterError("--corpus and --out go together: --corpus DIR --out NEW_RUN scores DIR into NEW_RUN")
    if corpus_dir is not None:
        assert out_dir is not None
        run = prepare_scored_copy(run_dir, corpus_dir, out_dir, tags_csv=tags_csv)
    else:
        run = rd.RunDir(run_dir)
    run.require("train")
    run.start_writing()
    manifest = run.manifest()
    if "corpus" not in manifest:
        raise RunDirError(f"{run.path}: the manifest does not record the run's corpus; retrain the run")
    key = {"checkpoint_sha256": sha256_file(run / rd.CHECKPOINT), "corpus_root": str(manifest["corpus"].get("root")),
           "aggregate": aggregate, "taggram_hop_s": taggram_hop_s}
    entry = manifest.get("stages", {}).get(STAGE)
    if not force and entry is not None and entry.get("key") == key:
        problems = damaged_files(run, entry)
        if not problems:
            log.info("%s: scores are up to date (--force recomputes them)", run.path)
            return entry
        log.warning("%s: %s; scoring again", run.path, "; ".join(problems))

    # Forget the old entry (and what was built from it) before touching any file: a run killed
    # half-way through rewriting them must read as incomplete, never as a mix of old and new.
    _forget(run, (STAGE, *DOWNSTREAM))
    from pipeline.device import pick_device

    started = time.perf_counter()
    run_model = load_run(run.path, pick_device(device or "auto"))
    corpus = corpus_from_record(manifest["corpus"])
    origin = manifest.get(ORIGIN_KEY)
    if origin is None and list(corpus.tags) != run_model.tags:
        raise RunDirError(f"{run.path}: the corpus at {corpus.root} now has different tags than the run was "
                          "trained on; retrain the run")
    # Model tags and corpus tags matched by name, across vocabularies (an identity on the run's own corpus).
    tag_map = {run_model.tags[i]: name for i, _, name in shared_tags(run_model.tags, corpus.tags)}
    labelled = [t for t in run_model.tags if t in tag_map]
    cache = feature_cache(run_model, corpus, workers=workers, progress=progress)
    present = np.array([c in cache for c in corpus.clip_ids], dtype=bool)
    rows = np.flatnonzero(present)
    failed = _failed_clips(corpus, cache, np.flatnonzero(~present))
    for item in failed[:10]:
        log.warning("no scores for clip %s (%s): %s", item["clip_id"], item["audio_path"], item["reason"])
    if len(failed) > 10:
        log.warning("... and %d more clips without features", len(failed) - 10)
    if not len(rows):
        raise RunDirError(f"{run.path}: none of the {len(corpus)} clips of {corpus.root} has features")
    clip_ids = [corpus.clip_ids[i] for i in rows]
    ckpt = run_model.checkpoint
    info: dict[str, Any] = {
        "key": key, "aggregate": aggregate, "n_clips": len(rows), "n_failed": len(failed), "failed": failed[:1000],
        "device": str(run_model.device), "backend": f"torch ({run_model.device})",
        "model_name": ckpt.get("model_name"), "checkpoint_epoch": ckpt.get("epoch"),
        "labelled_tags": labelled, "tag_map": tag_map, "corpus_root": str(corpus.root)}

    files = [rd.PREDICTIONS, rd.CLIP_EMBEDDINGS]
    plan = run_model.taggram_plan(taggram_hop_s)
    if plan is None:  # a classical baseline: clip scores only
        info.update(taggram=None, taggram_note="a classical baseline has no time resolution or network to export",
                    embedding={"source": "predicted tag logits (baseline run: no network)"})
    else:
        info["onnx"] = write_tagger(run, run_model, plan=plan, aggregate=aggregate,
                                    checkpoint_sha256=key["checkpoint_sha256"])
        info["taggram"] = plan.to_dict()
        info["embedding"] = {"source": "penultimate layer (model.embed), chunk mean"}
        log.info("taggrams: %s mode, one frame every %.3f s (%d pass(es) per clip); running on %s", plan.mode,
                 plan.hop_s, plan.shifts, info["backend"])
    recorder = None
    if plan is not None and run_model.model is not None:  # a network: its channels are recorded in the pass
        from pipeline.inspect.precompute import ChannelRecorder

        recorder = ChannelRecorder(run_model.model, str(ckpt["model_name"]), n_clips=len(rows),
                                   waveform=run_model.features.kind == "waveform", device=run_model.device)
    with recorder.attached(run_model) if recorder is not None else contextlib.nullcontext():
        probs, embeddings = score_cache(run, run_model, cache, clip_ids, plan, aggregate=aggregate,
                                        batch_clips=batch_clips, progress=progress, recorder=recorder)
    weights = None
    if run_model.model is not None:
        weights = run_model.model.classifier.weight.detach().float().cpu().numpy()  # (n_tags, D)
    write_predictions(run, corpus, rows, probs, run_model.tags, tag_map)
    write_embeddings(run, embeddings, weights)
    info["embedding"]["dim"] = int(embeddings.shape[1])
    if plan is not None:
        files += [rd.OUTPUT_WEIGHTS, rd.TAGGRAMS, rd.TAGGRAMS_INDEX]
        files += ([rd.ONNX_MODEL] if "exporter" in info["onnx"] else []) + [rd.TAGGER]
    if recorder is not None:
        from pipeline.inspect.precompute import write_inspection

        truth = None
        if labelled:  # the annotations of the tags the corpus labels, NaN for the others
            truth = np.full(probs.shape, np.nan, np.float32)
            for j, tag in enumerate(run_model.tags):
                if tag in tag_map:
                    truth[:, j] = corpus.labels[rows, corpus.tags.index(tag_map[tag])]
        inside, info["inside"] = write_inspection(run, run_model, recorder, probs=probs, truth=truth)
        files += inside
    info["checksums"] = file_digests(run, files)
    info["seconds"] = round(time.perf_counter() - started, 1)
    run.mark_stage(STAGE, tuple(files), **info)
    log.info("scored %d clips (%d without features) in %.1f s: %s", len(rows), len(failed), info["seconds"],
             run.path)
    return run.manifest()["stages"][STAGE]
