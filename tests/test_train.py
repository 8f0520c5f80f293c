"""Training: every model trains one epoch into a valid run, resume, transfer learning, DDP, CLI, errors."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.registry import list_models, small_kwargs
from pipeline.errors import ParameterError, RunDirError
from pipeline.run.rundir import CHECKPOINT, HISTORY, LAST_CHECKPOINT, TENSORBOARD, RunDir
from pipeline.training.checkpoints import HISTORY_COLUMNS
from pipeline.training.config import TrainConfig
from pipeline.training.train import train

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TINY = {"n_mels": 32, "chunk_seconds": 1.0, "epochs": 1, "batch_size": 8, "top_n": 12, "workers": 0}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus(demo_corpus_48: Path) -> Path:
    """A demo corpus of 48 clips x 4 s (36 train / 3 valid / 9 test): the session's, shared with test_evaluate."""
    return demo_corpus_48


def tiny_config(model: str = "fcn", **overrides) -> TrainConfig:
    kwargs = small_kwargs(model) if model in list_models() else {}
    settings = {**TINY, "model": model, "model_kwargs": kwargs, **overrides}
    if model == "samplecnn":  # waveform input: its own chunk (3^10 samples), no mel bins
        settings.pop("chunk_seconds")
        settings.pop("n_mels")
    return TrainConfig.from_overrides(None, **settings)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def check_contract(run: Path, model: str, n_tags: int) -> dict:
    """The run-directory contract of the train stage; returns the best checkpoint."""
    rd = RunDir(run)
    assert rd.stage_done("train")
    manifest = rd.manifest()
    for key in ("corpus", "tags", "split_sizes", "model", "features", "config", "device"):
        assert key in manifest, key
    assert manifest["model"]["name"] == model and len(manifest["tags"]) == n_tags
    history = pd.read_csv(run / HISTORY)
    assert tuple(history.columns) == HISTORY_COLUMNS
    ckpt = load(run / CHECKPOINT)
    last = load(run / LAST_CHECKPOINT)
    for key in ("model_name", "model_kwargs", "tags", "state_dict", "features", "normalizer", "chunk_frames",
                "config", "epoch", "best_score"):
        assert key in ckpt, key
    assert ckpt["tags"] == manifest["tags"]
    assert TrainConfig.from_dict(ckpt["config"]).model == model
    # the resolved config, the same in the checkpoint and the manifest: no "auto" left
    assert ckpt["config"] == manifest["config"] and ckpt["features"] == manifest["config"]["features"]
    labels = manifest["config"]["labels"]
    assert labels == manifest["corpus"]["labels"]
    assert labels["merge_synonyms"] is True and labels["split"] == "folder"  # the demo corpus is MTT-format
    if ckpt.get("kind") != "baseline":
        assert {"optimizer", "scheduler"} <= set(last)
    return ckpt


@pytest.mark.parametrize("name", list_models())
def test_every_model_trains_one_epoch(name: str, corpus: Path, tmp_path: Path) -> None:
    from pipeline.scoring.inference import load_run_model, predict_clip

    run = train(tiny_config(name), corpus, tmp_path / name, progress=False)
    ckpt = check_contract(run, name, n_tags=12)
    model, ckpt2 = load_run_model(run)
    assert ckpt2["epoch"] == ckpt["epoch"] == 1
    spec = model.spec
    x = torch.randn(3, spec.n_bins, spec.chunk_frames)
    with torch.no_grad():
        assert model(x).shape == (3, 12)
        assert model.embed(x).shape == (3, model.embedding_dim)
    # a whole clip of any length: chunks aggregated into one probability per tag
    from pipeline.features.extract import Normalizer

    features = np.random.default_rng(0).normal(size=(spec.chunk_frames * 2 + 5, spec.n_bins)).astype(np.float32)
    probs = predict_clip(model, features, normalizer=Normalizer.from_dict(ckpt["normalizer"]),
                         chunk_frames=ckpt["chunk_frames"])
    assert probs.shape == (12,) and np.all((probs >= 0) & (probs <= 1))


def test_history_and_best_checkpoint(corpus: Path, tmp_path: Path) -> None:
    run = train(tiny_config("fcn4", epochs=3, schedule="step", milestones=(1, 2), gamma=0.5), corpus, tmp_path / "r",
                progress=False)
    history = pd.read_csv(run / HISTORY)
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["lr"].tolist() == pytest.approx([1e-3, 5e-4, 2.5e-4])  # the step schedule
    ckpt = load(run / CHECKPOINT)
    best = history.loc[history["valid_roc_auc"].idxmax()]
    assert ckpt["epoch"] == int(best["epoch"])
    assert ckpt["best_score"] == pytest.approx(best["valid_roc_auc"])
    assert load(run / LAST_CHECKPOINT)["epoch"] == 3


class Kill(Exception):
    pass


def test_resume_after_kill_matches_uninterrupted(corpus: Path, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # Adam for two epochs, then SGD from the best checkpoint (Won et al.'s switch) after the resume
    config = tiny_config("multiscale", epochs=4, optimizer="adam_sgd", sgd_after=2, sgd_lr=0.01, milestones=(3,))
    full = train(config, corpus, tmp_path / "full", progress=False)
    assert pd.read_csv(full / HISTORY)["lr"].tolist() == pytest.approx([1e-3, 1e-3, 1e-2, 1e-3])

    def kill_after_first(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise Kill

    with pytest.raises(Kill):
        train(config, corpus, tmp_path / "killed", progress=False, callbacks=[kill_after_first])
    killed = tmp_path / "killed"
    assert not RunDir(killed).stage_done("train") and load(killed / LAST_CHECKPOINT)["epoch"] == 1
    with pytest.raises(RunDirError, match="--resume"):  # an unfinished run is not silently restarted
        train(config, corpus, killed, progress=False)
    # its own corpus; the same options again are no change (the saved config is the resolved one)
    with caplog.at_level("WARNING"):
        train(config, None, killed, resume=True, progress=False)
    assert "ignored" not in caplog.text

    cols = [c for c in HISTORY_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(pd.read_csv(full / HISTORY)[cols], pd.read_csv(killed / HISTORY)[cols])
    a, b = load(full / LAST_CHECKPOINT), load(killed / LAST_CHECKPOINT)
    for key, tensor in a["state_dict"].items():
        torch.testing.assert_close(tensor, b["state_dict"][key], rtol=0, atol=0, msg=key)
    # resuming a finished run changes nothing
    before = (killed / LAST_CHECKPOINT).stat().st_mtime_ns
    train(TrainConfig(), None, killed, resume=True, progress=False)
    assert (killed / LAST_CHECKPOINT).stat().st_mtime_ns == before


def test_resume_keeps_the_saved_config_and_says_so(corpus: Path, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    config = tiny_config("fcn4", epochs=2)

    def kill(epoch: int, row: dict) -> None:
        raise Kill

    with pytest.raises(Kill):
        train(config, corpus, tmp_path / "r", progress=False, callbacks=[kill])
    with caplog.at_level("WARNING"):
        train(dataclasses.replace(config, epochs=3), corpus, tmp_path / "r", resume=True, progress=False)
    assert "options given now are ignored" in caplog.text
    assert len(pd.read_csv(tmp_path / "r" / HISTORY)) == 2  # the saved 2 epochs, not 3


def test_loader_batches_do_not_depend_on_workers(corpus: Path) -> None:
    from pipeline.features.cache import build_cache
    from pipeline.features.extract import FeatureConfig
    from pipeline.sources.loader import load_corpus
    from pipeline.training.loaders import EpochSampler, RandomChunkDataset, train_loader

    c = load_corpus(corpus)
    cache = build_cache(c, FeatureConfig(n_mels=32), progress=False)
    ids = [c.clip_ids[i] for i in c.indices("train")]
    ds = RandomChunkDataset(cache, ids, c.labels[c.indices("train")], chunk_frames=40)

    def batches(workers: int, epoch: int) -> list[torch.Tensor]:
        sampler = EpochSampler(len(ds), seed=3)
        sampler.set_epoch(epoch)
        loader = train_loader(ds, sampler, batch_size=8, workers=workers, pin_memory=False, seed=3)
        return [x for x, _ in loader]

    a, b = batches(0, epoch=1), batches(2, epoch=1)
    assert len(a) == len(b) == 36 // 8
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    assert not torch.equal(a[0], batches(0, epoch=2)[0])  # a new epoch, a new order and new crops


def test_sampler_shards_like_distributed_sampler() -> None:
    from pipeline.training.loaders import EpochSampler

    shards = [list(EpochSampler(10, seed=0, rank=r, world_size=3)) for r in range(3)]
    assert all(len(s) == 4 for s in shards)  # padded to 12, four each
    rows = sorted(row for s in shards for row, _ in s)
    assert set(rows) == set(range(10)) and len(rows) == 12
    whole = list(EpochSampler(10, seed=0))
    assert sorted(r for r, _ in whole) == list(range(10))
    assert dict(whole) == {r: s for shard in shards for r, s in shard}  # same crop seed per clip on every rank


def test_transfer_learning_frozen_blocks_and_new_tags(corpus: Path, tmp_path: Path) -> None:
    source = train(tiny_config("fcn", top_n=12), corpus, tmp_path / "source", progress=False)
    src = load(source / CHECKPOINT)
    target = train(tiny_config("fcn", top_n=5, init_from=str(source), freeze_blocks=3, backbone_lr_mult=0.5,
                               epochs=2), corpus, tmp_path / "target", progress=False)
    dst = load(target / CHECKPOINT)
    assert len(dst["tags"]) == 5 and set(dst["tags"]) <= set(src["tags"])
    assert dst["state_dict"]["classifier.weight"].shape[0] == 5
    assert dst["model_kwargs"] == src["model_kwargs"] and dst["features"] == src["features"]

    from models.registry import get_model

    model = get_model("fcn", n_tags=5, **dst["model_kwargs"])
    blocks = model.named_blocks()
    frozen = {f"{name}." for name, _ in blocks[:3]}
    trained = {f"{name}." for name, _ in blocks[3:]}
    changed_frozen = [k for k in dst["state_dict"] if any(k.startswith(p) for p in frozen)
                      and not torch.equal(dst["state_dict"][k], src["state_dict"][k])]
    assert not changed_frozen  # weights and batch-norm statistics of frozen blocks are untouched
    assert any(not torch.equal(dst["state_dict"][k], src["state_dict"][k]) for k in dst["state_dict"]
               if any(k.startswith(p) for p in trained))
    with pytest.raises(ParameterError, match="blocks"):
        train(tiny_config("fcn", init_from=str(source), freeze_blocks=99), corpus, tmp_path / "x", progress=False)
    with pytest.raises(ParameterError, match="init_from"):
        train(tiny_config("musicnn", init_from=str(source)), corpus, tmp_path / "y", progress=False)


def test_model_blocks_are_in_input_order() -> None:
    from models.registry import get_model

    names = [n for n, _ in get_model("fcn", n_tags=3, width=0.25).named_blocks()]
    assert names[0] == "features.input_norm" and names[1:] == [f"features.blocks.{i}" for i in range(5)]
    assert all("classifier" not in n for name in list_models()
               for n, _ in get_model(name, n_tags=3, **small_kwargs(name)).named_blocks())


def test_ddp_two_cpu_processes(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "pipeline",
           "train", "--corpus", str(corpus), "--out", str(out), "--model", "fcn", "--model-arg", "width=0.25",
           "--n-mels", "32", "--chunk-seconds", "1", "--epochs", "1", "--batch-size", "4", "--top-n", "12",
           "--workers", "0", "--device", "cpu", "--no-progress"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_contract(out, "fcn", n_tags=12)
    manifest = RunDir(out).manifest()
    assert manifest["device"]["world_size"] == 2
    assert proc.stdout.count("trained run:") == 1  # only rank 0 reports (and writes)


def test_help_documents_every_option() -> None:
    from pipeline.cli.train import build_parser

    text = build_parser().format_help()
    from pipeline.training.config import FLAT_FEATURES, FLAT_LABELS

    flags = {"model_kwargs": "--model-arg", "merge_synonyms": "--no-synonyms", "deterministic": "--no-deterministic"}
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("features", "labels")]
    for name in [*names, *FLAT_FEATURES, *FLAT_LABELS]:
        flag = flags.get(name, "--" + name.replace("_", "-"))
        assert flag in text, f"train --help does not mention {flag} ({name})"
    for action in build_parser()._actions:
        assert action.help, f"option {action.option_strings} has no help"


@pytest.mark.parametrize("overrides, match", [
    ({"epochs": 0}, "epochs"),
    ({"schedule": "linear"}, "schedule"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"momentum": 1.0}, "momentum"),
    ({"pos_weight": "yes"}, "pos_weight"),
    ({"batch_size": 1}, "batch_size"),
    ({"ratios": (0.5, 0.5, 0.5)}, "ratios"),
    ({"device": "tpu"}, "device"),
    ({"model": "rf", "freeze_blocks": 2}, "baseline"),
])
def test_bad_config_values(overrides: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        TrainConfig.from_overrides(None, **overrides)


def test_config_nests_the_feature_and_label_configs() -> None:
    from pipeline.features.extract import FeatureConfig
    from pipeline.sources.labels import LabelConfig

    c = TrainConfig.from_overrides(None, model="fcn", top_n=20, split_seed=3, ratios=[0.6, 0.2, 0.2], sample_rate=22050,
                                   hop_length=512)
    assert c.labels == LabelConfig(top_n=20, seed=3, ratios=(0.6, 0.2, 0.2))
    assert c.features == FeatureConfig(sample_rate=22050, hop_length=512)
    # nested overrides merge into the base's configs; flat ones set a single field
    d = TrainConfig.from_overrides(c, labels={"drop_untagged": True}, n_fft=1024)
    assert d.labels == dataclasses.replace(c.labels, drop_untagged=True) and d.features.n_fft == 1024
    assert d.features.sample_rate == 22050
    # to_dict is plain JSON, nested, and from_dict rebuilds the same config
    saved = json.loads(json.dumps(d.to_dict()))
    assert saved["labels"]["seed"] == 3 and saved["features"]["hop_length"] == 512 and "top_n" not in saved
    assert TrainConfig.from_dict(saved) == d
    # a config saved before the nesting (flat fields) reads through the flat names
    flat = {k: v for k, v in saved.items() if k not in ("features", "labels")}
    flat.update(sample_rate=22050, n_fft=1024, hop_length=512, merge_synonyms=None, top_n=20, drop_untagged=True,
                split="auto", split_seed=3, ratios=[0.6, 0.2, 0.2])
    assert TrainConfig.from_dict(flat) == d
    with pytest.raises(ParameterError, match="unknown label config field"):
        TrainConfig.from_overrides(None, labels={"top_k": 3})
    with pytest.raises(ParameterError, match="unknown feature config field"):
        TrainConfig.from_overrides(None, features={"sr": 8000})
    with pytest.raises(ParameterError, match="top_n"):
        TrainConfig.from_overrides(None, top_n=0)


def test_unknown_overrides_and_models(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="unknown training option"):
        TrainConfig.from_overrides(None, epochz=3)
    with pytest.raises(ParameterError, match="known models"):
        train(tiny_config("resnet9000"), corpus, tmp_path / "a", progress=False)
    with pytest.raises(ParameterError, match="accepts"):
        train(tiny_config("fcn", model_kwargs={"widht": 0.5}), corpus, tmp_path / "b", progress=False)
    with pytest.raises(ParameterError, match="init_from"):
        train(tiny_config("fcn", init_from=str(tmp_path / "nowhere")), corpus, tmp_path / "c", progress=False)


def test_existing_complete_run_needs_force(corpus: Path, tmp_path: Path) -> None:
    config = tiny_config("fcn4")
    run = train(config, corpus, tmp_path / "run", progress=False)
    with pytest.raises(RunDirError, match="--force"):
        train(config, corpus, run, progress=False)
    first = load(run / LAST_CHECKPOINT)["state_dict"]
    train(dataclasses.replace(config, seed=1), corpus, run, force=True, progress=False)
    second = load(run / LAST_CHECKPOINT)
    assert second["config"]["seed"] == 1
    assert any(not torch.equal(first[k], second["state_dict"][k]) for k in first)


def test_pos_weight_and_schedules() -> None:
    from pipeline.training.optim import compute_pos_weight, lr_factor

    labels = np.array([[1, 0], [0, 0], [0, 1], [0, 1]])
    assert compute_pos_weight(labels, "none", 50) is None
    assert compute_pos_weight(labels, "balanced", 50).tolist() == pytest.approx([3.0, 1.0])
    assert compute_pos_weight(labels, "sqrt", 50).tolist() == pytest.approx([3 ** 0.5, 1.0])
    assert compute_pos_weight(labels, "balanced", 2).tolist() == pytest.approx([2.0, 1.0])
    recipe = TrainConfig()  # Music-Tagger: 1e-3, / 10 after epochs 20, 30 and 35 of 40
    assert [lr_factor(recipe, e) for e in (0, 19, 20, 29, 30, 35, 39)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.001, 0.001])
    won = TrainConfig(optimizer="adam_sgd", lr=1e-4, sgd_lr=1e-3, sgd_after=80, milestones=(100, 120))
    assert [lr_factor(won, e) for e in (0, 79, 80, 99, 100, 119, 120, 199)] == pytest.approx(
        [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    cosine = TrainConfig(schedule="cosine", epochs=4)
    assert [lr_factor(cosine, e) for e in range(4)] == pytest.approx([1, 0.8535534, 0.5, 0.1464466])


def test_cli_errors_are_clear(corpus: Path, tmp_path: Path) -> None:
    from test_cli_errors import run_cli  # the command's entry point, in this process

    def run(*args: str):
        return run_cli("train", *args)

    proc = run("--corpus", str(tmp_path / "missing"), "--model", "fcn")
    assert proc.returncode == 2 and "no such folder" in proc.stderr
    proc = run("--corpus", str(corpus), "--model", "fcn", "--epochs", "0", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2 and "epochs must be >= 1" in proc.stderr
    proc = run("--corpus", str(corpus), "--model-arg", "width")
    assert proc.returncode == 2 and "KEY=VALUE" in proc.stderr
    proc = run("--list-models")
    assert proc.returncode == 0 and "shortchunk_res" in proc.stdout and "bof_lr" in proc.stdout


def test_cli_builds_config_from_flags() -> None:
    from pipeline.cli.train import build_parser, config_from_args

    args = build_parser().parse_args(["--corpus", ".", "--model", "crnn", "--model-arg", "rnn=lstm",
                                      "--model-arg", "width=0.5", "--no-synonyms", "--top-n", "all",
                                      "--milestones", "2", "4", "--ratios", "0.6", "0.2", "0.2", "--patience", "3"])
    c = config_from_args(args)
    assert c.model == "crnn" and c.model_kwargs == {"rnn": "lstm", "width": 0.5}
    assert c.labels.merge_synonyms is False and c.labels.top_n is None and c.milestones == (2, 4)
    assert c.labels.ratios == (0.6, 0.2, 0.2) and c.patience == 3
    demo = config_from_args(build_parser().parse_args(["--corpus", ".", "--demo", "--epochs", "2"]))
    from pipeline.training.config import demo_train_config

    assert demo == dataclasses.replace(demo_train_config(), epochs=2)
    assert json.loads(json.dumps(demo.to_dict())) == demo.to_dict()


def test_early_stopping_and_time_budget(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.training.loop as loop_module

    # a validation score that never improves after epoch 1: patience 2 stops after epoch 3
    monkeypatch.setattr(loop_module, "validate", lambda *a, **k: {"roc_auc": 0.5, "pr_auc": 0.1})
    run = train(tiny_config("fcn4", epochs=6, patience=2), corpus, tmp_path / "es", progress=False)
    assert len(pd.read_csv(run / HISTORY)) == 3 and load(run / CHECKPOINT)["epoch"] == 1
    monkeypatch.undo()
    # a budget used up by the first batch: the epoch is cut, validated and saved, and training ends
    run = train(tiny_config("fcn4", epochs=50, max_minutes=1e-4), corpus, tmp_path / "budget", progress=False)
    history = pd.read_csv(run / HISTORY)
    assert len(history) == 1 and RunDir(run).stage_done("train")


def test_tensorboard_missing_is_a_message(corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    try:
        import tensorboard  # noqa: F401
        has_tb = True
    except ImportError:
        has_tb = False
    run = train(tiny_config("fcn4", tensorboard=True), corpus, tmp_path / "tb", progress=False)
    if has_tb:
        assert any((run / TENSORBOARD).iterdir())
    else:
        assert "tensorboard" in caplog.text.lower() and "not installed" in caplog.text
    shutil.rmtree(run)


def test_device_and_precision_choices() -> None:
    from pipeline import device as devices

    assert devices.pick_device("cpu").type == "cpu"
    auto = devices.pick_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    with pytest.raises(ParameterError, match="device"):
        devices.pick_device("tpu")
    cpu = torch.device("cpu")
    assert devices.pick_precision(cpu).dtype is None  # float32 on CPU
    assert devices.pick_precision(cpu, "bf16").dtype == torch.bfloat16
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA"):
            devices.pick_device("cuda")
        with pytest.raises(ParameterError, match="fp16"):
            devices.pick_precision(cpu, "fp16")
    info = devices.dist_env()
    assert info.is_main and not info.enabled and devices.any_rank(True, cpu) and not devices.any_rank(False, cpu)


def test_bf16_autocast_trains_on_cpu(corpus: Path, tmp_path: Path) -> None:
    run = train(tiny_config("fcn", precision="bf16"), corpus, tmp_path / "bf16", progress=False)
    assert RunDir(run).manifest()["device"]["precision"] == "bfloat16"
    assert np.isfinite(pd.read_csv(run / HISTORY)["train_loss"]).all()


# -- what a CPU run will cost -----------------------------------------------------------------

def test_run_estimate_from_injected_batch_seconds(caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.training.loop import LONG_CPU_RUN_MINUTES, estimate_run, report_estimate

    # the bare `train --corpus` on the 400-clip demo: 40 epochs x 10 batches at 4 s, 2 validation batches
    long = estimate_run(4.0, batches_per_epoch=10, epochs=40, valid_batches=2, batch_size=32)
    assert long.train_seconds == 40 * 10 * 4.0
    assert long.valid_seconds == pytest.approx(2 * 4 * 32 * (4.0 / 32) / 3)  # forward passes: a third of a step
    assert long.seconds == pytest.approx(1600 + 40 * long.valid_seconds) and long.seconds > LONG_CPU_RUN_MINUTES * 60
    with caplog.at_level("INFO", logger="pipeline.training.loop"):
        report_estimate(long, suggest_recipe=True)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    assert "CPU_RECIPE" in warnings[0].getMessage() and "--demo" in warnings[0].getMessage()
    assert "40 epoch(s) x 10 batches x 4.00 s" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="pipeline.training.loop"):
        report_estimate(long, suggest_recipe=False)  # --demo: the estimate is told, not the recipe
        report_estimate(estimate_run(0.1, batches_per_epoch=5, epochs=3, valid_batches=1, batch_size=8),
                        suggest_recipe=True)  # a short run
    assert "this CPU run will take" in caplog.text and not [r for r in caplog.records if r.levelname == "WARNING"]
    # a time budget caps the training part; the validations of the epochs that fit are added
    capped = estimate_run(4.0, batches_per_epoch=10, epochs=40, valid_batches=2, batch_size=32, budget_seconds=300)
    assert capped.train_seconds == 300 and capped.seconds == pytest.approx(300 + 8 * capped.valid_seconds)
    assert capped.seconds < LONG_CPU_RUN_MINUTES * 60 and "time budget" in capped.describe()


def test_a_long_cpu_run_warns_after_its_first_batches(corpus: Path, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    def stop(epoch: int, row: dict) -> None:
        raise Kill

    # 100,000 epochs: hours on any CPU, whatever a batch takes here; stopped after the first
    long = tiny_config("fcn4", epochs=100_000)
    for suggest, warned in ((True, True), (False, False)):
        caplog.clear()
        with caplog.at_level("INFO", logger="pipeline.training.loop"), pytest.raises(Kill):
            train(long, corpus, tmp_path / f"long-{suggest}", progress=False, callbacks=[stop], suggest_recipe=suggest)
        assert re.search(r"100000 epoch\(s\) x \d+ batches x [\d.]+ s a batch", caplog.text)
        assert ("CPU_RECIPE" in caplog.text) is warned
    caplog.clear()
    with caplog.at_level("INFO", logger="pipeline.training.loop"):
        train(tiny_config("fcn4", epochs=1), corpus, tmp_path / "short", progress=False)
    assert "this CPU run will take" in caplog.text and "CPU_RECIPE" not in caplog.text


def test_cli_suggests_the_recipe_unless_demo(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.training.train as train_module
    from pipeline.cli.train import main

    seen = []
    monkeypatch.setattr(train_module, "train", lambda *a, **k: seen.append(k["suggest_recipe"]) or Path("run"))
    main(["--corpus", str(corpus), "--epochs", "40"])
    main(["--corpus", str(corpus), "--demo", "--epochs", "40"])
    assert seen == [True, False]
