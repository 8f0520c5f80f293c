"""FCN-4: the 4-layer CNN of Choi et al. 2016, as trained in the NYU tagging project.

K. Choi, G. Fazekas, M. Sandler, "Automatic tagging using deep convolutional neural networks",
ISMIR 2016 (arXiv:1606.00298), the FCN-4 configuration: 3x3 convolutions with 128 / 384 / 768 /
2048 filters and max-pooling of (2, 4), (4, 5), (3, 8), (4, 8) on a 96-bin mel-spectrogram.
The NYU project compared it with and without batch-norm and dropout (``batchnorm_dropout``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from models.base import InputSpec, register_model
from models.blocks import ConvStack2d, SequenceTagger, scale_channels

# (frequency, time) pooling of each layer for 96 mel bins: 96 = 2 * 4 * 3 * 4
FCN4_POOLS = ((2, 4), (4, 5), (3, 8), (4, 8))


@register_model("fcn4", small={"width": 1 / 16},
                cpu_recipe={"model_kwargs": {"width": 1 / 16, "dropout": 0.1}, "epochs": 30},
                layers=("features.blocks.*",))
class FCN4(SequenceTagger):
    """Choi et al. 2016 FCN-4 on a whole 29.1 s log-mel clip.

    The embedding is the last layer's output max-pooled over time; ``frame_logits`` gives one
    frame per 160 input frames (2.6 s).

    Parameters
    ----------
    n_tags : number of output tags
    n_mels : mel bins of the input (96 published)
    chunk_frames : input frames per training example (1818 = 29.1 s at 62.5 frames/s)
    channels : output channels of the four conv layers
    width : multiplier on every channel count (the published widths are heavy on a CPU)
    batchnorm_dropout : batch-norm after every conv and dropout before the output layer;
        False gives the plain variant (conv biases, no normalisation, no dropout)
    dropout : dropout rate used when ``batchnorm_dropout``
    """

    def __init__(
        self,
        n_tags: int,
        *,
        n_mels: int = 96,
        chunk_frames: int = 1818,
        channels: Sequence[int] = (128, 384, 768, 2048),
        width: float = 1.0,
        batchnorm_dropout: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        chans = scale_channels("fcn4", channels, width, count=len(FCN4_POOLS))
        self.spec = InputSpec("logmel", n_mels, chunk_frames)
        self.embedding_dim = chans[-1]
        self.features = ConvStack2d(chans, FCN4_POOLS, batchnorm=batchnorm_dropout)
        self.dropout = nn.Dropout(dropout) if batchnorm_dropout else nn.Identity()
        self.classifier = nn.Linear(self.embedding_dim, n_tags)
