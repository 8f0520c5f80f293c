"""Label processing, in one place: synonym merging, top-N tags, untagged clips, splits.

`process` applies a `LabelConfig` (`pipeline.sources.corpus`) to a source's raw annotations
and returns the `Corpus`, which carries the resolved config it applied.

Splits come from MTT's audio folders, a seeded random draw, or split files (`read_split`): the
project's split CSV (``clip_id,split``), or the published MagnaTagATune splits as their authors
distribute them:

- Won et al. 2020 (minzwon/sota-music-tagging-models, ``split/mtat/{train,valid,test}.npy``): a
  numpy array of strings ``"<n>\t<folder>/<clip>.mp3"``; the clip is found by its audio path (the
  number, a row of the authors' label matrix, is not needed). Read with ``allow_pickle=False``: an
  array of Python objects is refused.
- musicnn (jordipons/musicnn-training, ``index/mtt/{train,val,test}_gt_mtt.tsv``): lines
  ``<clip_id>\t[<50 ground-truth values>]``, without a header; with ``index_mtt.tsv`` beside them
  (``<clip_id>\t<path>``), ids are matched through its paths, otherwise as clip ids.

Each file's split is in its name (``train``, ``valid`` / ``val``, ``test``); a folder stands for the
published files in it. Clips a published list names but the corpus lacks (a partial copy, or
the three broken MTT files musicnn's lists skip anyway) are counted and reported in one warning
per file, not an error; a file none of whose clips is in the corpus is an error (the wrong
corpus). The project's own split CSV stays strict: an unknown clip there is an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
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


# A published split file's split is in its name: train.npy, valid.npy, val_gt_mtt.tsv, test_gt_mtt.tsv ...
_SPLIT_NAME = re.compile(r"^(train|validation|valid|val|test)(?![a-z])", re.IGNORECASE)
_SPLIT_OF_NAME = {"train": "train", "validation": "valid", "valid": "valid", "val": "valid", "test": "test"}
_INDEX_NAME = re.compile(r"^index(?![a-z])", re.IGNORECASE)
# musicnn's ground-truth vector: "[0.0, 1.0, ...]" (read as numbers, never evaluated as Python)
_GT_VECTOR = re.compile(r"^\[\s*(?:[-+0-9.eE]+\s*(?:,\s*[-+0-9.eE]+\s*)*)?\]$")


def split_of_name(path: Path) -> str | None:
    """The split a published split file holds, from its name (``train``, ``valid`` / ``val``, ``test``)."""
    match = _SPLIT_NAME.match(path.name)
    return _SPLIT_OF_NAME[match.group(1).lower()] if match else None


def _first_fields(path: Path) -> list[str]:
    """The tab-separated fields of a text file's first line (to tell a split table from musicnn's files)."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return [f.strip() for f in fh.readline().rstrip("\r\n").split("\t")]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: cannot read split file: {exc}") from exc


def _file_kind(path: Path) -> str:
    """"won", "musicnn_gt", "musicnn_index" or "csv" (the project's split table), from name and first line."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return "won"
    if suffix == ".tsv":
        if {"clip_id", "split"} <= set(_first_fields(path)):
            return "csv"  # the project's split table, tab-separated
        if _INDEX_NAME.match(path.name):
            return "musicnn_index"
        if split_of_name(path):
            return "musicnn_gt"
        raise DataFormatError(f"{path}: not a split file this reads: a musicnn file is named index*.tsv or "
                              f"train / val / test*.tsv, a split table has columns clip_id and split")
    if suffix == ".csv":
        return "csv"
    raise DataFormatError(f"{path}: not a split file this reads (a split CSV, Won et al.'s .npy lists, musicnn's "
                          f".tsv index files); pickles such as .cP files are never read")


def _no_split_file(given: str | Path) -> ParameterError:
    return ParameterError(f"split must be 'auto', 'folder', 'random' or split file(s) / a folder of them; "
                          f"no such file or folder: {given}")


def split_files(paths: Sequence[str | Path]) -> list[Path]:
    """The split files ``paths`` stand for: each file itself, each folder the published split files in it.

    A folder's published files are its ``train`` / ``valid`` / ``test`` ``.npy`` lists and its
    ``.tsv`` files named by a split or ``index``; anything else there (``tags.npy``, label files)
    is not a split and is passed over. A missing path, or a folder with none, is a `ParameterError`.
    """
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".npy", ".tsv")
                            and (split_of_name(p) or (p.suffix.lower() == ".tsv" and _INDEX_NAME.match(p.name))))
            if not inside:
                raise ParameterError(f"split folder {path} holds no published split files (train / valid / test .npy "
                                     f"lists, or musicnn's *_gt_*.tsv and index*.tsv)")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise _no_split_file(given)
    return found


def read_won_list(path: Path) -> list[str]:
    """The audio paths in one of Won et al.'s ``split/mtat/*.npy`` lists (``"<n>\t<path>"`` strings)."""
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataFormatError(f"{path}: an array of Python objects, readable only by unpickling, which is never "
                                  f"done here; save it as strings first: np.save(path, np.asarray(a, dtype=str))") from None
        raise DataFormatError(f"{path}: not a numpy array file: {exc}") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read: {exc}") from None
    if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype.kind not in "US":
        what = f"{array.ndim}-d {array.dtype}" if isinstance(array, np.ndarray) else type(array).__name__
        raise DataFormatError(f"{path}: expected a 1-d array of strings '<n>\\t<path>', got a {what} array")
    entries = [e.decode("utf-8") if isinstance(e, bytes) else str(e) for e in array.tolist()]
    paths = []
    for i, entry in enumerate(entries):
        _, sep, rel = entry.partition("\t")  # the number: a row of the authors' label matrix, not needed
        if not sep or not rel.strip():
            raise DataFormatError(f"{path}, entry {i}: expected '<n>\\t<path>', got {entry!r}")
        paths.append(rel.strip())
    return paths


def read_musicnn_file(path: Path, *, index: bool) -> list[tuple[int, str, str]]:
    """``(line, id, value)`` of each line of a musicnn index file (value: the path) or ground-truth file.

    The files have no header: every non-blank line is ``<id>\\t<value>``. A ground-truth value must
    be a bracketed list of numbers; it is checked, not used (the split is the list of ids; the
    labels come from the corpus's own annotations).
    """
    try:
        with open(path, encoding="utf-8-sig") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: cannot read musicnn split file: {exc}") from exc
    out = []
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        cid, sep, value = text.partition("\t")
        value = value.split("\t")[0].strip()  # a preprocessed index adds a third column: ignored
        if not sep or not cid.strip() or not value:
            raise DataFormatError(f"{path}, line {line}: expected '<clip_id>\\t<{'path' if index else 'vector'}>', "
                                  f"got {text[:60]!r}")
        if not index and not _GT_VECTOR.match(value):
            raise DataFormatError(f"{path}, line {line}: expected a ground-truth vector '[0.0, 1.0, ...]', "
                                  f"got {value[:40]!r}")
        out.append((line, cid.strip(), value))
    return out


def published_split(files: list[Path], clip_ids: list[str], rel_paths: list[str]) -> np.ndarray:
    """The split that Won et al.'s or musicnn's published files give the clips; clips they omit are unsplit.

    Listed clips the corpus lacks are counted (one warning per file); a file that names no clip
    of the corpus, a clip listed twice, or two files of one split are `DataFormatError`s.
    """
    kinds = {f: _file_kind(f) for f in files}
    if "csv" in kinds.values():
        raise DataFormatError(f"{next(f for f, k in kinds.items() if k == 'csv')}: a split CSV goes alone, not with "
                              f"other split files")
    by_path = {p: i for i, p in enumerate(rel_paths)}
    by_id = {c: i for i, c in enumerate(clip_ids)}
    indexes = [f for f, k in kinds.items() if k == "musicnn_index"]
    if len(indexes) > 1:
        raise DataFormatError(f"{indexes[1]}: a second musicnn index (the first is {indexes[0]})")
    id_path = {cid: rel for _, cid, rel in read_musicnn_file(indexes[0], index=True)} if indexes else None
    lists = [f for f, k in kinds.items() if k != "musicnn_index"]
    if not lists:
        raise DataFormatError(f"{indexes[0]}: an index file maps ids to paths but holds no split; give the "
                              f"train / val / test *_gt_*.tsv files too")
    split = np.full(len(clip_ids), NO_SPLIT, dtype=object)
    listed_in: dict[int, Path] = {}
    split_file_of: dict[str, Path] = {}
    for path in lists:
        name = split_of_name(path)
        if name is None:
            raise DataFormatError(f"{path}: cannot tell which split it holds; its name must start with train, "
                                  f"valid (val) or test")
        if name in split_file_of:
            raise DataFormatError(f"{path}: a second {name} list (the first is {split_file_of[name]})")
        split_file_of[name] = path
        if kinds[path] == "won":
            keys = read_won_list(path)
            rows = [by_path.get(k) for k in keys]
        else:
            keys = [cid for _, cid, _ in read_musicnn_file(path, index=False)]
            if id_path is None:
                rows = [by_id.get(k) for k in keys]
            else:
                rows = [by_path.get(id_path[k]) if k in id_path else None for k in keys]
        missing = [k for k, r in zip(keys, rows) if r is None]
        if keys and len(missing) == len(keys):
            raise DataFormatError(f"{path}: none of the {len(keys)} clips it lists is in the corpus (first: "
                                  f"{keys[0]!r}); is it the split of another corpus?")
        if missing:
            log.warning("%s: %d of the %d clips it lists are not in the corpus (e.g. %r); they are left out",
                        path, len(missing), len(keys), missing[0])
        for key, row in zip(keys, rows):
            if row is None:
                continue
            if row in listed_in:
                raise DataFormatError(f"{path}: clip {clip_ids[row]!r} ({key}) is also listed in {listed_in[row]}")
            listed_in[row] = path
            split[row] = name
    log.info("split from %s: %s", ", ".join(p.name for p in lists),
             ", ".join(f"{s} {int((split == s).sum())}" for s in SPLITS))
    return split


def read_split(paths: Sequence[str | Path], clip_ids: list[str], rel_paths: list[str]) -> np.ndarray:
    """The split that split file(s) or a folder of them give each clip (NO_SPLIT for clips they omit).

    One split CSV (`file_split`), or the published files of Won et al. or musicnn (`published_split`).
    """
    files = split_files(paths)
    if len(files) == 1 and _file_kind(files[0]) == "csv":
        return file_split(files[0], clip_ids)
    return published_split(files, clip_ids, rel_paths)


def process(raw: RawAnnotations, config: LabelConfig, *, name: str, root: Path, source: str,
            demo: bool = False) -> Corpus:
    """Turn a source's raw annotations into a `Corpus` according to ``config``.

    The corpus's ``label_config`` is ``config.resolved(source, demo=demo)``: what was applied
    (``demo``: the synthesized demo corpus, whose label defaults differ from MagnaTagATune's).
    """
    given_paths, config = config.split_paths, config.resolved(source, demo=demo)
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
        assert config.split == "file" and config.split_paths, config
        for shown, path in zip(given_paths, config.split_paths):
            if not Path(path).exists():  # named as given: a typo of a mode reads as one
                raise _no_split_file(shown)
        split = read_split(config.split_paths, raw.clip_ids, raw.rel_paths)

    keep = np.ones(len(raw.clip_ids), dtype=bool)
    if config.drop_untagged and tags:
        keep = labels.sum(axis=1) > 0
        log.info("dropping %d of %d clips without any of the %d tags (drop_untagged; --keep-untagged keeps them)",
                 int((~keep).sum()), len(keep), len(tags))
    rows = np.flatnonzero(keep)
    metadata = raw.metadata.iloc[rows].reset_index(drop=True) if len(raw.metadata) else raw.metadata
    return Corpus(
        name=name, root=root, source=source,
        clip_ids=[raw.clip_ids[i] for i in rows],
        rel_paths=[raw.rel_paths[i] for i in rows],
        tags=tags, labels=labels[rows], split=split[rows], metadata=metadata, label_config=config,
        demo=demo and source == "mtt",
    )
