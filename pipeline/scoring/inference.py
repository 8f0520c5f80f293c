"""A trained run ready to score: its checkpoint, its network on torch, its feature cache.

`TorchNetwork` is the torch side of `pipeline.scoring.network.score_clips`, the one pass every
clip score goes through; `RunModel` wraps a run's network (or classical baseline) with its
feature config, normaliser and chunk length; `TorchTagger` is the torch reference (and
fallback) of the ONNX tagger; `feature_cache` gives the run's features of a corpus.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import ParameterError, RunDirError
from pipeline.run.rundir import BASELINE_FILE, CHECKPOINT, RunDir
from pipeline.scoring.chunks import check_aggregate, check_tail
from pipeline.scoring.network import ClipScores, score_clips
from pipeline.scoring.tagger import BaseTagger, read_tagger_config
from pipeline.scoring.taggram import TaggramPlan, frame_hop_from_lengths, plan_taggram

log = logging.getLogger(__name__)

DEFAULT_TAGGRAM_HOP_S = 0.5  # the taggram hop wanted, in seconds (a model whose own frames are finer keeps them)
DEFAULT_MAX_BATCH = 64  # chunks (or taggram inputs) per forward pass


class TorchNetwork:
    """A `pipeline.scoring.network.EmbeddingNetwork` running a torch model on ``device`` (float32, no grad).

    ``embed_logits`` relies on the zoo's contract ``forward(x) == classifier(embed(x))``
    (`models.registry.Tagger`): one forward gives a chunk's embedding and its logits.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device | str) -> None:
        self.model = model.eval()
        self.device = torch.device(device)

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    @torch.no_grad()
    def logits(self, x: np.ndarray) -> np.ndarray:  # (N, n_bins, T) -> (N, n_tags)
        return self.model(self._tensor(x)).float().cpu().numpy()

    @torch.no_grad()
    def frame_logits(self, x: np.ndarray) -> np.ndarray:  # (N, n_bins, T) -> (N, T', n_tags)
        return self.model.frame_logits(self._tensor(x)).float().cpu().numpy()

    @torch.no_grad()
    def embed_logits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # -> (N, D), (N, n_tags)
        emb = self.model.embed(self._tensor(x))
        return emb.float().cpu().numpy(), self.model.classifier(emb).float().cpu().numpy()


def predict_clips(model: torch.nn.Module, features_list: Iterable[np.ndarray], *,
                  normalizer: Callable[[np.ndarray], np.ndarray] | None, chunk_frames: int,
                  device: torch.device | str = "cpu", aggregate: str = "mean",
                  batch_size: int = DEFAULT_MAX_BATCH) -> np.ndarray:
    """Clip-level tag probabilities (n_clips, n_tags) of a torch model for clips of any lengths.

    A thin wrapper of `pipeline.scoring.network.score_clips` for code holding a bare model.
    """
    was_training = model.training
    try:
        scores = score_clips(TorchNetwork(model, device), list(features_list), chunk_frames=chunk_frames,
                             normalizer=normalizer, aggregate=aggregate, max_batch=batch_size)
    finally:
        model.train(was_training)
    return scores.probs


def predict_clip(model: torch.nn.Module, features: np.ndarray, *,
                 normalizer: Callable[[np.ndarray], np.ndarray] | None, chunk_frames: int,
                 device: torch.device | str = "cpu", aggregate: str = "mean") -> np.ndarray:
    """Tag probabilities (n_tags,) of one clip of any length (see `predict_clips`)."""
    return predict_clips(model, [features], normalizer=normalizer, chunk_frames=chunk_frames, device=device,
                         aggregate=aggregate)[0]


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


# --------------------------------------------------------------------------------------------
# loading a run


def _torch_load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunDirError(f"{path.parent}: no {path.name}; train the run first ('python -m pipeline train ...')")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable checkpoint: {exc}") from exc
    missing = [k for k in ("model_name", "model_kwargs", "tags", "features", "normalizer", "chunk_frames")
               if k not in ckpt]
    if missing:
        raise RunDirError(f"{path}: checkpoint lacks {missing}")
    return ckpt


def load_checkpoint(run_dir: str | Path, name: str = CHECKPOINT) -> dict[str, Any]:
    """A run's checkpoint dict (best on validation by default), loaded with ``weights_only=True``."""
    return _torch_load(RunDir(run_dir) / name)


def is_baseline_checkpoint(ckpt: dict[str, Any]) -> bool:
    """True for a classical baseline's run (its estimator lives in `BASELINE_FILE`)."""
    return ckpt.get("kind") == "baseline"


def load_run_model(run_dir: str | Path, device: torch.device | str | None = None) -> tuple[torch.nn.Module, dict]:
    """The trained network of a run, in eval mode on ``device`` (default CPU), and its checkpoint dict.

    Raises `RunDirError` for a missing or unreadable checkpoint and for a baseline run (which
    has no network; use `load_run`).
    """
    from models.registry import get_model

    ckpt = load_checkpoint(run_dir)
    if is_baseline_checkpoint(ckpt):
        raise RunDirError(f"{run_dir}: run of the classical baseline {ckpt['model_name']!r} has no network "
                          "(no taggrams or embeddings); use pipeline.scoring.inference.load_run for its predictions")
    model = get_model(ckpt["model_name"], n_tags=len(ckpt["tags"]), **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model.to(torch.device(device) if device is not None else torch.device("cpu")), ckpt


def _logits_of(probs: np.ndarray) -> np.ndarray:
    """Logits of probabilities, clipped away from 0 and 1 (a baseline's clip embedding)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1 - 1e-6)
    return (np.log(p) - np.log1p(-p)).astype(np.float32)


@dataclass
class RunModel:
    """A trained run ready to score features or audio files: a network or a classical baseline."""

    checkpoint: dict[str, Any]
    model: torch.nn.Module | None = None
    baseline: Any = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        from pipeline.features.extract import FeatureConfig, Normalizer

        self.tags: list[str] = list(self.checkpoint["tags"])
        self.features = FeatureConfig.from_dict(self.checkpoint["features"])
        self.normalizer = Normalizer.from_dict(self.checkpoint["normalizer"])
        self.chunk_frames = int(self.checkpoint["chunk_frames"])
        # converted published models keep their own batching (pipeline.scoring.chunks.TAILS)
        self.chunk_tail = check_tail(str(self.checkpoint.get("chunk_tail", "cover")))
        self.net = TorchNetwork(self.model, self.device) if self.model is not None else None

    @property
    def is_baseline(self) -> bool:
        return self.model is None

    def taggram_plan(self, hop_s: float = DEFAULT_TAGGRAM_HOP_S) -> TaggramPlan | None:
        """The taggram plan of the run's network (see `pipeline.scoring.taggram`); None for a baseline."""
        if self.model is None:
            return None
        hop = model_frame_hop(self.model, n_bins=self.features.n_bins, chunk_frames=self.chunk_frames)
        # a model whose frames are whole forward passes may bound the shifted copies (models.vgg)
        max_shifts = int(getattr(self.model, "taggram_max_shifts", 16))
        return plan_taggram(hop, chunk_frames=self.chunk_frames, input_fps=self.features.frames_per_second,
                            hop_s=hop_s, max_shifts=max_shifts)

    def features_of(self, path: str | Path) -> np.ndarray:
        """Decode an audio file and compute the run's features (T, n_bins); `AudioDecodeError` if broken."""
        from pipeline.features.audio import load_audio
        from pipeline.features.extract import compute_features

        return compute_features(load_audio(Path(path), sample_rate=self.features.sample_rate), self.features)

    def score(self, clips: Sequence[np.ndarray], *, aggregate: str = "mean", plan: TaggramPlan | None = None,
              max_batch: int = DEFAULT_MAX_BATCH) -> ClipScores:
        """Probabilities, embeddings and (with ``plan``) taggrams of clips' raw features, in one pass.

        A classical baseline gives its probabilities and, as embeddings, their logits (no taggrams).
        """
        check_aggregate(aggregate)
        if self.baseline is not None:
            probs = np.asarray(self.baseline.predict_proba(list(clips)), dtype=np.float32)
            return ClipScores(probs=probs, embeddings=_logits_of(probs))
        assert self.net is not None
        return score_clips(self.net, clips, chunk_frames=self.chunk_frames, normalizer=self.normalizer,
                           aggregate=aggregate, embeddings=True, plan=plan, max_batch=max_batch,
                           chunk_tail=self.chunk_tail)

    def predict_many(self, features_list: Iterable[np.ndarray], *, aggregate: str = "mean") -> np.ndarray:
        """Probabilities (n_clips, n_tags) for clips' features of any lengths."""
        return self.score(list(features_list), aggregate=aggregate).probs

    def predict(self, features: np.ndarray, *, aggregate: str = "mean") -> np.ndarray:
        """Probabilities (n_tags,) of one clip's features (T, n_bins)."""
        return self.predict_many([features], aggregate=aggregate)[0]

    def predict_file(self, path: str | Path, *, aggregate: str = "mean") -> np.ndarray:
        """Probabilities (n_tags,) of an audio file of any length."""
        return self.predict(self.features_of(path), aggregate=aggregate)

    def embed(self, features: np.ndarray) -> np.ndarray:
        """One clip's embedding [D] from its features [T, n_bins], as the score stage computes it."""
        embeddings = self.score([features]).embeddings
        assert embeddings is not None
        return embeddings[0]


def load_run(run_dir: str | Path, device: torch.device | str | None = None) -> RunModel:
    """Load any trained run (network or classical baseline) for scoring."""
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(run_dir)
    if is_baseline_checkpoint(ckpt):
        from models.baselines import load_baseline

        return RunModel(checkpoint=ckpt, baseline=load_baseline(run_dir / BASELINE_FILE))
    model, ckpt = load_run_model(run_dir, device)
    return RunModel(checkpoint=ckpt, model=model, device=next(model.parameters()).device)


def feature_cache(run_model: RunModel, corpus: Any, *, cache_root: str | Path | None = None,
                  workers: int | None = None, progress: bool = False) -> Any:
    """The run's feature cache of ``corpus`` (built by training for its own corpus; built here otherwise).

    ``cache_root`` defaults to the one the run was trained with (its checkpoint's config).
    """
    from pipeline.features.cache import build_cache

    if cache_root is None:
        cache_root = (run_model.checkpoint.get("config") or {}).get("cache_root")
    kwargs: dict[str, Any] = {"workers": workers, "progress": progress}
    if cache_root:
        kwargs["cache_root"] = Path(cache_root)
    return build_cache(corpus, run_model.features, **kwargs)


class TorchTagger(BaseTagger):
    """Tag audio with a run's torch checkpoint: the reference (and fallback) for `OnnxTagger`.

    Same interface as `pipeline.scoring.tagger.OnnxTagger`; slower to start (torch and the model
    are loaded). The taggram plan is the one the score stage recorded, else computed.
    """

    def __init__(self, run_dir: str | Path, *, device: str | None = None,
                 taggram_hop_s: float = DEFAULT_TAGGRAM_HOP_S) -> None:
        from pipeline.device import pick_device

        if not taggram_hop_s > 0:
            raise ParameterError(f"taggram hop must be > 0 seconds, got {taggram_hop_s}")
        self.run_dir = Path(run_dir)
        run_model = load_run(self.run_dir, pick_device(device or "auto"))
        self.run_model = run_model
        self.tags = run_model.tags
        self.features = run_model.features
        self.normalizer = run_model.normalizer
        self.chunk_frames = run_model.chunk_frames
        self.chunk_tail = run_model.chunk_tail
        self.aggregate = "mean"
        if run_model.net is None:  # a classical baseline: probabilities, no taggram
            self.plan = None  # type: ignore[assignment]
            return
        self.net = run_model.net
        try:
            config = read_tagger_config(self.run_dir)
            self.plan = TaggramPlan.from_dict(config["taggram"])
            self.aggregate = str(config.get("aggregate", "mean"))
        except RunDirError:
            plan = run_model.taggram_plan(taggram_hop_s)
            assert plan is not None
            self.plan = plan

    def tag_features(self, features: np.ndarray, *, taggram: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        if self.run_model.is_baseline:
            return self.run_model.predict(features, aggregate=self.aggregate), None
        return super().tag_features(features, taggram=taggram)
