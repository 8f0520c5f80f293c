"""MTT's file format: a write -> read round trip, and one test per malformed case.

Every malformed case must name the file, the line and the column in its message.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataFormatError
from pipeline.sources.mtt_format import (
    ANNOTATIONS_FILE,
    CLIP_INFO_COLUMNS,
    CLIP_INFO_FILE,
    read_annotations,
    read_clip_info,
    read_mtt_corpus,
    write_annotations,
    write_clip_info,
)

TAGS = ["guitar", "no vocals", "classical"]
CLIP_IDS = ["2", "6", "10"]
PATHS = ["f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3",
         "0/a-b-01-c-0-29.mp3", "c/x-y-02-z-30-59.mp3"]
LABELS = np.array([[0, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=np.uint8)
HEADER = '"clip_id"\t"guitar"\t"no vocals"\t"classical"\t"mp3_path"'


def _rows(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


GOOD = ['"2"\t"0"\t"1"\t"1"\t"f/a.mp3"', '"6"\t"1"\t"0"\t"0"\t"0/b.mp3"', '"10"\t"0"\t"0"\t"0"\t"c/c.mp3"']


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ANNOTATIONS_FILE
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(DataFormatError) as info:
        read_annotations(path)
    return str(info.value)


def test_round_trip(tmp_path: Path) -> None:
    write_annotations(tmp_path / ANNOTATIONS_FILE, CLIP_IDS, TAGS, LABELS, PATHS)
    info = pd.DataFrame({c: [f"{c}{i}" for i in range(3)] for c in CLIP_INFO_COLUMNS})
    info["clip_id"], info["mp3_path"], info["title"] = CLIP_IDS, PATHS, ["Aria, BWV 54", 'say "hi"', "tab\tin"]
    write_clip_info(tmp_path / CLIP_INFO_FILE, info)

    # MTT's exact on-disk shape: tab-separated, every field double-quoted
    first = (tmp_path / ANNOTATIONS_FILE).read_text().splitlines()
    assert first[0] == HEADER
    assert first[1] == f'"2"\t"0"\t"1"\t"1"\t"{PATHS[0]}"'

    clip_ids, tags, labels, paths = read_annotations(tmp_path / ANNOTATIONS_FILE)
    assert (clip_ids, tags, paths) == (CLIP_IDS, TAGS, PATHS)
    assert labels.dtype == np.uint8 and np.array_equal(labels, LABELS)
    assert read_clip_info(tmp_path / CLIP_INFO_FILE).equals(info.astype(str))

    raw = read_mtt_corpus(tmp_path)
    assert raw.clip_ids == CLIP_IDS and raw.rel_paths == PATHS
    assert list(raw.metadata["title"]) == ["Aria, BWV 54", 'say "hi"', "tab\tin"]
    assert "mp3_path" not in raw.metadata.columns


def test_clip_info_optional_and_reindexed(tmp_path: Path) -> None:
    write_annotations(tmp_path / ANNOTATIONS_FILE, CLIP_IDS, TAGS, LABELS, PATHS)
    raw = read_mtt_corpus(tmp_path)
    assert len(raw.metadata) == 3 and raw.labels.shape == (3, 3)
    # clip info in another order, with a clip missing: aligned by clip id, blanks filled
    info = pd.DataFrame({c: ["", ""] for c in CLIP_INFO_COLUMNS})
    info["clip_id"], info["title"], info["mp3_path"] = ["10", "2"], ["ten", "two"], [PATHS[2], PATHS[0]]
    write_clip_info(tmp_path / CLIP_INFO_FILE, info)
    assert list(read_mtt_corpus(tmp_path).metadata["title"]) == ["two", "", "ten"]


@pytest.mark.parametrize("column", ["clip_id", "mp3_path"])
def test_missing_column(tmp_path: Path, column: str) -> None:
    header = "\t".join(f'"{c}"' for c in ["clip_id", "guitar", "mp3_path"] if c != column)
    path = _write(tmp_path, header + '\n"1"\t"0"\n')
    message = _error(path)
    assert str(path) in message and "line 1" in message and f"missing column {column!r}" in message


def test_missing_column_in_clip_info(tmp_path: Path) -> None:
    path = tmp_path / CLIP_INFO_FILE
    path.write_text('"clip_id"\t"title"\n"1"\t"x"\n')
    with pytest.raises(DataFormatError, match=rf"{path}, line 1: missing column 'mp3_path'"):
        read_clip_info(path)


@pytest.mark.parametrize("value", ["2", "yes", "", "0.5", " 1"])
def test_value_other_than_0_1(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, _rows(GOOD[0], GOOD[1], f'"10"\t"0"\t"{value}"\t"0"\t"c/c.mp3"'))
    message = _error(path)
    assert message.startswith(f"{path}, line 4, column 'no vocals': expected 0 or 1, got {value!r}")


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, _rows(GOOD[0], "", GOOD[1], '"10"\t"0"\t"0"\t"x"\t"c/c.mp3"'))
    assert _error(path).startswith(f"{path}, line 5, column 'classical'")


def test_short_row(tmp_path: Path) -> None:
    path = _write(tmp_path, _rows(GOOD[0], '"6"\t"1"'))
    assert _error(path).startswith(f"{path}, line 3, column 'no vocals': expected 0 or 1, got ''")


def test_duplicate_clip_id(tmp_path: Path) -> None:
    path = _write(tmp_path, _rows(GOOD[0], GOOD[1], '"2"\t"0"\t"0"\t"0"\t"c/c.mp3"'))
    message = _error(path)
    assert message == f"{path}, line 4, column 'clip_id': duplicate clip id '2' (first on line 2)"


def test_empty_clip_id(tmp_path: Path) -> None:
    path = _write(tmp_path, _rows(GOOD[0], '""\t"0"\t"0"\t"0"\t"c/c.mp3"'))
    assert _error(path) == f"{path}, line 3, column 'clip_id': empty clip id"


@pytest.mark.parametrize("rel", ["/etc/passwd", "../outside.mp3", "f/../../outside.mp3", "C:\\music\\a.mp3"])
def test_path_outside_corpus_root(tmp_path: Path, rel: str) -> None:
    path = _write(tmp_path, _rows(GOOD[0], f'"6"\t"1"\t"0"\t"0"\t"{rel}"'))
    message = _error(path)
    assert message.startswith(f"{path}, line 3, column 'mp3_path': path {rel!r} is outside the corpus root")


def test_empty_path(tmp_path: Path) -> None:
    path = _write(tmp_path, _rows(GOOD[0], '"6"\t"1"\t"0"\t"0"\t""'))
    assert _error(path) == f"{path}, line 3, column 'mp3_path': empty path"


def test_repeated_tag_column(tmp_path: Path) -> None:
    path = _write(tmp_path, '"clip_id"\t"drum"\t"drum"\t"mp3_path"\n"1"\t"0"\t"1"\t"0/a.mp3"\n')
    assert _error(path) == f"{path}, line 1, column 'drum': column given twice"


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="file not found"):
        read_annotations(tmp_path / ANNOTATIONS_FILE)
    path = _write(tmp_path, "")
    assert str(path) in _error(path)


def test_too_many_fields_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, _rows(GOOD[0], GOOD[1] + '\t"extra"'))
    message = _error(path)
    assert str(path) in message and "line 3" in message
