"""The model zoo by name: importing this module registers every architecture.

In the manner of torchvision's ``get_model`` / ``list_models``: each architecture registers
itself (`models.base.register_model`) together with the settings that belong to it
(`ModelInfo`: its small test size, its CPU recipe, whether it is the default model), so each
of those facts has one home, beside the model.

>>> from models.registry import get_model, small_kwargs
>>> model = get_model("musicnn", n_tags=50, **small_kwargs("musicnn"))
"""

from __future__ import annotations

from typing import Any

from models import crnn, fcn, fcn4, multiscale, musicnn, samplecnn, shortchunk, vgg  # noqa: F401  (registration)
from models.base import InputSpec, ModelInfo, Tagger, inspectable_layers, register_model, registered_models
from pipeline.errors import ParameterError

__all__ = ["InputSpec", "ModelInfo", "Tagger", "default_model", "get_model", "get_model_info", "list_models",
           "model_layers", "model_spec", "register_model", "small_kwargs"]


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(registered_models())


def get_model_info(name: str) -> ModelInfo:
    """The registration of model ``name``: its builder and settings; an unknown name lists the known ones."""
    info = registered_models().get(name)
    if info is None:
        raise ParameterError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return info


def get_model(name: str, n_tags: int, **kwargs: Any) -> Tagger:
    """Build the model registered as ``name`` with ``n_tags`` outputs."""
    return get_model_info(name).builder(n_tags=n_tags, **kwargs)


def model_spec(name: str, **kwargs: Any) -> InputSpec:
    """The input spec of model ``name`` (built once with a single output to read it)."""
    return get_model(name, n_tags=1, **kwargs).spec


def small_kwargs(name: str) -> dict[str, Any]:
    """Keyword options that make model ``name`` small enough for a quick CPU run (tests)."""
    return dict(get_model_info(name).small)


def default_model() -> str:
    """The name of the model registered as the default (of ``python -m pipeline train`` and the demo)."""
    defaults = [name for name, info in registered_models().items() if info.default]
    assert len(defaults) == 1, defaults  # register_model refuses a second default
    return defaults[0]


def model_layers(name: str, model: Tagger) -> list[tuple[str, Any]]:
    """The inspectable layers (name, module) of ``model``, built as model ``name`` (its registered ``layers``)."""
    return inspectable_layers(model, get_model_info(name).layers)
