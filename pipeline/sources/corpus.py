"""The Corpus: one in-memory description of a dataset, whatever its source.

MagnaTagATune, the synthesized demo corpus and a user's folder of audio all become the same
`Corpus`; everything downstream (features, training, artifacts, dashboard) knows nothing of
where it came from. This module holds the types only (`RawAnnotations`, `LabelConfig`,
`Corpus`) and what a run records of a corpus (`corpus_record`); the sources read raw
annotations (`pipeline.sources.mtt_format`, `pipeline.sources.folder`), label processing
makes them a Corpus (`pipeline.sources.labels`), and `pipeline.sources.loader.load_corpus`
does both for a folder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import ParameterError

SPLITS: tuple[str, ...] = ("train", "valid", "test")
NO_SPLIT = "none"  # clips outside every split (e.g. a folder tagged only for inference)
SOURCES: tuple[str, ...] = ("mtt", "folder")  # "mtt": MagnaTagATune's file format (also the demo corpus)
SPLIT_MODES: tuple[str, ...] = ("auto", "folder", "random", "file")


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
class LabelConfig:
    """How raw annotations become the training vocabulary and split (`pipeline.sources.labels`).

    ``merge_synonyms=None`` and ``split="auto"`` depend on the source; `resolved` says what they
    become, and every loaded `Corpus` carries the resolved config it was made with.
    A ``split`` that is none of `SPLIT_MODES` is taken as a split CSV's path: ``split="file"``
    with that ``split_file``.
    """

    merge_synonyms: bool | None = None  # None: on for MTT-format corpora (the 29 groups), off otherwise
    top_n: int | None = 50  # keep the N most frequent tags; None keeps all (0 is an error, not "all")
    drop_untagged: bool = False  # drop clips left without any tag after top-N
    split: str = "auto"  # "auto" (folder for MTT format, else random), "folder", "random", "file" (split_file)
    seed: int = 0  # seed of the random split
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train / valid / test shares of a random split
    split_file: str | None = None  # split="file": a CSV with columns clip_id, split

    def __post_init__(self) -> None:
        if self.top_n is not None and (isinstance(self.top_n, bool) or not isinstance(self.top_n, (int, np.integer))
                                       or self.top_n < 1):
            raise ParameterError(f"top_n must be >= 1 (a number of tags; None, or --top-n all, keeps every tag), "
                                 f"got {self.top_n!r}")
        self.top_n = None if self.top_n is None else int(self.top_n)  # a numpy integer would not go into JSON
        try:
            self.ratios = tuple(float(r) for r in self.ratios)  # type: ignore[assignment]
        except (TypeError, ValueError):
            raise ParameterError(f"ratios must be three non-negative shares summing to 1, got {self.ratios!r}") from None
        if (len(self.ratios) != 3 or not all(math.isfinite(r) and r >= 0 for r in self.ratios)
                or abs(sum(self.ratios) - 1) > 1e-6):
            raise ParameterError(f"ratios must be three non-negative shares summing to 1, got {self.ratios}")
        if self.split not in SPLIT_MODES:  # a split CSV given as the split itself
            if self.split_file is not None:
                raise ParameterError(f"split must be one of {SPLIT_MODES} when split_file is given, got {self.split!r}")
            self.split, self.split_file = "file", str(self.split)
        if (self.split == "file") != (self.split_file is not None):
            raise ParameterError(f"split_file goes with split='file' (and only with it); got split={self.split!r}, "
                                 f"split_file={self.split_file!r}")

    def resolved(self, source: str) -> LabelConfig:
        """The config as applied to a corpus of ``source``: no None, no "auto", an absolute split file.

        ``merge_synonyms`` becomes True or False, ``split`` one of "folder", "random", "file".
        """
        if source not in SOURCES:
            raise ParameterError(f"source must be one of {SOURCES}, got {source!r}")
        merge = self.merge_synonyms if self.merge_synonyms is not None else source == "mtt"
        split = self.split if self.split != "auto" else ("folder" if source == "mtt" else "random")
        split_file = str(Path(self.split_file).expanduser().resolve()) if self.split_file is not None else None
        return replace(self, merge_synonyms=bool(merge), split=split, split_file=split_file)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (a list for ``ratios``); ``LabelConfig(**d)`` rebuilds it."""
        return {**asdict(self), "ratios": list(self.ratios)}


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
    label_config : the resolved `LabelConfig` that made the tags and split (None: built by hand)
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
    label_config: LabelConfig | None = None

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


def corpus_record(corpus: Corpus, labels: LabelConfig | None = None) -> dict[str, Any]:
    """What a run's manifest stores about its corpus, enough to reload it (`loader.corpus_from_record`).

    The labels stored are the resolved config (`LabelConfig.resolved`) the corpus was made with,
    ``corpus.label_config``; ``labels`` serves a corpus built by hand, which carries none.
    """
    if corpus.label_config is not None:
        resolved = corpus.label_config
    elif labels is not None:
        resolved = labels.resolved(corpus.source)
    else:
        raise ParameterError(f"corpus {corpus.name!r} carries no label config; pass labels=")
    return {"name": corpus.name, "root": str(corpus.root), "source": corpus.source,
            "labels": resolved.to_dict(), "n_clips": len(corpus), "split_sizes": corpus.split_sizes()}
