"""The VGG-style tagger of the musicnn package: five 3x3 conv layers and max-pooling (Pons & Serra 2019).

J. Pons, X. Serra, "musicnn: pre-trained convolutional neural networks for music audio
tagging", ISMIR LBD 2019; ``musicnn/models.py`` (0.1.0), function ``vgg``, layer for layer so
that its TensorFlow weights load unchanged (`pipeline.pretrained.convert`):

- the input is batch-normalised as one channel;
- five blocks of conv 3x3 ("same", with bias) -> ReLU -> batch-norm -> max-pool ("valid":
  leftover frames and bins are dropped), pools (time x frequency) 4x1 with stride 2x2, then
  2x2, 2x2, 2x2 and 4x4 (stride equal to the pool); dropout 0.25 after each of the first four;
- the last pool is flattened in TensorFlow's (time, frequency, channel) order (256 values for
  a 3 s, 96-bin input: this is the penultimate embedding), dropout 0.5, the output layer.

Its input length is fixed (the dense layer sees the whole pooled map): ``embed`` uses the
first ``chunk_frames`` of a longer input (zero-padding a shorter one), and ``frame_logits``
scores consecutive non-overlapping windows of ``chunk_frames``, as musicnn's own taggram does.
Batch-norms use TensorFlow's epsilon, 1e-3.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from models.base import InputSpec, Tagger, register_model
from models.blocks import scale_channels
from models.musicnn import BN_EPS
from pipeline.errors import ParameterError

# (time, frequency) pool sizes and strides of the five blocks
POOLS: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)),
)


def clamped(pool: tuple[int, int], frames: int, bins: int) -> tuple[int, int]:
    """A pool no larger than its input, so that the zoo's small test inputs still run (the published
    3 s x 96-bin input never needs it: there the pools are the original's)."""
    return min(pool[0], frames), min(pool[1], bins)


def pooled_size(frames: int, bins: int) -> tuple[int, int]:
    """(time, frequency) size of the last pool for an input of ``frames`` x ``bins`` ("valid" pools)."""
    for pool, (st, sf) in POOLS:
        pt, pf = clamped(pool, frames, bins)
        frames, bins = (frames - pt) // st + 1, (bins - pf) // sf + 1
    return frames, bins


class VGGBlock(nn.Module):
    """Conv 3x3 ("same", with bias) -> ReLU -> batch-norm -> max-pool ("valid", clamped), after optional dropout.

    x : (B, C_in, F, T) -> (B, C, F', T')
    """

    def __init__(self, in_channels: int, channels: int, pool: tuple[int, int], stride: tuple[int, int],
                 dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.pool, self.stride = pool, stride  # (time, frequency), as in the original

    def forward(self, x: Tensor) -> Tensor:
        pt, pf = clamped(self.pool, x.shape[3], x.shape[2])
        return F.max_pool2d(self.bn(F.relu(self.conv(self.dropout(x)))), (pf, pt), (self.stride[1], self.stride[0]))


@register_model("vgg", small={"width": 0.0625}, cpu_recipe={"model_kwargs": {"width": 0.125}, "epochs": 30},
                layers=("blocks.*",))
class VGG(Tagger):
    """musicnn's VGG-style network (see the module docstring).

    Parameters
    ----------
    n_tags : number of output tags
    n_mels : mel bins of the input (96 published)
    chunk_frames : input frames (187 = 3 s published); the network takes exactly this many
    filters : channels of every conv layer (128 published)
    width : multiplier on ``filters``
    dropout : dropout before the output layer (0.5 published; 0.25 between blocks is fixed)
    """

    # each taggram frame costs a whole forward pass: one frame per window (musicnn's own taggram),
    # not shifted copies (`pipeline.scoring.taggram.plan_taggram`'s max_shifts)
    taggram_max_shifts = 1

    def __init__(self, n_tags: int, *, n_mels: int = 96, chunk_frames: int = 187, filters: int = 128,
                 width: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        (channels,) = scale_channels("vgg", (filters,), width)
        if n_mels < 1 or chunk_frames < 1:
            raise ParameterError(f"vgg needs n_mels and chunk_frames >= 1, got {n_mels}, {chunk_frames}")
        frames, bins = pooled_size(chunk_frames, n_mels)
        self.spec = InputSpec("logmel", n_mels, chunk_frames)
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPS)
        # a chain in data-flow order: each block is one unit of transfer learning (Tagger.named_blocks)
        self.blocks = nn.Sequential(*(VGGBlock(1 if i == 0 else channels, channels, pool, stride, 0.0 if i == 0 else 0.25)
                                      for i, (pool, stride) in enumerate(POOLS)))
        self.dropout = nn.Dropout(dropout)
        self.embedding_dim = frames * bins * channels
        self.classifier = nn.Linear(self.embedding_dim, n_tags)

    def embed(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, D)
        chunk = self.spec.chunk_frames
        # the dense layer fixes the input length: the first chunk_frames count (scoring cuts
        # clips into exact chunks; this keeps other lengths, e.g. ONNX's checks, well defined)
        x = F.pad(x, (0, chunk - x.shape[-1])) if x.shape[-1] < chunk else x[..., :chunk]
        x = self.blocks(self.input_bn(x.unsqueeze(1)))  # (B, C, F', T')
        return x.permute(0, 3, 2, 1).flatten(1)  # TensorFlow's (time, frequency, channel) order

    def forward(self, x: Tensor) -> Tensor:  # (B, n_mels, chunk_frames) -> (B, n_tags) logits
        return self.classifier(self.dropout(self.embed(x)))

    def frame_logits(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, max(1, T // chunk), n_tags)
        chunk = self.spec.chunk_frames
        if x.shape[-1] < chunk:
            x = F.pad(x, (0, chunk - x.shape[-1]))
        b, n_mels, t = x.shape
        w = t // chunk  # whole windows; a reshape, not unfold, so that ONNX keeps the time axis dynamic
        windows = x[..., :w * chunk].reshape(b, n_mels, w, chunk)
        flat = windows.permute(0, 2, 1, 3).reshape(b * w, n_mels, chunk)
        return self.forward(flat).reshape(b, w, -1)
