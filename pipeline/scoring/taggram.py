"""Taggrams: a clip's tag activations over time, and the arithmetic that computes them from a network.

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

Only numpy is imported; the network behind `pipeline.scoring.chunks.Network` may be torch or
ONNX Runtime.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.scoring.chunks import Network, sigmoid

TAGGRAM_MODES: tuple[str, ...] = ("frames", "windows")


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

