"""Where the project keeps what it generates: one home for the repository and data roots.

``data/`` (git-ignored) holds corpora, feature caches, review databases and runs.
``MUSICTAG_DATA`` moves it elsewhere (a larger disk, a shared folder) without touching any
command line.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "MUSICTAG_DATA"  # environment variable that moves the data root
PRETRAINED_ENV = "MUSICTAG_PRETRAINED"  # moves the converted published models on their own
REVIEWS_ENV = "MUSICTAG_REVIEWS"  # moves the review (verdict) databases on their own
REVIEWS_FOLDER = "reviews"  # under the data root: the default home of the verdict databases


def data_root() -> Path:
    """The data root: ``$MUSICTAG_DATA`` when set, else ``<repo>/data``."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else REPO / "data"


def pretrained_root() -> Path:
    """Where published models are fetched and converted: ``$MUSICTAG_PRETRAINED``, else ``<data root>/pretrained``."""
    value = os.environ.get(PRETRAINED_ENV)
    return Path(value).expanduser() if value else data_root() / "pretrained"


def reviews_root() -> Path:
    """Where the verdict databases live: ``$MUSICTAG_REVIEWS``, else ``<data root>/reviews``."""
    value = os.environ.get(REVIEWS_ENV)
    return Path(value).expanduser() if value else data_root() / REVIEWS_FOLDER


def corpus_key(root: str | os.PathLike[str]) -> str:
    """``<folder name>-<hash>``: a stable name for a corpus folder, wherever it lives.

    The hash is of the resolved path, or of the path relative to the data root for a corpus
    inside it (the demo, MagnaTagATune), so moving the data root keeps what is keyed by it
    (feature caches, verdict databases) valid; two folders of the same name get two keys.
    """
    resolved = Path(root).expanduser().resolve()
    try:
        identity = "data-root:" + resolved.relative_to(data_root().expanduser().resolve()).as_posix()
    except ValueError:
        identity = resolved.as_posix()
    return f"{resolved.name}-{hashlib.sha1(identity.encode()).hexdigest()[:12]}"
