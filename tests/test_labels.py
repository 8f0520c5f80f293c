"""Label processing: synonym merging, top-N, untagged clips, splits, LabelConfig checks and resolution."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataFormatError, ParameterError
from pipeline.sources.corpus import NO_SPLIT, LabelConfig, RawAnnotations, corpus_record
from pipeline.sources.labels import (
    file_split,
    folder_split,
    merge_synonyms,
    process,
    random_split,
    top_n_tags,
)
from pipeline.sources.loader import corpus_from_record, labels_from_record, load_corpus
from pipeline.sources.mtt_tags import MTT_TAGS, SYNONYMS

REPO = Path(__file__).resolve().parents[1]


def _process(raw: RawAnnotations, source: str = "mtt", *, demo: bool = False, **config: object):
    return process(raw, LabelConfig(**config), name="t", root=Path("/corpus"), source=source, demo=demo)


# ---------------------------------------------------------------- synonym merging

def test_merge_drum_and_classical_groups() -> None:
    tags = ["drum", "guitar", "drums", "classic", "classical", "piano"]
    labels = np.array([
        [1, 0, 0, 0, 0, 0],  # drum only
        [0, 0, 1, 0, 0, 1],  # drums only -> drum
        [0, 1, 0, 1, 0, 0],  # classic only -> classical
        [1, 0, 1, 1, 1, 0],  # both of each pair
        [0, 0, 0, 0, 0, 0],
    ], dtype=np.uint8)
    merged_tags, merged = merge_synonyms(tags, labels)
    assert merged_tags == ["drum", "guitar", "classical", "piano"]
    assert merged.tolist() == [
        [1, 0, 0, 0],
        [1, 0, 0, 1],
        [0, 1, 1, 0],
        [1, 0, 1, 0],
        [0, 0, 0, 0],
    ]
    assert merged.dtype == np.uint8
    assert labels[1].tolist() == [0, 0, 1, 0, 0, 1]  # the input is not modified


def test_merge_creates_absent_head() -> None:
    # Only synonyms present: the group's head is added (groups in SYNONYMS order), synonyms removed.
    tags = ["drums", "classic", "guitar", "clasical"]
    labels = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.uint8)
    merged_tags, merged = merge_synonyms(tags, labels)
    assert merged_tags == ["guitar", "classical", "drum"]
    assert merged.tolist() == [[1, 0, 1], [0, 1, 0], [0, 1, 0]]


def test_merge_whole_mtt_vocabulary() -> None:
    assert len(SYNONYMS) == 29
    rng = np.random.default_rng(0)
    labels = (rng.random((40, len(MTT_TAGS))) < 0.05).astype(np.uint8)
    merged_tags, merged = merge_synonyms(list(MTT_TAGS), labels)
    synonyms = {t for _, *others in SYNONYMS for t in others}
    assert len(merged_tags) == len(MTT_TAGS) - len(synonyms)
    assert not synonyms & set(merged_tags) and {g[0] for g in SYNONYMS} <= set(merged_tags)
    col = {t: i for i, t in enumerate(MTT_TAGS)}
    for head, *others in SYNONYMS:
        expected = labels[:, [col[t] for t in (head, *others)]].max(axis=1)
        assert np.array_equal(merged[:, merged_tags.index(head)], expected), head


def test_merge_on_by_default_only_for_the_demo() -> None:
    raw = RawAnnotations(["1", "2"], ["0/a.mp3", "c/b.mp3"], ["drum", "drums"],
                         np.array([[1, 0], [0, 1]], dtype=np.uint8))
    assert _process(raw, "mtt", demo=True).tags == ["drum"]  # the demo corpus exercises merging
    assert _process(raw, "mtt").tags == ["drum", "drums"]  # MagnaTagATune: the literature's unmerged tags
    assert _process(raw, "folder").tags == ["drum", "drums"]
    assert _process(raw, "folder", demo=True).tags == ["drum", "drums"]  # only an MTT-format corpus is the demo
    assert _process(raw, "folder", merge_synonyms=True).tags == ["drum"]
    assert _process(raw, "mtt", merge_synonyms=True).tags == ["drum"]
    assert _process(raw, "mtt", demo=True, merge_synonyms=False).tags == ["drum", "drums"]


# ---------------------------------------------------------------- top-N and untagged clips

def test_top_n_orders_by_frequency_then_name() -> None:
    tags = ["d", "c", "a", "b"]
    labels = np.array([[1, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 0], [0, 1, 0, 0]], dtype=np.uint8)  # 1, 4, 3, 2
    top, sub = top_n_tags(tags, labels, 2)
    assert top == ["c", "a"] and np.array_equal(sub, labels[:, [1, 2]])
    ties = np.array([[1, 1, 0, 1], [1, 1, 0, 0]], dtype=np.uint8)  # d=2, c=2, a=0, b=1
    assert top_n_tags(tags, ties, 3)[0] == ["c", "d", "b"]  # tie between c and d broken by name
    assert top_n_tags(tags, ties, 10)[0] == ["c", "d", "b", "a"]


def test_top_n_and_drop_untagged_in_process() -> None:
    tags = ["rare", "common", "mid"]
    labels = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=np.uint8)
    raw = RawAnnotations([f"c{i}" for i in range(5)], [f"0/{i}.mp3" for i in range(5)], tags, labels,
                         pd.DataFrame({"title": list("abcde")}))
    kept = _process(raw, top_n=2, drop_untagged=False)
    assert kept.tags == ["common", "mid"] and len(kept) == 5
    assert kept.labels[0].tolist() == [0, 0]  # clip 0's only tag fell outside the top 2
    dropped = _process(raw, top_n=2, drop_untagged=True)
    assert dropped.clip_ids == ["c1", "c2", "c3", "c4"]
    assert dropped.rel_paths == ["0/1.mp3", "0/2.mp3", "0/3.mp3", "0/4.mp3"]
    assert list(dropped.metadata["title"]) == list("bcde") and dropped.labels.shape == (4, 2)
    assert _process(raw, top_n=None).tags == tags


def test_untagged_clips_dropped_by_default_only_for_mtt() -> None:
    # The literature's MTT protocol keeps only clips with at least one top-N tag; the demo and folders keep all.
    labels = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0], [0, 0, 1]], dtype=np.uint8)
    raw = RawAnnotations([f"c{i}" for i in range(4)], [f"0/{i}.mp3" for i in range(4)], ["rare", "common", "mid"],
                         labels)
    assert _process(raw, top_n=2).clip_ids == ["c1", "c3"]  # c0's only tag is outside the top 2, c2 has none
    assert _process(raw, top_n=2).label_config.drop_untagged is True
    assert len(_process(raw, top_n=2, demo=True)) == 4 and len(_process(raw, "folder", top_n=2)) == 4
    assert len(_process(raw, top_n=2, drop_untagged=False)) == 4
    assert _process(raw, "folder", top_n=2, drop_untagged=True).clip_ids == ["c1", "c3"]


# ---------------------------------------------------------------- splits

def test_folder_split() -> None:
    paths = ["0/a.mp3", "9/b.mp3", "a/c.mp3", "b/d.mp3", "c/e.mp3", "d/f.mp3", "e/g.mp3", "f/h.mp3",
             "C/upper.mp3", "g/other.mp3", "top.mp3", "covers/x.mp3", "d/deeper/y.mp3"]
    assert folder_split(paths).tolist() == [
        "train", "train", "train", "train", "valid", "test", "test", "test",
        "valid", NO_SPLIT, NO_SPLIT, NO_SPLIT, "test"]


def test_folder_split_is_mtt_default() -> None:
    raw = RawAnnotations(["1", "2", "3"], ["b/x.mp3", "c/y.mp3", "d/z.mp3"], ["t"], np.ones((3, 1), np.uint8))
    assert _process(raw).split.tolist() == ["train", "valid", "test"]
    assert _process(raw, split="folder", source="folder").split.tolist() == ["train", "valid", "test"]


def test_random_split_reproducible_and_ratios_respected() -> None:
    a = random_split(1000, (0.7, 0.2, 0.1), seed=3)
    assert np.array_equal(a, random_split(1000, (0.7, 0.2, 0.1), seed=3))
    assert not np.array_equal(a, random_split(1000, (0.7, 0.2, 0.1), seed=4))
    assert [int((a == s).sum()) for s in ("train", "valid", "test")] == [700, 200, 100]
    for n in range(0, 30):
        for ratios in ((0.8, 0.1, 0.1), (0.9, 0.1, 0.0), (1 / 3, 1 / 3, 1 / 3), (0.5, 0.5, 0.0)):
            split = random_split(n, ratios, seed=n)
            sizes = [int((split == s).sum()) for s in ("train", "valid", "test")]
            assert sum(sizes) == n
            for size, share in zip(sizes, ratios):
                assert abs(size - share * n) < 1, (n, ratios, sizes)
                assert share > 0 or size == 0  # an empty share gets no clip


def test_random_split_is_folder_source_default() -> None:
    raw = RawAnnotations([str(i) for i in range(50)], [f"x/{i}.wav" for i in range(50)], [], np.zeros((50, 0), np.uint8))
    corpus = _process(raw, "folder", seed=7, ratios=(0.6, 0.2, 0.2))
    assert corpus.split_sizes() == {"train": 30, "valid": 10, "test": 10}
    assert np.array_equal(corpus.split, random_split(50, (0.6, 0.2, 0.2), 7))


def _split_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "split.csv"
    path.write_text(text)
    return path


def test_split_file(tmp_path: Path) -> None:
    path = _split_csv(tmp_path, "clip_id,split\n1,test\n\n3,train\n2,valid\n")
    assert file_split(path, ["1", "2", "3", "4"]).tolist() == ["test", "valid", "train", NO_SPLIT]
    raw = RawAnnotations(["1", "2", "3", "4"], ["0/a.mp3", "0/b.mp3", "0/c.mp3", "0/d.mp3"], ["t"],
                         np.ones((4, 1), np.uint8))
    assert _process(raw, split=str(path)).split.tolist() == ["test", "valid", "train", NO_SPLIT]


def test_split_file_unknown_clip(tmp_path: Path) -> None:
    path = _split_csv(tmp_path, "clip_id,split\n1,train\n\n99,test\n")
    with pytest.raises(DataFormatError) as info:
        file_split(path, ["1", "2"])
    assert str(info.value) == f"{path}, line 4, column 'clip_id': unknown clip '99'"


def test_split_file_bad_split_name(tmp_path: Path) -> None:
    path = _split_csv(tmp_path, "clip_id,split\n1,training\n")
    with pytest.raises(DataFormatError, match=rf"^{path}, line 2, column 'split': expected one of .*got 'training'"):
        file_split(path, ["1"])


def test_split_file_duplicate_clip(tmp_path: Path) -> None:
    path = _split_csv(tmp_path, "clip_id,split\n1,train\n1,test\n")
    with pytest.raises(DataFormatError, match=rf"^{path}, line 3, column 'clip_id': clip '1' given twice"):
        file_split(path, ["1"])


@pytest.mark.parametrize("text", ["clip,split\n1,train\n", "clip_id\n1\n", ""])
def test_split_file_missing_column(tmp_path: Path, text: str) -> None:
    path = _split_csv(tmp_path, text)
    with pytest.raises(DataFormatError, match=rf"^{path}, line 1: missing column"):
        file_split(path, ["1"])


def test_split_not_a_mode_nor_a_file() -> None:
    raw = RawAnnotations(["1"], ["0/a.mp3"], ["t"], np.ones((1, 1), np.uint8))
    with pytest.raises(ParameterError, match="no such file or folder: randm$"):
        _process(raw, split="randm")


# ---------------------------------------------------------------- LabelConfig

@pytest.mark.parametrize("kwargs, match", [
    ({"top_n": 0}, "top_n must be >= 1"),
    ({"top_n": -5}, "top_n must be >= 1"),
    ({"split": "file"}, "split_file goes with split='file'"),
    ({"split": "folder", "split_file": "s.csv"}, "split_file goes with split='file'"),
    ({"ratios": (0.5, 0.5)}, "ratios must be three"),
    ({"ratios": (0.9, 0.2, -0.1)}, "ratios must be three"),
    ({"ratios": (0.5, 0.3, 0.1)}, "summing to 1"),
    ({"ratios": (float("nan"), 0.5, 0.5)}, "ratios must be three"),
    ({"ratios": ("a", "b", "c")}, "ratios must be three"),
    ({"ratios": 0.5}, "ratios must be three"),
])
def test_label_config_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        LabelConfig(**kwargs)


def test_label_config_defaults() -> None:
    config = LabelConfig()
    assert (config.merge_synonyms, config.top_n, config.drop_untagged, config.split, config.ratios) == (
        None, 50, None, "auto", (0.8, 0.1, 0.1))
    assert LabelConfig(top_n=None).top_n is None
    assert type(LabelConfig(top_n=np.int64(7)).top_n) is int  # JSON-ready


@pytest.mark.parametrize("top_n", [0, -1, True, 2.5, "all"])
def test_top_n_must_be_a_number_of_tags(top_n: object) -> None:
    # 0 once meant "every tag" on the command line; every tag is None (--top-n all), never 0.
    with pytest.raises(ParameterError) as info:
        LabelConfig(top_n=top_n)  # type: ignore[arg-type]
    assert str(info.value) == (f"top_n must be >= 1 (a number of tags; None, or --top-n all, keeps every tag), "
                               f"got {top_n!r}")


def test_cli_top_n_zero_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    assert main(["train", "--corpus", str(tmp_path), "--out", str(tmp_path / "run"), "--top-n", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: top_n must be >= 1") and err.endswith("got 0\n") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_cli_top_n_all_keeps_every_tag() -> None:
    from pipeline.cli.train import build_parser, config_from_args

    assert config_from_args(build_parser().parse_args(["--top-n", "all"])).labels.top_n is None
    assert config_from_args(build_parser().parse_args(["--top-n", "7"])).labels.top_n == 7


# ---------------------------------------------------------------- the resolved config

@pytest.mark.parametrize(("source", "demo", "merge", "drop", "split"), [
    ("mtt", False, False, True, "folder"),  # MagnaTagATune: the literature's protocol
    ("mtt", True, True, False, "folder"),  # the demo corpus
    ("folder", False, False, False, "random"),
    ("folder", True, False, False, "random"),  # only an MTT-format corpus can be the demo
])
def test_resolved_config_replaces_auto(source: str, demo: bool, merge: bool, drop: bool, split: str) -> None:
    resolved = LabelConfig().resolved(source, demo=demo)
    assert (resolved.merge_synonyms, resolved.drop_untagged, resolved.split, resolved.split_file) == (
        merge, drop, split, None)
    assert resolved.resolved(source, demo=not demo) == resolved  # nothing left to resolve
    explicit = LabelConfig(merge_synonyms=not merge, drop_untagged=not drop,
                           split="random" if split == "folder" else "folder")
    assert explicit.resolved(source, demo=demo) == explicit
    with pytest.raises(ParameterError, match="source must be one of"):
        LabelConfig().resolved("auto")


def test_split_csv_path_is_split_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = LabelConfig(split="splits.csv")
    assert (config.split, config.split_file) == ("file", "splits.csv")
    assert config.resolved("mtt").split_file == str(tmp_path.resolve() / "splits.csv")  # absolute once applied
    assert LabelConfig(**json.loads(json.dumps(config.to_dict()))) == config


def test_process_records_the_config_it_applied(tmp_path: Path) -> None:
    raw = RawAnnotations(["1", "2"], ["0/a.mp3", "c/b.mp3"], ["drum", "drums"],
                         np.array([[1, 0], [0, 1]], dtype=np.uint8))
    assert _process(raw, "mtt").label_config == LabelConfig(merge_synonyms=False, drop_untagged=True, split="folder")
    assert _process(raw, "mtt", demo=True).label_config == LabelConfig(merge_synonyms=True, drop_untagged=False,
                                                                       split="folder")
    assert _process(raw, "folder", seed=3).label_config == LabelConfig(merge_synonyms=False, drop_untagged=False,
                                                                       split="random", seed=3)
    path = _split_csv(tmp_path, "clip_id,split\n1,train\n2,test\n")
    applied = _process(raw, "folder", split=str(path)).label_config
    assert (applied.split, applied.split_file) == ("file", str(path.resolve()))


def test_corpus_record_holds_the_resolved_config_and_reloads(tmp_path: Path) -> None:
    for name in "abcd":
        (tmp_path / f"{name}.wav").touch()  # loading lists audio files, it never decodes them
    (tmp_path / "tags.csv").write_text("path,tags\na.wav,rock\nb.wav,rock;piano\nc.wav,piano\n")
    corpus = load_corpus(tmp_path, LabelConfig(top_n=None, seed=2, ratios=(0.5, 0.5, 0.0)))
    record = json.loads(json.dumps(corpus_record(corpus)))  # as a manifest stores it
    assert record["labels"] == {"merge_synonyms": False, "top_n": None, "drop_untagged": False, "split": "random",
                                "seed": 2, "ratios": [0.5, 0.5, 0.0], "split_file": None}
    assert labels_from_record(record) == corpus.label_config
    again = corpus_from_record(record)
    assert again.label_config == corpus.label_config and again.tags == corpus.tags == ["piano", "rock"]
    assert np.array_equal(again.split, corpus.split) and np.array_equal(again.labels, corpus.labels)


@pytest.mark.parametrize(("source", "merge", "split"), [("mtt", True, "folder"), ("folder", False, "random")])
def test_labels_of_an_older_unresolved_record_are_resolved(source: str, merge: bool, split: str) -> None:
    # Resolved by the rule of its time (synonyms merged for every MTT-format corpus, untagged clips kept),
    # so an older run reloads the vocabulary it was trained on, not today's MagnaTagATune default.
    record = {"source": source, "labels": {"merge_synonyms": None, "top_n": 50, "drop_untagged": False,
                                           "split": "auto", "ratios": [0.8, 0.1, 0.1]}}
    assert labels_from_record(record) == LabelConfig(merge_synonyms=merge, drop_untagged=False, split=split)
    record["labels"].pop("drop_untagged")
    assert labels_from_record(record) == LabelConfig(merge_synonyms=merge, drop_untagged=False, split=split)


@pytest.mark.parametrize(("record", "match"), [
    ({"labels": {}}, "source must be one of"),
    ({"source": "auto", "labels": {}}, "source must be one of"),
    ({"source": "mtt", "labels": {"synonyms": True}}, "bad labels"),
])
def test_malformed_corpus_record(record: dict, match: str) -> None:
    with pytest.raises(DataFormatError, match=f"^corpus record: {match}"):
        labels_from_record(record)


# ---------------------------------------------------------------- layout

def test_sources_import_one_way() -> None:
    """corpus <- sources (mtt_format, folder) <- labels <- loader: no import cycle, lazy imports included."""
    root = REPO / "pipeline" / "sources"
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    assert not graph["pipeline.sources.corpus"]  # the types import no source
    for lower in ("corpus", "folder", "mtt_format", "labels"):
        assert "pipeline.sources.loader" not in graph[f"pipeline.sources.{lower}"], lower

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(t == goal or (t not in seen and not seen.add(t) and reaches(t, goal, seen)) for t in graph[start])

    cycles = sorted(name for name in graph if reaches(name, name, set()))
    assert not cycles, f"modules on an import cycle: {cycles}"
