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
from os import PathLike
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


# What ``merge_synonyms=None`` and ``drop_untagged=None`` become for each kind of corpus.
# MagnaTagATune follows the literature's protocol: the 50 most frequent tags of the raw
# vocabulary, synonyms kept apart (Choi et al. 2016, Pons et al. 2018, Won et al. 2020), and only
# clips with at least one of those tags (Won et al.'s split lists 21,108 of the 25,863 clips). The
# demo corpus spells each concept several ways on purpose, so merging has work to do there; a
# folder of a user's audio keeps its tags and clips as they are.
LABEL_DEFAULTS: dict[str, dict[str, bool]] = {
    "mtt": {"merge_synonyms": False, "drop_untagged": True},
    "demo": {"merge_synonyms": True, "drop_untagged": False},
    "folder": {"merge_synonyms": False, "drop_untagged": False},
}


@dataclass
class LabelConfig:
    """How raw annotations become the training vocabulary and split (`pipeline.sources.labels`).

    ``merge_synonyms=None``, ``drop_untagged=None`` and ``split="auto"`` depend on the corpus
    (`LABEL_DEFAULTS`); `resolved` says what they become, and every loaded `Corpus` carries the
    resolved config it was made with. A ``split`` that is none of `SPLIT_MODES` is taken as the
    path of a split file (or a sequence of paths): ``split="file"`` with that ``split_file``.
    """

    merge_synonyms: bool | None = None  # None: off for MagnaTagATune (the literature's top-50), on for the demo
    top_n: int | None = 50  # keep the N most frequent tags; None keeps all (0 is an error, not "all")
    drop_untagged: bool | None = None  # drop clips left without any tag after top-N; None: on for MagnaTagATune only
    split: str = "auto"  # "auto" (folder for MTT format, else random), "folder", "random", "file" (split_file)
    seed: int = 0  # seed of the random split
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train / valid / test shares of a random split
    # split="file": a split CSV (clip_id, split), a published split file (Won et al.'s train / valid /
    # test .npy lists, musicnn's *_gt_mtt.tsv and index_mtt.tsv), a folder holding them, or several paths
    split_file: str | tuple[str, ...] | None = None

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
        if not isinstance(self.split, str) or self.split not in SPLIT_MODES:  # split files given as the split
            if self.split_file is not None:
                raise ParameterError(f"split must be one of {SPLIT_MODES} when split_file is given, got {self.split!r}")
            self.split, self.split_file = "file", self.split  # type: ignore[assignment]
        self.split_file = _split_paths(self.split_file)
        if (self.split == "file") != (self.split_file is not None):
            raise ParameterError(f"split_file goes with split='file' (and only with it); got split={self.split!r}, "
                                 f"split_file={self.split_file!r}")

    @property
    def split_paths(self) -> tuple[str, ...]:
        """The split file(s) as a tuple of paths (empty unless ``split="file"``)."""
        if self.split_file is None:
            return ()
        return (self.split_file,) if isinstance(self.split_file, str) else tuple(self.split_file)

    def resolved(self, source: str, *, demo: bool = False) -> LabelConfig:
        """The config as applied to a corpus of ``source``: no None, no "auto", absolute split files.

        ``merge_synonyms`` and ``drop_untagged`` become True or False by `LABEL_DEFAULTS` (``demo``:
        the synthesized demo corpus, an MTT-format corpus with its own defaults), ``split`` one of
        "folder", "random", "file".
        """
        if source not in SOURCES:
            raise ParameterError(f"source must be one of {SOURCES}, got {source!r}")
        defaults = LABEL_DEFAULTS["demo" if demo and source == "mtt" else source]
        merge = self.merge_synonyms if self.merge_synonyms is not None else defaults["merge_synonyms"]
        drop = self.drop_untagged if self.drop_untagged is not None else defaults["drop_untagged"]
        split = self.split if self.split != "auto" else ("folder" if source == "mtt" else "random")
        paths = tuple(str(Path(p).expanduser().resolve()) for p in self.split_paths)
        return replace(self, merge_synonyms=bool(merge), drop_untagged=bool(drop), split=split,
                       split_file=_split_paths(paths or None))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (lists for ``ratios`` and several split files); ``LabelConfig(**d)`` rebuilds it."""
        d = {**asdict(self), "ratios": list(self.ratios)}
        if isinstance(self.split_file, tuple):
            d["split_file"] = list(self.split_file)
        return d


def _split_paths(value: Any) -> str | tuple[str, ...] | None:
    """One split path as a string, several as a tuple of strings (a list from JSON included), none as None."""
    if value is None:
        return None
    if isinstance(value, (str, PathLike)):
        return str(value)
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(p, (str, PathLike)) for p in value):
        raise ParameterError(f"split_file must be a path or a list of paths, got {value!r}")
    paths = tuple(str(p) for p in value)
    return paths[0] if len(paths) == 1 else paths


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
    demo : whether this is the synthesized demo corpus (MTT format, its own label defaults: `LABEL_DEFAULTS`)
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
    demo: bool = False

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

    def resolve_labels(self, labels: LabelConfig) -> LabelConfig:
        """``labels`` as they resolve for this corpus (its source, and whether it is the demo)."""
        return labels.resolved(self.source, demo=self.demo)

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
        resolved = labels.resolved(corpus.source, demo=corpus.demo)
    else:
        raise ParameterError(f"corpus {corpus.name!r} carries no label config; pass labels=")
    return {"name": corpus.name, "root": str(corpus.root), "source": corpus.source,
            "labels": resolved.to_dict(), "n_clips": len(corpus), "split_sizes": corpus.split_sizes()}
