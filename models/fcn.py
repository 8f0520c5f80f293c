"""FCN-5: the fully convolutional tagger of Choi et al. 2016.

K. Choi, G. Fazekas, M. Sandler, "Automatic tagging using deep convolutional neural networks",
ISMIR 2016 (arXiv:1606.00298). Channel widths follow the re-implementation that reached
ROC-AUC 0.9005 / PR-AUC 0.4295 on MagnaTagATune top-50 in M. Won, A. Ferraro, D. Bogdanov,
X. Serra, "Evaluation of CNN-based automatic music tagging models", SMC 2020 (arXiv:2006.00751).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from models.base import InputSpec, register_model
from models.blocks import ConvStack2d, SequenceTagger, scale_channels

# (frequency, time) pooling of each layer for 96 mel bins: 96 = 2 * 2 * 2 * 3 * 4
FCN5_POOLS = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))


@register_model("fcn", small={"width": 0.25},
                cpu_recipe={"model_kwargs": {"width": 0.5, "dropout": 0.1}, "epochs": 24},
                layers=("features.blocks.*",))
class FCN(SequenceTagger):
    """Choi et al. 2016 FCN-5 on a whole 29.1 s log-mel clip.

    Five 3x3 conv layers, each with batch-norm, ReLU and max-pooling; the embedding is the
    last layer's output max-pooled over time (the published network pools it to 1x1).
    ``frame_logits`` gives one frame per 320 input frames (5.1 s).

    Parameters
    ----------
    n_tags : number of output tags
    n_mels : mel bins of the input (96 published)
    chunk_frames : input frames per training example (1818 = 29.1 s at 62.5 frames/s)
    channels : output channels of the five conv layers
    width : multiplier on every channel count (e.g. 0.25 for a fast CPU demo)
    dropout : dropout before the output layer
    """

    def __init__(
        self,
        n_tags: int,
        *,
        n_mels: int = 96,
        chunk_frames: int = 1818,
        channels: Sequence[int] = (64, 128, 128, 128, 64),
        width: float = 1.0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        chans = scale_channels("fcn", channels, width, count=len(FCN5_POOLS))
        self.spec = InputSpec("logmel", n_mels, chunk_frames)
        self.embedding_dim = chans[-1]
        self.features = ConvStack2d(chans, FCN5_POOLS)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.embedding_dim, n_tags)
