"""The model registry and the contract every tagger follows.

Every model declares the input it expects (`InputSpec`), returns logits from ``forward``
(pair it with ``BCEWithLogitsLoss``), and can return its penultimate embedding (``embed``)
and frame-level tag activations over time (``frame_logits``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from pipeline.errors import ParameterError


@dataclass(frozen=True)
class InputSpec:
    """The input a model expects.

    kind : ``"logmel"`` or ``"waveform"`` (names a feature kind of `pipeline.features.extract`)
    n_bins : mel bins for spectrogram models, 1 for waveform models
    chunk_frames : frames (or samples, for waveform) per training example; clips are cropped
        at random to this length in training and cut into chunks of it at inference
    """

    kind: str
    n_bins: int
    chunk_frames: int


class Tagger(nn.Module):
    """Base class of every CNN tagger.

    Input ``x`` has shape (B, n_bins, T) with T >= the spec's chunk_frames (waveform: (B, 1, T)).
    Subclasses set ``spec`` and ``embedding_dim`` and implement ``embed`` and ``frame_logits``;
    ``forward`` applies ``self.classifier`` (an ``nn.Linear(embedding_dim, n_tags)``, replaced
    for transfer learning) to the embedding.
    """

    spec: InputSpec
    embedding_dim: int
    classifier: nn.Linear

    def embed(self, x: Tensor) -> Tensor:  # (B, n_bins, T) -> (B, D)
        raise NotImplementedError

    def frame_logits(self, x: Tensor) -> Tensor:  # (B, n_bins, T) -> (B, T', n_tags)
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:  # (B, n_bins, T) -> (B, n_tags) logits
        return self.classifier(self.embed(x))


_REGISTRY: dict[str, Callable[..., Tagger]] = {}


def register_model(name: str) -> Callable[[Callable[..., Tagger]], Callable[..., Tagger]]:
    """Decorator registering a model class or builder under ``name``."""

    def wrap(builder: Callable[..., Tagger]) -> Callable[..., Tagger]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = builder
        return builder

    return wrap


def _load_zoo() -> None:
    import models.zoo  # noqa: F401  (registers every architecture on import)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_zoo()
    return sorted(_REGISTRY)


def get_model(name: str, n_tags: int, **kwargs: Any) -> Tagger:
    """Build the model registered as ``name`` with ``n_tags`` outputs."""
    _load_zoo()
    if name not in _REGISTRY:
        raise ParameterError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](n_tags=n_tags, **kwargs)


def model_spec(name: str, **kwargs: Any) -> InputSpec:
    """The input spec of model ``name`` (built once with a single output to read it)."""
    return get_model(name, n_tags=1, **kwargs).spec
