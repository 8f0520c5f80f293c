"""Published MagnaTagATune splits read with --split: Won et al.'s .npy lists, musicnn's index files.

The fakes are written in the exact formats the authors distribute: minzwon/sota-music-tagging-models
``split/mtat/{train,valid,test}.npy`` (a numpy array of strings ``"<n>\\t<folder>/<clip>.mp3"``) and
jordipons/musicnn-training ``index/mtt/{train,val,test}_gt_mtt.tsv`` (``<clip_id>\\t[<50 values>]``)
with ``index_mtt.tsv`` (``<clip_id>\\t<path>``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import DataFormatError, ParameterError
from pipeline.sources.corpus import NO_SPLIT, LabelConfig, corpus_record
from pipeline.sources.labels import read_split, split_files, split_of_name
from pipeline.sources.loader import corpus_from_record, load_corpus
from pipeline.sources.mtt_format import write_annotations
from pipeline.sources.mtt_tags import TOP50_TAGS

# Eight clips in MTT's layout; clip_id as in annotations_final.csv (not the row number).
CLIP_IDS = ["2", "6", "10", "14", "19", "25", "32", "35"]
PATHS = ["f/bach-cantatas-01-aria-30-59.mp3", "f/bach-cantatas-01-aria-146-175.mp3",
         "0/bach-cantatas-01-aria-262-291.mp3", "c/lvx_nova-01-contimune-30-59.mp3",
         "c/lvx_nova-01-contimune-175-204.mp3", "0/sinfonia-01-0-29.mp3", "e/harpsichord-01-0-29.mp3",
         "d/headroom-01-linda_morena-0-29.mp3"]
TRAIN, VALID, TEST = ["10", "25", "2"], ["14"], ["32", "6"]  # "19" and "35" in no list


def _won(path: Path, ids: list[str]) -> Path:
    # The number before the tab is a row of the authors' label matrix, not the clip id: a made-up one here.
    rows = [f"{100 + CLIP_IDS.index(c)}\t{PATHS[CLIP_IDS.index(c)]}" for c in ids]
    np.save(path, np.array(rows))  # a unicode array, as the published files are
    return path


def _gt_line(cid: str) -> str:
    vector = [1.0 if j == len(cid) else 0.0 for j in range(50)]  # musicnn writes Python's list repr
    return f"{cid}\t{vector}"


def _musicnn(folder: Path, ids: dict[str, list[str]], *, index: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, names in ids.items():
        (folder / f"{split}_gt_mtt.tsv").write_text("".join(_gt_line(c) + "\n" for c in names))
    if index is not None:
        (folder / "index_mtt.tsv").write_text("".join(f"{c}\t{p}\n" for c, p in index.items()))
    return folder


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A tiny MagnaTagATune-format corpus (annotations only: loading never decodes audio)."""
    root = tmp_path / "mtt"
    root.mkdir()
    labels = np.zeros((len(CLIP_IDS), len(TOP50_TAGS)), dtype=np.uint8)
    for i in range(len(CLIP_IDS)):
        labels[i, i % 5] = 1  # every clip tagged, so none is dropped as untagged
    write_annotations(root / "annotations_final.csv", CLIP_IDS, TOP50_TAGS, labels, PATHS)
    return root


def _expected(train: list[str] = TRAIN, valid: list[str] = VALID, test: list[str] = TEST) -> list[str]:
    where = {**{c: "train" for c in train}, **{c: "valid" for c in valid}, **{c: "test" for c in test}}
    return [where.get(c, NO_SPLIT) for c in CLIP_IDS]


def test_split_of_name() -> None:
    names = {"train.npy": "train", "valid.npy": "valid", "test.npy": "test", "train_gt_mtt.tsv": "train",
             "val_gt_mtt.tsv": "valid", "test_gt_mtt.tsv": "test", "validation.npy": "valid",
             "tags.npy": None, "binary.npy": None, "trainee.npy": None, "index_mtt.tsv": None}
    assert {n: split_of_name(Path(n)) for n in names} == names


def test_won_lists_as_files_or_folder(corpus_dir: Path, tmp_path: Path) -> None:
    won = tmp_path / "split" / "mtat"
    won.mkdir(parents=True)
    files = [_won(won / "train.npy", TRAIN), _won(won / "valid.npy", VALID), _won(won / "test.npy", TEST)]
    np.save(won / "tags.npy", np.array(TOP50_TAGS))  # beside them in the repository: not a split, passed over
    assert read_split([str(f) for f in files], CLIP_IDS, PATHS).tolist() == _expected()
    assert read_split([won], CLIP_IDS, PATHS).tolist() == _expected()
    corpus = load_corpus(corpus_dir, LabelConfig(split=str(won)))
    assert corpus.split.tolist() == _expected()
    assert corpus.split_sizes() == {"train": 3, "valid": 1, "test": 2, NO_SPLIT: 2}
    # several files through the config and the run record, as a manifest stores them
    several = load_corpus(corpus_dir, LabelConfig(split=[str(f) for f in files]))
    assert several.split.tolist() == _expected()
    record = json.loads(json.dumps(corpus_record(several)))
    assert record["labels"]["split"] == "file" and record["labels"]["split_file"] == [str(f) for f in files]
    assert corpus_from_record(record).split.tolist() == _expected()


def test_won_bytes_array_is_read(tmp_path: Path) -> None:
    path = tmp_path / "test.npy"
    np.save(path, np.array([f"0\t{PATHS[0]}".encode()]))  # an 'S' array, as Python 2 era files are
    assert read_split([path], CLIP_IDS, PATHS).tolist() == ["test"] + [NO_SPLIT] * 7


def test_won_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.npy"
    np.save(path, np.array([f"0\t{PATHS[0]}", None], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError) as info:
        read_split([path], CLIP_IDS, PATHS)
    message = str(info.value)
    assert message.startswith(f"{path}: an array of Python objects") and "never done here" in message
    assert "\n" not in message


@pytest.mark.parametrize(("array", "match"), [
    (np.array([["0", PATHS[0]]]), "expected a 1-d array of strings"),
    (np.arange(3), "expected a 1-d array of strings"),
    (np.array([PATHS[0]]), r"entry 0: expected '<n>\\t<path>'"),
])
def test_won_malformed_list(tmp_path: Path, array: np.ndarray, match: str) -> None:
    path = tmp_path / "train.npy"
    np.save(path, array)
    with pytest.raises(DataFormatError, match=match):
        read_split([path], CLIP_IDS, PATHS)


def test_musicnn_gt_files_matched_by_clip_id(corpus_dir: Path, tmp_path: Path) -> None:
    folder = _musicnn(tmp_path / "index" / "mtt", {"train": TRAIN, "val": VALID, "test": TEST})
    (folder / "output_labels_mtt.txt").write_text(f"MTT_LABELS = {list(TOP50_TAGS)}\n")  # not a split
    assert read_split([folder], CLIP_IDS, PATHS).tolist() == _expected()
    corpus = load_corpus(corpus_dir, LabelConfig(split=str(folder)))
    assert corpus.split.tolist() == _expected()


def test_musicnn_index_maps_ids_to_paths(tmp_path: Path) -> None:
    # musicnn's own ids through index_mtt.tsv: the corpus may number its clips differently.
    index = {f"m{c}": p for c, p in zip(CLIP_IDS, PATHS)}
    folder = _musicnn(tmp_path / "mtt", {"train": ["m10"], "val": ["m14"], "test": ["m32"]}, index=index)
    split = read_split([folder], CLIP_IDS, PATHS)
    assert split.tolist() == _expected(["10"], ["14"], ["32"])
    with pytest.raises(DataFormatError, match="none of the 1 clips it lists is in the corpus"):
        read_split([folder / "train_gt_mtt.tsv"], CLIP_IDS, PATHS)  # without the index the ids are unknown
    with pytest.raises(DataFormatError, match="an index file maps ids to paths but holds no split"):
        read_split([folder / "index_mtt.tsv"], CLIP_IDS, PATHS)


def test_clips_not_in_the_corpus_are_counted_in_one_warning(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    folder = _musicnn(tmp_path / "mtt", {"train": TRAIN + ["35644", "99999"], "val": VALID, "test": TEST})
    with caplog.at_level(logging.WARNING, logger="pipeline.sources.labels"):
        split = read_split([folder], CLIP_IDS, PATHS)
    assert split.tolist() == _expected()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{folder / 'train_gt_mtt.tsv'}: 2 of the 5 clips it lists are not in the corpus "
                        f"(e.g. '35644'); they are left out"]


def test_a_list_of_another_corpus_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "test.npy"
    np.save(path, np.array(["0\tTRAA/TRAAAAW128F429D538.clip.mp3", "1\tTRAB/TRABBB.clip.mp3"]))
    with pytest.raises(DataFormatError) as info:
        read_split([path], CLIP_IDS, PATHS)
    assert str(info.value) == (f"{path}: none of the 2 clips it lists is in the corpus (first: "
                               f"'TRAA/TRAAAAW128F429D538.clip.mp3'); is it the split of another corpus?")


def test_a_clip_in_two_lists_is_an_error(tmp_path: Path) -> None:
    folder = _musicnn(tmp_path / "mtt", {"train": TRAIN, "val": VALID + ["10"], "test": TEST})
    with pytest.raises(DataFormatError, match=r"clip '10' \(10\) is also listed in .*train_gt_mtt.tsv"):
        read_split([folder], CLIP_IDS, PATHS)


def test_two_lists_of_one_split_are_an_error(tmp_path: Path) -> None:
    folder = _musicnn(tmp_path / "mtt", {"train": TRAIN, "test": TEST})
    won = _won(tmp_path / "train.npy", ["6"])
    with pytest.raises(DataFormatError, match="a second train list"):
        read_split([folder, won], CLIP_IDS, PATHS)


@pytest.mark.parametrize(("text", "match"), [
    ("2\n", r"line 1: expected '<clip_id>\\t<vector>'"),
    ("2\t[0.0, 1.0]\n6\t__import__('os')\n", r"line 2: expected a ground-truth vector"),
    ("2\t0.0 1.0\n", "expected a ground-truth vector"),
])
def test_musicnn_malformed_gt_file(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "train_gt_mtt.tsv"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=match):
        read_split([path], CLIP_IDS, PATHS)


def test_unreadable_names_and_kinds(tmp_path: Path) -> None:
    unnamed = tmp_path / "mylist.npy"
    _won(unnamed, TRAIN)
    with pytest.raises(DataFormatError, match="cannot tell which split it holds"):
        read_split([unnamed], CLIP_IDS, PATHS)
    pickled = tmp_path / "train_list_pub.cP"
    pickled.write_bytes(b"\x80\x04.")
    with pytest.raises(DataFormatError, match="pickles such as .cP files are never read"):
        read_split([pickled], CLIP_IDS, PATHS)
    stray = tmp_path / "notes.tsv"
    stray.write_text("a\tb\n")
    with pytest.raises(DataFormatError, match="not a split file this reads"):
        read_split([stray], CLIP_IDS, PATHS)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ParameterError, match=f"split folder {empty} holds no published split files"):
        split_files([empty])
    with pytest.raises(ParameterError, match="no such file or folder: .*nowhere$"):
        split_files([tmp_path / "nowhere"])


def test_split_csv_goes_alone(tmp_path: Path) -> None:
    table = tmp_path / "split.csv"
    table.write_text("clip_id,split\n2,train\n")
    assert read_split([table], CLIP_IDS, PATHS).tolist() == ["train"] + [NO_SPLIT] * 7
    tsv = tmp_path / "split.tsv"  # the project's table, tab-separated, is told apart by its header
    tsv.write_text("clip_id\tsplit\n6\ttest\n")
    assert read_split([tsv], CLIP_IDS, PATHS).tolist() == [NO_SPLIT, "test"] + [NO_SPLIT] * 6
    with pytest.raises(DataFormatError, match="a split CSV goes alone"):
        read_split([table, _won(tmp_path / "test.npy", TEST)], CLIP_IDS, PATHS)


def test_split_file_config_forms(tmp_path: Path) -> None:
    one = LabelConfig(split="a.npy")
    assert (one.split, one.split_file, one.split_paths) == ("file", "a.npy", ("a.npy",))
    several = LabelConfig(split=["a.npy", tmp_path / "b.npy"])
    assert several.split_file == ("a.npy", str(tmp_path / "b.npy")) and several.split_paths == several.split_file
    assert LabelConfig(**json.loads(json.dumps(several.to_dict()))) == several
    assert LabelConfig(split=["only.npy"]).split_file == "only.npy"
    resolved = several.resolved("mtt")
    assert all(Path(p).is_absolute() for p in resolved.split_paths)
    for bad in ([1, 2], [], 7):
        with pytest.raises(ParameterError, match="split_file must be a path or a list of paths"):
            LabelConfig(split="file", split_file=bad)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="split_file must be a path or a list of paths, got 7"):
        LabelConfig(split=7)  # type: ignore[arg-type]


def test_train_cli_split_and_label_flags(tmp_path: Path) -> None:
    from pipeline.cli.train import build_parser, config_from_args

    def labels(*argv: str) -> LabelConfig:
        return config_from_args(build_parser().parse_args(list(argv))).labels

    assert labels("--split", "random").split == "random" and labels().split == "auto"
    one = labels("--split", "split/mtat")
    assert (one.split, one.split_file) == ("file", "split/mtat")
    files = labels("--split", "train.npy", "valid.npy", "test.npy")
    assert files.split_file == ("train.npy", "valid.npy", "test.npy")
    assert (labels().merge_synonyms, labels().drop_untagged) == (None, None)  # resolved per corpus
    assert labels("--merge-synonyms").merge_synonyms is True and labels("--no-synonyms").merge_synonyms is False
    assert labels("--keep-untagged").drop_untagged is False and labels("--drop-untagged").drop_untagged is True


def test_the_demo_corpus_keeps_its_own_label_defaults(corpus_dir: Path) -> None:
    from pipeline.sources.mtt_format import DEMO_MANIFEST_FILE

    mtt = load_corpus(corpus_dir)
    assert not mtt.demo and (mtt.label_config.merge_synonyms, mtt.label_config.drop_untagged) == (False, True)
    assert "female" in mtt.tags and "woman" in mtt.tags
    (corpus_dir / DEMO_MANIFEST_FILE).write_text("{}")  # the demo's build record marks the folder
    demo = load_corpus(corpus_dir)
    assert demo.demo and (demo.label_config.merge_synonyms, demo.label_config.drop_untagged) == (True, False)
    assert "female" in demo.tags and "woman" not in demo.tags
    assert demo.resolve_labels(LabelConfig()) == demo.label_config
    assert corpus_from_record(corpus_record(demo)).tags == demo.tags
