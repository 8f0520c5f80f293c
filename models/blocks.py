"""Small building blocks shared by the architectures of the zoo.

Every pooling here clamps its kernel to the size of its input, so a network built for a
chunk of ``chunk_frames`` also runs (with less pooling at the end) on a shorter input instead
of failing with "output size is too small". Convolutions followed by batch-norm carry no bias:
batch-norm removes it, and a parameter that cannot learn only wastes memory.

Time axis convention: every ``frame_logits`` in the zoo returns T' frames spread evenly over
the input, frame ``i`` covering about input frames ``[i * T / T', (i + 1) * T / T')``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.base import Tagger
from pipeline.errors import ParameterError


def scaled(channels: int, width: float) -> int:
    """``channels`` scaled by a width multiplier, at least 1."""
    return max(1, int(round(channels * width)))


def scale_channels(model: str, channels: Sequence[int], width: float, *, count: int | None = None) -> list[int]:
    """Validate a model's ``channels`` option and scale it by ``width``.

    Raises `ParameterError` naming ``model`` when ``count`` layers are expected and another
    number is given, when no layer is given, or when ``width`` is not positive.
    """
    chans = list(channels)
    if count is not None and len(chans) != count:
        raise ParameterError(f"{model} channels: expected {count} values, got {chans}")
    if not chans or min(chans) < 1:
        raise ParameterError(f"{model} channels: expected positive values, got {chans}")
    if width <= 0:
        raise ParameterError(f"{model} width must be > 0, got {width}")
    return [scaled(c, width) for c in chans]


def max_pool2d_safe(x: Tensor, kernel: tuple[int, int]) -> Tensor:
    """Non-overlapping 2-D max pooling whose kernel is clamped to the input size.

    x : (B, C, F, T) -> (B, C, F // kf, T // kt) with kf, kt clamped to F, T.
    """
    kf, kt = min(kernel[0], x.shape[-2]), min(kernel[1], x.shape[-1])
    if kf == 1 and kt == 1:
        return x
    return F.max_pool2d(x, (kf, kt))


def max_pool1d_safe(x: Tensor, kernel: int) -> Tensor:
    """Non-overlapping 1-D max pooling whose kernel is clamped to the input length.

    x : (B, C, T) -> (B, C, T // k) with k clamped to T.
    """
    k = min(kernel, x.shape[-1])
    return x if k == 1 else F.max_pool1d(x, k)


def frames_to_channels_last(x: Tensor) -> Tensor:
    """(B, D, T') -> (B, T', D): the layout heads and the classifier take per frame."""
    return x.transpose(1, 2)


def apply_per_frame(head: nn.Module, frames: Tensor) -> Tensor:
    """Apply a head made for (N, D) inputs to every frame of (B, T', D); returns (B, T', D')."""
    b, t, d = frames.shape
    return head(frames.reshape(b * t, d)).reshape(b, t, -1)


class InputNorm(nn.Module):
    """Batch-norm over the whole input spectrogram (one mean and variance), as in Won et al. 2020.

    It makes each network indifferent to the normalisation the feature cache chose.
    x : (B, n_mels, T) -> (B, 1, n_mels, T)
    """

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(x.unsqueeze(1))


class ConvBlock2d(nn.Module):
    """3x3 (or ``kernel``) conv, optional batch-norm, ReLU, max-pool, optional dropout.

    x : (B, C_in, F, T) -> (B, C_out, F // pool[0], T // pool[1])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel: int | tuple[int, int] = 3,
        pool: tuple[int, int] = (2, 2),
        batchnorm: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        ks = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.conv = nn.Conv2d(in_channels, out_channels, ks, padding=(ks[0] // 2, ks[1] // 2), bias=not batchnorm)
        self.bn = nn.BatchNorm2d(out_channels) if batchnorm else nn.Identity()
        self.pool = pool
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn(self.conv(x)))
        return self.dropout(max_pool2d_safe(x, self.pool))


class ConvBlock1d(nn.Module):
    """1-D conv (``kernel``, same padding), batch-norm, ReLU, then max-pool by ``pool``.

    x : (B, C_in, T) -> (B, C_out, T // pool)
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel: int = 3, stride: int = 1, pool: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm1d(out_channels)
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        return max_pool1d_safe(F.relu(self.bn(self.conv(x))), self.pool)


class ResBlock2d(nn.Module):
    """Residual block of two 3x3 convs, the first strided (Won et al. 2020, ``Res_2d``).

    The shortcut is a strided 3x3 conv + batch-norm whenever the shape changes.
    x : (B, C_in, F, T) -> (B, C_out, ceil(F / stride), ceil(T / stride))
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + self.shortcut(x))


class DenseHead(nn.Module):
    """Linear -> batch-norm -> ReLU -> dropout: the penultimate (embedding) layer of several taggers.

    x : (N, D_in) -> (N, D_out)
    """

    def __init__(self, in_features: int, out_features: int, *, dropout: float = 0.5) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(F.relu(self.bn(self.linear(x))))


def global_max_mean(x: Tensor) -> Tensor:
    """Concatenate max and mean over the last axis: (B, C, T) -> (B, 2C)."""
    return torch.cat([x.amax(dim=-1), x.mean(dim=-1)], dim=1)


class ConvStack2d(nn.Module):
    """A stack of `ConvBlock2d` on a spectrogram that ends as a sequence over time.

    Normalises the input (`InputNorm`), runs one block per entry of ``channels`` / ``pools``,
    then max-pools whatever frequency the schedule leaves. With ``defer_last_time_pool`` the
    last block pools frequency only: its time pooling becomes the caller's global max, so one
    network gives both a clip embedding (max over time) and a taggram (one frame per step).

    x : (B, n_mels, T) -> (B, C_last, T'), T' = T / (product of the time pools applied)
    """

    is_chain = True  # input norm, then the conv blocks: transfer learning's blocks (models.base.chain_blocks)

    def __init__(
        self,
        channels: Sequence[int],
        pools: Sequence[tuple[int, int]],
        *,
        batchnorm: bool = True,
        dropout: float = 0.0,
        defer_last_time_pool: bool = True,
    ) -> None:
        super().__init__()
        if len(channels) != len(pools):
            raise ValueError(f"channels ({len(channels)}) and pools ({len(pools)}) differ in length")
        self.input_norm = InputNorm()
        pools = list(pools)
        if defer_last_time_pool:
            pools[-1] = (pools[-1][0], 1)
        ins = [1, *channels[:-1]]
        self.blocks = nn.Sequential(
            *(ConvBlock2d(i, o, pool=p, batchnorm=batchnorm, dropout=dropout) for i, o, p in zip(ins, channels, pools))
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.input_norm(x))  # (B, C, F', T')
        return x.amax(dim=2)  # (B, C, T')


class SequenceTagger(Tagger):
    """A tagger whose ``features`` end as a sequence: embedding = max over time, then dropout.

    Subclasses set ``features`` (input -> (B, D, T')), ``dropout`` and ``classifier``;
    ``frame_logits`` applies the classifier to each of the T' steps.
    """

    features: nn.Module
    dropout: nn.Module

    def embed(self, x: Tensor) -> Tensor:  # (B, n_bins, T) -> (B, D)
        return self.dropout(self.features(x).amax(dim=-1))

    def frame_logits(self, x: Tensor) -> Tensor:  # (B, n_bins, T) -> (B, T', n_tags)
        return self.classifier(frames_to_channels_last(self.features(x)))
