"""The predict stage: predictions and taggrams for every clip of a run, and the exported tagger.

``python -m pipeline predict RUN_DIR`` writes into the run directory (see `pipeline.run.rundir`):

- ``predictions.parquet``: one row per clip of every split that has features (clips whose
  audio failed to decode are reported in the manifest, not given rows): ``clip_id``,
  ``split``, ``audio_path`` (absolute), ``prob:<tag>`` (float32 in [0, 1]) and ``true:<tag>``
  (uint8). Clip probabilities are computed as evaluation computes them (the same chunks of
  the model's input, aggregated by mean or max; a test holds them equal).
- ``taggrams.npy`` (float16 [total_frames, n_tags], clips stacked along time) and
  ``taggrams_index.parquet`` (``clip_id``, ``offset``, ``n_frames``), so one clip's taggram is
  a slice of a memory map (`pipeline.scoring.tagger.Taggrams`). How taggrams are computed, and what
  a frame covers, is in `pipeline.scoring.tagger`; the stage's manifest entry records the plan
  (``taggram``: mode, hop, window, fps, hop_s, window_s).
- ``model.onnx``: the best checkpoint exported for ONNX Runtime (input ``features``:
  normalised features (B, n_bins, T), dynamic batch and time; outputs ``logits`` (B, n_tags)
  and ``frame_logits`` (B, T', n_tags)), checked against torch on two input shapes; and
  ``tagger.json``: tags, feature config, normaliser, chunk length, aggregation and taggram
  plan, everything `pipeline.scoring.tagger.OnnxTagger` needs besides the network.

The stage is idempotent: its manifest entry keeps a digest of the checkpoint and the options,
and a rerun with both unchanged returns at once (``--force`` recomputes). Clips are batched
by equal length. The model runs on CUDA (or MPS) when present; on a CPU it runs through the
exported ONNX model, which ONNX Runtime executes 3-4x faster than torch does.
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pipeline.errors import ParameterError, RunDirError
from pipeline.io import atomic_path, write_json, write_parquet
from pipeline.run.rundir import (
    CHECKPOINT,
    ONNX_MODEL,
    PREDICTIONS,
    TAGGER,
    TAGGRAMS,
    TAGGRAMS_INDEX,
    RunDir,
    prob_column,
    true_column,
)
from pipeline.scoring.inference import AGGREGATES, RunModel, load_run
from pipeline.scoring.tagger import (
    INPUT_NAME,
    OUTPUT_NAMES,
    TAGGER_FORMAT,
    BaseTagger,
    Network,
    OnnxNetwork,
    TaggramPlan,
    clip_probabilities,
    compute_taggrams,
    frame_hop_from_lengths,
    plan_taggram,
    read_tagger_config,
)
from pipeline.sources.loader import corpus_from_record

log = logging.getLogger(__name__)

DEFAULT_TAGGRAM_HOP_S = 0.5  # the taggram hop wanted, in seconds (a model whose own frames are finer keeps them)
DEFAULT_BATCH_CLIPS = 16  # clips of equal length per forward pass
ONNX_RTOL, ONNX_ATOL = 1e-3, 1e-4  # ONNX Runtime vs torch, on logits


# --------------------------------------------------------------------------------------------
# torch side of the shared taggram / chunk code


class TorchNetwork:
    """A `pipeline.scoring.tagger.Network` running a torch model on ``device`` (float32, no grad)."""

    def __init__(self, model: torch.nn.Module, device: torch.device | str) -> None:
        self.model = model.eval()
        self.device = torch.device(device)

    def _run(self, fn: Any, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = fn(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device))
        return out.float().cpu().numpy()

    def logits(self, x: np.ndarray) -> np.ndarray:  # (N, n_bins, T) -> (N, n_tags)
        return self._run(self.model, x)

    def frame_logits(self, x: np.ndarray) -> np.ndarray:  # (N, n_bins, T) -> (N, T', n_tags)
        return self._run(self.model.frame_logits, x)


def model_frame_hop(model: torch.nn.Module, *, n_bins: int, chunk_frames: int) -> int | None:
    """Input frames between two of ``model.frame_logits``'s frames, or None when its frames do not follow time.

    Output lengths are probed on torch's "meta" device (shapes only, no arithmetic), falling
    back to real forward passes on the CPU for a model whose layers the meta device lacks.
    """
    def probe(net: torch.nn.Module, device: str) -> int | None:
        def n_out(t: int) -> int:
            with torch.no_grad():
                return int(net.frame_logits(torch.zeros(1, n_bins, t, device=device)).shape[1])
        return frame_hop_from_lengths(n_out, chunk_frames, limit=4 * chunk_frames)

    try:
        return probe(copy.deepcopy(model).to("meta").eval(), "meta")
    except (NotImplementedError, RuntimeError, TypeError) as exc:
        log.debug("meta-device probe failed (%s); probing on the CPU", exc)
        return probe(copy.deepcopy(model).cpu().eval(), "cpu")


def taggram_plan_for(model: torch.nn.Module, run_model: RunModel, hop_s: float) -> TaggramPlan:
    """The taggram plan of a run's network (see `pipeline.scoring.tagger`)."""
    features = run_model.features
    hop = model_frame_hop(model, n_bins=features.n_bins, chunk_frames=run_model.chunk_frames)
    return plan_taggram(hop, chunk_frames=run_model.chunk_frames, input_fps=features.frames_per_second,
                        hop_s=hop_s)


class TorchTagger(BaseTagger):
    """Tag audio with a run's torch checkpoint: the reference (and fallback) for `OnnxTagger`.

    Same interface as `pipeline.scoring.tagger.OnnxTagger`; slower to start (torch and the model
    are loaded). The taggram plan is the one the predict stage recorded, else computed.
    """

    def __init__(self, run_dir: str | Path, *, device: str | None = None,
                 taggram_hop_s: float = DEFAULT_TAGGRAM_HOP_S) -> None:
        from pipeline.device import pick_device

        self.run_dir = Path(run_dir)
        run_model = load_run(self.run_dir, pick_device(device or "auto"))
        self.run_model = run_model
        self.tags = run_model.tags
        self.features = run_model.features
        self.normalizer = run_model.normalizer
        self.chunk_frames = run_model.chunk_frames
        self.aggregate = "mean"
        if run_model.model is None:  # a classical baseline: probabilities, no taggram
            self.plan = None  # type: ignore[assignment]
            return
        self.net = TorchNetwork(run_model.model, run_model.device)
        try:
            config = read_tagger_config(self.run_dir)
            self.plan = TaggramPlan.from_dict(config["taggram"])
            self.aggregate = str(config.get("aggregate", "mean"))
        except RunDirError:
            self.plan = taggram_plan_for(run_model.model, run_model, taggram_hop_s)

    def tag_features(self, features: np.ndarray, *, taggram: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        if self.run_model.model is None:
            return self.run_model.predict(features, aggregate=self.aggregate), None
        return super().tag_features(features, taggram=taggram)


# --------------------------------------------------------------------------------------------
# ONNX export


class _ExportWrapper(torch.nn.Module):
    """One graph with both outputs: ``x (B, n_bins, T) -> (logits (B, n_tags), frame_logits (B, T', n_tags))``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(x), self.model.frame_logits(x)


def _export(wrapper: torch.nn.Module, example: torch.Tensor, path: Path, exporter: str) -> None:
    """Write ``wrapper`` to ``path`` with the TorchScript-based or the torch.export-based exporter."""
    kwargs: dict[str, Any] = {"input_names": [INPUT_NAME], "output_names": list(OUTPUT_NAMES)}
    if exporter == "torchscript":
        kwargs["dynamic_axes"] = {INPUT_NAME: {0: "batch", 2: "time"}, OUTPUT_NAMES[0]: {0: "batch"},
                                  OUTPUT_NAMES[1]: {0: "batch", 1: "frames"}}
    else:
        dim = torch.export.Dim.DYNAMIC
        kwargs["dynamic_shapes"] = {"x": {0: dim, 2: dim}}
    # both exporters chat on stdout and warn about deprecations; the result is checked below
    with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (example,), str(path), dynamo=exporter == "dynamo", **kwargs)
    wrapper.eval()  # the exporters restore the mode they found; be sure it is eval


def _check_export(wrapper: torch.nn.Module, path: Path, shapes: Sequence[tuple[int, int, int]]) -> float:
    """Largest |ONNX - torch| over both outputs on random inputs of ``shapes``; raises if out of tolerance."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for shape in shapes:
        x = torch.randn(*shape, generator=generator)
        got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: x.numpy()})
        with torch.no_grad():
            want = [t.numpy() for t in wrapper(x)]
        for name, g, w in zip(OUTPUT_NAMES, got, want):
            if g.shape != w.shape:
                raise ValueError(f"{name}: ONNX shape {g.shape} != torch shape {w.shape} for input {shape}")
            if not np.allclose(g, w, rtol=ONNX_RTOL, atol=ONNX_ATOL):
                raise ValueError(f"{name}: ONNX differs from torch by up to {np.abs(g - w).max():.2e} for input {shape}")
            worst = max(worst, float(np.abs(g - w).max()))
    return worst


def export_onnx(model: torch.nn.Module, path: str | Path, *, n_bins: int, chunk_frames: int) -> dict[str, Any]:
    """Export ``model`` to ONNX at ``path`` (atomically) and check it against torch.

    The TorchScript-based exporter is tried first (it handles every pooling network of the
    zoo in well under a second); the torch.export-based one is the fallback. Each result is
    checked on a batch of one chunk and on a batch of two inputs of another length, so a
    graph that fixed the batch or time size is rejected.

    Returns ``{"exporter", "max_abs_diff", "seconds"}``; raises `RuntimeError` listing each
    exporter's failure when none gives a graph that matches torch.
    """
    start = time.perf_counter()
    wrapper = _ExportWrapper(copy.deepcopy(model).cpu().float().eval()).eval()
    example = torch.randn(2, n_bins, chunk_frames)
    shapes = [(1, n_bins, chunk_frames), (2, n_bins, 2 * chunk_frames + 37)]
    errors = []
    for exporter in ("torchscript", "dynamo"):
        try:
            with atomic_path(path) as tmp:
                _export(wrapper, example, tmp, exporter)
                diff = _check_export(wrapper, tmp, shapes)
            return {"exporter": exporter, "max_abs_diff": diff, "seconds": round(time.perf_counter() - start, 2)}
        except Exception as exc:  # any exporter failure means: try the next one
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            errors.append(f"{exporter}: {type(exc).__name__}: {first_line[:300]}")
            log.debug("ONNX export with %s failed", exporter, exc_info=True)
    raise RuntimeError("; ".join(errors))


# --------------------------------------------------------------------------------------------
# the stage


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _feature_cache(run_model: RunModel, corpus: Any, *, workers: int | None, progress: bool) -> Any:
    """The run's feature cache (built by training, rebuilt here if it was deleted)."""
    from pipeline.analysis.evaluate import _features_source

    return _features_source(run_model, corpus, workers=workers, progress=progress)


def _failed_clips(corpus: Any, cache: Any, missing: list[int]) -> list[dict[str, str]]:
    """Clip id, audio path and (where the cache recorded it) reason of each clip without features."""
    failures = cache.failures  # clip_id, path, reason, source
    reasons = dict(zip(failures["clip_id"], failures["reason"])) if len(failures) else {}
    return [{"clip_id": corpus.clip_ids[i], "audio_path": str(corpus.audio_path(i)),
             "reason": str(reasons.get(corpus.clip_ids[i], "no features (see the feature cache's report)"))}
            for i in missing]


def _predict_network(run: RunDir, run_model: RunModel, net: Network, cache: Any, clip_ids: list[str],
                     plan: TaggramPlan, *, aggregate: str, batch_clips: int, progress: bool) -> np.ndarray:
    """Probabilities (n, n_tags) of ``clip_ids``; their taggrams go straight into taggrams.npy + index.

    Each clip's taggram length (``ceil(T / hop)``) is known from the cache before any model
    runs, so taggrams.npy is laid out first and filled through a memory map, batch by batch:
    MagnaTagATune's taggrams never sit in memory all at once.
    """
    import pandas as pd

    chunk = run_model.chunk_frames
    n_tags = len(run_model.tags)
    lengths = np.array([cache.n_frames(c) for c in clip_ids], dtype=np.int64)
    n_frames = np.array([plan.n_frames(t) for t in lengths], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_frames)[:-1]]).astype(np.int64)
    probs = np.zeros((len(clip_ids), n_tags), dtype=np.float32)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, length in enumerate(lengths):
        by_length[int(length)].append(i)
    bar = tqdm(total=len(clip_ids), desc="predict", unit="clip", disable=not progress)
    with atomic_path(run / TAGGRAMS) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(int(n_frames.sum()), n_tags))
        try:
            for length in sorted(by_length):  # clips of equal length share a batch
                group = by_length[length]
                for start in range(0, len(group), batch_clips):
                    rows = group[start:start + batch_clips]
                    feats = [np.asarray(cache.read(clip_ids[i]), dtype=np.float32) for i in rows]  # (T, n_bins) each
                    n_chunks = max(1, -(-length // chunk))
                    probs[rows] = clip_probabilities(net, feats, chunk_frames=chunk, normalizer=run_model.normalizer,
                                                     aggregate=aggregate, max_batch=len(rows) * n_chunks)
                    x = np.stack([run_model.normalizer(f).T for f in feats])  # (B, n_bins, T)
                    grams = compute_taggrams(net, x, plan, chunk_frames=chunk, max_batch=len(rows) * plan.shifts)
                    for i, gram in zip(rows, grams):
                        out[offsets[i]:offsets[i] + n_frames[i]] = gram
                    bar.update(len(rows))
            out.flush()
        finally:
            bar.close()
            del out
    write_parquet(run / TAGGRAMS_INDEX, pd.DataFrame({"clip_id": clip_ids, "offset": offsets, "n_frames": n_frames}))
    return probs


def _write_predictions(run: RunDir, corpus: Any, rows: np.ndarray, probs: np.ndarray, tags: list[str]) -> None:
    import pandas as pd

    columns: dict[str, Any] = {
        "clip_id": [corpus.clip_ids[i] for i in rows],
        "split": [str(corpus.split[i]) for i in rows],
        "audio_path": [str(corpus.audio_path(i).resolve()) for i in rows],
    }
    labels = corpus.labels[rows]
    for j, tag in enumerate(tags):
        columns[prob_column(tag)] = np.clip(probs[:, j], 0.0, 1.0).astype(np.float32)
    for j, tag in enumerate(tags):
        columns[true_column(tag)] = labels[:, j].astype(np.uint8)
    write_parquet(run / PREDICTIONS, pd.DataFrame(columns))


def predict_run(run_dir: str | Path, *, aggregate: str = "mean", batch_clips: int = DEFAULT_BATCH_CLIPS,
                taggram_hop_s: float = DEFAULT_TAGGRAM_HOP_S, device: str | None = None,
                workers: int | None = None, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run the predict stage on ``run_dir`` (see the module docstring); returns its manifest entry.

    Parameters
    ----------
    aggregate : how a clip's chunk probabilities are combined: ``mean`` or ``max``
    batch_clips : clips of equal length per forward pass
    taggram_hop_s : the taggram hop wanted, in seconds (a model whose own frames are finer keeps them)
    device : ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``
    workers : feature-cache workers, if the cache must be rebuilt
    force : recompute even when the stage is up to date
    """
    if aggregate not in AGGREGATES:
        raise ParameterError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    if batch_clips < 1:
        raise ParameterError(f"batch size must be >= 1 clip, got {batch_clips}")
    if not taggram_hop_s > 0:
        raise ParameterError(f"taggram hop must be > 0 seconds, got {taggram_hop_s}")
    run = RunDir(run_dir)
    run.require("train")
    manifest = run.manifest()
    key = {"checkpoint_sha256": _sha256(run / CHECKPOINT), "aggregate": aggregate, "taggram_hop_s": taggram_hop_s}
    entry = manifest.get("stages", {}).get("predict")
    if not force and run.stage_done("predict") and entry.get("key") == key:
        log.info("%s: predictions are up to date (--force recomputes them)", run.path)
        return entry

    if entry is not None:
        # Forget the old entry before touching any file: a run killed half-way through
        # rewriting them must read as incomplete, never as a mix of old and new files.
        stages = dict(manifest.get("stages", {}))
        stages.pop("predict", None)
        run.update_manifest(stages=stages)
    from pipeline.device import pick_device

    started = time.perf_counter()
    run_model = load_run(run.path, pick_device(device or "auto"))
    if "corpus" not in manifest:
        raise RunDirError(f"{run.path}: the manifest does not record the run's corpus; retrain the run")
    corpus = corpus_from_record(manifest["corpus"])
    if list(corpus.tags) != run_model.tags:
        raise RunDirError(f"{run.path}: the corpus at {corpus.root} now has different tags than the run was "
                          "trained on; retrain the run")
    cache = _feature_cache(run_model, corpus, workers=workers, progress=progress)
    present = np.array([c in cache for c in corpus.clip_ids], dtype=bool)
    rows = np.flatnonzero(present)
    failed = _failed_clips(corpus, cache, list(np.flatnonzero(~present)))
    for item in failed[:10]:
        log.warning("no prediction for clip %s (%s): %s", item["clip_id"], item["audio_path"], item["reason"])
    if len(failed) > 10:
        log.warning("... and %d more clips without features", len(failed) - 10)
    if not len(rows):
        raise RunDirError(f"{run.path}: none of the {len(corpus)} clips of {corpus.root} has features")
    clip_ids = [corpus.clip_ids[i] for i in rows]
    info: dict[str, Any] = {"key": key, "aggregate": aggregate, "n_clips": len(rows), "n_failed": len(failed),
                            "failed": failed[:1000], "device": str(run_model.device)}

    files = [PREDICTIONS]
    if run_model.model is None:  # a classical baseline: clip predictions only
        probs = run_model.predict_many([np.asarray(cache.read(c)) for c in clip_ids], aggregate=aggregate,
                                       progress=progress)
        info.update(taggram=None, taggram_note="a classical baseline has no time resolution or network to export")
        _write_predictions(run, corpus, rows, probs, run_model.tags)
    else:
        plan = taggram_plan_for(run_model.model, run_model, taggram_hop_s)
        tagger = {
            "format": TAGGER_FORMAT, "onnx": None, "onnx_error": None, "model_name": run_model.checkpoint["model_name"],
            "tags": run_model.tags, "features": run_model.features.to_dict(),
            "normalizer": run_model.normalizer.to_dict(), "chunk_frames": run_model.chunk_frames,
            "aggregate": aggregate, "taggram": plan.to_dict(), "input": INPUT_NAME, "outputs": list(OUTPUT_NAMES),
            "checkpoint_sha256": key["checkpoint_sha256"],
        }
        try:
            exported = export_onnx(run_model.model, run / ONNX_MODEL, n_bins=run_model.features.n_bins,
                                   chunk_frames=run_model.chunk_frames)
            tagger["onnx"] = ONNX_MODEL
            info["onnx"] = exported
            log.info("exported %s with the %s exporter (max |ONNX - torch| = %.1e)", ONNX_MODEL,
                     exported["exporter"], exported["max_abs_diff"])
        except RuntimeError as exc:
            # Tagging then falls back to the torch checkpoint (slower start); everything else stands.
            (run / ONNX_MODEL).unlink(missing_ok=True)
            tagger["onnx_error"] = str(exc)
            info["onnx"] = {"error": str(exc)}
            log.warning("could not export %s to ONNX: %s", run_model.checkpoint["model_name"], exc)
        # On the CPU, ONNX Runtime runs these networks 3-4x faster than torch (docs/benchmarks.md,
        # "Tagging speed") and matches it to about 1e-6; a GPU runs the torch model.
        net: Network
        if tagger["onnx"] and run_model.device.type == "cpu":
            net, info["backend"] = OnnxNetwork(run / ONNX_MODEL), "onnxruntime"
        else:
            net, info["backend"] = TorchNetwork(run_model.model, run_model.device), f"torch ({run_model.device})"
        log.info("taggrams: %s mode, one frame every %.3f s (%d pass(es) per clip); running on %s", plan.mode,
                 plan.hop_s, plan.shifts, info["backend"])
        probs = _predict_network(run, run_model, net, cache, clip_ids, plan, aggregate=aggregate,
                                 batch_clips=batch_clips, progress=progress)
        _write_predictions(run, corpus, rows, probs, run_model.tags)
        info["taggram"] = plan.to_dict()
        write_json(run / TAGGER, tagger)
        files += [TAGGRAMS, TAGGRAMS_INDEX] + ([ONNX_MODEL] if tagger["onnx"] else []) + [TAGGER]
    info["seconds"] = round(time.perf_counter() - started, 1)
    run.mark_stage("predict", tuple(files), **info)
    log.info("predicted %d clips (%d without features) in %.1f s: %s", len(rows), len(failed), info["seconds"],
             run.path)
    return run.manifest()["stages"]["predict"]
