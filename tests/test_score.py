"""The score stage on a real tiny trained run: one pass, predictions, taggrams, embeddings, ONNX, repair."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ParameterError, RunDirError
from pipeline.run.rundir import (
    CLIP_EMBEDDINGS,
    MANIFEST,
    ONNX_MODEL,
    PREDICTIONS,
    PROB_PREFIX,
    TAGGER,
    TAGGRAMS,
    TAGGRAMS_INDEX,
    TRUE_PREFIX,
    RunDir,
    list_runs,
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
    # audio paths are relative to the corpus root, so the run folder and the corpus can move
    paths = [Path(p) for p in predictions["audio_path"]]
    assert not any(p.is_absolute() for p in paths) and all((corpus.root / p).is_file() for p in paths)
    assert [str(p) for p in predictions["audio_path"]] == [corpus.rel_paths[i] for i in rows]
    assert all(c.startswith((PROB_PREFIX, TRUE_PREFIX)) for c in predictions.columns[3:])


def test_one_pass_gives_the_models_clip_scores_and_embeddings(tiny_run: Path, corpus,
                                                              predictions: pd.DataFrame) -> None:
    """predictions.parquet and clip_embeddings.npy hold, for each clip, the mean over its chunks of the
    network's sigmoid outputs and of its penultimate layer, computed here independently with torch."""
    import torch

    from pipeline.features.cache import build_cache
    from pipeline.scoring.chunks import chunk_clip
    from pipeline.scoring.inference import load_run

    run_model = load_run(tiny_run)
    cache = build_cache(corpus, run_model.features, progress=False)
    embeddings = np.load(tiny_run / CLIP_EMBEDDINGS)
    assert embeddings.shape == (len(predictions), run_model.model.embedding_dim) and embeddings.dtype == np.float32
    got = predictions[[prob_column(t) for t in run_model.tags]].to_numpy()
    for row in (0, 7, 21):
        feats = np.asarray(cache.read(predictions["clip_id"][row]))
        chunks = torch.from_numpy(chunk_clip(feats, run_model.chunk_frames, normalizer=run_model.normalizer))
        with torch.no_grad():
            want_probs = torch.sigmoid(run_model.model(chunks)).mean(0).numpy()
            want_emb = run_model.model.embed(chunks).mean(0).numpy()
        np.testing.assert_allclose(got[row], want_probs, atol=1e-5)
        np.testing.assert_allclose(embeddings[row], want_emb, rtol=1e-4, atol=1e-5)
    weights = np.load(tiny_run / "output_weights.npy")
    np.testing.assert_array_equal(weights, run_model.model.classifier.weight.detach().numpy())


def test_taggrams_cover_each_clip(tiny_run: Path, corpus, predictions: pd.DataFrame) -> None:
    from pipeline.features.audio import load_audio
    from pipeline.scoring.tagger import Taggrams

    entry = RunDir(tiny_run).manifest()["stages"]["score"]
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
    from pipeline.scoring.chunks import sigmoid
    from pipeline.scoring.inference import load_run
    from pipeline.scoring.tagger import Taggrams

    run_model = load_run(tiny_run)
    cache = build_cache(corpus, run_model.features, progress=False)
    plan = RunDir(tiny_run).manifest()["stages"]["score"]["taggram"]
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
    from pipeline.scoring.inference import TorchTagger
    from pipeline.scoring.tagger import OnnxTagger

    entry = RunDir(tiny_run).manifest()["stages"]["score"]
    assert entry["onnx"]["max_abs_diff"] < 1e-4
    assert entry["backend"] == "torch (cpu)"  # the one scoring path; ONNX serves the torch-free tagger
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
    from pipeline.scoring.score import score_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = RunDir(run).manifest()["stages"]["score"]
    mtimes = {f: (run / f).stat().st_mtime_ns for f in before["files"]}
    again = score_run(run, progress=False)
    assert again["finished"] == before["finished"]
    assert {f: (run / f).stat().st_mtime_ns for f in before["files"]} == mtimes
    # a changed option is not up to date; nor is a --force run
    redone = score_run(run, aggregate="max", progress=False)
    assert redone["aggregate"] == "max" and (run / PREDICTIONS).stat().st_mtime_ns != mtimes[PREDICTIONS]
    forced = score_run(run, aggregate="max", force=True, progress=False)
    assert forced["finished"] >= redone["finished"] and set(forced["files"]) == set(before["files"])


def test_partial_runs_are_refused(tiny_run: Path, tmp_path: Path) -> None:
    from pipeline.scoring.score import score_run
    from pipeline.scoring.tagger import OnnxTagger, Taggrams

    with pytest.raises(RunDirError, match="not a run directory"):
        score_run(tmp_path / "nothing", progress=False)
    # training that never finished: a manifest without a complete train stage
    run = tmp_path / "unfinished"
    shutil.copytree(tiny_run, run)
    manifest = json.loads((run / MANIFEST).read_text())
    del manifest["stages"]["train"]
    (run / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RunDirError, match="stage 'train' is missing or incomplete"):
        score_run(run, progress=False)
    # a score stage that lost a file is not half-loaded
    run = tmp_path / "lost"
    shutil.copytree(tiny_run, run)
    (run / TAGGRAMS).unlink()
    for reader in (OnnxTagger, Taggrams):
        with pytest.raises(RunDirError, match="stage 'score' is missing or incomplete"):
            reader(run)


def test_killed_rerun_leaves_an_incomplete_stage(tiny_run: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A recomputation that dies half-way never leaves old and new files posing as one stage."""
    import pipeline.scoring.score as score

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(score, "write_predictions", killed)
        with pytest.raises(KeyboardInterrupt):
            score.score_run(run, force=True, progress=False)
    assert not RunDir(run).stage_done("score")
    from pipeline.scoring.tagger import Taggrams

    with pytest.raises(RunDirError, match="stage 'score' is missing or incomplete"):
        Taggrams(run)
    entry = score.score_run(run, progress=False)  # the next run completes it
    assert RunDir(run).stage_done("score") and entry["n_clips"] == len(pd.read_parquet(run / PREDICTIONS))


def test_a_model_that_cannot_be_exported_still_gets_predictions(tiny_run: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.scoring.export as export
    import pipeline.scoring.score as score
    from pipeline.cli.tag import open_tagger
    from pipeline.scoring.tagger import OnnxTagger

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)

    def unexportable(*args: object, **kwargs: object) -> dict:
        raise RuntimeError("torchscript: no; dynamo: no")

    monkeypatch.setattr(export, "export_onnx", unexportable)
    entry = score.score_run(run, force=True, progress=False)
    assert ONNX_MODEL not in entry["files"] and not (run / ONNX_MODEL).exists()
    assert entry["backend"].startswith("torch") and entry["onnx"] == {"error": "torchscript: no; dynamo: no"}
    assert json.loads((run / TAGGER).read_text())["onnx"] is None
    before = pd.read_parquet(tiny_run / PREDICTIONS)
    after = pd.read_parquet(run / PREDICTIONS)
    np.testing.assert_allclose(after.iloc[:, 3:].to_numpy(float), before.iloc[:, 3:].to_numpy(float), atol=1e-5)
    with pytest.raises(RunDirError, match="no ONNX model"):
        OnnxTagger(run)
    assert type(open_tagger(run)).__name__ == "TorchTagger"  # the tag command falls back to torch


def test_baseline_run_gets_scores_without_taggrams(tiny_run: Path, tmp_path: Path, corpus,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main
    from pipeline.scoring.score import score_run
    from pipeline.training.config import TrainConfig
    from pipeline.training.train import train

    run = tmp_path / "knn"
    train(TrainConfig.from_overrides(model="knn", top_n=20), corpus.root, run, progress=False)
    entry = score_run(run, progress=False)
    assert entry["files"] == [PREDICTIONS, CLIP_EMBEDDINGS] and entry["taggram"] is None
    frame = pd.read_parquet(run / PREDICTIONS)
    probs = frame.filter(like=PROB_PREFIX).to_numpy()
    assert len(frame) == len(corpus) and probs.max() <= 1
    # a baseline's clips are embedded by their predicted tag logits
    p = np.clip(probs.astype(np.float64), 1e-6, 1 - 1e-6)
    np.testing.assert_allclose(np.load(run / CLIP_EMBEDDINGS), np.log(p / (1 - p)), rtol=1e-4, atol=1e-4)
    audio = str(corpus.audio_path(0))
    assert main(["tag", audio, "--run", str(run), "--top", "2", "--taggram", str(tmp_path / "g.csv")]) == 0
    out = capsys.readouterr().out
    assert audio in out and "taggram: none" in out and not (tmp_path / "g.csv").exists()


def test_bad_options_name_the_parameter(tiny_run: Path) -> None:
    from pipeline.scoring.score import score_run

    with pytest.raises(ParameterError, match="aggregate"):
        score_run(tiny_run, aggregate="median")
    with pytest.raises(ParameterError, match="batch size"):
        score_run(tiny_run, batch_clips=0)
    with pytest.raises(ParameterError, match="taggram hop"):
        score_run(tiny_run, taggram_hop_s=0)


def test_score_command_line(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    assert main(["score", str(tiny_run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"scores for {len(pd.read_parquet(tiny_run / PREDICTIONS))} clips" in out
    assert "frames per second" in out and "model.onnx" in out and "embeddings:" in out


# ----------------------------------------------------------------------------- ONNX export of the zoo


@pytest.mark.parametrize("name", ["crnn", "fcn", "fcn4", "multiscale", "musicnn", "samplecnn", "shortchunk_res"])
def test_every_model_exports_with_dynamic_batch_and_time(name: str, tmp_path: Path) -> None:
    import torch

    from models.registry import get_model, small_kwargs
    from pipeline.scoring.export import export_onnx
    from pipeline.scoring.inference import model_frame_hop

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
    from pipeline.scoring.chunks import sigmoid
    from pipeline.scoring.inference import TorchNetwork, model_frame_hop
    from pipeline.scoring.taggram import compute_taggrams, plan_taggram

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


# ----------------------------------------------------------------------------- repair


@pytest.mark.parametrize("name, damage", [(ONNX_MODEL, "truncate"), (ONNX_MODEL, "empty"), (PREDICTIONS, "empty"),
                                          (CLIP_EMBEDDINGS, "truncate")])
def test_a_damaged_score_file_is_rebuilt_not_reported_up_to_date(tiny_run: Path, tmp_path: Path, name: str,
                                                                  damage: str) -> None:
    from pipeline.scoring.score import score_run
    from pipeline.scoring.tagger import OnnxTagger

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = RunDir(run).manifest()["stages"]["score"]
    data = (run / name).read_bytes()
    (run / name).write_bytes(data[:len(data) // 3] if damage == "truncate" else b"")
    if name == ONNX_MODEL:  # the torch-free tagger names the file instead of a traceback
        with pytest.raises(RunDirError, match="unreadable ONNX model.*python -m pipeline score"):
            OnnxTagger(run)
    entry = score_run(run, progress=False)
    assert entry["finished"] >= before["finished"] and entry["checksums"] == before["checksums"]
    assert (run / name).read_bytes() == data  # rebuilt, identical
    OnnxTagger(run)  # loads again
    assert score_run(run, progress=False)["finished"] == entry["finished"]  # and now up to date


def test_rescoring_forgets_what_was_built_from_the_old_scores(demo_run: Path, tmp_path: Path) -> None:
    from pipeline.scoring.score import score_run

    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    assert RunDir(run).stage_done("evaluate") and RunDir(run).stage_done("embed")
    score_run(run, progress=False)  # everything intact: a no-op that keeps them
    assert RunDir(run).stage_done("evaluate") and RunDir(run).stage_done("embed")
    score_run(run, aggregate="max", progress=False)
    assert RunDir(run).missing_stages() == ["evaluate", "embed"]


# ----------------------------------------------------------------------------- any run on any corpus


@pytest.fixture(scope="module")
def folder_corpus(tiny_run: Path, corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 20 demo mp3s whose tags.csv labels half the model's tags and one tag it does not know."""
    root = tmp_path_factory.mktemp("folder") / "my music"
    (root / "songs").mkdir(parents=True)
    known = corpus.tags[: len(corpus.tags) // 2]
    lines = ["path,tags"]
    for i in range(20):
        shutil.copyfile(corpus.audio_path(i), root / "songs" / f"song{i:02d}.mp3")
        tags = [t for t in known if corpus.labels[i, corpus.tags.index(t)]] + (["kazoo"] if i % 3 == 0 else [])
        lines.append(f'songs/song{i:02d}.mp3,"{";".join(tags)}"')
    (root / "tags.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_score_any_run_on_any_corpus_then_evaluate_and_embed(tiny_run: Path, folder_corpus: Path, corpus,
                                                             tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main
    from pipeline.scoring.score import score_run

    out = tmp_path / "runs" / "mine"
    assert main(["score", str(tiny_run), "--corpus", str(folder_corpus), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "scores for 20 clips" in printed and f"{len(corpus.tags) // 2} of the model's tags" in printed
    run = RunDir(out)
    manifest = run.manifest()
    assert manifest["origin"]["run"] == str(tiny_run.resolve()) and manifest["tags"] == corpus.tags
    assert Path(manifest["corpus"]["root"]) == folder_corpus.resolve() and run.stage_done("train")
    entry = manifest["stages"]["score"]
    assert entry["labelled_tags"] == corpus.tags[: len(corpus.tags) // 2]
    frame = pd.read_parquet(out / PREDICTIONS)
    assert len(frame) == 20 and frame["audio_path"].str.startswith("songs/").all()
    assert [c for c in frame.columns if c.startswith(TRUE_PREFIX)] == [true_column(t) for t in entry["labelled_tags"]]
    # the same model gives the same scores to the same audio, whichever run folder holds it
    own = pd.read_parquet(tiny_run / PREDICTIONS).set_index("clip_id")
    ids = [corpus.clip_ids[i] for i in range(20)]
    np.testing.assert_allclose(frame[[prob_column(t) for t in corpus.tags]].to_numpy(),
                               own.loc[ids, [prob_column(t) for t in corpus.tags]].to_numpy(), atol=1e-5)
    np.testing.assert_allclose(np.load(out / CLIP_EMBEDDINGS),
                               np.load(tiny_run / CLIP_EMBEDDINGS)[[own.index.get_loc(c) for c in ids]], atol=1e-5)
    # a rerun is a no-op; evaluate works on the labelled tags, embed on everything
    assert score_run(tiny_run, corpus_dir=folder_corpus, out_dir=out, progress=False)["finished"] == entry["finished"]
    split = "test" if (frame["split"] == "test").any() else "valid"
    assert main(["evaluate", str(out), "--split", split, "--bootstrap", "0"]) == 0
    per_tag = pd.read_csv(out / "per_tag.csv")
    assert per_tag["tag"].tolist() == entry["labelled_tags"]
    assert main(["embed", str(out), "--neighbors", "3", "--no-progress"]) == 0
    assert run.missing_stages() == [] and out.name in [r.name for r in list_runs(out.parent)]


def test_a_corpus_without_labels_is_scored_and_embedded_but_not_evaluated(
        tiny_run: Path, folder_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    bare = tmp_path / "bare"
    shutil.copytree(folder_corpus / "songs", bare)
    out = tmp_path / "bare-run"
    assert main(["score", str(tiny_run), "--corpus", str(bare), "--out", str(out), "--score-only",
                 "--no-progress"]) == 0
    assert "0 of the model's tags" in capsys.readouterr().out
    # no ground truth: evaluation is recorded as skipped with its reason, not an error and no NaN figures
    assert main(["evaluate", str(out)]) == 0
    assert "evaluation skipped: the corpus annotates none of the model's" in capsys.readouterr().out
    entry = RunDir(out).read_manifest().stage("evaluate")
    assert entry is not None and entry.files == [] and "no ground truth" in (entry.skipped or "")
    assert not (out / "metrics.json").exists()
    assert main(["embed", str(out), "--neighbors", "3", "--no-progress"]) == 0
    assert pd.read_parquet(out / "label_issues.parquet").empty
    assert "skipped" in capsys.readouterr().out
    assert RunDir(out).missing_stages() == []


def test_score_copy_errors_are_one_line(tiny_run: Path, folder_corpus: Path, corpus, tmp_path: Path) -> None:
    from pipeline.scoring.score import score_run

    with pytest.raises(ParameterError, match="--corpus and --out go together"):
        score_run(tiny_run, corpus_dir=folder_corpus, progress=False)
    with pytest.raises(ParameterError, match="is the run itself"):
        score_run(tiny_run, corpus_dir=folder_corpus, out_dir=tiny_run, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="is a file"):
        score_run(tiny_run, corpus_dir=folder_corpus, out_dir=tmp_path / "file", progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ParameterError, match="not empty and not a run"):
        score_run(tiny_run, corpus_dir=folder_corpus, out_dir=other, progress=False)
    from pipeline.scoring.score import prepare_scored_copy

    scored = prepare_scored_copy(tiny_run, folder_corpus, tmp_path / "scored").path
    assert prepare_scored_copy(tiny_run, folder_corpus, scored).path == scored  # the same copy: reused
    with pytest.raises(RunDirError, match="already holds another run"):
        score_run(tiny_run, corpus_dir=corpus.root, out_dir=scored, progress=False)


def test_every_figure_comes_from_the_same_scores(demo_run: Path) -> None:
    """per_tag.csv's AUCs are those of predictions.parquet's test rows; the clip map embeds its rows."""
    from sklearn.metrics import roc_auc_score

    frame = pd.read_parquet(demo_run / PREDICTIONS)
    test = frame[frame["split"] == "test"]
    per_tag = pd.read_csv(demo_run / "per_tag.csv").set_index("tag")
    checked = 0
    for tag in per_tag.index:
        truth = test[true_column(tag)].to_numpy()
        if 0 < truth.sum() < len(truth):
            assert per_tag.loc[tag, "roc_auc"] == pytest.approx(roc_auc_score(truth, test[prob_column(tag)]), abs=1e-5)
            checked += 1
    assert checked >= 3
    projections = pd.read_parquet(demo_run / "clip_embeddings.parquet")
    assert projections["clip_id"].tolist() == frame["clip_id"].tolist()
    entry = RunDir(demo_run).manifest()["stages"]
    assert entry["evaluate"]["predictions_sha256"] == entry["score"]["checksums"][PREDICTIONS]["sha256"]
