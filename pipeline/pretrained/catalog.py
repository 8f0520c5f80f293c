"""The published models the toolkit converts: musicnn 0.1.0's four taggers, and where they come from.

The weights are never committed: they are in the musicnn 0.1.0 wheel on PyPI (ISC licence),
fetched with pip and checked against `DISTRIBUTION`'s SHA-256 (`pipeline.pretrained.distribution`),
then converted by the project's own code (`pipeline.pretrained.convert`). The tag lists are
musicnn's ``configuration.py`` (``MTT_LABELS``, ``MSD_LABELS``), in its output order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ParameterError


@dataclass(frozen=True)
class Distribution:
    """A published package that holds model weights: what pip fetches and how it is checked."""

    name: str
    version: str
    filename: str
    sha256: str
    licence: str
    url: str
    authors: str
    citation: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


DISTRIBUTION = Distribution(
    name="musicnn", version="0.1.0", filename="musicnn-0.1.0-py3-none-any.whl",
    sha256="f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa",
    licence="ISC", url="https://pypi.org/project/musicnn/0.1.0/",
    authors="Jordi Pons and Xavier Serra (Music Technology Group, Universitat Pompeu Fabra)",
    citation="J. Pons, X. Serra, \"musicnn: pre-trained convolutional neural networks for music audio "
             "tagging\", ISMIR 2019 Late-Breaking/Demo",
)

MTT_TAGS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient",
    "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
)
MSD_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening",
    "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House",
    "happy",
)


@dataclass(frozen=True)
class PretrainedModel:
    """One published tagger and what the torch zoo needs to hold it.

    name : the toolkit's name (``mtt_musicnn``); original : the folder in the distribution
    architecture : the zoo model (``musicnn`` or ``vgg``), built with ``model_kwargs``
    dataset : what it was trained on; tags : its outputs, in order
    """

    name: str
    original: str
    architecture: str
    dataset: str
    tags: tuple[str, ...]
    description: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)


# musicnn's taggram windows: 3 s (its training input) pooled every 0.512 s
_MUSICNN_KWARGS = {"taggram_window": 187, "taggram_hop": 32}
MODELS: dict[str, PretrainedModel] = {m.name: m for m in (
    PretrainedModel("mtt_musicnn", "MTT_musicnn", "musicnn", "MagnaTagATune (top-50 tags)", MTT_TAGS,
                    "musicnn trained on MagnaTagATune: musically motivated timbral and temporal filters",
                    dict(_MUSICNN_KWARGS)),
    PretrainedModel("mtt_vgg", "MTT_vgg", "vgg", "MagnaTagATune (top-50 tags)", MTT_TAGS,
                    "musicnn's VGG-style baseline trained on MagnaTagATune: five 3x3 conv layers"),
    PretrainedModel("msd_musicnn", "MSD_musicnn", "musicnn", "Million Song Dataset (top-50 Last.fm tags)", MSD_TAGS,
                    "musicnn trained on the Million Song Dataset's Last.fm tags", dict(_MUSICNN_KWARGS)),
    PretrainedModel("msd_vgg", "MSD_vgg", "vgg", "Million Song Dataset (top-50 Last.fm tags)", MSD_TAGS,
                    "musicnn's VGG-style baseline trained on the Million Song Dataset's Last.fm tags"),
)}
DEFAULT_MODEL = "mtt_musicnn"  # what `python -m pipeline tag` uses without --run or --model


def get_pretrained(name: str) -> PretrainedModel:
    """The catalog entry ``name`` (case-insensitive; musicnn's own ``MTT_musicnn`` spelling works too)."""
    key = name.strip().lower()
    if key not in MODELS:
        raise ParameterError(f"unknown pretrained model {name!r}; available: {', '.join(MODELS)}")
    return MODELS[key]
