"""Fast tagging with a run's exported model (ONNX Runtime, no torch), and a run's stored taggrams.

``python -m pipeline tag`` and the dashboard's "Tag a file" page go through `OnnxTagger`, which
reads what the score stage wrote beside the checkpoint (``model.onnx`` and ``tagger.json``:
tags, feature config, normaliser, chunk length, taggram plan) and runs it with ONNX Runtime.
Start-up cost is most of a short tagging job, so this module imports only numpy (and the
light run-directory contract) at the top; ONNX Runtime, the audio decoder and the feature code
are imported when a tagger is built, and torch, pandas, librosa and scikit-learn are never
imported on this path (a test checks it).

A tagger scores through `pipeline.scoring.network.score_clips`, the pass the score stage runs
with torch, so its clip probabilities and taggrams are the stage's (the export is checked
against torch when it is written). How taggrams are computed is in `pipeline.scoring.taggram`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import RunDirError
from pipeline.run.rundir import TAGGER as TAGGER_FILE  # light: json and paths only
from pipeline.scoring.chunks import AGGREGATES, Network, check_tail, chunk_clip, sigmoid
from pipeline.scoring.network import score_clips
from pipeline.scoring.taggram import TaggramPlan, compute_taggrams, frame_hop_from_lengths, plan_taggram

log = logging.getLogger(__name__)

SCORE_STAGE = "score"  # the stage that writes model.onnx, tagger.json and the taggrams
TAGGER_FORMAT = 1
INPUT_NAME = "features"  # the ONNX model's input: normalised features (B, n_bins, T)
OUTPUT_NAMES = ("logits", "frame_logits")  # (B, n_tags) and (B, T', n_tags)


def top_tags(probs: np.ndarray, tags: list[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable tags, best first, as (tag, probability)."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:max(0, k)]
    return [(tags[i], float(probs[i])) for i in order]


# --------------------------------------------------------------------------------------------
# the fast tagger


class OnnxNetwork:
    """A `Network` backed by an ONNX Runtime session on the CPU.

    Parameters
    ----------
    path : an ONNX model exported by the score stage (input `INPUT_NAME`, outputs `OUTPUT_NAMES`)
    threads : intra-op threads (default: ``OMP_NUM_THREADS`` if set, else ONNX Runtime's choice)
    """

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        threads = threads if threads is not None else int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        options.intra_op_num_threads = max(0, threads)
        options.log_severity_level = 3  # ORT's notes about unused initialisers are noise to a user
        path = Path(path)
        if not path.is_file():
            raise RunDirError(f"{path}: no such ONNX model; rebuild it with 'python -m pipeline score {path.parent}'")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own classes (InvalidProtobuf, Fail, ...) for a broken file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise RunDirError(f"{path}: unreadable ONNX model ({first}); rebuild it with "
                              f"'python -m pipeline score {path.parent}'") from exc

    def logits(self, x: np.ndarray) -> np.ndarray:
        # ONNX Runtime computes only what the requested output needs
        return self.session.run([OUTPUT_NAMES[0]], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def frame_logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAMES[1]], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]


def tagger_stage(run_dir: str | Path) -> str | None:
    """The finished stage that wrote the run's tagger.json: ``score``, or ``train`` for a converted
    published model (`pipeline.pretrained.build`); None when neither did."""
    from pipeline.run.rundir import RunDir

    run = RunDir(run_dir)
    for stage in (SCORE_STAGE, "train"):
        if run.stage_done(stage) and TAGGER_FILE in run.read_manifest().stages[stage].files:
            return stage
    return None


def read_tagger_config(run_dir: str | Path) -> dict[str, Any]:
    """A run's tagger.json; a `RunDirError` unless the stage that writes it is complete."""
    from pipeline.run.rundir import RunDir

    run = RunDir(run_dir)
    if tagger_stage(run_dir) is None:
        run.require(SCORE_STAGE)
    path = run / TAGGER_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable tagger config: {exc}; rerun 'python -m pipeline score "
                          f"{run.path} --force'") from exc
    if config.get("format") != TAGGER_FORMAT:
        raise RunDirError(f"{path}: tagger format {config.get('format')!r}, this toolkit reads {TAGGER_FORMAT}")
    return config


class BaseTagger:
    """Tag audio of any length with a trained run: the part shared by the ONNX and torch taggers.

    Subclasses set ``net`` (a `Network`), ``tags``, ``features`` (a `FeatureConfig`),
    ``normalizer``, ``chunk_frames``, ``aggregate`` and ``plan`` (a `TaggramPlan`), and may
    set ``chunk_tail`` (`pipeline.scoring.chunks.TAILS`).
    """

    net: Network
    tags: list[str]
    features: Any
    normalizer: Callable[[np.ndarray], np.ndarray]
    chunk_frames: int
    aggregate: str
    plan: TaggramPlan
    chunk_tail: str = "cover"
    max_batch: int = 256  # chunks per network call

    @property
    def taggram_fps(self) -> float:
        """Taggram frames per second."""
        return self.plan.fps

    def compute_features(self, y: np.ndarray) -> np.ndarray:
        """The run's features (T, n_bins) of mono audio at the run's sample rate."""
        from pipeline.features.extract import compute_features

        return compute_features(y, self.features)

    def tag_features(self, features: np.ndarray, *, taggram: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (n_tags,) and taggram (ceil(T / hop), n_tags) of raw features (T, n_bins)."""
        scores = score_clips(self.net, [features], chunk_frames=self.chunk_frames, normalizer=self.normalizer,
                             aggregate=self.aggregate, plan=self.plan if taggram else None,
                             chunk_tail=self.chunk_tail, max_batch=self.max_batch)
        return scores.probs[0], scores.taggrams[0] if scores.taggrams is not None else None

    def tag_audio(self, y: np.ndarray, *, taggram: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Tag mono audio ``y`` (float32 at ``self.features.sample_rate``) of any length.

        Returns probabilities [shape=(n_tags,)] and the taggram [shape=(n_frames, n_tags)]
        (``None`` when ``taggram=False``), both float32 in [0, 1].
        """
        return self.tag_features(self.compute_features(y), taggram=taggram)

    def tag_file(self, path: str | Path, *, taggram: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Tag an audio file (mp3, wav, flac, ogg); a broken file raises `AudioDecodeError` naming it."""
        from pipeline.features.audio import load_audio

        return self.tag_audio(load_audio(Path(path), sample_rate=self.features.sample_rate), taggram=taggram)

    def tag_bytes(self, data: bytes, name: str, *, taggram: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Tag an audio file's bytes (an upload); ``name`` is used for its format and in errors."""
        from pipeline.features.audio import load_audio_bytes

        return self.tag_audio(load_audio_bytes(data, self.features.sample_rate, name), taggram=taggram)

    def top(self, probs: np.ndarray, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` most probable tags, best first."""
        return top_tags(probs, self.tags, k)

    def taggram_times(self, n_frames: int) -> np.ndarray:
        """Start time in seconds of each taggram frame."""
        return np.arange(n_frames, dtype=np.float64) * self.plan.hop_s


class OnnxTagger(BaseTagger):
    """Tag audio with a run's exported model, without torch.

    Parameters
    ----------
    run_dir : a run directory whose score stage is complete (it wrote model.onnx and tagger.json)
    threads : ONNX Runtime intra-op threads (default: ``OMP_NUM_THREADS`` if set, else ORT's choice)

    Raises `RunDirError` when the run's score stage is incomplete or its model could not be
    exported (then `pipeline.scoring.inference.TorchTagger` tags with the checkpoint instead).

    Examples
    --------
    >>> tagger = OnnxTagger("data/runs/demo")                      # doctest: +SKIP
    >>> probs, taggram = tagger.tag_file("song.mp3")                # doctest: +SKIP
    >>> tagger.top(probs, 3)                                        # doctest: +SKIP
    [('piano', 0.93), ('classical', 0.88), ('strings', 0.61)]
    """

    # One chunk per ONNX Runtime call: the converted musicnn's 9 chunks of a 29 s clip ran in 1.84 s
    # at 113 MB peak one by one, 2.19 s at 325 MB in one batch (its im2col buffers grow with the batch)
    max_batch = 1

    def __init__(self, run_dir: str | Path, *, threads: int | None = None) -> None:
        from pipeline.features.extract import FeatureConfig, Normalizer

        self.run_dir = Path(run_dir)
        config = read_tagger_config(self.run_dir)
        if not config.get("onnx"):
            raise RunDirError(f"{self.run_dir}: no ONNX model ({config.get('onnx_error') or 'not exported'})")
        self.config = config
        self.tags = list(config["tags"])
        self.features = FeatureConfig.from_dict(config["features"])
        self.normalizer = Normalizer.from_dict(config["normalizer"])
        self.chunk_frames = int(config["chunk_frames"])
        self.aggregate = str(config.get("aggregate", "mean"))
        self.chunk_tail = check_tail(str(config.get("chunk_tail", "cover")))
        self.plan = TaggramPlan.from_dict(config["taggram"])
        self.net = OnnxNetwork(self.run_dir / config["onnx"], threads=threads)
        self.session = self.net.session


class Taggrams:
    """A run's taggrams, read through a memory map: one clip's taggram is a slice, read on demand.

    Parameters
    ----------
    run_dir : a run directory whose score stage is complete

    Attributes
    ----------
    tags : the columns of every taggram
    fps : taggram frames per second; frame ``j`` describes about ``[j / fps, (j + 1) / fps)`` s

    Examples
    --------
    >>> taggrams = Taggrams("data/runs/demo")                      # doctest: +SKIP
    >>> taggrams["12345"].shape                                    # doctest: +SKIP
    (38, 50)
    """

    def __init__(self, run_dir: str | Path) -> None:
        import pandas as pd  # imported here: the fast tagging path never needs it

        from pipeline.run.rundir import TAGGRAMS, TAGGRAMS_INDEX, RunDir

        run = RunDir(run_dir)
        run.require(SCORE_STAGE)
        manifest = run.manifest()
        entry = manifest["stages"][SCORE_STAGE]
        if TAGGRAMS not in entry.get("files", []):
            raise RunDirError(f"{run.path}: this run has no taggrams ({entry.get('taggram_note', 'not computed')})")
        self.tags: list[str] = list(manifest.get("tags", []))
        plan = entry.get("taggram") or {}
        self.fps = float(plan.get("fps") or entry.get("frame_rate"))
        self.array = np.load(run / TAGGRAMS, mmap_mode="r")  # (total_frames, n_tags) float16
        index = pd.read_parquet(run / TAGGRAMS_INDEX)
        self._rows = {str(c): (int(o), int(n)) for c, o, n in
                      zip(index["clip_id"], index["offset"], index["n_frames"])}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, clip_id: object) -> bool:
        return str(clip_id) in self._rows

    def __getitem__(self, clip_id: str) -> np.ndarray:
        """The taggram of ``clip_id`` [shape=(n_frames, n_tags), dtype=float16], a read-only view."""
        try:
            offset, n = self._rows[str(clip_id)]
        except KeyError:
            from pipeline.errors import ParameterError

            raise ParameterError(f"no taggram for clip {clip_id!r}") from None
        return self.array[offset:offset + n]

    def times(self, clip_id: str) -> np.ndarray:
        """Start time in seconds of each frame of ``clip_id``'s taggram."""
        return np.arange(self._rows[str(clip_id)][1], dtype=np.float64) / self.fps


__all__ = [
    "AGGREGATES", "INPUT_NAME", "OUTPUT_NAMES", "TAGGER_FILE", "TAGGER_FORMAT", "BaseTagger", "Network",
    "OnnxNetwork", "OnnxTagger", "TaggramPlan", "Taggrams", "chunk_clip", "compute_taggrams",
    "frame_hop_from_lengths", "plan_taggram", "read_tagger_config", "sigmoid", "top_tags",
]
