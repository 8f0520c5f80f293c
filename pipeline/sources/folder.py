"""A user's own folder of audio as a corpus, with an optional CSV of tags.

Every audio file under the root (mp3, wav, flac, ogg; any case; recursive; hidden files and
folders skipped) becomes a clip whose id is its path relative to the root without the
extension. Tags come from a CSV (``root/tags.csv`` by default, when present) in one of two
styles::

    path,tags                         path,rock,piano,fast
    songs/a.wav,rock;guitar;fast      songs/a.wav,1,0,1
    songs/b.flac,"piano,slow"         songs/b.flac,0,1,0

In the first style names are separated by ``;`` or ``,`` and any further column (``title``,
``artist``, ...) becomes clip metadata; in the second every column but ``path`` is a tag of
0/1 values. ``path`` is relative to the root, with or without the extension. Files the CSV
does not mention have no tags. Without a CSV the vocabulary is empty: a corpus for tagging only.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from pipeline.errors import DataFormatError, ParameterError
from pipeline.sources import AUDIO_EXTENSIONS
from pipeline.sources.corpus import RawAnnotations

log = logging.getLogger(__name__)

TAGS_FILE = "tags.csv"  # read from the root when no tags CSV is given
_TAG_SEPARATORS = re.compile(r"[;,]")


def find_audio(root: Path) -> list[str]:
    """Relative POSIX paths of every audio file under ``root``, sorted; hidden entries skipped.

    A broken symlink with an audio name is kept: it is a clip whose audio is missing, so the
    feature cache counts it and reports it in failures.csv like any other bad file.
    """
    found = []
    broken = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.suffix.lower() not in AUDIO_EXTENSIONS or any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file():
            found.append(rel.as_posix())
        elif path.is_symlink() and not path.exists():
            broken.append(rel.as_posix())
    if broken:
        log.warning("%s: %d broken symlink(s) (e.g. %s); they are reported as missing audio", root, len(broken),
                    broken[0])
    return sorted(found + broken)


def _clip_ids(rel_paths: list[str]) -> list[str]:
    """Path without extension; files that would share an id (a.mp3, a.wav) keep their extension."""
    stems = [str(PurePosixPath(p).with_suffix("")) for p in rel_paths]
    counts = Counter(stems)
    clashes = [p for p, s in zip(rel_paths, stems) if counts[s] > 1]
    if clashes:
        log.warning("%d audio files share a name but not an extension (e.g. %s); their clip ids keep the "
                    "extension", len(clashes), clashes[0])
    return [p if counts[s] > 1 else s for p, s in zip(rel_paths, stems)]


def read_csv_rows(path: Path, what: str = "CSV") -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (stripped; empty for an empty file) and ``(line number, fields)`` of each non-blank row.

    Comma-separated, or tab-separated for a ``.tsv`` file; the line numbers are the file's own,
    for error messages. Used for a folder's tags CSV and for split files.
    """
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, [])
            rows = [(reader.line_num, fields) for fields in reader if any(f.strip() for f in fields)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFormatError(f"{path}: cannot read {what}: {exc}") from exc
    return [h.strip() for h in header], rows


def _resolve(value: str, root: Path, lookup: dict[str, int], where: str,
             ambiguous: dict[str, list[str]] | None = None) -> int:
    """Row index of the clip a CSV ``path`` cell names (relative path, with or without extension).

    ``ambiguous`` maps a path without extension to the files that share it (a.mp3, a.wav).
    """
    text = value.strip().replace("\\", "/")
    if not text:
        raise DataFormatError(f"{where}, column 'path': empty path")
    candidate = PurePosixPath(text)
    if candidate.is_absolute():
        try:
            candidate = PurePosixPath(Path(text).resolve().relative_to(root).as_posix())
        except ValueError:
            raise DataFormatError(f"{where}, column 'path': {value!r} is outside the corpus root {root}") from None
    key = str(candidate)
    if key not in lookup and ambiguous and key in ambiguous:
        raise DataFormatError(f"{where}, column 'path': {value!r} matches {len(ambiguous[key])} files under {root}: "
                              f"{', '.join(ambiguous[key])}; give the path with its extension")
    if key not in lookup:
        raise DataFormatError(f"{where}, column 'path': no audio file {value!r} under {root} "
                              f"(expected one of {', '.join(sorted(AUDIO_EXTENSIONS))})")
    return lookup[key]


def read_tags_csv(path: Path, root: Path, rel_paths: list[str], clip_ids: list[str]
                  ) -> tuple[list[str], np.ndarray, pd.DataFrame]:
    """Read a folder's tags CSV; returns ``(tags, labels [shape=(n, k), uint8], extra metadata)``.

    Raises `DataFormatError` naming the file, line and column for a missing ``path`` column,
    an unknown file, a path given twice, or a value other than 0/1.
    """
    header, rows = read_csv_rows(path, "tags CSV")
    if not header:
        raise DataFormatError(f"{path}, line 1: empty file; expected a header with a 'path' column")
    if "path" not in header:
        raise DataFormatError(f"{path}, line 1: missing column 'path' (header has {header})")
    duplicated = [h for h, c in Counter(header).items() if c > 1]
    if duplicated:
        raise DataFormatError(f"{path}, line 1, column {duplicated[0]!r}: column given twice")
    lookup = {p: i for i, p in enumerate(rel_paths)}
    lookup.update({c: i for i, c in enumerate(clip_ids)})
    by_stem: dict[str, list[str]] = {}
    for p in rel_paths:
        by_stem.setdefault(str(PurePosixPath(p).with_suffix("")), []).append(p)
    ambiguous = {stem: files for stem, files in by_stem.items() if len(files) > 1}
    list_style = "tags" in header
    p_col = header.index("path")
    other = [h for h in header if h not in ("path", "tags")]
    n = len(rel_paths)

    seen: dict[int, int] = {}  # clip row -> CSV line that tagged it
    clip_tags: dict[int, list[str]] = {}
    flags = np.zeros((n, 0 if list_style else len(other)), dtype=np.uint8)
    extra: dict[str, list[str]] = {h: [""] * n for h in other} if list_style else {}
    for line, fields in rows:
        where = f"{path}, line {line}"
        if len(fields) != len(header):
            raise DataFormatError(f"{where}: {len(fields)} fields, but the header has {len(header)}")
        row = dict(zip(header, fields))
        i = _resolve(fields[p_col], root, lookup, where, ambiguous)
        if i in seen:
            raise DataFormatError(f"{where}, column 'path': {fields[p_col]!r} is listed twice "
                                  f"(first on line {seen[i]})")
        seen[i] = line
        if list_style:
            clip_tags[i] = [t.strip() for t in _TAG_SEPARATORS.split(row["tags"]) if t.strip()]
            for h in other:
                extra[h][i] = row[h]
        else:
            for j, h in enumerate(other):
                value = row[h].strip()
                if value not in ("0", "1"):
                    raise DataFormatError(f"{where}, column {h!r}: expected 0 or 1, got {row[h]!r}")
                flags[i, j] = value == "1"
    if len(seen) < n:
        log.info("%s: %d of %d audio files are not listed and have no tags", path, n - len(seen), n)

    if list_style:
        tags = sorted({t for names in clip_tags.values() for t in names})
        col = {t: j for j, t in enumerate(tags)}
        labels = np.zeros((n, len(tags)), dtype=np.uint8)
        for i, names in clip_tags.items():
            labels[i, [col[t] for t in names]] = 1
        return tags, labels, pd.DataFrame(extra)
    return other, flags, pd.DataFrame(index=range(n))


def read_folder(root: Path, tags_csv: Path | str | None = None) -> RawAnnotations:
    """Read a folder of audio (and its optional tags CSV) as raw annotations.

    Parameters
    ----------
    root : the folder; every mp3 / wav / flac / ogg below it is a clip
    tags_csv : a CSV of tags (see the module docstring); default ``root/tags.csv`` if present

    Returns
    -------
    RawAnnotations with ``labels`` of shape (n, k), k = 0 without tags; metadata holds
    ``title`` (the file stem) and any extra CSV columns.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise ParameterError(f"corpus folder does not exist: {root}")
    rel_paths = find_audio(root)
    clip_ids = _clip_ids(rel_paths)
    if tags_csv is None:
        default = root / TAGS_FILE
        csv_path = default if default.is_file() else None
    else:
        csv_path = Path(tags_csv).expanduser()
        if not csv_path.is_file():
            raise ParameterError(f"tags_csv does not exist: {csv_path}")

    metadata = pd.DataFrame({"title": [PurePosixPath(p).stem for p in rel_paths]})
    if csv_path is None:
        tags, labels = [], np.zeros((len(rel_paths), 0), dtype=np.uint8)
    else:
        tags, labels, extra = read_tags_csv(csv_path, root, rel_paths, clip_ids)
        for column in extra.columns:
            if column == "title":  # a CSV title overrides the file stem only where filled in
                filled = extra[column] != ""
                metadata.loc[filled, "title"] = extra.loc[filled, column]
            else:
                metadata[column] = extra[column]
    log.info("%s: %d audio files, %d tags", root, len(rel_paths), len(tags))
    return RawAnnotations(clip_ids=clip_ids, rel_paths=rel_paths, tags=tags, labels=labels, metadata=metadata)
