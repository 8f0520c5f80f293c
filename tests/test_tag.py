"""Fast tagging: the taggram arithmetic (known answers), the ONNX tagger and ``python -m pipeline tag``."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.scoring.chunks import sigmoid
from pipeline.scoring.tagger import top_tags
from pipeline.scoring.taggram import TaggramPlan, compute_taggrams, frame_hop_from_lengths, plan_taggram

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- taggram arithmetic


class PoolNet:
    """A known network: frame logits are the mean of bin 0 over blocks of ``p`` frames (floor)."""

    def __init__(self, p: int, n_tags: int = 2) -> None:
        self.p, self.n_tags = p, n_tags

    def frame_logits(self, x: np.ndarray) -> np.ndarray:
        n, _, t = x.shape
        k = t // self.p
        blocks = x[:, 0, :k * self.p].reshape(n, k, self.p).mean(axis=-1)
        return np.repeat(blocks[..., None], self.n_tags, axis=-1)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.repeat(x[:, 0].mean(axis=-1)[:, None], self.n_tags, axis=-1)


@pytest.mark.parametrize("p,hop,t", [(8, 8, 50), (8, 2, 50), (12, 4, 7), (6, 3, 61)])
def test_frames_mode_centres_each_frame_on_its_hop(p: int, hop: int, t: int) -> None:
    x = np.random.default_rng(0).normal(size=(3, 2, t)).astype(np.float32)
    plan = TaggramPlan("frames", window=p, hop=hop, input_fps=10.0)
    got = compute_taggrams(PoolNet(p), x, plan, chunk_frames=5)
    n = -(-t // hop)
    assert got.shape == (3, n, 2)
    # frame j averages the p input frames centred on [j * hop, (j + 1) * hop), zeros outside the clip
    left = (p - hop) // 2
    xp = np.zeros((3, t + 10 * p), np.float32)
    xp[:, left:left + t] = x[:, 0]
    want = np.stack([xp[:, j * hop:j * hop + p].mean(axis=-1) for j in range(n)], axis=1)
    np.testing.assert_allclose(got[..., 0], sigmoid(want), atol=1e-6)


def test_windows_mode_slides_a_chunk() -> None:
    x = (np.arange(40, dtype=np.float32) / 40).reshape(1, 1, 40)
    plan = TaggramPlan("windows", window=10, hop=4, input_fps=10.0)
    got = compute_taggrams(PoolNet(1), x, plan, chunk_frames=10)
    assert got.shape == (1, 10, 2)
    xp = np.zeros(100, np.float32)
    xp[3:43] = x[0, 0]  # left pad (10 - 4) // 2 = 3
    want = [xp[j * 4:j * 4 + 10].mean() for j in range(10)]
    np.testing.assert_allclose(got[0, :, 0], sigmoid(np.array(want)), atol=1e-6)


def test_frame_hop_from_output_lengths() -> None:
    assert frame_hop_from_lengths(lambda t: t // 320, 1818, limit=8000) == 320  # fcn: floor pooling
    assert frame_hop_from_lengths(lambda t: -(-t // 128), 231, limit=1000) == 128  # strided convs: ceil
    assert frame_hop_from_lengths(lambda t: (t + 2 * 8 - 16) // 16 + 1, 187, limit=800) == 16  # padded pooling
    assert frame_hop_from_lengths(lambda t: t, 100, limit=400) == 1
    assert frame_hop_from_lengths(lambda t: 1, 100, limit=400) is None  # time collapsed


def test_plan_picks_a_hop_close_to_the_wanted_one() -> None:
    plan = plan_taggram(320, chunk_frames=1818, input_fps=62.5, hop_s=0.5)  # fcn: 5.1 s frames
    assert (plan.mode, plan.window, plan.hop, plan.shifts) == ("frames", 320, 32, 10)
    assert plan.fps == pytest.approx(62.5 / 32) and plan.hop_s == pytest.approx(0.512)
    assert plan_taggram(320, chunk_frames=1818, input_fps=62.5, hop_s=1.0).hop == 64
    assert plan_taggram(128, chunk_frames=231, input_fps=62.5, hop_s=0.5).shifts == 4
    assert plan_taggram(16, chunk_frames=187, input_fps=62.5).shifts == 1  # finer frames are kept
    assert plan_taggram(59049, chunk_frames=59049, input_fps=16000, hop_s=0.5).hop == 6561  # 3 ** 8
    assert plan_taggram(2 ** 10 * 17, chunk_frames=100, input_fps=1.0, hop_s=1.0).shifts == 16  # max_shifts
    plan = plan_taggram(None, chunk_frames=187, input_fps=62.5, hop_s=1.0)
    assert (plan.mode, plan.hop, plan.window, plan.shifts) == ("windows", 62, 187, 1)
    assert TaggramPlan.from_dict(plan.to_dict()) == plan


def test_top_tags_orders_by_probability() -> None:
    assert top_tags(np.array([0.1, 0.9, 0.5]), ["a", "b", "c"], 2) == [("b", pytest.approx(0.9)),
                                                                       ("c", pytest.approx(0.5))]


# ----------------------------------------------------------------------------- on a real tiny run


@pytest.fixture(scope="module")
def audio_files(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A demo clip as mp3, wav and flac of 1 s (shorter than the model's 3 s input), 3.5 s and 8 s."""
    import soundfile as sf

    from pipeline.features.audio import load_audio, save_mp3
    from pipeline.run.rundir import RunDir
    from pipeline.sources.loader import corpus_from_record

    corpus = corpus_from_record(RunDir(tiny_run).manifest()["corpus"])
    y = load_audio(corpus.audio_path(0))
    out = tmp_path_factory.mktemp("audio")
    files = {"short.wav": out / "short.wav", "clip.mp3": corpus.audio_path(0), "long.flac": out / "long.flac"}
    sf.write(files["short.wav"], y[:16000], 16000)
    sf.write(files["long.flac"], np.concatenate([y, y, y[:16000]]), 16000)
    files["resampled.mp3"] = out / "resampled.mp3"
    save_mp3(files["resampled.mp3"], np.concatenate([y, y])[::2], 8000)  # another sample rate, 7 s
    return files


@pytest.mark.slow
def test_onnx_tagger_on_files_of_any_length(tiny_run: Path, audio_files: dict[str, Path]) -> None:
    from pipeline.features.audio import load_audio
    from pipeline.scoring.tagger import OnnxTagger

    tagger = OnnxTagger(tiny_run, threads=1)
    for name, path in audio_files.items():
        probs, taggram = tagger.tag_file(path)
        seconds = len(load_audio(path)) / 16000
        assert probs.shape == (len(tagger.tags),) and probs.min() >= 0 and probs.max() <= 1, name
        assert taggram.shape[1] == len(tagger.tags) and taggram.min() >= 0 and taggram.max() <= 1, name
        assert abs(len(taggram) / tagger.taggram_fps - seconds) <= tagger.plan.hop_s, name
        same, _ = tagger.tag_bytes(path.read_bytes(), path.name)
        np.testing.assert_array_equal(same, probs)
    probs, none = tagger.tag_file(audio_files["short.wav"], taggram=False)
    assert none is None and probs.shape == (len(tagger.tags),)
    assert [t for t, _ in tagger.top(probs, 3)] == [tagger.tags[i] for i in np.argsort(-probs)[:3]]


@pytest.mark.slow
def test_tag_command_prints_top_tags(tiny_run: Path, audio_files: dict[str, Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    files = [str(p) for p in audio_files.values()]
    assert main(["tag", *files, "--run", str(tiny_run), "--top", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    tags = set(json_tags(tiny_run))
    for path in files:
        i = next(i for i, line in enumerate(out) if line.startswith(path))
        rows = [line.split() for line in out[i + 1:i + 5]]
        assert all(" ".join(r[:-1]) in tags and 0 <= float(r[-1]) <= 1 for r in rows), out
        assert [float(r[-1]) for r in rows] == sorted((float(r[-1]) for r in rows), reverse=True)
    assert "short.wav (1.0 s)" in "\n".join(out)


def json_tags(run: Path) -> list[str]:
    from pipeline.run.rundir import RunDir

    return RunDir(run).manifest()["tags"]


@pytest.mark.slow
def test_tag_command_writes_csv_and_png_taggrams(tiny_run: Path, audio_files: dict[str, Path],
                                                 tmp_path: Path) -> None:
    from PIL import Image

    from pipeline.cli.main import main
    from pipeline.scoring.tagger import OnnxTagger

    tagger = OnnxTagger(tiny_run)
    short, long = audio_files["short.wav"], audio_files["long.flac"]
    assert main(["tag", str(short), str(long), "--run", str(tiny_run), "--taggram", str(tmp_path / "g.csv")]) == 0
    for path in (short, long):
        with open(tmp_path / f"g-{path.stem}.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["time_s", *tagger.tags]
        _, want = tagger.tag_file(path)
        got = np.array(rows[1:], dtype=np.float64)
        assert got.shape == (len(want), 1 + len(tagger.tags))
        np.testing.assert_allclose(got[:, 0], np.arange(len(want)) * tagger.plan.hop_s, atol=1e-3)
        np.testing.assert_allclose(got[:, 1:], want, atol=1e-4)
    png = tmp_path / "one.png"
    assert main(["tag", str(long), "--run", str(tiny_run), "--taggram", str(png)]) == 0
    with Image.open(png) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        width, height = image.size
        assert height > 14 * len(tagger.tags) and width > 240
        colours = np.unique(np.asarray(image).reshape(-1, 3), axis=0)
        assert len(colours) > 20  # a heat map, not a blank canvas


@pytest.mark.slow
def test_corrupt_file_is_named_and_the_others_still_tagged(tiny_run: Path, audio_files: dict[str, Path],
                                                           tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"this is not audio at all" * 100)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(audio_files["long.flac"].read_bytes()[:3000])
    good = audio_files["short.wav"]
    assert main(["tag", str(bad), str(good), str(cut), "--run", str(tiny_run)]) == 1
    captured = capsys.readouterr()
    assert f"error: {bad}: not audio" in captured.err
    assert f"error: {cut}: truncated" in captured.err
    assert "2 of 3 file(s) could not be tagged" in captured.err
    assert str(good) in captured.out


@pytest.mark.slow
def test_bad_options_and_runs(tiny_run: Path, audio_files: dict[str, Path], tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    wav = str(audio_files["short.wav"])
    assert main(["tag", wav, "--run", str(tiny_run), "--taggram", str(tmp_path / "g.jpg")]) == 2
    assert "--taggram must end in .png or .csv" in capsys.readouterr().err
    assert main(["tag", wav, "--run", str(tiny_run), "--top", "0"]) == 2
    assert "--top must be >= 1" in capsys.readouterr().err
    assert main(["tag", wav, "--run", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("keep", [0, 100])
def test_a_truncated_or_empty_onnx_model_is_one_line_then_repaired(tiny_run: Path, audio_files: dict[str, Path],
                                                                   tmp_path: Path, keep: int,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from pipeline.cli.main import main
    from pipeline.run.rundir import ONNX_MODEL

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    model = run / ONNX_MODEL
    model.write_bytes(model.read_bytes()[:keep])
    wav = str(audio_files["short.wav"])
    assert main(["tag", wav, "--run", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unreadable ONNX model" in err and "python -m pipeline score" in err
    assert main(["score", str(run), "--no-progress"]) == 0  # detected and rebuilt, not "up to date"
    assert model.read_bytes() == (tiny_run / ONNX_MODEL).read_bytes()
    assert main(["tag", wav, "--run", str(run)]) == 0


@pytest.mark.slow
def test_torch_flag_agrees_with_onnx(tiny_run: Path, audio_files: dict[str, Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli.main import main

    path = str(audio_files["clip.mp3"])
    assert main(["tag", path, "--run", str(tiny_run), "--top", "5"]) == 0
    onnx_out = capsys.readouterr().out
    assert main(["tag", path, "--run", str(tiny_run), "--top", "5", "--torch"]) == 0
    assert capsys.readouterr().out == onnx_out


@pytest.mark.slow
def test_fast_path_imports_no_torch(tiny_run: Path, audio_files: dict[str, Path], tmp_path: Path) -> None:
    """The whole ``tag`` command, and the dashboard's entry point, never import torch, pandas, librosa or sklearn."""
    heavy = ("torch", "pandas", "librosa", "sklearn")
    files = [str(audio_files["clip.mp3"]), str(audio_files["short.wav"])]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipeline", "tag", *files, "--run", str(tiny_run),
         "--taggram", str(tmp_path / "g.csv")],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "onnxruntime" in imported  # the check sees real imports
    assert not [m for m in imported if m.split(".")[0] in heavy]
    script = (f"import sys\nfrom pipeline.scoring.tagger import OnnxTagger\n"
              f"t = OnnxTagger({str(tiny_run)!r})\np, g = t.tag_bytes(open({files[0]!r}, 'rb').read(), 'x.mp3')\n"
              f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
