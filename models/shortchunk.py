"""Short-chunk CNN with residual blocks (Won et al. 2020), the best published single CNN tagger.

M. Won, A. Ferraro, D. Bogdanov, X. Serra, "Evaluation of CNN-based automatic music tagging
models", SMC 2020 (arXiv:2006.00751): ROC-AUC 0.9129 / PR-AUC 0.4614 on MagnaTagATune top-50
with 3.69 s chunks of a 128-bin mel-spectrogram; a clip's prediction is the average of its
chunks' predictions (the pipeline does that aggregation).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from models.base import InputSpec, Tagger, register_model
from models.blocks import DenseHead, InputNorm, ResBlock2d, apply_per_frame, frames_to_channels_last, scale_channels


# The default model, and the demo's: at width 0.125 (channels 16-64, 0.19 M parameters) on 3 s
# chunks of 96 mel bins (the CPU recipe) it is the fastest network of the zoo per training example
# on a CPU (bench train), and reaches test macro ROC-AUC 0.97 on the demo corpus (above every
# classical baseline) in 2.5-5 minutes on a shared 2-core CPU (docs/benchmarks.md, "Training").
# Dropout 0.1, not the published 0.5: a network this narrow (64-unit embedding) underfits with
# heavy dropout (measured with fcn: width 0.25 and dropout 0.5 reached 0.87, width 0.5 and
# dropout 0.1 reached 0.957).
@register_model("shortchunk_res", small={"width": 0.125}, default=True,
                cpu_recipe={"model_kwargs": {"width": 0.125, "dropout": 0.1}}, layers=("blocks.*",))
class ShortChunkResNet(Tagger):
    """Seven residual 2-D conv blocks, each halving frequency and time, then global max pooling.

    The embedding is the dense layer (linear, batch-norm, ReLU) after the global max pool;
    ``frame_logits`` applies that layer and the classifier to every time step the blocks leave
    (one per 128 input frames, 2.0 s).

    Parameters
    ----------
    n_tags : number of output tags
    n_mels : mel bins of the input (128 published)
    chunk_frames : input frames per training example (231: the paper's 59049 samples, 3.69 s,
        at 16 kHz and hop 256)
    channels : output channels of the residual blocks (their number sets the depth)
    width : multiplier on every channel count
    dropout : dropout after the embedding layer
    """

    def __init__(
        self,
        n_tags: int,
        *,
        n_mels: int = 128,
        chunk_frames: int = 231,
        channels: Sequence[int] = (128, 128, 256, 256, 256, 256, 512),
        width: float = 1.0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        chans = scale_channels("shortchunk_res", channels, width)
        self.spec = InputSpec("logmel", n_mels, chunk_frames)
        self.embedding_dim = chans[-1]
        self.input_norm = InputNorm()
        ins = [1, *chans[:-1]]
        self.blocks = nn.Sequential(*(ResBlock2d(i, o, stride=2) for i, o in zip(ins, chans)))
        self.head = DenseHead(chans[-1], self.embedding_dim, dropout=dropout)
        self.classifier = nn.Linear(self.embedding_dim, n_tags)

    def _sequence(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, C, T / 128)
        x = self.blocks(self.input_norm(x))  # (B, C, F', T')
        return x.amax(dim=2)  # F' is 1 for 128 mels; max over what is left otherwise

    def embed(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, D)
        return self.head(self._sequence(x).amax(dim=-1))

    def frame_logits(self, x: Tensor) -> Tensor:  # (B, n_mels, T) -> (B, T / 128, n_tags)
        return self.classifier(apply_per_frame(self.head, frames_to_channels_last(self._sequence(x))))
