"""Multi-scale CNN: three subsampled spectrogram streams convolved separately, then merged.

T. S. Dabral, A. S. Deshmukh, A. Malapati, "A multi-scale convolutional neural network
architecture for music auto-tagging", Soft Computing: Theories and Applications (SoCTA 2017),
Advances in Intelligent Systems and Computing 742, Springer 2019 (the "Multi-Scale Music
Tagger" project). Each stream sees the spectrogram at its own resolution (subsampled by
(1, 1), (2, 4) and (4, 16) in (frequency, time)) and is pooled to the same final resolution;
the streams are concatenated depth-wise, convolved twice more and pooled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.base import InputSpec, Tagger, register_model
from models.blocks import (
    ConvBlock2d,
    InputNorm,
    apply_per_frame,
    frames_to_channels_last,
    max_pool2d_safe,
    scale_channels,
)


def _avg_pool2d_safe(x: Tensor, kernel: tuple[int, int]) -> Tensor:
    """Non-overlapping average pooling with the kernel clamped to the input size."""
    kf, kt = min(kernel[0], x.shape[-2]), min(kernel[1], x.shape[-1])
    return F.avg_pool2d(x, (kf, kt))


@register_model("multiscale", small={"width": 0.25},
                cpu_recipe={"model_kwargs": {"width": 0.25, "dropout": 0.1}, "epochs": 12},
                layers=("streams.0.*", "streams.1.*", "streams.2", "merge.*"))
class MultiScaleCNN(Tagger):
    """Dabral et al. multi-scale CNN (batch-norm added to every conv; global pooling over time).

    Streams (channels, (freq x time) kernel, pool), at (frequency, time) subsampling:
    - (1, 1):  50 3x7 (2, 4) -> 100 3x5 (2, 4) -> 70 3x3 (2, 2)
    - (2, 4):  100 3x5 (2, 4) -> 70 3x3 (2, 2)
    - (4, 16): 70 3x3 (2, 2)
    then 70 3x3 -> 70 3x3 (2, 2) on the concatenation: 1/16 of the mel bins, 1/64 of the frames.
    The published flatten + dense layer needs a fixed input size; here the merged map keeps
    ``freq_bins`` frequency rows (adaptive max), is max-pooled over time, batch-normalised and
    fed to the 500-unit dense layer whose output is the embedding. ``frame_logits`` applies
    that layer and the classifier to every remaining time step (one per 64 frames, 1.0 s).

    Parameters
    ----------
    n_tags : number of output tags
    n_mels : mel bins of the input (96)
    chunk_frames : input frames per training example (1818 = 29.1 s)
    width : multiplier on every channel count and on the dense layer
    freq_bins : frequency rows kept before the dense layer (96 / 16 = 6)
    dense_units : size of the embedding
    dropout : dropout before the dense layer (0.6 published)
    """

    def __init__(
        self,
        n_tags: int,
        *,
        n_mels: int = 96,
        chunk_frames: int = 1818,
        width: float = 1.0,
        freq_bins: int = 6,
        dense_units: int = 500,
        dropout: float = 0.6,
    ) -> None:
        super().__init__()
        c50, c100, c70, self.embedding_dim = scale_channels("multiscale", (50, 100, 70, dense_units), width)
        self.spec = InputSpec("logmel", n_mels, chunk_frames)
        self.input_norm = InputNorm()
        self.subsample = ((1, 1), (2, 4), (2, 4))  # applied cumulatively: stream k sees the k-th product
        self.streams = nn.ModuleList(
            [
                nn.Sequential(
                    ConvBlock2d(1, c50, kernel=(3, 7), pool=(2, 4)),
                    ConvBlock2d(c50, c100, kernel=(3, 5), pool=(2, 4)),
                    ConvBlock2d(c100, c70, pool=(2, 2)),
                ),
                nn.Sequential(
                    ConvBlock2d(1, c100, kernel=(3, 5), pool=(2, 4)),
                    ConvBlock2d(c100, c70, pool=(2, 2)),
                ),
                ConvBlock2d(1, c70, pool=(2, 2)),
            ]
        )
        self.merge = nn.Sequential(
            ConvBlock2d(3 * c70, c70, pool=(1, 1)),
            ConvBlock2d(c70, c70, pool=(2, 2)),
        )
        self.freq_bins = freq_bins
        merged = c70 * freq_bins
        self.head = nn.Sequential(
            nn.BatchNorm1d(merged), nn.Dropout(dropout), nn.Linear(merged, self.embedding_dim), nn.ReLU()
        )
        self.classifier = nn.Linear(self.embedding_dim, n_tags)

    def _sequence(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, 70 * freq_bins, T / 64)
        x = self.input_norm(x)  # (B, 1, F, T)
        outs = []
        for i, (stream, pool) in enumerate(zip(self.streams, self.subsample)):
            # the published network averages for the first subsampling and max-pools the second
            x = _avg_pool2d_safe(x, pool) if i == 1 else max_pool2d_safe(x, pool)
            outs.append(stream(x))
        # rounding (or clamped pooling on short input) can leave the streams a step apart
        f = min(o.shape[-2] for o in outs)
        t = min(o.shape[-1] for o in outs)
        x = self.merge(torch.cat([o[..., :f, :t] for o in outs], dim=1))  # (B, C, F', T')
        # pool frequency alone (a static size), keeping time dynamic so the model exports to ONNX
        b, c, f, t = x.shape
        x = F.adaptive_max_pool1d(x.transpose(2, 3).reshape(b, c * t, f), self.freq_bins)  # (B, C * T', freq_bins)
        x = x.reshape(b, c, t, self.freq_bins).transpose(2, 3)  # (B, C, freq_bins, T')
        return x.flatten(1, 2)  # (B, C * freq_bins, T')

    def embed(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, D)
        return self.head(self._sequence(x).amax(dim=-1))

    def frame_logits(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, T / 64, n_tags)
        return self.classifier(apply_per_frame(self.head, frames_to_channels_last(self._sequence(x))))
