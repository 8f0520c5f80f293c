"""musicnn's published taggers converted to torch: equal to the original, and ordinary runs of the toolkit.

The reference outputs in tests/fixtures/musicnn_reference were made once by the original musicnn
(TensorFlow) with scripts/musicnn_reference.py (docs/pretrained.md). The converted models come
from the install step (``python -m pipeline pretrained fetch``); the tests that need them skip
with that command where it has not run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import DataFormatError
from pipeline.paths import REPO
from pipeline.pretrained.build import installed_model, missing_message
from pipeline.pretrained.catalog import DISTRIBUTION, MODELS, get_pretrained
from pipeline.pretrained.checkpoint import read_checkpoint
from pipeline.pretrained.distribution import DistributionError, fetch_wheel, unpacked_dir
from pipeline.run.rundir import CHECKPOINT, RunDir

REFERENCE = Path(__file__).parent / "fixtures" / "musicnn_reference"
TOLERANCE = 0.01  # absolute, on probabilities (the bar); the conversion reaches about 1e-4


def converted(name: str) -> Path:
    folder = installed_model(name)
    if folder is None:
        pytest.skip(missing_message(name))
    return folder


def reference(audio: Path, name: str) -> dict[str, np.ndarray]:
    from pipeline.pretrained.verify import read_reference

    return read_reference(REFERENCE / f"{audio.stem}.{get_pretrained(name).original}.npz")


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("clip", ["mtt", "msd"])
def test_converted_model_equals_the_original(name: str, clip: str, real_audio: dict[str, Path]) -> None:
    """Per-3-second-patch taggram, its mean and the top-5 tags as the original; penultimate embeddings too."""
    from pipeline.pretrained.verify import compare

    audio = real_audio[clip]
    got = compare(converted(name), audio, REFERENCE / f"{audio.stem}.{get_pretrained(name).original}.npz")
    assert got.n_patches == (10 if clip == "msd" else 9)  # whole 3 s patches, the rest dropped, as musicnn
    assert got.taggram_max_abs < TOLERANCE and got.mean_max_abs < TOLERANCE
    assert got.top5_equal, (got.top5, got.top5_original)
    # the penultimate layer of every patch (not the first patch's, repeated: musicnn issue #20)
    assert got.penultimate_max_abs < TOLERANCE * got.penultimate_scale


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_tagger_gives_the_original_tags(name: str, real_audio: dict[str, Path]) -> None:
    """The torch-free tagger (what 'tag' and the dashboard use) agrees with the original on real audio."""
    from pipeline.scoring.tagger import OnnxTagger

    tagger = OnnxTagger(converted(name))
    for path in real_audio.values():
        probs, taggram = tagger.tag_file(path)
        ref = reference(path, name)
        np.testing.assert_allclose(probs, ref["taggram"].mean(0), atol=TOLERANCE, rtol=0)
        assert [t for t, _ in tagger.top(probs, 5)] == [str(ref["tags"][i])
                                                        for i in np.argsort(-ref["taggram"].mean(0))[:5]]
        assert taggram is not None and taggram.shape[1] == len(MODELS[name].tags)


def test_converted_folder_is_an_ordinary_run() -> None:
    """weights_only checkpoint, provenance and licence in the manifest, the licence file beside it."""
    folder = converted("mtt_musicnn")
    ckpt = torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=True)
    assert ckpt["model_name"] == "musicnn" and ckpt["tags"] == list(MODELS["mtt_musicnn"].tags)
    manifest = RunDir(folder).read_manifest()
    assert manifest.provenance["sha256"] == DISTRIBUTION.sha256 and manifest.provenance["licence"] == "ISC"
    assert manifest.provenance["published"]["roc_auc"] == pytest.approx(0.9067, abs=1e-4)
    assert "ISC" in (folder / manifest.provenance["licence_file"]).read_text()


def test_tag_command_prints_musicnn_tags(real_audio: dict[str, Path], tmp_path: Path) -> None:
    """'python -m pipeline tag FILES' without --run: musicnn's MTT model; a folder gives a CSV."""
    converted("mtt_musicnn")
    done = subprocess.run([sys.executable, "-m", "pipeline", "tag", str(real_audio["mtt"]), "--top", "5"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = [line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")]
    assert printed == ["techno", "electronic", "synth", "fast", "beat"]  # musicnn's README for this clip
    assert "model: mtt_musicnn" in done.stdout
    folder = tmp_path / "my music"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(real_audio["mtt"], folder / "sub" / "a.mp3")
    shutil.copy(real_audio["msd"], folder / "b.mp3")
    (folder / "notes.txt").write_text("not audio")
    out = tmp_path / "tags.csv"
    done = subprocess.run([sys.executable, "-m", "pipeline", "tag", str(folder), "--model", "msd_musicnn",
                           "--csv", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table["path"]) == ["b.mp3", "sub/a.mp3"]
    assert list(table.columns[3:]) == list(MODELS["msd_musicnn"].tags)
    assert table.loc[1, "top_10_tags"].split(";")[0] == "electronic"


def test_reader_refuses_damaged_checkpoints(tmp_path: Path) -> None:
    """A truncated or foreign index, or a short data file: one-line errors naming the file."""
    source = unpacked_dir() / "MTT_musicnn"
    if not (source / ".index").is_file():
        pytest.skip(missing_message("mtt_musicnn"))
    weights = read_checkpoint(source)
    assert weights["dense_1/kernel"].shape == (200, 50) and weights["conv2d/kernel"].shape == (7, 38, 1, 204)
    index, data = (source / ".index").read_bytes(), (source / ".data-00000-of-00001").read_bytes()
    cases = {"truncated": (index[:-10], data), "foreign": (b"\0" * 100, data), "short data": (index, data[:1000])}
    for label, (index_bytes, data_bytes) in cases.items():
        folder = tmp_path / label.replace(" ", "_")
        folder.mkdir()
        (folder / ".index").write_bytes(index_bytes)
        (folder / ".data-00000-of-00001").write_bytes(data_bytes)
        with pytest.raises(DataFormatError, match=str(folder)):
            read_checkpoint(folder)


def test_a_wheel_that_is_not_the_published_one_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / DISTRIBUTION.filename
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("musicnn/MTT_musicnn/.index", b"x")
    with pytest.raises(DistributionError, match="SHA-256"):
        fetch_wheel(tmp_path / "dist", fake)
    assert not (tmp_path / "dist" / DISTRIBUTION.filename).exists()


# ---------------------------------------------------------------------------------------------
# a converted model scored on a corpus: an ordinary run, on every dashboard page
# ---------------------------------------------------------------------------------------------
PAGES = ("overview", "clip_explorer", "tag_metrics", "error_analysis", "tag_map", "tag_a_file", "compare_runs",
         "review")


@pytest.fixture(scope="module")
def musicnn_on_demo(demo_corpus_48: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mtt_musicnn scored on the 48-clip demo corpus (merged demo tags: scored through the vocabulary map)."""
    from pipeline.cli.main import main

    converted("mtt_musicnn")
    out = tmp_path_factory.mktemp("published") / "runs" / "mtt_musicnn_on_demo"
    assert main(["score", "mtt_musicnn", "--corpus", str(demo_corpus_48), "--out", str(out), "--no-progress"]) == 0
    for stage in ("evaluate", "embed"):  # up to date already where score --out runs them
        assert main([stage, str(out)]) == 0
    return out


@pytest.mark.slow
def test_converted_model_scored_on_a_corpus_is_an_ordinary_run(musicnn_on_demo: Path) -> None:
    from pipeline.run.rundir import PER_TAG

    run = RunDir(musicnn_on_demo)
    assert run.missing_stages() == []
    manifest = run.read_manifest()
    assert manifest.provenance["original_model"] == "MTT_musicnn"  # provenance travels with the model
    # MTT's unmerged tags scored on the demo's merged heads (pipeline.sources.vocab)
    tag_map = manifest.stage("score").info["tag_map"]
    assert tag_map["woman"] == tag_map["female voice"] == "female" and tag_map["no vocals"] == "no singer"
    import pandas as pd

    per_tag = pd.read_csv(run / PER_TAG)
    assert set(per_tag["tag"]) == set(tag_map.values())  # the corpus's names, one row each
    scored = per_tag["roc_auc"].dropna()  # a tag without positives in the 9 test clips has no AUC
    assert len(scored) >= 10 and scored.between(0, 1).all()


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_a_converted_model_run(musicnn_on_demo: Path, monkeypatch: pytest.MonkeyPatch,
                                                page: str) -> None:
    from test_dashboard_app import app

    at = app(musicnn_on_demo.parent, monkeypatch, page, run=musicnn_on_demo.name)
    assert at.title and not at.error, [e.value for e in at.error]
