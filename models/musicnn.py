"""Musicnn: musically motivated front-end filters and a residual 1-D back end (Pons et al. 2018).

J. Pons, O. Nieto, M. Prockup, E. M. Schmidt, A. F. Ehmann, X. Serra, "End-to-end learning
for music audio tagging at scale", ISMIR 2018 (arXiv:1711.02520); J. Pons, X. Serra,
"musicnn: pre-trained convolutional neural networks for music audio tagging", ISMIR LBD 2019.
Filter sizes follow the MagnaTagATune configuration of M. Won et al., "Evaluation of
CNN-based automatic music tagging models", SMC 2020 (ROC-AUC 0.9106 / PR-AUC 0.4493).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.base import InputSpec, Tagger, register_model
from models.blocks import (
    DenseHead,
    InputNorm,
    apply_per_frame,
    frames_to_channels_last,
    global_max_mean,
    scale_channels,
)
from pipeline.errors import ParameterError


class TimbralFilter(nn.Module):
    """Vertical filter: ``height`` mel bins tall, ``length`` frames wide, max-pooled over frequency.

    x : (B, 1, n_mels, T) -> (B, C, T)
    """

    def __init__(self, channels: int, height: int, length: int) -> None:
        super().__init__()
        # 'same' in time only: frequency is "valid" so that each filter sees a spectral shape
        self.conv = nn.Conv2d(1, channels, (height, length), padding=(0, length // 2), bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x))).amax(dim=2)


class TemporalFilter(nn.Module):
    """Horizontal filter: ``length`` frames long, on the spectrogram averaged over frequency.

    x : (B, 1, n_mels, T) -> (B, C, T)
    """

    def __init__(self, channels: int, length: int) -> None:
        super().__init__()
        length += 1 - length % 2  # odd, so that 'same' padding keeps the length exactly
        self.conv = nn.Conv1d(1, channels, length, padding=length // 2, bias=False)
        self.bn = nn.BatchNorm1d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x.mean(dim=2))))


class ResidualBackEnd(nn.Module):
    """Three 1-D conv layers (dense in time: no pooling), the last two residual.

    Returns the front-end output and every layer's output stacked along channels, as Pons et al.
    pool all of them. x : (B, C_in, T) -> (B, C_in + 3 * C, T)
    """

    def __init__(self, in_channels: int, channels: int, *, kernel: int = 7) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(c, channels, kernel, padding=kernel // 2, bias=False), nn.BatchNorm1d(channels), nn.ReLU()
            )
            for c in (in_channels, channels, channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        r1 = self.layers[0](x)
        r2 = self.layers[1](r1) + r1
        r3 = self.layers[2](r2) + r2
        return torch.cat([x, r1, r2, r3], dim=1)


# CPU recipe: 48 mel bins, as its tall timbral filters cost the most per example of the zoo.
@register_model("musicnn", small={"width": 0.125},
                cpu_recipe={"model_kwargs": {"width": 0.125, "dropout": 0.1}, "n_mels": 48, "epochs": 30})
class Musicnn(Tagger):
    """Pons et al. timbral + temporal front end, residual back end, max + mean pooling over time.

    The embedding is the dense layer after pooling. ``frame_logits`` pools the back end's
    output over a sliding window of ``taggram_window`` frames every ``taggram_hop`` frames
    (the same max + mean the clip gets) and applies the dense layer and classifier to each.

    Parameters
    ----------
    n_tags : number of output tags
    n_mels : mel bins of the input (96 published)
    chunk_frames : input frames per training example (187 = 3 s)
    timbral_shapes : (height as a share of n_mels, width in frames) of each vertical filter
    timbral_filters : channels of each vertical filter
    temporal_lengths : lengths in frames of the horizontal filters (made odd)
    temporal_filters : channels of each horizontal filter
    backend_channels : channels of the back end's 1-D conv layers (64 for MTT, 512 for MSD)
    dense_units : size of the embedding (200 for MTT, 500 for MSD)
    width : multiplier on every channel count and on the embedding size
    dropout : dropout after the embedding layer
    taggram_window, taggram_hop : frames pooled per taggram frame, and the step between them
    """

    def __init__(
        self,
        n_tags: int,
        *,
        n_mels: int = 96,
        chunk_frames: int = 187,
        timbral_shapes: Sequence[tuple[float, int]] = ((0.7, 7), (0.4, 7)),
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
        self.input_norm = InputNorm()
        n_timbral, n_temporal, back_channels, self.embedding_dim = scale_channels(
            "musicnn", (timbral_filters, temporal_filters, backend_channels, dense_units), width
        )
        self.front_end = nn.ModuleList(
            [TimbralFilter(n_timbral, max(1, int(share * n_mels)), length) for share, length in timbral_shapes]
            + [TemporalFilter(n_temporal, length) for length in temporal_lengths]
        )
        front_channels = n_timbral * len(timbral_shapes) + n_temporal * len(temporal_lengths)
        self.back_end = ResidualBackEnd(front_channels, back_channels)
        self.head = DenseHead(2 * (front_channels + 3 * back_channels), self.embedding_dim, dropout=dropout)
        self.classifier = nn.Linear(self.embedding_dim, n_tags)
        self.taggram_window = taggram_window | 1  # odd, so that windows centre on their frame
        self.taggram_hop = taggram_hop

    def _sequence(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, C, T)
        x = self.input_norm(x)
        front = torch.cat([f(x) for f in self.front_end], dim=1)
        return self.back_end(front)

    def embed(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, D)
        return self.head(global_max_mean(self._sequence(x)))

    def frame_logits(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, ceil(T / hop), n_tags)
        seq = self._sequence(x)
        w, pad = self.taggram_window, self.taggram_window // 2
        pooled = torch.cat(
            [
                F.max_pool1d(seq, w, self.taggram_hop, padding=pad),
                F.avg_pool1d(seq, w, self.taggram_hop, padding=pad, count_include_pad=False),
            ],
            dim=1,
        )  # (B, 2C, T')
        return self.classifier(apply_per_frame(self.head, frames_to_channels_last(pooled)))
