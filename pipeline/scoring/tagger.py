"""Fast tagging with a run's exported model (ONNX Runtime, no torch), and the taggram arithmetic.

``python -m pipeline tag`` and the dashboard's "Tag a file" page go through `OnnxTagger`, which
reads what the predict stage wrote beside the checkpoint (``model.onnx`` and ``tagger.json``:
tags, feature config, normaliser, chunk length, taggram plan) and runs it with ONNX Runtime.
Start-up cost is most of a short tagging job, so this module imports only numpy (and the
light run-directory contract) at the top; ONNX Runtime, the audio decoder and the feature code
are imported when a tagger is built, and torch, pandas, librosa and scikit-learn are never
imported on this path (a test checks it). The predict stage runs the same code with torch or
ONNX Runtime behind the `Network` protocol.

Clip probabilities are computed as `pipeline.scoring.inference` computes them for evaluation: chunks
of the model's input length (the last one aligned to the clip's end, a clip shorter than a
chunk zero-padded after normalisation), the mean (or max) of the chunks' sigmoids.

Taggrams
--------
A taggram is a clip's tag activations over time, [shape=(n_frames, n_tags)], frame ``j``
describing about ``[j * hop_s, (j + 1) * hop_s)`` of the clip (its ``window_s`` of context is
centred there). It is the sigmoid of the model's ``frame_logits`` over the whole clip, whose
frames are ``P`` input frames apart (the model's frame hop: 320 frames, 5.1 s for ``fcn``;
128, 2 s for ``shortchunk_res``). Where ``P`` is longer than the wanted hop, the clip is also
run shifted by ``hop, 2 hop, ...`` (``P / hop`` passes) and the passes are interleaved
("shift and stitch", as in fully convolutional segmentation), so the hop is ``hop`` without
changing what one frame sees. A model whose frame logits do not follow time at all (one frame
whatever the input length) gets a sliding window of its input length instead, ``hop`` apart
("windows" mode). Either way a clip of ``T`` input frames has ``ceil(T / hop)`` taggram frames.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.run.rundir import TAGGER as TAGGER_FILE  # light: json and paths only

log = logging.getLogger(__name__)

TAGGER_FORMAT = 1
INPUT_NAME = "features"  # the ONNX model's input: normalised features (B, n_bins, T)
OUTPUT_NAMES = ("logits", "frame_logits")  # (B, n_tags) and (B, T', n_tags)
AGGREGATES: tuple[str, ...] = ("mean", "max")
TAGGRAM_MODES: tuple[str, ...] = ("frames", "windows")


class Network(Protocol):
    """What the taggram and chunk code needs from a model, whatever runs it (torch or ONNX)."""

    def logits(self, x: np.ndarray) -> np.ndarray:  # (N, n_bins, T) -> (N, n_tags)
        ...

    def frame_logits(self, x: np.ndarray) -> np.ndarray:  # (N, n_bins, T) -> (N, T', n_tags)
        ...


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, float32, without overflow warnings for large negative logits."""
    x = np.asarray(x, dtype=np.float32)
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


# --------------------------------------------------------------------------------------------
# chunks and clip probabilities


def chunk_starts(n_frames: int, chunk_frames: int, hop: int | None = None) -> list[int]:
    """Start frames of a clip's chunks: ``hop`` apart, the last aligned to the clip's end."""
    hop = chunk_frames if hop is None else hop
    starts = list(range(0, max(n_frames - chunk_frames, 0) + 1, hop))
    if n_frames > chunk_frames and starts[-1] + chunk_frames < n_frames:
        starts.append(n_frames - chunk_frames)
    return starts


def chunk_clip(features: np.ndarray, chunk_frames: int, *, hop: int | None = None,
               normalizer: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Cut one clip's features (T, n_bins) into model inputs (n_chunks, n_bins, chunk_frames).

    The one chunking of the project (`pipeline.scoring.inference.chunk_frames_of` validates and calls it):
    each chunk is normalised, then a clip shorter than a chunk is zero-padded at the end.
    """
    n_frames, n_bins = features.shape
    starts = chunk_starts(n_frames, chunk_frames, hop)
    out = np.zeros((len(starts), n_bins, chunk_frames), dtype=np.float32)
    for i, start in enumerate(starts):
        chunk = features[start:start + chunk_frames]
        chunk = normalizer(chunk) if normalizer is not None else chunk.astype(np.float32)
        out[i, :, :len(chunk)] = chunk.T
    return out


def clip_probabilities(net: Network, clips: Sequence[np.ndarray], *, chunk_frames: int,
                       normalizer: Callable[[np.ndarray], np.ndarray] | None, aggregate: str = "mean",
                       max_batch: int = 256) -> np.ndarray:
    """Tag probabilities (n_clips, n_tags) of clips' raw features (each (T_i, n_bins)).

    Each clip is cut into chunks (`chunk_clip`), every chunk scored, and a clip's chunk
    probabilities combined by their ``mean`` or ``max``, as `pipeline.scoring.inference` does for
    evaluation. Chunks of all clips go through the network together, ``max_batch`` at a time.
    """
    if aggregate not in AGGREGATES:
        from pipeline.errors import ParameterError

        raise ParameterError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    chunked = [chunk_clip(f, chunk_frames, normalizer=normalizer) for f in clips]
    chunks = np.concatenate(chunked)  # (total_chunks, n_bins, chunk_frames)
    probs = np.concatenate([sigmoid(net.logits(chunks[i:i + max_batch])) for i in range(0, len(chunks), max_batch)])
    bounds = np.cumsum([0] + [len(c) for c in chunked])
    reduce = np.mean if aggregate == "mean" else np.max
    return np.stack([reduce(probs[a:b], axis=0) for a, b in zip(bounds[:-1], bounds[1:])]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# taggrams


@dataclass(frozen=True)
class TaggramPlan:
    """How taggrams are computed for one model (see the module docstring).

    mode : ``"frames"`` (sigmoid of ``frame_logits``, shift-and-stitch when ``window > hop``)
        or ``"windows"`` (sigmoid of the logits of sliding chunks)
    window : input frames between two of the model's frames (its frame hop ``P``), or the
        chunk length in ``"windows"`` mode; a multiple of ``hop``
    hop : input frames between two taggram frames
    input_fps : frames per second of the model's input features
    """

    mode: str
    window: int
    hop: int
    input_fps: float

    def __post_init__(self) -> None:
        assert self.mode in TAGGRAM_MODES and self.hop >= 1 and self.window >= 1
        assert self.mode == "windows" or self.window % self.hop == 0

    @property
    def shifts(self) -> int:
        """Shifted passes of the whole clip ("frames" mode)."""
        return self.window // self.hop if self.mode == "frames" else 1

    @property
    def fps(self) -> float:
        """Taggram frames per second."""
        return self.input_fps / self.hop

    @property
    def hop_s(self) -> float:
        return self.hop / self.input_fps

    @property
    def window_s(self) -> float:
        return self.window / self.input_fps

    def n_frames(self, n_input_frames: int) -> int:
        """Taggram frames of a clip of ``n_input_frames`` feature frames: ``ceil(T / hop)``."""
        return max(1, -(-int(n_input_frames) // self.hop))

    def to_dict(self) -> dict[str, Any]:
        """What the manifest and tagger.json record (with the derived rates, for readers)."""
        return {**asdict(self), "shifts": self.shifts, "fps": self.fps, "hop_s": self.hop_s,
                "window_s": self.window_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaggramPlan:
        return cls(mode=str(d["mode"]), window=int(d["window"]), hop=int(d["hop"]), input_fps=float(d["input_fps"]))


def plan_taggram(frame_hop: int | None, *, chunk_frames: int, input_fps: float, hop_s: float = 0.5,
                 max_shifts: int = 16) -> TaggramPlan:
    """Choose a taggram plan for a model whose ``frame_logits`` are ``frame_hop`` input frames apart.

    Parameters
    ----------
    frame_hop : the model's frame hop ``P`` in input frames; ``None`` when its frame logits do
        not follow time (then sliding windows of ``chunk_frames`` are used)
    hop_s : the taggram hop wanted, in seconds. A model whose frames are already at most this
        far apart keeps its own; otherwise the hop is the divisor of ``P`` closest to it
    max_shifts : at most this many shifted passes per clip (each costs one forward pass)

    Examples
    --------
    >>> plan_taggram(320, chunk_frames=1818, input_fps=62.5, hop_s=0.5).hop  # fcn: 5.1 s frames
    32
    """
    target = max(1.0, hop_s * input_fps)  # in input frames
    if frame_hop is None:
        return TaggramPlan("windows", window=int(chunk_frames), hop=int(min(round(target), chunk_frames)),
                           input_fps=input_fps)
    shifts = 1
    if frame_hop > target:
        divisors = [d for d in range(1, min(frame_hop, max_shifts) + 1) if frame_hop % d == 0]
        shifts = min(divisors, key=lambda d: abs(math.log(frame_hop / d / target)))
    return TaggramPlan("frames", window=int(frame_hop), hop=int(frame_hop // shifts), input_fps=input_fps)


def _padded(x: np.ndarray, left: int, length: int) -> np.ndarray:
    """(B, n_bins, T) -> (B, n_bins, length): ``left`` zero frames, ``x``, zeros to ``length``."""
    out = np.zeros((*x.shape[:-1], length), dtype=np.float32)
    out[..., left:left + x.shape[-1]] = x
    return out


def taggram_inputs(x: np.ndarray, plan: TaggramPlan, chunk_frames: int) -> np.ndarray:
    """The model inputs that give the taggrams of a batch of equal-length clips.

    x : np.ndarray [shape=(B, n_bins, T)]  normalised features
    Returns np.ndarray [shape=(B * shifts, n_bins, L)] ("frames": the clip shifted by
    ``k * hop``, zero-padded) or [shape=(B * n_frames, n_bins, chunk_frames)] ("windows").
    The zeros are the normalised mean, as in `chunk_clip`.
    """
    b, n_bins, t = x.shape
    left = (plan.window - plan.hop) // 2  # centre frame j's context on [j * hop, (j + 1) * hop)
    if plan.mode == "frames":
        # each pass is long enough to reach past the clip's end by a whole model frame, and no
        # shorter than a chunk (the length the model was trained on)
        length = max(t + plan.window, chunk_frames)
        xp = _padded(x, left, left + (plan.shifts - 1) * plan.hop + length)
        passes = [xp[..., k * plan.hop:k * plan.hop + length] for k in range(plan.shifts)]
        return np.stack(passes, axis=1).reshape(b * plan.shifts, n_bins, length)
    n = plan.n_frames(t)
    left = (chunk_frames - plan.hop) // 2
    xp = _padded(x, left, left + (n - 1) * plan.hop + chunk_frames)
    windows = np.lib.stride_tricks.sliding_window_view(xp, chunk_frames, axis=-1)[..., ::plan.hop, :][..., :n, :]
    # (B, n_bins, n, chunk) -> (B, n, n_bins, chunk)
    return np.ascontiguousarray(windows.transpose(0, 2, 1, 3)).reshape(b * n, n_bins, chunk_frames)


def stitch_taggrams(outputs: np.ndarray, plan: TaggramPlan, n_clips: int, n_input_frames: int) -> np.ndarray:
    """Turn the network's outputs on `taggram_inputs` into taggrams (B, n_frames, n_tags), float32.

    outputs : frame logits [shape=(B * shifts, T', n_tags)] ("frames") or logits
        [shape=(B * n_frames, n_tags)] ("windows")
    """
    n = plan.n_frames(n_input_frames)
    if plan.mode == "windows":
        return sigmoid(outputs.reshape(n_clips, n, -1))
    s = plan.shifts
    out = outputs.reshape(n_clips, s, outputs.shape[1], outputs.shape[2])
    # pass k's frame i is taggram frame i * shifts + k
    out = out.transpose(0, 2, 1, 3).reshape(n_clips, outputs.shape[1] * s, outputs.shape[2])
    assert out.shape[1] >= n, f"model gave {out.shape[1]} taggram frames, {n} needed"
    return sigmoid(out[:, :n])


def compute_taggrams(net: Network, x: np.ndarray, plan: TaggramPlan, *, chunk_frames: int,
                     max_batch: int = 64) -> np.ndarray:
    """Taggrams (B, ceil(T / hop), n_tags) float32 of a batch of equal-length normalised clips (B, n_bins, T)."""
    inputs = taggram_inputs(x, plan, chunk_frames)
    run = net.frame_logits if plan.mode == "frames" else net.logits
    outputs = np.concatenate([run(inputs[i:i + max_batch]) for i in range(0, len(inputs), max_batch)])
    return stitch_taggrams(outputs, plan, x.shape[0], x.shape[-1])


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
    path : an ONNX model exported by the predict stage (input `INPUT_NAME`, outputs `OUTPUT_NAMES`)
    threads : intra-op threads (default: ``OMP_NUM_THREADS`` if set, else ONNX Runtime's choice)
    """

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        threads = threads if threads is not None else int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        options.intra_op_num_threads = max(0, threads)
        options.log_severity_level = 3  # ORT's notes about unused initialisers are noise to a user
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def logits(self, x: np.ndarray) -> np.ndarray:
        # ONNX Runtime computes only what the requested output needs
        return self.session.run([OUTPUT_NAMES[0]], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def frame_logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAMES[1]], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]


def read_tagger_config(run_dir: str | Path) -> dict[str, Any]:
    """A run's tagger.json; a `RunDirError` unless the predict stage is complete."""
    from pipeline.errors import RunDirError
    from pipeline.run.rundir import RunDir

    run = RunDir(run_dir)
    run.require("predict")
    path = run / TAGGER_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: unreadable tagger config: {exc}; rerun 'python -m pipeline predict "
                          f"{run.path} --force'") from exc
    if config.get("format") != TAGGER_FORMAT:
        raise RunDirError(f"{path}: tagger format {config.get('format')!r}, this toolkit reads {TAGGER_FORMAT}")
    return config


class BaseTagger:
    """Tag audio of any length with a trained run: the part shared by the ONNX and torch taggers.

    Subclasses set ``net`` (a `Network`), ``tags``, ``features`` (a `FeatureConfig`),
    ``normalizer``, ``chunk_frames``, ``aggregate`` and ``plan`` (a `TaggramPlan`).
    """

    net: Network
    tags: list[str]
    features: Any
    normalizer: Callable[[np.ndarray], np.ndarray]
    chunk_frames: int
    aggregate: str
    plan: TaggramPlan

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
        probs = clip_probabilities(self.net, [features], chunk_frames=self.chunk_frames, normalizer=self.normalizer,
                                   aggregate=self.aggregate)[0]
        if not taggram:
            return probs, None
        x = np.ascontiguousarray(self.normalizer(features).T[None])  # (1, n_bins, T)
        return probs, compute_taggrams(self.net, x, self.plan, chunk_frames=self.chunk_frames)[0]

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
    run_dir : a run directory whose predict stage is complete (it wrote model.onnx and tagger.json)
    threads : ONNX Runtime intra-op threads (default: ``OMP_NUM_THREADS`` if set, else ORT's choice)

    Raises `RunDirError` when the run's predict stage is incomplete or its model could not be
    exported (then `pipeline.scoring.predict.TorchTagger` tags with the checkpoint instead).

    Examples
    --------
    >>> tagger = OnnxTagger("data/runs/demo")                      # doctest: +SKIP
    >>> probs, taggram = tagger.tag_file("song.mp3")                # doctest: +SKIP
    >>> tagger.top(probs, 3)                                        # doctest: +SKIP
    [('piano', 0.93), ('classical', 0.88), ('strings', 0.61)]
    """

    def __init__(self, run_dir: str | Path, *, threads: int | None = None) -> None:
        from pipeline.errors import RunDirError
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
        self.plan = TaggramPlan.from_dict(config["taggram"])
        self.net = OnnxNetwork(self.run_dir / config["onnx"], threads=threads)
        self.session = self.net.session


class Taggrams:
    """A run's taggrams, read through a memory map: one clip's taggram is a slice, read on demand.

    Parameters
    ----------
    run_dir : a run directory whose predict stage is complete

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

        from pipeline.errors import RunDirError
        from pipeline.run.rundir import TAGGRAMS, TAGGRAMS_INDEX, RunDir

        run = RunDir(run_dir)
        run.require("predict")
        manifest = run.manifest()
        entry = manifest["stages"]["predict"]
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


def frame_hop_from_lengths(n_out: Callable[[int], int], start: int, *, limit: int) -> int | None:
    """The input frames between two output frames of a model, from its output length per input length.

    ``n_out(T)`` is the number of frames ``frame_logits`` gives for ``T`` input frames, a step
    function that rises by one every ``P`` frames for pooling and strided networks. Finds two
    consecutive steps above ``start`` (about ``4 log2 P`` calls) and returns their distance, or
    ``None`` when the output does not grow within ``limit`` extra frames (time collapsed).
    """

    def next_step(t0: int) -> int | None:
        base = n_out(t0)
        span = 1
        while n_out(t0 + span) == base:  # gallop to an upper bound, then bisect
            if span > limit:
                return None
            span *= 2
        lo, hi = t0 + span // 2, t0 + span  # n_out(lo) == base (or lo == t0), n_out(hi) > base
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if n_out(mid) == base:
                lo = mid
            else:
                hi = mid
        return hi

    first = next_step(start)
    if first is None:
        return None
    second = next_step(first)
    return None if second is None else second - first


__all__ = [
    "AGGREGATES", "INPUT_NAME", "OUTPUT_NAMES", "TAGGER_FILE", "BaseTagger", "Network", "OnnxNetwork", "OnnxTagger", "TaggramPlan", "Taggrams",
    "chunk_clip", "chunk_starts", "clip_probabilities", "compute_taggrams", "frame_hop_from_lengths",
    "plan_taggram", "read_tagger_config", "sigmoid", "stitch_taggrams", "taggram_inputs", "top_tags",
]
