"""A user's folder of audio as a corpus: discovery, both tags-CSV styles, every error branch."""

from __future__ import annotations

from pathlib import Path

import lameenc
import numpy as np
import pytest
import soundfile as sf

from pipeline.errors import DataFormatError, ParameterError
from pipeline.sources.folder import read_folder
from pipeline.sources.loader import load_corpus

SR = 16000


def _tone(seconds: float = 0.2, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write_mp3(path: Path, audio: np.ndarray) -> None:
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(32)
    encoder.set_in_sample_rate(SR)
    encoder.set_channels(1)
    encoder.set_quality(7)
    pcm = (audio * 32767).astype(np.int16).tobytes()
    path.write_bytes(encoder.encode(pcm) + encoder.flush())


@pytest.fixture
def music(tmp_path: Path) -> Path:
    """A folder with wav, FLAC, mp3 and Ogg audio, nested, plus files that are not clips."""
    root = tmp_path / "music"
    (root / "A" / "sub").mkdir(parents=True)
    (root / ".cache").mkdir()
    sf.write(root / "b.wav", _tone(), SR)
    sf.write(root / "A" / "x.FLAC", _tone(freq=220), SR, format="FLAC")
    _write_mp3(root / "A" / "sub" / "y.mp3", _tone(freq=880))
    sf.write(root / "c.Ogg", _tone(freq=330), SR, format="OGG")
    sf.write(root / ".cache" / "hidden.wav", _tone(), SR)  # hidden folder: skipped
    (root / "notes.txt").write_text("not audio")
    (root / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    return root


PATHS = ["A/sub/y.mp3", "A/x.FLAC", "b.wav", "c.Ogg"]
IDS = ["A/sub/y", "A/x", "b", "c"]


def test_discovers_audio_without_tags(music: Path) -> None:
    raw = read_folder(music)
    assert raw.rel_paths == PATHS and raw.clip_ids == IDS
    assert raw.tags == [] and raw.labels.shape == (4, 0) and raw.labels.dtype == np.uint8
    assert list(raw.metadata["title"]) == ["y", "x", "b", "c"]
    # the files the test wrote really are audio: the corpus paths lead to decodable files
    assert sf.info(music / raw.rel_paths[1]).samplerate == SR


def test_tag_only_corpus(music: Path) -> None:
    corpus = load_corpus(music, source="folder")
    assert corpus.source == "folder" and corpus.name == "music" and len(corpus) == 4
    assert corpus.tags == [] and corpus.labels.shape == (4, 0)
    assert all(p.is_file() for p in corpus.audio_paths)
    assert sum(corpus.split_sizes().values()) == 4
    assert load_corpus(music).source == "folder"  # detected: no annotations_final.csv


def test_tags_list_style(music: Path) -> None:
    (music / "tags.csv").write_text(
        'path,tags,artist\n'
        'b.wav,rock;guitar,Band\n'
        'A/x.FLAC,"piano, slow",\n'
        '\n'
        'A/sub/y,rock,Other\n')  # a path may leave out the extension
    raw = read_folder(music)  # root/tags.csv is the default
    assert raw.tags == ["guitar", "piano", "rock", "slow"]
    assert raw.labels.tolist() == [
        [0, 0, 1, 0],  # A/sub/y
        [0, 1, 0, 1],  # A/x
        [1, 0, 1, 0],  # b
        [0, 0, 0, 0],  # c: not listed, no tags
    ]
    assert list(raw.metadata["artist"]) == ["Other", "", "Band", ""]
    assert list(raw.metadata["title"]) == ["y", "x", "b", "c"]


def test_tags_binary_style_outside_root(music: Path, tmp_path: Path) -> None:
    tags_csv = tmp_path / "my_tags.csv"
    tags_csv.write_text("path,rock,piano\nc.Ogg,1,0\nA/x.FLAC,0,1\nb.wav, 1 ,1\n")
    raw = read_folder(music, tags_csv=tags_csv)
    assert raw.tags == ["rock", "piano"]
    assert raw.labels.tolist() == [[0, 0], [0, 1], [1, 1], [1, 0]]

    corpus = load_corpus(music, tags_csv=str(tags_csv))
    assert corpus.source == "folder" and corpus.tags == ["rock", "piano"]
    assert corpus.labels.sum() == 4


def test_absolute_path_inside_root(music: Path) -> None:
    (music / "tags.csv").write_text(f"path,tags\n{music / 'b.wav'},rock\n")
    assert read_folder(music).labels[2].tolist() == [1]


def test_title_column_overrides_stem(music: Path) -> None:
    (music / "tags.csv").write_text("path,tags,title\nb.wav,rock,My Song\nc.Ogg,rock,\n")
    assert list(read_folder(music).metadata["title"]) == ["y", "x", "My Song", "c"]


def test_same_name_different_extension(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", _tone(), SR)
    sf.write(tmp_path / "a.flac", _tone(), SR, format="FLAC")
    sf.write(tmp_path / "b.wav", _tone(), SR)
    raw = read_folder(tmp_path)
    assert raw.clip_ids == ["a.flac", "a.wav", "b"]


def _error(music: Path, text: str) -> str:
    path = music / "tags.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError) as info:
        read_folder(music)
    return str(info.value)


def test_missing_path_column(music: Path) -> None:
    assert _error(music, "file,tags\nb.wav,rock\n").startswith(f"{music / 'tags.csv'}, line 1: missing column 'path'")


def test_unknown_file(music: Path) -> None:
    message = _error(music, "path,tags\nb.wav,rock\nnope.wav,pop\n")
    assert message.startswith(f"{music / 'tags.csv'}, line 3, column 'path': no audio file 'nope.wav'")


def test_hidden_or_non_audio_file_is_unknown(music: Path) -> None:
    assert "line 2, column 'path': no audio file 'notes.txt'" in _error(music, "path,tags\nnotes.txt,x\n")
    assert "line 2, column 'path'" in _error(music, "path,tags\n.cache/hidden.wav,x\n")


def test_path_outside_root(music: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.wav"
    message = _error(music, f"path,tags\n{outside},rock\n")
    assert message.startswith(f"{music / 'tags.csv'}, line 2, column 'path': '{outside}' is outside the corpus root")
    assert "line 2, column 'path': no audio file '../music/b.wav'" in _error(music, "path,tags\n../music/b.wav,x\n")


def test_duplicate_path(music: Path) -> None:
    message = _error(music, "path,tags\nb.wav,rock\nc.Ogg,pop\nb,jazz\n")  # b and b.wav: the same clip
    assert message == f"{music / 'tags.csv'}, line 4, column 'path': 'b' is listed twice (first on line 2)"


def test_value_other_than_0_1(music: Path) -> None:
    message = _error(music, "path,rock,piano\nb.wav,1,0\nc.Ogg,0,yes\n")
    assert message == f"{music / 'tags.csv'}, line 3, column 'piano': expected 0 or 1, got 'yes'"


def test_wrong_field_count(music: Path) -> None:
    message = _error(music, "path,rock,piano\nb.wav,1\n")
    assert message.startswith(f"{music / 'tags.csv'}, line 2: 2 fields, but the header has 3")


def test_empty_path_and_empty_file(music: Path) -> None:
    assert _error(music, "path,tags\n,rock\n").endswith("line 2, column 'path': empty path")
    assert _error(music, "").startswith(f"{music / 'tags.csv'}, line 1: empty file")


def test_repeated_column(music: Path) -> None:
    assert _error(music, "path,rock,rock\nb.wav,1,0\n").endswith("line 1, column 'rock': column given twice")


def test_missing_tags_csv_or_root(music: Path, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="tags_csv does not exist: .*absent.csv"):
        read_folder(music, tags_csv=tmp_path / "absent.csv")
    with pytest.raises(ParameterError, match="corpus folder does not exist"):
        read_folder(tmp_path / "nowhere")


def test_broken_symlink_is_a_clip_reported_as_missing(music: Path, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.features.cache import build_cache
    from pipeline.features.extract import FeatureConfig

    (music / "gone.wav").symlink_to(tmp_path / "deleted.wav")
    raw = read_folder(music)
    assert "gone.wav" in raw.rel_paths and "broken symlink" in caplog.text
    cache = build_cache(load_corpus(music), FeatureConfig(n_mels=32), workers=1, progress=False)
    assert len(cache) == len(PATHS)
    row = cache.failures.set_index("path").loc["gone.wav"]
    assert row["reason"].startswith("missing: broken symlink to ") and str(tmp_path / "deleted.wav") in row["reason"]


def test_stem_matching_two_files_is_ambiguous(music: Path) -> None:
    sf.write(music / "b.flac", _tone(), SR, format="FLAC")  # beside b.wav
    message = _error(music, "path,tags\nb,rock\n")
    assert "line 2, column 'path': 'b' matches 2 files" in message
    assert "b.flac, b.wav" in message and "extension" in message
    (music / "tags.csv").write_text("path,tags\nb.wav,rock\n")  # the full name is not ambiguous
    raw = read_folder(music)
    assert raw.labels[raw.rel_paths.index("b.wav")].tolist() == [1]
