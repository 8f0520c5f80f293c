"""Musicnn: musically motivated front-end filters, a dense 1-D mid end, max + mean pooling (Pons et al.).

J. Pons, O. Nieto, M. Prockup, E. M. Schmidt, A. F. Ehmann, X. Serra, "End-to-end learning
for music audio tagging at scale", ISMIR 2018 (arXiv:1711.02520); J. Pons, X. Serra,
"musicnn: pre-trained convolutional neural networks for music audio tagging", ISMIR LBD 2019.

This is the network of the published musicnn package (``musicnn/models.py``, 0.1.0) layer for
layer, so that its TensorFlow weights load unchanged (`pipeline.pretrained.convert`):

- the input is batch-normalised as one channel;
- front end: two *timbral* (vertical) filters, 7 frames x 40% / 70% of the mel bins, on the
  input zero-padded by 3 frames in time ("valid" in frequency), and three *temporal*
  (horizontal) filters 128 / 64 / 32 frames long x 1 bin, TensorFlow "same" padding (one
  frame more after than before for even lengths). Each is conv (with bias) -> ReLU ->
  batch-norm -> max over frequency; their outputs are concatenated along channels in that
  order (timbral 40%, timbral 70%, temporal 128, 64, 32);
- mid end: three 1-D convs of 7 frames, conv -> ReLU -> batch-norm, the second and third
  residual; the front end and the three outputs are concatenated ("dense connections");
- back end: max and mean over time, *interleaved per channel* (TensorFlow's flatten of the
  (channels, 2) pool), batch-norm, dropout, a dense ReLU layer, batch-norm (this output is the
  penultimate embedding), dropout, and the output layer.

Every batch-norm uses TensorFlow's epsilon, 1e-3. Won et al. (SMC 2020) retrain a variant
with frequency-averaged temporal filters and BN before ReLU; that is not this network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.base import InputSpec, Tagger, register_model
from models.blocks import apply_per_frame, frames_to_channels_last, scale_channels
from pipeline.errors import ParameterError

BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default


def same_padding(length: int) -> tuple[int, int]:
    """TensorFlow's "same" padding for a stride-1 kernel of ``length``: (before, after)."""
    return (length - 1) // 2, length // 2


class FrontEndFilter(nn.Module):
    """A conv over the (frequency, time) input, ReLU, batch-norm, then max over frequency.

    ``height`` bins x ``length`` frames; time is padded by ``time_padding`` (before, after) and
    frequency is "valid". x : (B, 1, n_mels, T) -> (B, C, T')
    """

    def __init__(self, channels: int, height: int, length: int, time_padding: tuple[int, int]) -> None:
        super().__init__()
        self.time_padding = time_padding
        self.conv = nn.Conv2d(1, channels, (height, length))
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, self.time_padding)
        return self.bn(F.relu(self.conv(x))).amax(dim=2)


class MidEnd(nn.Module):
    """Three 1-D convs (conv -> ReLU -> batch-norm), the last two residual; all outputs concatenated.

    x : (B, C_in, T) -> (B, C_in + 3 * C, T)
    """

    def __init__(self, in_channels: int, channels: int, *, kernel: int = 7) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(c, channels, kernel, padding=kernel // 2)
                                   for c in (in_channels, channels, channels))
        self.bns = nn.ModuleList(nn.BatchNorm1d(channels, eps=BN_EPS) for _ in range(3))

    def forward(self, x: Tensor) -> Tensor:
        out = [x]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            y = bn(F.relu(conv(out[-1])))
            out.append(y if i == 0 else y + out[-1])
        return torch.cat(out, dim=1)


class BackEnd(nn.Module):
    """Batch-norm, dropout, dense ReLU, batch-norm (the embedding) on the pooled mid end.

    x : (N, D_in) -> (N, D_out); dropout after the embedding is applied by `Musicnn`.
    """

    def __init__(self, in_features: int, out_features: int, *, dropout: float) -> None:
        super().__init__()
        self.bn_in = nn.BatchNorm1d(in_features, eps=BN_EPS)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(in_features, out_features)
        self.bn_out = nn.BatchNorm1d(out_features, eps=BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn_out(F.relu(self.dense(self.dropout(self.bn_in(x)))))


def max_mean_interleaved(x: Tensor, dim: int = -1) -> Tensor:
    """Max and mean over ``dim``, interleaved per channel: (B, C, T) -> (B, 2C) as [max_0, mean_0, max_1, ...]."""
    return torch.stack([x.amax(dim=dim), x.mean(dim=dim)], dim=-1).flatten(1)


# CPU recipe: 48 mel bins, as its tall timbral filters cost the most per example of the zoo.
@register_model("musicnn", small={"width": 0.125},
                cpu_recipe={"model_kwargs": {"width": 0.125, "dropout": 0.1}, "n_mels": 48, "epochs": 30},
                layers=("front_end.*", "mid_end.bns.*"))
class Musicnn(Tagger):
    """The published musicnn (see the module docstring); the embedding is its penultimate layer.

    ``frame_logits`` pools the mid end's output over a sliding window of ``taggram_window``
    frames every ``taggram_hop`` frames (the same max + mean the clip gets) and applies the
    back end and the output layer to each window.

    Parameters
    ----------
    n_tags : number of output tags
    n_mels : mel bins of the input (96 published)
    chunk_frames : input frames per training example (187 = 3 s, the published models' input)
    timbral_shapes : (height as a share of n_mels, width in frames) of each vertical filter
    timbral_filters : channels of each vertical filter (int(1.6 * 128) published)
    temporal_lengths : lengths in frames of the horizontal filters
    temporal_filters : channels of each horizontal filter (int(1.6 * 32) published)
    backend_channels : channels of the mid end's 1-D convs (64 for MTT / MSD, 512 for MSD big)
    dense_units : size of the embedding (200 for MTT / MSD, 500 for MSD big)
    width : multiplier on every channel count and on the embedding size
    dropout : dropout before the dense layer and before the output layer (0.5 published)
    taggram_window, taggram_hop : frames pooled per taggram frame, and the step between them
    """

    def __init__(
        self,
        n_tags: int,
        *,
        n_mels: int = 96,
        chunk_frames: int = 187,
        timbral_shapes: Sequence[tuple[float, int]] = ((0.4, 7), (0.7, 7)),
        timbral_filters: int = 204,
        temporal_lengths: Sequence[int] = (128, 64, 32),
        temporal_filters: int = 51,
        backend_channels: int = 64,
        dense_units: int = 200,
        width: float = 1.0,
        dropout: float = 0.5,
        taggram_window: int = 63,
        taggram_hop: int = 16,
    ) -> None:
        super().__init__()
        for share, _ in timbral_shapes:
            if not 0 < share <= 1:
                raise ParameterError(f"musicnn timbral_shapes: height share must be in (0, 1], got {share}")
        if taggram_window < 1 or taggram_hop < 1:
            raise ParameterError(
                f"musicnn taggram_window and taggram_hop must be >= 1, got {taggram_window}, {taggram_hop}"
            )
        self.spec = InputSpec("logmel", n_mels, chunk_frames)
        n_timbral, n_temporal, mid_channels, self.embedding_dim = scale_channels(
            "musicnn", (timbral_filters, temporal_filters, backend_channels, dense_units), width
        )
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPS)
        # the original pads 3 frames on both sides for its 7-frame timbral filters
        self.front_end = nn.ModuleList(
            [FrontEndFilter(n_timbral, max(1, int(share * n_mels)), length, (length // 2, length // 2))
             for share, length in timbral_shapes]
            + [FrontEndFilter(n_temporal, 1, length, same_padding(length)) for length in temporal_lengths]
        )
        front_channels = n_timbral * len(timbral_shapes) + n_temporal * len(temporal_lengths)
        self.mid_end = MidEnd(front_channels, mid_channels)
        self.back_end = BackEnd(2 * (front_channels + 3 * mid_channels), self.embedding_dim, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.embedding_dim, n_tags)
        self.taggram_window = taggram_window | 1  # odd, so that windows centre on their frame
        self.taggram_hop = taggram_hop

    def sequence(self, x: Tensor) -> Tensor:
        """The mid end's output over time: (B, n_mels, T) -> (B, C, T)."""
        x = self.input_bn(x.unsqueeze(1))
        front = torch.cat([f(x) for f in self.front_end], dim=1)
        return self.mid_end(front)

    def embed(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, D)
        return self.back_end(max_mean_interleaved(self.sequence(x)))

    def forward(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, n_tags) logits
        return self.classifier(self.dropout(self.embed(x)))

    def frame_logits(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, ceil(T / hop), n_tags)
        seq = self.sequence(x)
        w, pad = self.taggram_window, self.taggram_window // 2
        pooled = torch.stack(
            [
                F.max_pool1d(seq, w, self.taggram_hop, padding=pad),
                F.avg_pool1d(seq, w, self.taggram_hop, padding=pad, count_include_pad=False),
            ],
            dim=2,
        ).flatten(1, 2)  # (B, 2C, T') interleaved like max_mean_interleaved
        return self.classifier(apply_per_frame(self.back_end, frames_to_channels_last(pooled)))
