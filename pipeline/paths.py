"""Where the project keeps what it generates: one home for the repository and data roots.

``data/`` (git-ignored) holds corpora, feature caches and runs. ``MUSICTAG_DATA`` moves it
elsewhere (a larger disk, a shared folder) without touching any command line.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "MUSICTAG_DATA"  # environment variable that moves the data root
PRETRAINED_ENV = "MUSICTAG_PRETRAINED"  # moves the converted published models on their own


def data_root() -> Path:
    """The data root: ``$MUSICTAG_DATA`` when set, else ``<repo>/data``."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else REPO / "data"


def pretrained_root() -> Path:
    """Where published models are fetched and converted: ``$MUSICTAG_PRETRAINED``, else ``<data root>/pretrained``."""
    value = os.environ.get(PRETRAINED_ENV)
    return Path(value).expanduser() if value else data_root() / "pretrained"
