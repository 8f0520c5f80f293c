"""The "Inside the model" page, driven by Streamlit's AppTest on the session's real tiny run."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.synthetic_run import build_synthetic_run
from dashboard import inside_loaders, loaders
from dashboard.text import md
from pipeline.inspect import resynth
from pipeline.run import files as rf
from pipeline.run.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
PAGE = "views/inside_model.py"
TIMEOUT = 90


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """tiny (the real run), old (its copy as a run scored before the inside files existed), synthetic."""
    root = tmp_path_factory.mktemp("inside-runs")
    (root / "tiny").symlink_to(tiny_run, target_is_directory=True)
    old = root / "old"
    shutil.copytree(tiny_run, old, ignore=shutil.ignore_patterns(*rf.INSIDE_FILES))
    manifest = json.loads((old / rf.MANIFEST).read_text())
    entry = manifest["stages"]["score"]
    entry["files"] = [f for f in entry["files"] if f not in rf.INSIDE_FILES]
    (old / rf.MANIFEST).write_text(json.dumps(manifest))
    build_synthetic_run(root / "synthetic", seed=0, n_clips=40, n_tags=8, seconds=2.0, audio_seconds=1.0, n_audio=1,
                        audio_format="wav", n_bootstrap=10)
    return root


def app(root: Path, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv(loaders.RUNS_ENV, str(root))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("warning", "info", "error", "markdown", "caption", "subheader", "title")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def channel_of(option: str | int) -> int:
    return int(str(option).split(" ")[0])


def test_pick_a_layer_a_channel_and_play(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, run="tiny")
    assert at.title[0].value == "Inside the model"
    assert not at.error, [e.value for e in at.error]
    config = json.loads((runs / "tiny" / rf.INSPECT).read_text())
    names = [layer["name"] for layer in config["layers"]]
    assert at.selectbox(key="inside:layer").options == [
        f"{n} · {layer['channels']} ch · time" for n, layer in zip(names, config["layers"])]  # musicnn: time only
    at.selectbox(key="inside:layer").set_value(names[-1]).run()
    picker = at.selectbox(key=f"inside:channel:{names[-1]}")
    assert len(picker.options) == config["layers"][-1]["channels"]
    means = [float(o.split("mean ")[1]) for o in picker.options]
    assert means == sorted(means, reverse=True), "channels are sorted by activation on the clip"
    chosen = channel_of(picker.options[-1])
    picker.set_value(chosen).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert f"Through channel {chosen} of {md(names[-1])}" in texts(at)  # escaped: a run supplies the name
    assert len(at.get("audio")) >= 2, "the original and the channel play side by side"
    assert "comparable level" in texts(at) or "does not respond" in texts(at)
    assert len(at.get("plotly_chart")) >= 2  # the aligned view and the small multiples


def test_the_channel_audio_is_loudness_matched_wav(runs: Path) -> None:
    run = loaders.run_info(runs / "tiny")
    preds = RunDir(run.path).read_table(rf.PREDICTIONS)
    audio = RunDir(run.path).audio_file(str(preds["audio_path"].iat[0]))
    clip = inside_loaders.maps_of(run, audio)
    name = next(iter(clip.maps))
    channel = int(np.argmax(clip.means[name]))  # the most active channel: not silent
    data, gain = inside_loaders.channel_audio(str(run.path), run.stamp(rf.INSPECT_ONNX), run.stamp(rf.INSPECT),
                                              str(audio), loaders.stamp(audio), name, channel, False)
    with wave.open(io.BytesIO(data)) as w:
        assert w.getframerate() == clip.sample_rate and w.getnframes() == len(clip.audio)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32767
    assert gain is not None
    peak_limited = np.abs(pcm).max() >= resynth.PEAK - 1e-3
    assert peak_limited or resynth.rms(pcm) == pytest.approx(resynth.rms(clip.audio), rel=0.02)


def test_open_a_top_clip_selects_it(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, run="tiny")
    index = RunDir(runs / "tiny").read_table(rf.CHANNEL_INDEX)
    layer, channel = str(index["layer"].iat[0]), int(index["channel"].iat[0])
    at.selectbox(key="inside:layer").set_value(layer).run()
    at.selectbox(key=f"inside:channel:{layer}").set_value(channel).run()
    assert "Tags it tracks" in texts(at) and "Clips that excite it most" in texts(at)
    column = int(index["column"].iat[0])
    acts = RunDir(runs / "tiny").read_array(rf.CHANNEL_ACTIVATIONS)[:, column]
    preds = RunDir(runs / "tiny").read_table(rf.PREDICTIONS)
    best = str(preds["clip_id"].iat[int(np.argmax(acts))])
    at.button(key="inside:open:0").click().run()
    assert not at.exception
    assert at.selectbox(key="w:clip").value == best
    at.toggle(key="inside:filters").set_value(True).run()
    assert not at.exception and not at.error
    shown = texts(at)  # musicnn's front end: its vertical and its horizontal filters, grouped
    assert "Tall in frequency, short in time: timbral" in shown and "One band, many frames: temporal" in shown


def test_a_run_without_the_inside_files_says_how_to_add_them(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, run="old")
    assert "score it again" in texts(at).lower() and "--force" in texts(at)
    at = app(runs, monkeypatch, run="synthetic")
    assert "no layers to look inside" in texts(at)


def test_a_damaged_inspector_is_a_message(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "runs"
    shutil.copytree(runs / "tiny", root / "damaged", symlinks=False)
    (root / "damaged" / rf.INSPECT_ONNX).write_bytes(b"not an onnx model")
    at = app(root, monkeypatch, run="damaged")
    assert any("unreadable ONNX model" in e.value for e in at.error)


def test_the_page_never_imports_torch(runs: Path) -> None:
    script = f"""
import os, sys
os.environ[{loaders.RUNS_ENV!r}] = {str(runs)!r}
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(APP)!r}, default_timeout={TIMEOUT})
at.query_params["run"] = "tiny"
at.run()
at.switch_page({PAGE!r}).run()
at.toggle(key="inside:filters").set_value(True).run()
assert not at.exception and not at.error, (at.exception, at.error)
print("torch imported:", "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "torch imported: False" in out.stdout


def test_the_clip_explorer_opens_its_clip_inside_the_model(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loaders.RUNS_ENV, str(runs))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params["run"] = "tiny"
    at.run()
    at.switch_page("views/clip_explorer.py").run()
    clip = at.selectbox(key="w:clip").value
    at.button(key="explorer:inside").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Inside the model"
    assert at.query_params.get("clip") in (clip, [clip]), "the clip carries over"

    old = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    old.query_params["run"] = "old"
    old.run()
    old.switch_page("views/clip_explorer.py").run()
    assert not any(b.key == "explorer:inside" for b in old.button), "a run scored before inspection offers no link"
