"""Sample-level CNN on raw waveforms (Lee et al. 2017), the "3^9" model.

J. Lee, J. Park, K. L. Kim, J. Nam, "Sample-level deep convolutional neural networks for music
auto-tagging using raw waveforms", SMC 2017 (arXiv:1703.01789): a strided conv of 3 then
blocks of conv-3 + max-pool-3, so 59049 = 3^10 samples shrink to one step. Channel widths
follow M. Won et al., "Evaluation of CNN-based automatic music tagging models", SMC 2020.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from models.base import InputSpec, register_model
from models.blocks import ConvBlock1d, SequenceTagger, scale_channels, scaled


# CPU recipe: its own 3^10 samples (3.7 s) of waveform, not the recipe's mel bins and chunk.
@register_model("samplecnn", small={"width": 0.125},
                cpu_recipe={"model_kwargs": {"width": 0.125, "dropout": 0.1}, "n_mels": None, "chunk_seconds": None,
                            "epochs": 30},
                layers=("features.*",))
class SampleCNN(SequenceTagger):
    """Strided conv, ``len(channels)`` blocks of conv-3 + max-pool-3, a 1-step conv, global max.

    Input is a waveform (B, 1, T) at the feature cache's sample rate (16 kHz). The embedding is
    the last conv's output max-pooled over time; ``frame_logits`` gives one frame per
    3^(blocks + 1) samples (59049, 3.7 s at 16 kHz).

    Parameters
    ----------
    n_tags : number of output tags
    chunk_frames : samples per training example (59049 = 3^10)
    stem_channels : channels of the first, strided conv
    channels : output channels of the conv-3 + max-pool-3 blocks (their number sets the depth)
    width : multiplier on every channel count
    dropout : dropout on the embedding
    """

    def __init__(
        self,
        n_tags: int,
        *,
        chunk_frames: int = 59049,
        stem_channels: int = 128,
        channels: Sequence[int] = (128, 128, 256, 256, 256, 256, 256, 256, 512),
        width: float = 1.0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        chans = scale_channels("samplecnn", channels, width)
        stem = scaled(stem_channels, width)
        self.spec = InputSpec("waveform", 1, chunk_frames)
        self.embedding_dim = chans[-1]
        ins = [stem, *chans[:-1]]
        self.features = nn.Sequential(
            ConvBlock1d(1, stem, kernel=3, stride=3),
            *(ConvBlock1d(i, o, kernel=3, pool=3) for i, o in zip(ins, chans)),
            ConvBlock1d(chans[-1], chans[-1], kernel=3),
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.embedding_dim, n_tags)
