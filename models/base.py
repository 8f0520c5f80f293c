"""The contract every tagger follows, and the registration of models (a leaf: it imports no model).

Every model declares the input it expects (`InputSpec`), returns logits from ``forward``
(pair it with ``BCEWithLogitsLoss``), and can return its penultimate embedding (``embed``)
and frame-level tag activations over time (``frame_logits``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn


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


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: its builder and the settings that belong to it (torchvision's ``meta``).

    small : constructor options that shrink it (narrower layers) so that it trains in seconds on
        a CPU, for tests; the published sizes stay the class's defaults
    cpu_recipe : `pipeline.training.config.TrainConfig` overrides of the CPU recipe
        (`pipeline.training.config.CPU_RECIPE`) with which it trains on the demo corpus in a few
        minutes on 2 cores: its width, input (``n_mels``, ``chunk_seconds``) and epochs; the
        demo and ``python -m benchmarks train --compare`` both train it so
    default : the default model (of ``python -m pipeline train`` and the demo)
    """

    name: str
    builder: Callable[..., Tagger]
    small: dict[str, Any] = field(default_factory=dict)
    cpu_recipe: dict[str, Any] = field(default_factory=dict)
    default: bool = False


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, *, small: dict[str, Any] | None = None, cpu_recipe: dict[str, Any] | None = None,
                   default: bool = False) -> Callable[[Callable[..., Tagger]], Callable[..., Tagger]]:
    """Decorator registering a model class or builder under ``name``, with its settings (`ModelInfo`)."""

    def wrap(builder: Callable[..., Tagger]) -> Callable[..., Tagger]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        if default and any(info.default for info in _REGISTRY.values()):
            raise ValueError(f"model {name!r} registered as the default, but there is one already")
        _REGISTRY[name] = ModelInfo(name, builder, dict(small or {}), dict(cpu_recipe or {}), default)
        return builder

    return wrap


def registered_models() -> dict[str, ModelInfo]:
    """Every model registered so far, by name (a copy; `models.registry` imports the whole zoo first)."""
    return dict(_REGISTRY)
