"""Transfer learning from a trained run onto a folder corpus with a new tag set, at each level.

The source is the session's tiny musicnn run (`tiny_run`); the target a folder of the demo
corpus's audio with a tags CSV of tags the source never saw. Each level is checked on what it
promises: frozen parts bit-identical (weights and batch-norm statistics), trained parts changed,
a new output layer for the new tags, the source and level in the manifest, and an ordinary run
that the later stages take.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from models.base import Tagger
from models.registry import get_model, list_models, small_kwargs
from pipeline.errors import ParameterError
from pipeline.run.rundir import CHECKPOINT, LAST_CHECKPOINT, RunDir
from pipeline.sources.loader import load_corpus
from pipeline.training.config import TrainConfig, parse_transfer
from pipeline.training.train import train
from tests.test_cli_errors import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow

NEW_TAGS = 5  # the folder's own tags, named so that none is one of the source's


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def folder(demo_corpus_48: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo corpus's audio as a user's folder, with a tags CSV of a new tag set (5 tags)."""
    demo = load_corpus(demo_corpus_48)
    frequent = demo.labels.sum(axis=0).argsort()[::-1][:NEW_TAGS]
    root = tmp_path_factory.mktemp("mine") / "music"
    root.mkdir()
    lines = ["path,tags"]
    for i, path in enumerate(demo.audio_paths):
        name = f"clip{i:03d}{path.suffix}"
        shutil.copy(path, root / name)
        tags = [f"mine_{j}" for j in range(NEW_TAGS) if demo.labels[i, frequent[j]]]
        lines.append(f'{name},"{";".join(tags)}"')
    (root / "tags.csv").write_text("\n".join(lines) + "\n")
    return root


def transfer_config(source: Path, level: str, **overrides) -> TrainConfig:
    settings = {"model": "musicnn", "init_from": str(source), "transfer": level, "epochs": 2, "batch_size": 8,
                "workers": 0, "seed": 0, **overrides}
    return TrainConfig.from_overrides(None, **settings)


@pytest.fixture(scope="module")
def runs(tiny_run: Path, folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One transfer run per level (features and all through the API, last:1 through the CLI)."""
    base = tmp_path_factory.mktemp("transfer")
    out = {level: train(transfer_config(tiny_run, level), folder, base / level.replace(":", "_"), progress=False)
           for level in ("features", "all")}
    cli = run_cli("train", "--corpus", folder, "--from", tiny_run, "--transfer", "last:1", "--epochs", "2",
                  "--batch-size", "8", "--workers", "0", "--out", base / "last_1", "--no-progress")
    assert cli.returncode == 0, cli.stderr[-3000:]
    out["last:1"] = base / "last_1"
    return out


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _split_blocks(level: str) -> tuple[list[str], list[str]]:
    """The blocks a level keeps and those it trains, as state_dict prefixes."""
    blocks = [f"{name}." for name, _ in get_model("musicnn", n_tags=NEW_TAGS, **small_kwargs("musicnn")).named_blocks()]
    parsed = parse_transfer(level)
    n_frozen = {"features": len(blocks), "last": len(blocks) - parsed.k, "all": 0}[parsed.kind]
    return blocks[:n_frozen], blocks[n_frozen:]


@pytest.mark.parametrize("level", ["features", "last:1", "all"])
def test_each_level_freezes_what_it_promises(level: str, runs: dict[str, Path], tiny_run: Path,
                                             folder: Path) -> None:
    src, dst = load(tiny_run / CHECKPOINT), load(runs[level] / CHECKPOINT)
    # the output layer is new, for the folder's tags; the rest of the network is the source's shape
    assert dst["tags"] == [f"mine_{j}" for j in range(NEW_TAGS)] == load_corpus(folder).tags
    assert dst["state_dict"]["classifier.weight"].shape == (NEW_TAGS, src["state_dict"]["classifier.weight"].shape[1])
    assert dst["features"] == src["features"] and dst["model_kwargs"] == src["model_kwargs"]
    assert dst["normalizer"] == src["normalizer"]  # the source's input processing, not refitted
    kept, trained = _split_blocks(level)
    state = dst["state_dict"]
    assert set(state) == set(src["state_dict"])
    changed = {k for k in state if not torch.equal(state[k], src["state_dict"][k])}
    frozen_keys = {k for k in state if k.startswith(tuple(kept))}
    assert frozen_keys or level == "all"
    assert not changed & frozen_keys, sorted(changed & frozen_keys)  # weights and batch-norm statistics alike
    assert (not trained) == (level == "features")
    for block in trained:  # every trained block moved, its weights and its batch-norm statistics
        moved = {k for k in changed if k.startswith(block)}
        assert any(k.endswith("weight") for k in moved), (block, sorted(moved))
        if any(k.startswith(block) and k.endswith("running_mean") for k in state):
            assert any(k.endswith("running_mean") for k in moved), (block, sorted(moved))
    assert {"classifier.weight", "classifier.bias"} <= changed
    # an ordinary run: the manifest names its source and level
    manifest = RunDir(runs[level]).manifest()
    record = manifest["transfer"]
    assert record["level"] == level
    assert record["source"]["model"] == "musicnn" and record["source"]["run"] == str(tiny_run.resolve())
    assert record["source"]["name"] == RunDir(tiny_run).manifest()["name"]
    assert manifest["config"]["transfer"] == level and manifest["config"]["init_from"] == str(tiny_run)
    assert (record["trained_blocks"] == []) == (level == "features")


def test_all_trains_the_backbone_at_a_tenth_of_the_rate(runs: dict[str, Path]) -> None:
    groups = load(runs["all"] / LAST_CHECKPOINT)["optimizer"]["param_groups"]
    assert len(groups) == 2 and groups[1]["base_lr"] == pytest.approx(0.1 * groups[0]["base_lr"])
    assert RunDir(runs["all"]).manifest()["config"]["backbone_lr_mult"] == pytest.approx(0.1)
    # the features level's optimiser holds the output layer alone
    groups = load(runs["features"] / LAST_CHECKPOINT)["optimizer"]["param_groups"]
    assert len(groups) == 1 and len(groups[0]["params"]) == 2


def test_a_transfer_run_is_an_ordinary_run(runs: dict[str, Path]) -> None:
    from pipeline.analysis.embed import EmbedConfig, run_embed
    from pipeline.analysis.evaluate import evaluate_run
    from pipeline.scoring.score import score_run

    run = runs["features"]
    score_run(run, progress=False)
    evaluate_run(run, n_bootstrap=20, progress=False)
    run_embed(run, EmbedConfig(neighbors=3), progress=False)
    rd = RunDir(run)
    assert all(rd.stage_done(s) for s in ("train", "score", "evaluate", "embed"))
    assert rd.manifest()["tags"] == [f"mine_{j}" for j in range(NEW_TAGS)]


def test_features_level_embeds_each_clip_once(runs: dict[str, Path], tiny_run: Path, folder: Path,
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A second output layer on the same source, features and clips: the embeddings come from memory.
    cls = type(get_model("musicnn", n_tags=1, **small_kwargs("musicnn")))
    calls: list[int] = []
    embed = cls.embed
    monkeypatch.setattr(cls, "embed", lambda self, x: calls.append(len(x)) or embed(self, x))
    again = train(transfer_config(tiny_run, "features", seed=1, epochs=1), folder, tmp_path / "again",
                  progress=False)
    assert calls == [] and load(again / CHECKPOINT)["state_dict"]["classifier.weight"].shape[0] == NEW_TAGS
    # another source's weights are another scope: embedded afresh
    other = transfer_config(runs["all"], "features", epochs=1)
    train(other, folder, tmp_path / "other", progress=False)
    assert sum(calls) > 0


def test_bad_transfer_values_are_one_line_errors(tiny_run: Path, folder: Path, tmp_path: Path) -> None:
    common = ("train", "--corpus", folder, "--from", tiny_run, "--out", tmp_path / "x", "--epochs", "1")
    assert_one_line_error(run_cli(*common, "--transfer", "some"), "transfer", "'some'", "last:K")
    assert_one_line_error(run_cli(*common, "--transfer", "last:0"), "transfer")
    assert_one_line_error(run_cli(*common, "--transfer", "all", "--sample-rate", "22050"), "sample_rate",
                          "--sample-rate", "22050", "16000")
    assert_one_line_error(run_cli(*common, "--transfer", "last:99"), "transfer='last:99'", "4 blocks")
    with pytest.raises(ParameterError, match="n_mels=48"):
        train(transfer_config(tiny_run, "features", n_mels=48), folder, tmp_path / "y", progress=False)
    with pytest.raises(ParameterError, match="do not fit"):  # another width: tensors of other shapes
        train(transfer_config(tiny_run, "all", model_kwargs={"width": 0.25}), folder, tmp_path / "z", progress=False)
    with pytest.raises(ParameterError, match="init_from"):
        TrainConfig.from_overrides(None, model="musicnn", transfer="all")
    with pytest.raises(ParameterError, match="freeze_blocks"):
        TrainConfig.from_overrides(None, model="musicnn", init_from=str(tiny_run), transfer="all", freeze_blocks=1)
    assert not (tmp_path / "y" / CHECKPOINT).exists()


class _Toy(Tagger):
    """Children in definition order: a norm, parallel branches, dropout, a chain, the output layer."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(4)
        self.branches = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
        self.drop = nn.Dropout()
        self.chain = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 4))
        self.classifier = nn.Linear(4, 2)


def test_default_blocks_are_top_level_children_with_chains_opened() -> None:
    assert [n for n, _ in _Toy().named_blocks()] == ["norm", "branches", "chain.0", "chain.2"]


@pytest.mark.parametrize("name", list_models())
def test_every_models_blocks_partition_its_network(name: str) -> None:
    model = get_model(name, n_tags=3, **small_kwargs(name))
    blocks = model.named_blocks()
    assert blocks and all(model.get_submodule(n) is b for n, b in blocks)
    owners: dict[int, str] = {}
    for n, b in blocks:
        for p in b.parameters():
            assert id(p) not in owners, f"{name}: a parameter is in blocks {owners[id(p)]} and {n}"
            owners[id(p)] = n
    rest = [k for k, p in model.named_parameters() if id(p) not in owners]
    assert rest and all(k.startswith("classifier.") for k in rest), rest  # every layer but the output layer
    order = [n for n, _ in model.named_modules()]
    assert [order.index(n) for n, _ in blocks] == sorted(order.index(n) for n, _ in blocks)  # definition order


def test_benchmark_splits_are_nested_and_share_valid_and_test(demo_corpus_48: Path, tmp_path: Path) -> None:
    import pandas as pd

    from benchmarks.transfer import parse_sizes, write_splits

    assert parse_sizes("5, 10,all") == [5, 10, None]
    with pytest.raises(ParameterError, match="--sizes"):
        parse_sizes("5,1")
    files = write_splits(demo_corpus_48, parse_sizes("5,10,all"), tmp_path, seed=0, valid_clips=2)
    frames = {size: pd.read_csv(path) for size, path in files.items()}
    train = {size: set(f.loc[f["split"] == "train", "clip_id"]) for size, f in frames.items()}
    assert len(train["5"]) == 5 and len(train["10"]) == 10 and train["5"] < train["10"] < train["all"]
    assert len(train["all"]) == len(load_corpus(demo_corpus_48).indices("train"))
    rest = [f.loc[f["split"] != "train"].reset_index(drop=True) for f in frames.values()]
    assert all(r.equals(rest[0]) for r in rest) and (rest[0]["split"] == "valid").sum() == 2
