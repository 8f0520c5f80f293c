"""Evaluation and inference: chunking audio of any length, metrics from the stored scores, baselines, CLI, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.analysis.metrics import HEADLINE_AUCS, PER_TAG_COLUMNS
from pipeline.errors import ParameterError, RunDirError
from pipeline.run.rundir import METRICS, PER_TAG, RunDir
from pipeline.scoring.chunks import aggregate_chunks, chunk_clip

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- chunking (fast, no corpus)


def test_chunks_cover_the_clip_and_align_the_last_to_its_end() -> None:
    features = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 2), dtype=np.float32)  # (T=10, 2)
    chunks = chunk_clip(features, 4)
    assert chunks.shape == (3, 2, 4)
    assert chunks[:, 0, 0].tolist() == [0, 4, 6]  # starts 0, 4 and 10 - 4
    assert chunks[-1, 0, -1] == 9
    assert chunk_clip(features, 4, hop=2).shape == (4, 2, 4)  # 0, 2, 4, 6
    assert chunk_clip(features, 10).shape == (1, 2, 10)


def test_drop_tail_keeps_whole_chunks_only_as_musicnn_batches() -> None:
    features = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 2), dtype=np.float32)
    chunks = chunk_clip(features, 4, tail="drop")
    assert chunks[:, 0, 0].tolist() == [0, 4]  # frames 8 and 9 are left out
    assert chunk_clip(features[:3], 4, tail="drop").shape == (1, 2, 4)  # a short clip still gives one chunk
    with pytest.raises(ParameterError, match="chunk tail"):
        chunk_clip(features, 4, tail="end")


def test_short_clip_is_padded_after_normalisation() -> None:
    features = np.full((3, 2), 5.0, dtype=np.float32)
    chunks = chunk_clip(features, 8, normalizer=lambda x: x - 5.0 + 1.0)
    assert chunks.shape == (1, 2, 8)
    assert chunks[0, :, :3].tolist() == [[1, 1, 1], [1, 1, 1]]
    assert not chunks[0, :, 3:].any()  # padding is zero, the normalised mean


@pytest.mark.parametrize("bad, match", [(np.zeros((0, 3)), "T >= 1"), (np.zeros(5), "T >= 1")])
def test_chunking_rejects_bad_features(bad: np.ndarray, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        chunk_clip(bad, 4)
    with pytest.raises(ParameterError, match="chunk_frames"):
        chunk_clip(np.zeros((5, 2)), 0)
    with pytest.raises(ParameterError, match="hop"):
        chunk_clip(np.zeros((5, 2)), 2, hop=0)


def test_aggregation_of_chunk_rows() -> None:
    values = np.array([[0.1, 1.0], [0.3, 3.0], [0.5, 2.0], [0.9, 4.0]], dtype=np.float32)
    np.testing.assert_allclose(aggregate_chunks(values, [3, 1]), [[0.3, 2.0], [0.9, 4.0]], rtol=1e-6)
    np.testing.assert_allclose(aggregate_chunks(values, [3, 1], "max"), [[0.5, 3.0], [0.9, 4.0]])
    assert aggregate_chunks(values[:0], []).shape == (0, 2)
    with pytest.raises(ParameterError, match="aggregate"):
        aggregate_chunks(values, [4], "median")
    with pytest.raises(ParameterError, match="counts sum to 3"):
        aggregate_chunks(values, [2, 1])


def test_mean_and_max_aggregation_of_any_length() -> None:
    from models.registry import get_model
    from pipeline.scoring.inference import predict_clip, predict_clips

    torch.manual_seed(0)
    model = get_model("fcn", n_tags=4, width=0.25, n_mels=16, chunk_frames=32).eval()
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=(n, 16)).astype(np.float32) for n in (5, 32, 100)]  # shorter, equal, longer
    mean = predict_clips(model, clips, normalizer=None, chunk_frames=32, batch_size=2)
    top = predict_clips(model, clips, normalizer=None, chunk_frames=32, aggregate="max")
    assert mean.shape == top.shape == (3, 4)
    assert np.all(top >= mean - 1e-6) and np.all((mean > 0) & (mean < 1))
    # the clip-level mean is the mean of the chunks' probabilities
    chunks = torch.from_numpy(chunk_clip(clips[2], 32))
    with torch.no_grad():
        expected = torch.sigmoid(model(chunks)).mean(0).numpy()
    np.testing.assert_allclose(mean[2], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predict_clip(model, clips[0], normalizer=None, chunk_frames=32), mean[0], rtol=1e-5)
    with pytest.raises(ParameterError, match="aggregate"):
        predict_clips(model, clips, normalizer=None, chunk_frames=32, aggregate="median")


# ----------------------------------------------------------------------------- runs (tiny demo corpus)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, demo_corpus_48: Path) -> dict[str, Path]:
    """A tiny demo corpus (the session's 48 clips x 4 s) with a narrow network run and a random-forest run."""
    from pipeline.training.config import TrainConfig
    from pipeline.training.train import train

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("evaluate")
    corpus = demo_corpus_48
    common = {"n_mels": 32, "epochs": 2, "batch_size": 8, "top_n": 12, "workers": 0}
    net = train(TrainConfig.from_overrides(model="musicnn", model_kwargs={"width": 0.125}, chunk_seconds=1.5, **common), corpus,
                base / "musicnn", progress=False)
    rf = train(TrainConfig.from_overrides(model="rf", model_kwargs={"n_estimators": 20}, **common), corpus, base / "rf",
               progress=False)
    from pipeline.scoring.score import score_run

    for run in (net, rf):  # train -> score -> evaluate
        score_run(run, progress=False)
    return {"corpus": corpus, "net": net, "rf": rf}


@pytest.mark.slow
def test_evaluate_writes_metrics_and_per_tag(trained: dict[str, Path]) -> None:
    from pipeline.analysis.evaluate import evaluate_run

    run = trained["net"]
    ev = evaluate_run(run, n_bootstrap=50, progress=False)
    metrics = json.loads((run / METRICS).read_text())
    assert metrics["split"] == "test" and metrics["aggregate"] == "mean" and metrics["n_clips"] == 9
    assert set(HEADLINE_AUCS) <= set(metrics["headline"]) and set(HEADLINE_AUCS) == set(metrics["ci95"])
    for key in HEADLINE_AUCS:  # (9 clips are too few for the interval to hold the estimate reliably)
        value, (lo, hi) = metrics["headline"][key], metrics["ci95"][key]
        assert value is not None and 0 <= lo <= hi <= 1, key
    per_tag = pd.read_csv(run / PER_TAG)
    assert tuple(per_tag.columns) == PER_TAG_COLUMNS and len(per_tag) == 12
    # 9 test clips cannot hold every tag: those tags are reported (NaN), never crash
    undefined = per_tag.loc[per_tag["roc_auc"].isna(), "tag"].tolist()
    assert undefined == metrics["undefined_tags"] == ev.undefined_tags
    rd = RunDir(run)
    assert rd.stage_done("evaluate")
    assert rd.manifest()["metrics"]["headline"]["roc_auc_macro"] == metrics["headline"]["roc_auc_macro"]
    # thresholds were tuned on the validation split, not left at 0.5 everywhere
    assert metrics["thresholds_tuned_on"] == "valid"


@pytest.mark.slow
def test_evaluation_matches_inference_scores(trained: dict[str, Path], tmp_path: Path) -> None:
    """Evaluate measures the model's own clip scores (read from predictions.parquet, not recomputed)."""
    import shutil

    from pipeline.analysis.evaluate import evaluate_run
    from pipeline.analysis.metrics import auc_scores
    from pipeline.features.cache import build_cache
    from pipeline.scoring.inference import load_run
    from pipeline.scoring.score import score_run
    from pipeline.sources.loader import corpus_from_record

    run = trained["net"]
    rm = load_run(run)
    corpus = corpus_from_record(RunDir(run).manifest()["corpus"])
    cache = build_cache(corpus, rm.features, progress=False)
    rows = corpus.indices("test")
    probs = np.stack([rm.predict(np.asarray(cache.read(corpus.clip_ids[i]))) for i in rows])
    ev = evaluate_run(run, n_bootstrap=0, progress=False, write=False)
    assert ev.headline["roc_auc_macro"] == pytest.approx(auc_scores(corpus.labels[rows], probs)["roc_auc_macro"],
                                                         abs=1e-6)
    # the max aggregation is chosen when scoring; evaluate measures whichever scores the run holds
    maxed = tmp_path / "max"
    shutil.copytree(run, maxed)
    score_run(maxed, aggregate="max", progress=False)
    mx = evaluate_run(maxed, n_bootstrap=0, progress=False)
    top = np.stack([rm.predict(np.asarray(cache.read(corpus.clip_ids[i])), aggregate="max") for i in rows])
    assert mx.headline["roc_auc_macro"] == pytest.approx(auc_scores(corpus.labels[rows], top)["roc_auc_macro"],
                                                         abs=1e-6)
    assert json.loads((maxed / METRICS).read_text())["aggregate"] == "max"
    # evaluate runs no network: it works with the checkpoint unreadable
    (maxed / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert evaluate_run(maxed, n_bootstrap=0, progress=False, write=False).headline == mx.headline


@pytest.mark.slow
def test_run_model_tags_audio_files_of_any_length(trained: dict[str, Path], tmp_path: Path) -> None:
    import soundfile as sf

    from pipeline.scoring.inference import load_run

    rm = load_run(trained["net"])
    sr = rm.features.sample_rate
    t = np.arange(int(0.4 * sr)) / sr  # 0.4 s: far shorter than the 1.5 s chunk
    path = tmp_path / "short.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    probs = rm.predict_file(path)
    assert probs.shape == (len(rm.tags),) and np.all((probs >= 0) & (probs <= 1))
    assert rm.features_of(path).shape[0] < rm.chunk_frames


@pytest.mark.slow
def test_baseline_run_is_evaluated_like_a_network(trained: dict[str, Path]) -> None:
    from pipeline.analysis.evaluate import evaluate_run
    from pipeline.scoring.inference import load_run, load_run_model

    run = trained["rf"]
    assert RunDir(run).stage_done("train")
    ev = evaluate_run(run, n_bootstrap=20, progress=False)
    assert np.isfinite(ev.headline["roc_auc_macro"])
    assert len(pd.read_csv(run / PER_TAG)) == 12
    assert load_run(run).is_baseline
    with pytest.raises(RunDirError, match="baseline"):
        load_run_model(run)


@pytest.mark.slow
def test_evaluate_errors(trained: dict[str, Path], tmp_path: Path) -> None:
    from pipeline.analysis.evaluate import evaluate_run

    with pytest.raises(RunDirError, match="not a run directory"):
        evaluate_run(tmp_path / "nothing")
    with pytest.raises(ParameterError, match="split"):
        evaluate_run(trained["net"], split="dev")
    with pytest.raises(ParameterError, match="bootstrap"):
        evaluate_run(trained["net"], n_bootstrap=-1)
    RunDir(tmp_path / "partial").update_manifest(tags=["a"])
    with pytest.raises(RunDirError, match="stage 'train'"):
        evaluate_run(tmp_path / "partial")
    import shutil

    unscored = tmp_path / "unscored"
    shutil.copytree(trained["net"], unscored)
    manifest = json.loads((unscored / "manifest.json").read_text())
    del manifest["stages"]["score"]
    (unscored / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunDirError, match="stage 'score' is missing.*python -m pipeline score"):
        evaluate_run(unscored)


@pytest.mark.slow
def test_evaluate_command_prints_a_summary(trained: dict[str, Path]) -> None:
    from test_cli_errors import run_cli  # the command's entry point, in this process

    proc = run_cli("evaluate", trained["net"], "--bootstrap", "30", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for text in ("roc_auc", "pr_auc", "macro", "micro", "weighted", "best tags", "metrics.json"):
        assert text in proc.stdout
    proc = run_cli("evaluate", trained["net"], "--split", "dev")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


@pytest.mark.slow
def test_default_demo_model_learns(tmp_path_factory: pytest.TempPathFactory) -> None:
    """End to end: the default demo model on a small demo corpus is well above chance on its test split."""
    from pipeline.analysis.evaluate import evaluate_run
    from pipeline.sources.demo import build_demo_corpus
    from pipeline.training.config import demo_train_config
    from pipeline.training.train import train

    base = tmp_path_factory.mktemp("demo_e2e")
    corpus = build_demo_corpus(base / "demo", clips=160, seconds=5.0, seed=1, workers=2, progress=False)
    config = demo_train_config(top_n=20, epochs=20, workers=0, max_minutes=None)
    run = train(config, corpus, base / "run", progress=False)
    from pipeline.scoring.score import score_run

    score_run(run, progress=False)
    ev = evaluate_run(run, n_bootstrap=100, progress=False)
    assert ev.headline["roc_auc_macro"] > 0.7, ev.headline
