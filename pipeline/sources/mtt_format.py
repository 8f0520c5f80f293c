"""MagnaTagATune's file format: ``annotations_final.csv``, ``clip_info_final.csv``, its audio layout.

The audio lies in 16 folders named by one hex digit (`AUDIO_FOLDERS`) as 16 kHz mono mp3s
at 32 kbit/s (`SAMPLE_RATE`, `MP3_KBPS`); the folder decides the classic split
(`FOLDER_SPLIT`). Both annotation files are tab-separated with every field double-quoted. The annotations hold
``clip_id``, one 0/1 column per tag, then ``mp3_path``; the clip info holds
`CLIP_INFO_COLUMNS`. The real dataset and the synthesized demo corpus share this format,
so one reader serves both.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd

from pipeline.errors import DataFormatError
from pipeline.io import atomic_path
from pipeline.sources.corpus import RawAnnotations

AUDIO_FOLDERS: tuple[str, ...] = tuple("0123456789abcdef")  # where the mp3s lie
SAMPLE_RATE = 16_000  # Hz, mono
MP3_KBPS = 32  # constant bit rate
# MTT's classic split by audio folder (Dieleman & Schrauwen 2014): 0-b train, c valid, d-f test.
FOLDER_SPLIT: dict[str, str] = {
    **{c: "train" for c in AUDIO_FOLDERS[:12]},
    AUDIO_FOLDERS[12]: "valid",
    **{c: "test" for c in AUDIO_FOLDERS[13:]},
}

ANNOTATIONS_FILE = "annotations_final.csv"
CLIP_INFO_FILE = "clip_info_final.csv"
TRUTH_FILE = "truth.csv"  # demo corpus only: every true tag, before simulated annotator dropout
# demo corpus only: its build record (pipeline.sources.demo.build), which also marks a corpus folder as the
# synthesized demo, whose label defaults differ from MagnaTagATune's (pipeline.sources.corpus.LABEL_DEFAULTS)
DEMO_MANIFEST_FILE = "demo_corpus.json"
CLIP_INFO_COLUMNS: tuple[str, ...] = (
    "clip_id", "track_number", "title", "artist", "album", "url",
    "segmentStart", "segmentEnd", "original_url", "mp3_path",
)


def _write_tsv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, quoting=csv.QUOTE_ALL)


def write_annotations(path: Path, clip_ids: Sequence[str], tags: Sequence[str], labels: np.ndarray,
                      mp3_paths: Sequence[str]) -> None:
    """Write an annotations file in MTT's exact format (also used for the demo's truth.csv)."""
    frame = pd.DataFrame(labels.astype(int), columns=list(tags))
    frame.insert(0, "clip_id", list(clip_ids))
    frame["mp3_path"] = list(mp3_paths)
    _write_tsv(path, frame)


def write_clip_info(path: Path, frame: pd.DataFrame) -> None:
    """Write a clip-info file with MTT's columns, in MTT's order."""
    missing = [c for c in CLIP_INFO_COLUMNS if c not in frame.columns]
    assert not missing, f"clip info lacks {missing}"
    _write_tsv(path, frame[list(CLIP_INFO_COLUMNS)])


def _read_tsv(path: Path, required: tuple[str, ...] = ("clip_id", "mp3_path")) -> pd.DataFrame:
    """Read an MTT file as strings; a missing or repeated column is an error naming line 1."""
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quotechar='"')
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not a tab-separated MTT file: {exc}") from exc
    for column in required:
        if column not in frame.columns:
            raise DataFormatError(f"{path}, line 1: missing column {column!r}")
    # pandas renames a repeated header ("drum", "drum.1"); read the header itself to catch it.
    with open(path, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh, delimiter="\t"), [])
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        raise DataFormatError(f"{path}, line 1, column {repeated[0]!r}: column given twice")
    return frame


def _line(path: Path, row: int) -> int:
    """File line of data row ``row`` (0-based), counting blank lines that pandas skips.

    Only called to report an error, so the second read costs nothing in the normal case.
    """
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        seen = -1
        for fields in reader:
            seen += bool(fields)
            if seen == row:
                return reader.line_num
    return row + 2


def _outside_root(rel: str) -> bool:
    """Whether a relative audio path is empty, absolute (POSIX or Windows) or climbs out with '..'."""
    posix, windows = PurePosixPath(rel), PureWindowsPath(rel)
    return not rel or posix.is_absolute() or bool(windows.anchor) or ".." in windows.parts


def read_annotations(path: Path, root: Path | None = None) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """Read and validate an annotations file.

    Returns ``(clip_ids, tags, labels [shape=(n, k), uint8], mp3_paths)``. Raises
    `DataFormatError` naming the file, line and column for a missing column, a value other
    than 0/1, a duplicate clip id, or an audio path outside the corpus root.
    """
    root = path.parent if root is None else root
    frame = _read_tsv(path)
    tags = [c for c in frame.columns if c not in ("clip_id", "mp3_path")]
    values = frame[tags].to_numpy(dtype=str)
    bad = (values != "0") & (values != "1")
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise DataFormatError(
            f"{path}, line {_line(path, row)}, column {tags[col]!r}: expected 0 or 1, got {str(values[row, col])!r}")
    clip_ids = frame["clip_id"].tolist()
    for row, cid in enumerate(clip_ids):
        if not cid.strip():
            raise DataFormatError(f"{path}, line {_line(path, row)}, column 'clip_id': empty clip id")
    duplicated = frame["clip_id"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        first = clip_ids.index(clip_ids[row])
        raise DataFormatError(f"{path}, line {_line(path, row)}, column 'clip_id': duplicate clip id "
                              f"{clip_ids[row]!r} (first on line {_line(path, first)})")
    mp3_paths = frame["mp3_path"].tolist()
    for row, rel in enumerate(mp3_paths):
        if _outside_root(rel):
            what = "empty path" if not rel else f"path {rel!r} is outside the corpus root {root}"
            raise DataFormatError(f"{path}, line {_line(path, row)}, column 'mp3_path': {what}")
    return clip_ids, tags, (values == "1").astype(np.uint8), mp3_paths


def read_clip_info(path: Path) -> pd.DataFrame:
    """Read a clip-info file (all columns as strings); a missing column is an error."""
    return _read_tsv(path)


def is_demo_corpus(root: Path) -> bool:
    """Whether the MTT-format corpus in ``root`` is the synthesized demo corpus (its build record is there)."""
    return (root / DEMO_MANIFEST_FILE).is_file()


def read_mtt_corpus(root: Path) -> RawAnnotations:
    """Read an MTT-format corpus folder (annotations plus optional clip info)."""
    clip_ids, tags, labels, mp3_paths = read_annotations(root / ANNOTATIONS_FILE, root)
    info_path = root / CLIP_INFO_FILE
    if info_path.is_file():
        info = read_clip_info(info_path).drop_duplicates("clip_id").set_index("clip_id")
        metadata = info.reindex(clip_ids).drop(columns=["mp3_path"], errors="ignore")
        metadata = metadata.fillna("").reset_index(drop=True)
    else:
        metadata = pd.DataFrame(index=range(len(clip_ids)))
    return RawAnnotations(clip_ids=clip_ids, rel_paths=mp3_paths, tags=tags, labels=labels,
                          metadata=metadata)
