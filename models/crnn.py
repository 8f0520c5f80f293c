"""CRNN: a 2-D CNN feature extractor with a recurrent summary over time (Choi et al. 2017).

K. Choi, G. Fazekas, M. Sandler, K. Cho, "Convolutional recurrent neural networks for music
classification", ICASSP 2017 (arXiv:1609.04243): four 3x3 conv layers pooling frequency away,
then two GRU layers of 32 units whose last output tags the clip. ``rnn="lstm"`` gives the
CNN + LSTM variant; either runs on input of any length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from models.base import InputSpec, Tagger, register_model
from models.blocks import ConvStack2d, frames_to_channels_last, scale_channels, scaled
from pipeline.errors import ParameterError

# (frequency, time) pooling of each conv layer for 96 mel bins: 96 = 2 * 3 * 4 * 4
CRNN_POOLS = ((2, 2), (3, 3), (4, 4), (4, 4))

RNN_KINDS = {"gru": nn.GRU, "lstm": nn.LSTM}


# CPU recipe: 32 GRU units (width 0.25 alone leaves 8); its conv layers pool time by 96, so 6 s
# chunks give the GRU four steps, not one.
@register_model("crnn", small={"width": 0.25},
                cpu_recipe={"model_kwargs": {"width": 0.25, "hidden": 128, "dropout": 0.1}, "chunk_seconds": 6.0,
                            "epochs": 24},
                layers=("features.blocks.*",))
class CRNN(Tagger):
    """Conv layers pool frequency to one bin and time by 96; a GRU or LSTM reads the sequence.

    The embedding is the top recurrent layer's final state (both directions when
    ``bidirectional``); ``frame_logits`` applies the classifier to the recurrent output at every
    step (one per 96 input frames, 1.5 s).

    Parameters
    ----------
    n_tags : number of output tags
    n_mels : mel bins of the input (96 published)
    chunk_frames : input frames per training example (1818 = 29.1 s)
    channels : output channels of the conv layers
    width : multiplier on the conv channels and the recurrent units
    rnn : ``"gru"`` (published) or ``"lstm"``
    hidden : recurrent units per layer and direction
    layers : recurrent layers
    bidirectional : read the sequence both ways
    conv_dropout : dropout after each conv layer (0.1 in Choi et al. 2017)
    dropout : dropout on the embedding
    """

    def __init__(
        self,
        n_tags: int,
        *,
        n_mels: int = 96,
        chunk_frames: int = 1818,
        channels: Sequence[int] = (64, 128, 128, 128),
        width: float = 1.0,
        rnn: str = "gru",
        hidden: int = 32,
        layers: int = 2,
        bidirectional: bool = False,
        conv_dropout: float = 0.1,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if rnn not in RNN_KINDS:
            raise ParameterError(f"crnn rnn must be one of {sorted(RNN_KINDS)}, got {rnn!r}")
        chans = scale_channels("crnn", channels, width, count=len(CRNN_POOLS))
        units = scaled(hidden, width)
        self.spec = InputSpec("logmel", n_mels, chunk_frames)
        self.features = ConvStack2d(chans, CRNN_POOLS, dropout=conv_dropout, defer_last_time_pool=False)
        self.rnn = RNN_KINDS[rnn](chans[-1], units, num_layers=layers, batch_first=True, bidirectional=bidirectional)
        self.directions = 2 if bidirectional else 1
        self.embedding_dim = units * self.directions
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.embedding_dim, n_tags)

    def _recurrent(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, n_mels, T) -> outputs (B, T', H * dirs) and the top layer's final state (B, H * dirs)."""
        seq = frames_to_channels_last(self.features(x))  # (B, T', C)
        out, state = self.rnn(seq)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n)
        top = h_n[-self.directions :]  # (dirs, B, H): forward's last step, backward's first
        return out, torch.cat(list(top), dim=-1)

    def embed(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, D)
        return self.dropout(self._recurrent(x)[1])

    def frame_logits(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, T / 96, n_tags)
        return self.classifier(self._recurrent(x)[0])
