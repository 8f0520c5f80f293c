"""The predict stage on a real tiny trained run: predictions, taggrams, ONNX export, idempotence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ParameterError, RunDirError
from pipeline.run.rundir import (
    MANIFEST,
    ONNX_MODEL,
    PREDICTIONS,
    PROB_PREFIX,
    TAGGER,
    TAGGRAMS,
    TAGGRAMS_INDEX,
    TRUE_PREFIX,
    RunDir,
    prob_column,
    true_column,
)

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def corpus(tiny_run: Path):
    from pipeline.sources.loader import corpus_from_record

    return corpus_from_record(RunDir(tiny_run).manifest()["corpus"])


@pytest.fixture(scope="module")
def predictions(tiny_run: Path) -> pd.DataFrame:
    return pd.read_parquet(tiny_run / PREDICTIONS)


def test_predictions_schema_and_invariants(tiny_run: Path, corpus, predictions: pd.DataFrame) -> None:
    tags = RunDir(tiny_run).manifest()["tags"]
    assert list(predictions.columns) == (["clip_id", "split", "audio_path"] + [prob_column(t) for t in tags]
                                         + [true_column(t) for t in tags])
    # one row per clip, every clip of every split (all decoded)
    assert len(predictions) == len(corpus) and predictions["clip_id"].is_unique
    assert set(predictions["clip_id"]) == set(corpus.clip_ids)
    assert set(predictions["split"]) == {"train", "valid", "test"}
    probs = predictions[[prob_column(t) for t in tags]].to_numpy()
    assert probs.dtype == np.float32 and np.isfinite(probs).all()
    assert probs.min() >= 0 and probs.max() <= 1 and probs.std() > 0
    truth = predictions[[true_column(t) for t in tags]]
    assert all(dtype == np.uint8 for dtype in truth.dtypes)
    rows = [corpus.clip_ids.index(c) for c in predictions["clip_id"]]
    np.testing.assert_array_equal(truth.to_numpy(), corpus.labels[rows])
    assert list(predictions["split"]) == [str(corpus.split[i]) for i in rows]
    paths = [Path(p) for p in predictions["audio_path"]]
    assert all(p.is_absolute() and p.is_file() for p in paths)
    assert [p.name for p in paths] == [corpus.audio_path(i).name for i in rows]
    assert all(c.startswith((PROB_PREFIX, TRUE_PREFIX)) for c in predictions.columns[3:])


def test_predictions_equal_evaluation_scores(tiny_run: Path, corpus, predictions: pd.DataFrame) -> None:
    """predictions.parquet holds the clip scores evaluation computes (same chunks, same aggregation)."""
    from pipeline.features.cache import build_cache
    from pipeline.scoring.inference import load_run

    run_model = load_run(tiny_run)
    cache = build_cache(corpus, run_model.features, progress=False)
    ids = list(predictions["clip_id"][:6])
    want = run_model.predict_many([np.asarray(cache.read(c)) for c in ids])
    got = predictions[[prob_column(t) for t in run_model.tags]].to_numpy()[:6]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_taggrams_cover_each_clip(tiny_run: Path, corpus, predictions: pd.DataFrame) -> None:
    from pipeline.features.audio import load_audio
    from pipeline.scoring.tagger import Taggrams

    entry = RunDir(tiny_run).manifest()["stages"]["predict"]
    plan = entry["taggram"]
    assert plan["fps"] == pytest.approx(62.5 / plan["hop"]) and plan["hop_s"] == pytest.approx(1 / plan["fps"])
    index = pd.read_parquet(tiny_run / TAGGRAMS_INDEX)
    assert list(index.columns) == ["clip_id", "offset", "n_frames"]
    assert list(index["clip_id"]) == list(predictions["clip_id"])
    offsets = index["offset"].to_numpy()
    n_frames = index["n_frames"].to_numpy()
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(n_frames)[:-1]]))
    array = np.load(tiny_run / TAGGRAMS, mmap_mode="r")
    assert array.dtype == np.float16 and array.shape == (n_frames.sum(), len(corpus.tags))
    assert float(array.min()) >= 0 and float(array.max()) <= 1
    for clip_id, n in list(zip(index["clip_id"], n_frames))[:5]:
        seconds = len(load_audio(corpus.audio_path(corpus.clip_ids.index(clip_id)))) / 16000
        assert abs(n / plan["fps"] - seconds) <= plan["hop_s"], (clip_id, n, seconds)
    # one clip's taggram is a slice of a memory map
    taggrams = Taggrams(tiny_run)
    clip_id = index["clip_id"][3]
    gram = taggrams[clip_id]
    assert isinstance(gram, np.memmap) and gram.shape == (n_frames[3], len(corpus.tags))
    np.testing.assert_array_equal(gram, array[offsets[3]:offsets[3] + n_frames[3]])
    assert taggrams.times(clip_id)[1] == pytest.approx(plan["hop_s"])
    assert len(taggrams) == len(index) and clip_id in taggrams and "nope" not in taggrams
    with pytest.raises(ParameterError, match="nope"):
        taggrams["nope"]


def test_taggram_follows_the_model_over_time(tiny_run: Path, corpus, predictions: pd.DataFrame) -> None:
    """A clip's stored taggram is the sigmoid of the model's frame logits on that clip."""
    import torch

    from pipeline.features.cache import build_cache
    from pipeline.scoring.inference import load_run
    from pipeline.scoring.tagger import Taggrams, sigmoid

    run_model = load_run(tiny_run)
    cache = build_cache(corpus, run_model.features, progress=False)
    plan = RunDir(tiny_run).manifest()["stages"]["predict"]["taggram"]
    assert plan["mode"] == "frames" and plan["window"] == plan["hop"]  # musicnn's own frames: one pass
    clip_id = predictions["clip_id"][0]
    features = run_model.normalizer(np.asarray(cache.read(clip_id)))  # (T, n_bins)
    # the clip, zero-padded (the normalised mean) by one model frame, and to a chunk at least
    x = np.zeros((1, features.shape[1], max(len(features) + plan["hop"], run_model.chunk_frames)), np.float32)
    x[0, :, :len(features)] = features.T
    with torch.no_grad():
        want = sigmoid(run_model.model.frame_logits(torch.from_numpy(x)).numpy()[0])
    got = np.asarray(Taggrams(tiny_run)[clip_id], dtype=np.float32)
    assert len(got) == -(-len(features) // plan["hop"])
    np.testing.assert_allclose(got, want[:len(got)], atol=1e-3)  # stored as float16


def test_onnx_model_matches_torch(tiny_run: Path, corpus) -> None:
    from pipeline.scoring.predict import TorchTagger
    from pipeline.scoring.tagger import OnnxTagger

    entry = RunDir(tiny_run).manifest()["stages"]["predict"]
    assert entry["onnx"]["max_abs_diff"] < 1e-4
    assert entry["backend"] == "onnxruntime"  # on a CPU, the stage itself ran the exported model
    config = json.loads((tiny_run / TAGGER).read_text())
    assert config["onnx"] == ONNX_MODEL and config["tags"] == corpus.tags
    onnx, torch_tagger = OnnxTagger(tiny_run), TorchTagger(tiny_run)
    for seconds in (1.0, 3.5, 9.0):  # shorter than, about, and longer than the model's 3 s chunk
        y = np.random.default_rng(int(seconds)).normal(0, 0.1, int(seconds * 16000)).astype(np.float32)
        p1, g1 = onnx.tag_audio(y)
        p2, g2 = torch_tagger.tag_audio(y)
        np.testing.assert_allclose(p1, p2, atol=1e-4)
        np.testing.assert_allclose(g1, g2, atol=1e-4)
        assert g1.shape == (-(-onnx.features.n_frames(len(y)) // onnx.plan.hop), len(corpus.tags))


def test_rerun_is_idempotent_and_force_recomputes(tiny_run: Path, tmp_path: Path) -> None:
    from pipeline.scoring.predict import predict_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = RunDir(run).manifest()["stages"]["predict"]
    mtimes = {f: (run / f).stat().st_mtime_ns for f in before["files"]}
    again = predict_run(run, progress=False)
    assert again["finished"] == before["finished"]
    assert {f: (run / f).stat().st_mtime_ns for f in before["files"]} == mtimes
    # a changed option is not up to date; nor is a --force run
    redone = predict_run(run, aggregate="max", progress=False)
    assert redone["aggregate"] == "max" and (run / PREDICTIONS).stat().st_mtime_ns != mtimes[PREDICTIONS]
    forced = predict_run(run, aggregate="max", force=True, progress=False)
    assert forced["finished"] >= redone["finished"] and set(forced["files"]) == set(before["files"])


def test_partial_runs_are_refused(tiny_run: Path, tmp_path: Path) -> None:
    from pipeline.scoring.predict import predict_run
    from pipeline.scoring.tagger import OnnxTagger, Taggrams

    with pytest.raises(RunDirError, match="not a run directory"):
        predict_run(tmp_path / "nothing", progress=False)
    # training that never finished: a manifest without a complete train stage
    run = tmp_path / "unfinished"
    shutil.copytree(tiny_run, run)
    manifest = json.loads((run / MANIFEST).read_text())
    del manifest["stages"]["train"]
    (run / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RunDirError, match="stage 'train' is missing or incomplete"):
        predict_run(run, progress=False)
    # a predict stage that lost a file is not half-loaded
    run = tmp_path / "lost"
    shutil.copytree(tiny_run, run)
    (run / TAGGRAMS).unlink()
    for reader in (OnnxTagger, Taggrams):
        with pytest.raises(RunDirError, match="stage 'predict' is missing or incomplete"):
            reader(run)


def test_killed_rerun_leaves_an_incomplete_stage(tiny_run: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A recomputation that dies half-way never leaves old and new files posing as one stage."""
    import pipeline.scoring.predict as predict

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(predict, "_write_predictions", killed)
        with pytest.raises(KeyboardInterrupt):
            predict.predict_run(run, force=True, progress=False)
    assert not RunDir(run).stage_done("predict")
    from pipeline.scoring.tagger import Taggrams

    with pytest.raises(RunDirError, match="stage 'predict' is missing or incomplete"):
        Taggrams(run)
    entry = predict.predict_run(run, progress=False)  # the next run completes it
    assert RunDir(run).stage_done("predict") and entry["n_clips"] == len(pd.read_parquet(run / PREDICTIONS))


def test_a_model_that_cannot_be_exported_still_gets_predictions(tiny_run: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.scoring.predict as predict
    from pipeline.cli.tag import open_tagger
    from pipeline.scoring.tagger import OnnxTagger

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)

    def unexportable(*args: object, **kwargs: object) -> dict:
        raise RuntimeError("torchscript: no; dynamo: no")

    monkeypatch.setattr(predict, "export_onnx", unexportable)
    entry = predict.predict_run(run, force=True, progress=False)
    assert ONNX_MODEL not in entry["files"] and not (run / ONNX_MODEL).exists()
    assert entry["backend"].startswith("torch") and entry["onnx"] == {"error": "torchscript: no; dynamo: no"}
    assert json.loads((run / TAGGER).read_text())["onnx"] is None
    before = pd.read_parquet(tiny_run / PREDICTIONS)
    after = pd.read_parquet(run / PREDICTIONS)
    np.testing.assert_allclose(after.iloc[:, 3:].to_numpy(float), before.iloc[:, 3:].to_numpy(float), atol=1e-5)
    with pytest.raises(RunDirError, match="no ONNX model"):
        OnnxTagger(run)
    assert type(open_tagger(run)).__name__ == "TorchTagger"  # the tag command falls back to torch


def test_baseline_run_gets_predictions_without_taggrams(tiny_run: Path, tmp_path: Path, corpus,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main
    from pipeline.scoring.predict import predict_run
    from pipeline.training.config import TrainConfig
    from pipeline.training.train import train

    run = tmp_path / "knn"
    train(TrainConfig.from_overrides(model="knn", top_n=20), corpus.root, run, progress=False)
    entry = predict_run(run, progress=False)
    assert entry["files"] == [PREDICTIONS] and entry["taggram"] is None
    frame = pd.read_parquet(run / PREDICTIONS)
    assert len(frame) == len(corpus) and frame.filter(like=PROB_PREFIX).to_numpy().max() <= 1
    audio = str(corpus.audio_path(0))
    assert main(["tag", audio, "--run", str(run), "--top", "2", "--taggram", str(tmp_path / "g.csv")]) == 0
    out = capsys.readouterr().out
    assert audio in out and "taggram: none" in out and not (tmp_path / "g.csv").exists()


def test_bad_options_name_the_parameter(tiny_run: Path) -> None:
    from pipeline.scoring.predict import predict_run

    with pytest.raises(ParameterError, match="aggregate"):
        predict_run(tiny_run, aggregate="median")
    with pytest.raises(ParameterError, match="batch size"):
        predict_run(tiny_run, batch_clips=0)
    with pytest.raises(ParameterError, match="taggram hop"):
        predict_run(tiny_run, taggram_hop_s=0)


def test_predict_command_line(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    assert main(["predict", str(tiny_run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"predictions for {len(pd.read_parquet(tiny_run / PREDICTIONS))} clips" in out
    assert "frames per second" in out and "model.onnx" in out


# ----------------------------------------------------------------------------- ONNX export of the zoo


@pytest.mark.parametrize("name", ["crnn", "fcn", "fcn4", "multiscale", "musicnn", "samplecnn", "shortchunk_res"])
def test_every_model_exports_with_dynamic_batch_and_time(name: str, tmp_path: Path) -> None:
    import torch

    from models.registry import get_model, small_kwargs
    from pipeline.scoring.predict import export_onnx, model_frame_hop

    torch.manual_seed(0)
    model = get_model(name, n_tags=3, **small_kwargs(name)).eval()
    spec = model.spec
    info = export_onnx(model, tmp_path / "m.onnx", n_bins=spec.n_bins, chunk_frames=spec.chunk_frames)
    assert info["max_abs_diff"] < 1e-3 and info["exporter"] in ("torchscript", "dynamo")
    hop = model_frame_hop(model, n_bins=spec.n_bins, chunk_frames=spec.chunk_frames)
    assert hop is not None and hop >= 1


def test_shift_and_stitch_with_a_real_model() -> None:
    """Shifted passes interleave: frame i * shifts + k of the taggram is frame i of pass k."""
    import torch

    from models.registry import get_model, small_kwargs
    from pipeline.scoring.predict import TorchNetwork, model_frame_hop
    from pipeline.scoring.tagger import compute_taggrams, plan_taggram, sigmoid

    torch.manual_seed(0)
    model = get_model("shortchunk_res", n_tags=3, **small_kwargs("shortchunk_res")).eval()
    spec = model.spec
    hop = model_frame_hop(model, n_bins=spec.n_bins, chunk_frames=spec.chunk_frames)
    assert hop == 128  # seven stride-2 blocks
    plan = plan_taggram(hop, chunk_frames=spec.chunk_frames, input_fps=62.5, hop_s=0.5)
    assert plan.shifts == 4 and plan.hop == 32
    t = 700
    x = np.random.default_rng(0).normal(size=(2, spec.n_bins, t)).astype(np.float32)
    net = TorchNetwork(model, "cpu")
    grams = compute_taggrams(net, x, plan, chunk_frames=spec.chunk_frames)
    assert grams.shape == (2, -(-t // 32), 3)
    left = (plan.window - plan.hop) // 2
    length = max(t + plan.window, spec.chunk_frames)  # each pass reaches a model frame past the clip's end
    for k in range(plan.shifts):
        shifted = np.zeros((2, spec.n_bins, length), np.float32)
        start = left - k * plan.hop  # pass k starts k hops later in the left-padded clip
        shifted[..., max(start, 0):start + t] = x[..., max(-start, 0):]
        want = sigmoid(net.frame_logits(shifted))
        got = grams[:, k::plan.shifts]
        np.testing.assert_allclose(got, want[:, :got.shape[1]], atol=1e-5)
