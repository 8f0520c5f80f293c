"""What a `TrainConfig` resolves to before training: model options, features, chunk length, labels.

The resolved values are what a run saves (checkpoint and manifest), so a reader sees what was
used, not ``None`` / ``"auto"``.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn

from pipeline.errors import ParameterError, PipelineError
from pipeline.features.extract import FeatureConfig
from pipeline.sources.labels import LabelConfig
from pipeline.training.config import BASELINES, TrainConfig


@dataclass
class Resolved:
    """What a config resolves to before training: model options, features and input length."""

    model_kwargs: dict[str, Any]
    features: FeatureConfig
    chunk_frames: int


def check_model_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    """Unknown constructor options get a clear error listing the model's options."""
    from models.registry import list_models, registered_models

    info = registered_models().get(name)
    if info is None:
        raise ParameterError(f"unknown model {name!r}; known models: {', '.join(list_models())}; "
                             f"baselines: {', '.join(BASELINES)}")
    params = inspect.signature(info.builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p not in ("self", "n_tags")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ParameterError(f"model {name!r} has no option(s) {unknown}; it accepts: {', '.join(accepted)}")


def resolve_model_input(config: TrainConfig, *, source_ckpt: dict[str, Any] | None = None) -> Resolved:
    """Derive the model options and feature config from the model's `InputSpec` and the overrides.

    The features keep the config's sample rate and STFT; their kind and bins are the model's.
    With ``source_ckpt`` (transfer learning) the source's architecture and features hold.
    """
    from models.registry import model_spec

    if source_ckpt is not None:
        kwargs = {**source_ckpt["model_kwargs"], **config.model_kwargs}
        features: FeatureConfig | None = FeatureConfig.from_dict(source_ckpt["features"])
    else:
        kwargs = dict(config.model_kwargs)
        if config.n_mels is not None:
            kwargs["n_mels"] = config.n_mels
        features = None
    check_model_kwargs(config.model, kwargs)
    try:
        spec = model_spec(config.model, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"model {config.model!r} rejects options {kwargs}: {exc}") from exc
    if features is None:
        bins = {"logmel": {"n_mels": spec.n_bins}, "mfcc": {"n_mfcc": spec.n_bins}}.get(spec.kind, {})
        features = dataclasses.replace(config.features, kind=spec.kind, **bins)
    chunk_frames = spec.chunk_frames
    if config.chunk_seconds is not None:
        chunk_frames = max(1, int(round(config.chunk_seconds * features.frames_per_second)))
        kwargs["chunk_frames"] = chunk_frames
        try:
            chunk_frames = model_spec(config.model, **kwargs).chunk_frames
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"model {config.model!r} cannot take chunk_seconds={config.chunk_seconds}: {exc}") \
                from exc
    return Resolved(model_kwargs=kwargs, features=features, chunk_frames=int(chunk_frames))


def baseline_features(config: TrainConfig) -> FeatureConfig:
    """The features a baseline pools: log-mel at the config's rate and STFT, ``n_mels`` bins if given."""
    return dataclasses.replace(config.features, kind="logmel", n_mels=config.n_mels or config.features.n_mels)


def resolved_config(config: TrainConfig, features: FeatureConfig, labels: LabelConfig) -> TrainConfig:
    """``config`` as it was run: its features, labels and backbone rate resolved (what checkpoints and manifests save)."""
    return dataclasses.replace(config, features=features, labels=labels, backbone_lr_mult=config.backbone_lr_factor)


def build_model(name: str, n_tags: int, kwargs: dict[str, Any]) -> nn.Module:
    """The registered model ``name``; options it rejects are a `ParameterError` naming them."""
    from models.registry import get_model

    try:
        return get_model(name, n_tags=n_tags, **kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PipelineError):
            raise
        raise ParameterError(f"model {name!r} rejects options {kwargs}: {exc}") from exc
