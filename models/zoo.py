"""The model zoo: importing this module registers every architecture.

`SMALL` holds, per model, keyword options that shrink it (narrower layers) so that it trains
in seconds on a CPU, for tests and the CPU demo; the published sizes stay the defaults of
each class.

>>> from models.registry import get_model
>>> from models.zoo import small_kwargs
>>> model = get_model("musicnn", n_tags=50, **small_kwargs("musicnn"))
"""

from __future__ import annotations

from typing import Any

from models import crnn, fcn, fcn4, multiscale, musicnn, samplecnn, shortchunk  # noqa: F401  (registration)
from models.registry import list_models
from pipeline.errors import ParameterError

SMALL: dict[str, dict[str, Any]] = {
    "fcn": {"width": 0.25},
    "fcn4": {"width": 1 / 16},
    "multiscale": {"width": 0.25},
    "musicnn": {"width": 0.125},
    "shortchunk_res": {"width": 0.125},
    "samplecnn": {"width": 0.125},
    "crnn": {"width": 0.25},
}


def small_kwargs(name: str) -> dict[str, Any]:
    """Keyword options that make model ``name`` small enough for a quick CPU run."""
    if name not in SMALL:
        raise ParameterError(f"no small configuration for model {name!r}; known models: {', '.join(list_models())}")
    return dict(SMALL[name])
