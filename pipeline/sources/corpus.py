"""The Corpus: one in-memory description of a dataset, whatever its source.

MagnaTagATune, the synthesized demo corpus and a user's folder of audio all become the same
`Corpus`; everything downstream (features, training, artifacts, dashboard) knows nothing of
where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.errors import DataFormatError, ParameterError

if TYPE_CHECKING:
    from pipeline.sources.labels import LabelConfig

SPLITS: tuple[str, ...] = ("train", "valid", "test")
NO_SPLIT = "none"  # clips outside every split (e.g. a folder tagged only for inference)


@dataclass
class RawAnnotations:
    """A source's annotations before label processing (synonyms, top-N, split).

    Attributes
    ----------
    clip_ids : list[str] [len n]
    rel_paths : list[str] [len n]  audio path relative to the corpus root
    tags : list[str] [len k]
    labels : np.ndarray [shape=(n, k), dtype=uint8]
    metadata : pd.DataFrame [n rows]  title, artist, ... aligned with ``clip_ids``
    """

    clip_ids: list[str]
    rel_paths: list[str]
    tags: list[str]
    labels: np.ndarray
    metadata: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class Corpus:
    """A processed dataset: clips, audio paths, tag vocabulary, label matrix and split.

    Attributes
    ----------
    name : str  short name (the corpus folder's name)
    root : Path  folder that holds the audio and annotation files
    source : str  ``"mtt"`` (MagnaTagATune file format, also the demo corpus) or ``"folder"``
    clip_ids : list[str] [len n]
    rel_paths : list[str] [len n]  audio paths relative to ``root``
    tags : list[str] [len k]
    labels : np.ndarray [shape=(n, k), dtype=uint8]
    split : np.ndarray [shape=(n,), dtype=object]  one of SPLITS or NO_SPLIT per clip
    metadata : pd.DataFrame [n rows]
    """

    name: str
    root: Path
    source: str
    clip_ids: list[str]
    rel_paths: list[str]
    tags: list[str]
    labels: np.ndarray
    split: np.ndarray
    metadata: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        n = len(self.clip_ids)
        assert len(self.rel_paths) == n and len(self.split) == n
        assert self.labels.shape == (n, len(self.tags))

    def __len__(self) -> int:
        return len(self.clip_ids)

    def audio_path(self, i: int) -> Path:
        """Absolute path of clip ``i``'s audio file."""
        return self.root / self.rel_paths[i]

    @property
    def audio_paths(self) -> list[Path]:
        return [self.root / p for p in self.rel_paths]

    def indices(self, split: str) -> np.ndarray:
        """Row indices of the clips in ``split`` (one of SPLITS or NO_SPLIT)."""
        if split not in (*SPLITS, NO_SPLIT):
            raise ParameterError(f"split must be one of {SPLITS + (NO_SPLIT,)}, got {split!r}")
        return np.flatnonzero(self.split == split)

    def split_sizes(self) -> dict[str, int]:
        """Number of clips per split (only splits that have clips)."""
        names, counts = np.unique(self.split.astype(str), return_counts=True)
        return {str(k): int(v) for k, v in zip(names, counts)}

    def tag_lists(self, rows: np.ndarray | None = None) -> list[list[str]]:
        """Each clip's tags as a list of names (the 'sentences' of the co-occurrence view)."""
        rows = np.arange(len(self)) if rows is None else rows
        tags = np.asarray(self.tags, dtype=object)
        return [list(tags[self.labels[i].astype(bool)]) for i in rows]

    def tag_index(self, tag: str) -> int:
        """Column of ``tag`` in the label matrix; a clear error lists the vocabulary."""
        try:
            return self.tags.index(tag)
        except ValueError:
            raise ParameterError(f"unknown tag {tag!r}; the corpus has: {', '.join(self.tags)}") from None


def detect_source(root: Path) -> str:
    """Guess a corpus folder's source: MTT's annotation file, else a plain folder of audio."""
    if (root / "annotations_final.csv").is_file():
        return "mtt"
    return "folder"


def load_corpus(root: str | Path, labels: LabelConfig | None = None, *, source: str = "auto",
                tags_csv: str | Path | None = None) -> Corpus:
    """Load the corpus in ``root`` and apply label processing.

    Parameters
    ----------
    root : folder of an MTT-format corpus (real MagnaTagATune or the demo) or of plain audio
    labels : label processing (synonyms, top-N, split); defaults per source
    source : ``"auto"``, ``"mtt"`` or ``"folder"``
    tags_csv : for a folder source, an optional CSV of tags (see `pipeline.sources.folder`)
    """
    from pipeline.sources.labels import LabelConfig, process

    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ParameterError(f"corpus folder does not exist: {root}")
    if source == "auto":
        source = detect_source(root)
    if source == "mtt":
        from pipeline.sources.mtt_format import read_mtt_corpus

        raw = read_mtt_corpus(root)
    elif source == "folder":
        from pipeline.sources.folder import read_folder

        raw = read_folder(root, tags_csv=tags_csv)
    else:
        raise ParameterError(f"source must be 'auto', 'mtt' or 'folder', got {source!r}")
    if not raw.clip_ids:
        raise DataFormatError(f"{root}: no clips found")
    return process(raw, labels or LabelConfig(), name=root.name, root=root, source=source)


def corpus_record(corpus: Corpus, labels: LabelConfig) -> dict:
    """What a run's manifest stores about its corpus, enough to reload it (`corpus_from_record`)."""
    from dataclasses import asdict

    return {"name": corpus.name, "root": str(corpus.root), "source": corpus.source,
            "labels": {**asdict(labels), "ratios": list(labels.ratios)},
            "n_clips": len(corpus), "split_sizes": corpus.split_sizes()}


def corpus_from_record(record: dict) -> Corpus:
    """Reload the corpus a run was trained on from its manifest's ``corpus`` record."""
    from pipeline.sources.labels import LabelConfig

    labels = dict(record.get("labels", {}))
    if "ratios" in labels:
        labels["ratios"] = tuple(labels["ratios"])
    return load_corpus(record["root"], LabelConfig(**labels), source=record.get("source", "auto"))
