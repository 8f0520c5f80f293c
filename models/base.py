"""The contract every tagger follows, and the registration of models (a leaf: it imports no model).

Every model declares the input it expects (`InputSpec`), returns logits from ``forward``
(pair it with ``BCEWithLogitsLoss``), and can return its penultimate embedding (``embed``)
and frame-level tag activations over time (``frame_logits``).
"""

from __future__ import annotations

import re
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

    def named_blocks(self) -> list[tuple[str, nn.Module]]:
        """The network's blocks in input-to-output order, named by their ``state_dict`` prefix.

        What transfer learning freezes or fine-tunes as units ("the last k blocks"). By
        default: the top-level children in definition order (`chain_blocks`), without the
        output layer ``classifier``. A model whose definition order is not its data flow, or
        that wants a finer split, overrides this.
        """
        return [(name, block) for name, block in chain_blocks(self) if name != "classifier"]


def chain_blocks(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The children of ``module`` that hold parameters, in definition order, chains opened.

    An ``nn.Sequential`` is a chain, so its elements are in data-flow order and each becomes a
    block, and so is a module class that says so (``is_chain = True``: its forward runs its
    children one after another in definition order). Any other module stays one block: a
    ``ModuleList`` may hold parallel branches, a residual block has a shortcut. Children
    without parameters (dropout, pooling) are no block.
    """
    out: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        if next(child.parameters(), None) is None:
            continue
        if isinstance(child, nn.Sequential) or getattr(child, "is_chain", False):
            out.extend(chain_blocks(child, f"{prefix}{name}."))
        else:
            out.append((f"{prefix}{name}", child))
    return out


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
    layers : its inspectable layers, as patterns of module names (``named_modules``), in
        input-to-output order; ``*`` stands for one name component (``"blocks.*"``: every block
        of a depth that depends on the options). Each matched module outputs a feature map
        (B, C, T') or (B, C, F', T') whose channels the dashboard's "Inside the model" page shows
        (`inspectable_layers`)
    """

    name: str
    builder: Callable[..., Tagger]
    small: dict[str, Any] = field(default_factory=dict)
    cpu_recipe: dict[str, Any] = field(default_factory=dict)
    default: bool = False
    layers: tuple[str, ...] = ()


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, *, small: dict[str, Any] | None = None, cpu_recipe: dict[str, Any] | None = None,
                   default: bool = False, layers: tuple[str, ...] = ()
                   ) -> Callable[[Callable[..., Tagger]], Callable[..., Tagger]]:
    """Decorator registering a model class or builder under ``name``, with its settings (`ModelInfo`)."""

    def wrap(builder: Callable[..., Tagger]) -> Callable[..., Tagger]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        if default and any(info.default for info in _REGISTRY.values()):
            raise ValueError(f"model {name!r} registered as the default, but there is one already")
        _REGISTRY[name] = ModelInfo(name, builder, dict(small or {}), dict(cpu_recipe or {}), default, tuple(layers))
        return builder

    return wrap


def inspectable_layers(model: nn.Module, patterns: tuple[str, ...]) -> list[tuple[str, nn.Module]]:
    """The modules of ``model`` whose names match ``patterns`` (`ModelInfo.layers`), in pattern order.

    Within one pattern, matches keep ``named_modules`` order (definition order, which the
    patterns of the zoo choose to be data-flow order). Raises ``ValueError`` naming a pattern
    that matches no module (a registration that drifted from its model).
    """
    modules = dict(model.named_modules())
    out: list[tuple[str, nn.Module]] = []
    for pattern in patterns:
        rule = re.compile("^" + re.escape(pattern).replace(r"\*", r"[^.]+") + "$")
        found = [(name, module) for name, module in modules.items() if rule.match(name)]
        if not found:
            raise ValueError(f"layer pattern {pattern!r} matches no module of {type(model).__name__}")
        out.extend(f for f in found if f[0] not in {n for n, _ in out})
    return out


def registered_models() -> dict[str, ModelInfo]:
    """Every model registered so far, by name (a copy; `models.registry` imports the whole zoo first)."""
    return dict(_REGISTRY)
