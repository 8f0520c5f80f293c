"""Label processing, in one place: synonym merging, top-N tags, untagged clips, splits.

`process` applies a `LabelConfig` (`pipeline.sources.corpus`) to a source's raw annotations
and returns the `Corpus`, which carries the resolved config it applied.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline.errors import DataFormatError, ParameterError
from pipeline.sources.corpus import NO_SPLIT, SPLITS, Corpus, LabelConfig, RawAnnotations
from pipeline.sources.folder import read_csv_rows
from pipeline.sources.mtt_format import FOLDER_SPLIT
from pipeline.sources.mtt_tags import SYNONYMS

log = logging.getLogger(__name__)


def merge_synonyms(tags: list[str], labels: np.ndarray,
                   groups: tuple[tuple[str, ...], ...] = SYNONYMS) -> tuple[list[str], np.ndarray]:
    """Fold each synonym group into its first name (logical OR of the columns).

    Groups whose names are absent from ``tags`` are ignored; a group's head is created if only
    its synonyms are present. Returns the new vocabulary and label matrix.
    """
    col = {t: i for i, t in enumerate(tags)}
    merged = labels.astype(np.uint8).copy()
    drop: set[str] = set()
    new_tags = list(tags)
    extra: list[np.ndarray] = []
    for head, *others in groups:
        present = [col[t] for t in (head, *others) if t in col]
        if not present:
            continue
        union = merged[:, present].max(axis=1)
        if head in col:
            merged[:, col[head]] = union
        else:
            new_tags.append(head)
            extra.append(union)
        drop.update(t for t in others if t in col)
    if extra:
        merged = np.column_stack([merged, *extra])
    keep = [i for i, t in enumerate(new_tags) if t not in drop]
    return [new_tags[i] for i in keep], merged[:, keep]


def top_n_tags(tags: list[str], labels: np.ndarray, n: int) -> tuple[list[str], np.ndarray]:
    """Keep the ``n`` most frequent tags, most frequent first (ties broken by name)."""
    counts = labels.sum(axis=0)
    order = sorted(range(len(tags)), key=lambda i: (-int(counts[i]), tags[i]))[:n]
    return [tags[i] for i in order], labels[:, order]


def folder_split(rel_paths: list[str]) -> np.ndarray:
    """MTT's split by audio folder: 0-b train, c valid, d-f test; anything else unsplit."""
    # The whole first folder name decides: "c/x.mp3" is valid, but "covers/x.mp3" is unsplit.
    return np.array([FOLDER_SPLIT.get(p.split("/", 1)[0].lower(), NO_SPLIT) if "/" in p else NO_SPLIT
                     for p in rel_paths], dtype=object)


def random_split(n: int, ratios: tuple[float, float, float], seed: int) -> np.ndarray:
    """A seeded random split of ``n`` clips by the given train / valid / test shares."""
    order = np.random.default_rng(seed).permutation(n)
    # Largest-remainder rounding: sizes sum to n and a zero share gets no clip (plain rounding
    # put a clip into a 0.0 test share, e.g. n=5 with ratios 0.9/0.1/0).
    exact = np.asarray(ratios, dtype=float) * n
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[:n - int(sizes.sum())]:
        sizes[i] += 1
    n_train, n_valid = int(sizes[0]), int(sizes[1])
    split = np.empty(n, dtype=object)
    split[order[:n_train]] = "train"
    split[order[n_train:n_train + n_valid]] = "valid"
    split[order[n_train + n_valid:]] = "test"
    return split


def file_split(path: Path, clip_ids: list[str]) -> np.ndarray:
    """Read a split CSV with columns ``clip_id`` and ``split``; clips it omits are unsplit.

    Unknown or repeated clips and split names other than SPLITS or NO_SPLIT are errors
    naming the file, line and column.
    """
    header, rows = read_csv_rows(path, "split file")
    for column in ("clip_id", "split"):
        if column not in header:
            raise DataFormatError(f"{path}, line 1: missing column {column!r} (has {header})")
    i_clip, i_split = header.index("clip_id"), header.index("split")
    known = set(clip_ids)
    lookup: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line, fields in rows:
        fields = [f.strip() for f in fields] + [""] * (len(header) - len(fields))
        cid, name = fields[i_clip], fields[i_split]
        if name not in (*SPLITS, NO_SPLIT):
            raise DataFormatError(
                f"{path}, line {line}, column 'split': expected one of {(*SPLITS, NO_SPLIT)}, got {name!r}")
        if cid not in known:
            raise DataFormatError(f"{path}, line {line}, column 'clip_id': unknown clip {cid!r}")
        if cid in lookup:
            raise DataFormatError(
                f"{path}, line {line}, column 'clip_id': clip {cid!r} given twice (first on line {first_line[cid]})")
        lookup[cid], first_line[cid] = name, line
    return np.array([lookup.get(c, NO_SPLIT) for c in clip_ids], dtype=object)


def process(raw: RawAnnotations, config: LabelConfig, *, name: str, root: Path, source: str) -> Corpus:
    """Turn a source's raw annotations into a `Corpus` according to ``config``.

    The corpus's ``label_config`` is ``config.resolved(source)``: what was applied.
    """
    given_split_file, config = config.split_file, config.resolved(source)
    tags, labels = list(raw.tags), raw.labels.astype(np.uint8)
    if config.merge_synonyms and tags:
        tags, labels = merge_synonyms(tags, labels)
    if config.top_n is not None and len(tags) > config.top_n:
        tags, labels = top_n_tags(tags, labels, config.top_n)

    if config.split == "folder":
        split = folder_split(raw.rel_paths)
    elif config.split == "random":
        split = random_split(len(raw.clip_ids), config.ratios, config.seed)
    else:
        assert config.split == "file" and config.split_file is not None, config
        split_path = Path(config.split_file)
        if not split_path.is_file():
            raise ParameterError(f"split must be 'auto', 'folder', 'random' or a split CSV; no such file: "
                                 f"{given_split_file}")
        split = file_split(split_path, raw.clip_ids)

    keep = np.ones(len(raw.clip_ids), dtype=bool)
    if config.drop_untagged and tags:
        keep = labels.sum(axis=1) > 0
        log.info("dropping %d clips without any of the %d tags", int((~keep).sum()), len(tags))
    rows = np.flatnonzero(keep)
    metadata = raw.metadata.iloc[rows].reset_index(drop=True) if len(raw.metadata) else raw.metadata
    return Corpus(
        name=name, root=root, source=source,
        clip_ids=[raw.clip_ids[i] for i in rows],
        rel_paths=[raw.rel_paths[i] for i in rows],
        tags=tags, labels=labels[rows], split=split[rows], metadata=metadata, label_config=config,
    )
