"""The dashboard's pages, driven by Streamlit's AppTest (no browser) over synthetic run directories.

Runs come from `benchmarks.synthetic_run` (the exact run-directory contract, small and fast):
a complete run, a second one to compare, one without the embed stage, a partial one (the
manifest lists a stage whose file is gone), one whose audio files are missing and one with an
unreadable manifest. Every page must render each of them without an exception, saying what
is missing where something is.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.synthetic_run import build_synthetic_run, write_tone
from dashboard import analysis, loaders, state
from dashboard.widgets import NO_ANNOTATIONS
from pipeline.errors import PipelineError
from pipeline.run import rundir as rd

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
PAGES = ("overview", "clip_explorer", "tag_metrics", "error_analysis", "tag_map", "tag_a_file", "compare_runs",
         "review")
TIMEOUT = 60  # seconds per script run (the machine running the suite may be busy)
N_CLIPS = 160


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with complete, second, noembed, partial, noaudio and broken runs."""
    root = tmp_path_factory.mktemp("runs")
    common = dict(n_clips=N_CLIPS, n_tags=24, seconds=4.0, audio_seconds=1.5, n_audio=2, audio_format="wav",
                  n_bootstrap=20)
    build_synthetic_run(root / "complete", seed=0, **common)
    build_synthetic_run(root / "second", seed=1, **common)
    build_synthetic_run(root / "noembed", seed=2, stages=("train", "score", "evaluate"), **common)
    build_synthetic_run(root / "partial", seed=3, **common)
    (root / "partial" / rd.PREDICTIONS).unlink()  # the manifest still lists the score stage
    build_synthetic_run(root / "noaudio", seed=4, **common)
    shutil.rmtree(root / "noaudio" / "audio")
    (root / "broken").mkdir()
    (root / "broken" / rd.MANIFEST).write_text("{not json", encoding="utf-8")
    return root


def app(root: Path, monkeypatch: pytest.MonkeyPatch, page: str | None = None, **params: str) -> AppTest:
    """Run the app on ``root`` with URL query ``params``, then switch to ``page``."""
    monkeypatch.setenv(loaders.RUNS_ENV, str(root))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    """Every message, markdown and caption of the page, as one string."""
    parts = [e.value for kind in ("warning", "info", "error", "success", "markdown", "caption", "subheader", "title")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def charts_on(at: AppTest) -> list:
    """Every chart of the page: Vega-Lite specs and plotly figures (`dashboard.widgets.chart`), light charts."""
    return [*at.get("vega_lite_chart"), *at.get("plotly_chart"), *at.get("bidi_component")]


def light_charts_on(at: AppTest, kind: str) -> list[dict]:
    """What the page's light charts of ``kind`` draw (`dashboard.light_charts`: components-v2 elements,
    which AppTest does not unpack)."""
    drawn = [json.loads(e.proto.json) for e in at.get("bidi_component") if e.proto.component_name == "musictag.light_chart"]
    return [d for d in drawn if d["kind"] == kind]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


# ---------------------------------------------------------------------------------------------
# every page on a complete run
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_a_complete_run(runs: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    at = app(runs, monkeypatch, page, run="complete")
    assert at.title, "every page has a title"
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="w:run").value == "complete"
    charts = charts_on(at)
    expected = {"overview": 4, "clip_explorer": 2, "tag_metrics": 2, "error_analysis": 0, "tag_map": 5,
                "tag_a_file": 0, "compare_runs": 2, "review": 1}[page]
    assert len(charts) >= expected, f"{page}: {len(charts)} charts"


def test_overview_shows_headline_metrics_and_model(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, run="complete")
    metrics = json.loads((runs / "complete" / rd.METRICS).read_text())
    assert metric(at, "ROC-AUC (macro)") == f"{metrics['headline']['roc_auc_macro']:.3f}"
    assert metric(at, "Clips") == f"{N_CLIPS:,}"
    assert "synthetic" in texts(at)


def test_overview_shows_the_training_configuration_on_request(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, run="complete")
    # (the sidebar shows bash code for the folder's broken run; the configuration is the JSON)
    assert not [c for c in at.code if c.language == "json"], "drawn only on request: the code highlighter is costly"
    at.toggle(key="overview:config").set_value(True).run()
    config = json.loads((runs / "complete" / rd.MANIFEST).read_text())["config"]
    shown = next(c for c in at.code if c.language == "json")
    assert json.loads(shown.value) == json.loads(json.dumps(config, default=str))


def test_clip_explorer_plays_original_bytes_and_shows_similar_clips(runs: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "clip_explorer", run="complete", clip="syn000003")
    assert at.selectbox(key="w:clip").value == "syn000003"
    assert "Clip syn000003" in texts(at)
    audio = at.get("audio")
    assert len(audio) == 1 + 5, "the clip and its five similar clips are playable"
    assert "Similar clips" in texts(at)
    # the similar clips are the run's recorded neighbours, in rank order
    neighbors = pd.read_parquet(runs / "complete" / rd.CLIP_NEIGHBORS)
    expected = neighbors[neighbors["clip_id"] == "syn000003"].sort_values("rank")["neighbor_id"].head(5)
    shown = [m.value for m in at.markdown if m.value.startswith("**syn")]
    assert [s.split("**")[1] for s in shown] == list(expected)


def test_the_clip_view_holds_the_clips_taggram_and_spectrogram(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "clip_explorer", run="complete", clip="syn000003")
    (data,) = light_charts_on(at, "clip_view")
    assert data["mel"] is not None and data["mel"]["bands"] > 0, "the clip was decoded for its spectrogram"
    index = pd.read_parquet(runs / "complete" / rd.TAGGRAMS_INDEX).set_index("clip_id").loc["syn000003"]
    stored = np.load(runs / "complete" / rd.TAGGRAMS)[int(index["offset"]):int(index["offset"] + index["n_frames"])]
    tags = [c.removeprefix(rd.PROB_PREFIX) for c in pd.read_parquet(runs / "complete" / rd.PREDICTIONS)
            if c.startswith(rd.PROB_PREFIX)]
    shown = data["taggram"]
    assert shown["tags"] and set(shown["tags"]) <= set(tags)
    for row, tag in zip(shown["values"], shown["tags"]):  # what the hover reads: the stored activations
        np.testing.assert_allclose(row, stored[:, tags.index(tag)].astype(float), atol=6e-4)


def test_clip_search_filters_the_picker(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "clip_explorer", run="complete")
    at.text_input(key="explorer:search").set_value("syn00001").run()
    assert not at.exception
    options = [o.split(" · ")[0] for o in at.selectbox(key="w:clip").options]
    assert set(options) - {at.selectbox(key="w:clip").value} <= {f"syn0000{i}" for i in range(10, 20)}
    assert "10 of 160 clips match" in texts(at)


def test_tag_cooccurrence_is_drawn_when_opened(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def heatmaps() -> list[str]:
        titles = [json.loads(c.proto.spec).get("title", {}).get("text", "") for c in at.get("vega_lite_chart")]
        return [t for t in titles if "co-occurrence" in t]

    at = app(runs, monkeypatch, "tag_metrics", run="complete")
    assert "Tag co-occurrence: annotations vs predictions" in [e.label for e in at.main.expander]
    assert heatmaps() == [], "closed: not computed, nothing sent to the browser"
    at.session_state["metrics:cooccurrence_open"] = True  # what a click on the expander sets
    at.session_state["metrics:cooccurrence_kept"] = True  # and its on_change callback
    at.run()
    assert heatmaps() == ["Annotated co-occurrence P(column | row)"]
    at.switch_page("views/overview.py").run()
    at.switch_page("views/tag_metrics.py").run()
    assert heatmaps(), "it stays open across a page switch"


def expected_counts(run_dir: Path, threshold: float, split: str = "test") -> tuple[int, int, int]:
    frame = pd.read_parquet(run_dir / rd.PREDICTIONS)
    frame = frame[frame["split"] == split]
    tags = [c[len(rd.PROB_PREFIX):] for c in frame.columns if c.startswith(rd.PROB_PREFIX)]
    p = frame[[rd.prob_column(t) for t in tags]].to_numpy() >= threshold
    y = frame[[rd.true_column(t) for t in tags]].to_numpy().astype(bool)
    return int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum())


def test_threshold_changes_tp_fp_fn_counts(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "tag_metrics", run="complete", split="test")
    counts = lambda: tuple(int(metric(at, n).replace(",", "")) for n in  # noqa: E731
                           ("True positives", "False positives", "False negatives"))
    assert counts() == expected_counts(runs / "complete", 0.5)
    at.slider(key="w:threshold").set_value(0.2).run()
    assert not at.exception
    assert counts() == expected_counts(runs / "complete", 0.2)
    assert counts()[1] > expected_counts(runs / "complete", 0.5)[1], "a lower threshold predicts more"
    assert at.query_params["threshold"] == "0.20"


def test_threshold_changes_a_clips_outcomes(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "clip_explorer", run="complete", clip="syn000005", threshold="0.9")
    high = (int(metric(at, "True positives")), int(metric(at, "False positives")))
    at.slider(key="w:threshold").set_value(0.05).run()
    low = (int(metric(at, "True positives")), int(metric(at, "False positives")))
    frame = pd.read_parquet(runs / "complete" / rd.PREDICTIONS).set_index("clip_id").loc["syn000005"]
    probs = frame[[c for c in frame.index if c.startswith(rd.PROB_PREFIX)]].to_numpy(float)
    truth = frame[[c for c in frame.index if c.startswith(rd.TRUE_PREFIX)]].to_numpy(int)
    assert low == (int(((probs >= 0.05) & (truth == 1)).sum()), int(((probs >= 0.05) & (truth == 0)).sum()))
    assert high != low


def test_a_session_loads_a_runs_shared_artifacts_once_not_on_every_rerun(runs: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    warmed: list[str] = []
    real = loaders.warm
    monkeypatch.setattr(loaders, "warm", lambda run: (warmed.append(run.name), real(run)))
    at = app(runs, monkeypatch, "tag_metrics", run="complete")
    at.switch_page("views/overview.py").run()
    at.slider(key="w:threshold").set_value(0.3).run()
    assert warmed == ["complete"]
    at.selectbox(key="w:run").set_value("second").run()
    assert warmed == ["complete", "second"], "another run is loaded when it is chosen"


def test_the_curves_follow_the_chosen_tag_and_mark_the_threshold_in_use(runs: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "tag_metrics", run="complete", split="test", threshold="0.30")
    tag = at.selectbox(key="w:tag").options[1]
    at.selectbox(key="w:tag").set_value(tag).run()
    (data,) = light_charts_on(at, "curves")
    assert data["title"].endswith(f"'{tag}'")
    frame = pd.read_parquet(runs / "complete" / rd.PREDICTIONS)
    frame = frame[frame["split"] == "test"]
    truth, probs = frame[rd.true_column(tag)].to_numpy(), frame[rd.prob_column(tag)].to_numpy()
    roc, _ = data["panels"]
    pred = probs >= 0.30
    in_use = next(p for p in roc["points"] if p["name"] == "threshold in use 0.30")
    assert in_use["x"] == pytest.approx((pred & (truth == 0)).sum() / (truth == 0).sum())
    assert in_use["y"] == pytest.approx((pred & (truth == 1)).sum() / (truth == 1).sum())
    assert roc["line"]["x"][0] == 0 and roc["line"]["x"][-1] == 1 and roc["line"]["y"][-1] == 1


def test_tuned_thresholds_come_from_per_tag_csv(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "tag_metrics", run="complete", split="test", tuned="1")
    assert at.toggle(key="w:tuned").value is True
    table = at.dataframe[0].value
    per_tag = pd.read_csv(runs / "complete" / rd.PER_TAG).set_index("tag")
    np.testing.assert_allclose(table.set_index("tag")["threshold"], per_tag.loc[table["tag"], "threshold"])


def test_query_params_select_run_clip_tag_and_threshold(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "clip_explorer", run="second", clip="syn000007", tag="piano", threshold="0.3")
    assert at.selectbox(key="w:run").value == "second"
    assert at.selectbox(key="w:clip").value == "syn000007"
    assert at.slider(key="w:threshold").value == pytest.approx(0.3)
    at.switch_page("views/error_analysis.py").run()
    assert at.selectbox(key="w:tag").value == "piano"
    assert at.selectbox(key="w:run").value == "second", "the run survives a page switch"
    # the URL follows the state (and survives the switch, which clears Streamlit's query string)
    assert {k: at.query_params[k] for k in ("run", "clip", "tag", "threshold")} == {
        "run": "second", "clip": "syn000007", "tag": "piano", "threshold": "0.30"}
    at.selectbox(key="w:tag").set_value("guitar").run()
    assert at.query_params["tag"] == "guitar"


def test_bad_query_params_fall_back_to_defaults(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "clip_explorer", run="nope", clip="nope", tag="nope", threshold="high")
    assert not at.exception
    assert at.selectbox(key="w:run").value in {"complete", "second", "noembed", "noaudio", "partial", "broken"}
    assert at.slider(key="w:threshold").value == pytest.approx(0.5)


def test_error_analysis_lists_playable_errors_issues_and_contradictions(runs: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "error_analysis", run="complete", tag="guitar", split="all")
    assert "Most confident false positives" in texts(at)
    assert len(at.get("audio")) > 0, "errors are playable in place"
    at.segmented_control(key="errors:section").set_value("issues").run()
    assert not at.exception
    assert "candidate label issues" in texts(at)
    assert len(at.get("audio")) > 0
    at.segmented_control(key="errors:section").set_value("contradictions").run()
    assert not at.exception
    summary = at.dataframe[0].value
    tags = [c[len(rd.PROB_PREFIX):] for c in pd.read_parquet(runs / "complete" / rd.PREDICTIONS).columns
            if c.startswith(rd.PROB_PREFIX)]
    pairs = analysis.contradiction_pairs(tags)
    assert ("vocal", "no vocals") in pairs
    listed = list(zip(summary["tag"], summary["contradicts"]))
    assert listed and set(listed) <= set(pairs)
    assert (summary["predicted together"] + summary["annotated together"] > 0).all()
    assert f"{len(pairs)} contradictory pairs in this vocabulary" in texts(at)


# ---------------------------------------------------------------------------------------------
# missing and broken things: a message, never an exception
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_empty_runs_folder_says_how_to_build_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   page: str) -> None:
    at = app(tmp_path, monkeypatch, page)
    assert "No runs found" in texts(at)
    assert "make demo" in texts(at)


@pytest.mark.parametrize("page", ["tag_map", "clip_explorer", "error_analysis"])
def test_run_without_embed_stage_says_so(runs: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    at = app(runs, monkeypatch, page, run="noembed")
    if page == "error_analysis":
        at.segmented_control(key="errors:section").set_value("issues").run()
        assert not at.exception
    assert "no embeddings, tag maps and label issues" in texts(at)
    assert "python -m pipeline embed" in texts(at)


@pytest.mark.parametrize("page", PAGES)
def test_partial_run_names_the_missing_file(runs: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    at = app(runs, monkeypatch, page, run="partial")
    assert at.selectbox(key="w:run").value == "partial"
    if page in ("clip_explorer", "tag_metrics", "error_analysis", "tag_a_file"):
        assert f"missing `{rd.PREDICTIONS}`" in texts(at)
    if page == "overview":
        assert "incomplete" in texts(at)


def test_missing_audio_files_are_reported(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "clip_explorer", run="noaudio", clip="syn000001")
    assert "Audio file not found" in texts(at)
    assert not at.get("audio")
    (data,) = light_charts_on(at, "clip_view")
    assert data["taggram"]["values"] and data["mel"] is None, "the taggram still shows, without a spectrogram"
    at.switch_page("views/error_analysis.py").run()
    assert not at.exception
    assert "Audio file not found" in texts(at)


@pytest.mark.parametrize("page", PAGES)
def test_unreadable_manifest_is_an_error_message(runs: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    at = app(runs, monkeypatch, page, run="broken")
    assert "cannot be read" in texts(at)


def test_corrupt_artifact_is_an_error_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_synthetic_run(tmp_path / "run", n_clips=32, n_tags=6, seconds=2.0, audio_seconds=1.0, n_audio=1,
                        audio_format="wav", n_bootstrap=0)
    (tmp_path / "run" / rd.TAG_PROJECTIONS).write_bytes(b"not parquet")
    at = app(tmp_path, monkeypatch, "tag_map")
    assert "Could not load" in texts(at) and rd.TAG_PROJECTIONS in texts(at)


@pytest.mark.parametrize("page", PAGES)
def test_predictions_without_annotations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    build_synthetic_run(tmp_path / "run", n_clips=32, n_tags=6, seconds=2.0, audio_seconds=1.0, n_audio=1,
                        audio_format="wav", n_bootstrap=0)
    path = tmp_path / "run" / rd.PREDICTIONS
    frame = pd.read_parquet(path)
    frame.drop(columns=[c for c in frame if c.startswith(rd.TRUE_PREFIX)]).to_parquet(path)  # e.g. untagged audio
    at = app(tmp_path, monkeypatch, page)
    if page in ("tag_metrics", "error_analysis", "clip_explorer"):  # the pages that read the true:<tag> columns
        assert NO_ANNOTATIONS in texts(at)
    if page in ("tag_metrics", "error_analysis"):
        assert "tags CSV" in texts(at) and not at.metric


# ---------------------------------------------------------------------------------------------
# tag a file, compare runs
# ---------------------------------------------------------------------------------------------
def wav_bytes(tmp_path: Path, seconds: float = 2.0) -> bytes:
    return write_tone(tmp_path / "upload.wav", seconds, (220.0, 330.0)).read_bytes()


def test_tag_a_file_shows_top_tags_taggram_and_nearest_clips(runs: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    at = app(runs, monkeypatch, "tag_a_file", run="complete")
    own = next(o for o in at.selectbox(key="tag:tagger").options if o.startswith("this run's model"))
    at.selectbox(key="tag:tagger").set_value(own).run()
    at.file_uploader(key="tag:upload").set_value(("upload.wav", wav_bytes(tmp_path), "audio/wav")).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "upload.wav" in at.success[0].value
    assert len(charts_on(at)) == 2, "top tags and taggram"
    assert "Nearest clips in the corpus" in texts(at)
    assert len(at.get("audio")) == 1 + 5, "the upload and its nearest clips"


@pytest.mark.parametrize("name,data", [("broken.mp3", b"ID3 this is not an mp3 at all" * 10),
                                       ("empty.wav", b"RIFF\x00\x00\x00\x00WAVE")])
def test_tag_a_file_reports_a_broken_upload(runs: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                                            data: bytes) -> None:
    pytest.importorskip("onnxruntime")
    at = app(runs, monkeypatch, "tag_a_file", run="complete")
    at.file_uploader(key="tag:upload").set_value((name, data, "audio/mpeg")).run()
    assert not at.exception, at.exception
    assert f"Could not tag `{name}`" in at.error[0].value


def test_tag_a_file_offers_the_published_models_first(runs: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """musicnn's MagnaTagATune model is the default tagger; its answer is its five most probable tags."""
    from pipeline.pretrained.build import installed_model, missing_message

    if installed_model("mtt_musicnn") is None:
        pytest.skip(missing_message("mtt_musicnn"))
    at = app(runs, monkeypatch, "tag_a_file", run="complete")
    options = at.selectbox(key="tag:tagger").options
    assert options[0].startswith("mtt_musicnn") and options[-1] == "this run's model (complete)"
    at.file_uploader(key="tag:upload").set_value(("upload.wav", wav_bytes(tmp_path, 4.0), "audio/wav")).run()
    assert not at.exception and not at.error, at.exception or [e.value for e in at.error]
    assert at.success[0].value.count("(0.") + at.success[0].value.count("(1.") == 5  # five tags with probabilities
    assert "tags are not those of run" in texts(at)  # MTT's 50 tags: no neighbours among this run's clips


def test_tag_a_file_without_a_model_says_so(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.paths import PRETRAINED_ENV

    monkeypatch.setenv(PRETRAINED_ENV, str(tmp_path / "no-published-models"))
    at = app(runs, monkeypatch, "tag_a_file", run="noembed")
    assert at.file_uploader  # noembed has a model: the uploader is there
    at = app(runs, monkeypatch, "tag_a_file", run="partial")
    assert not at.file_uploader
    assert "python -m pipeline score" in texts(at) and "python -m pipeline pretrained fetch" in texts(at)


def test_compare_runs_shows_per_tag_deltas(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "compare_runs", run="complete", vs="second")
    assert at.selectbox(key="w:vs").value == "second"
    table = at.dataframe[-1].value
    a = pd.read_csv(runs / "complete" / rd.PER_TAG).set_index("tag")["roc_auc"]
    b = pd.read_csv(runs / "second" / rd.PER_TAG).set_index("tag")["roc_auc"]
    np.testing.assert_allclose(table.set_index("tag")["change"], (b - a).loc[table["tag"]])


def test_compare_runs_with_a_single_run_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_synthetic_run(tmp_path / "only", n_clips=32, n_tags=6, seconds=2.0, audio_seconds=1.0, n_audio=1,
                        audio_format="wav", n_bootstrap=0)
    at = app(tmp_path, monkeypatch, "compare_runs")
    assert "Only one readable run" in texts(at)


def test_the_dashboard_never_imports_torch(runs: Path, tmp_path: Path) -> None:
    """Every page, an upload included, in a fresh process: torch must stay out of it."""
    upload = write_tone(tmp_path / "up.wav", 2.0, (330.0,))
    script = f"""
import os, sys
os.environ[{loaders.RUNS_ENV!r}] = {str(runs)!r}
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(APP)!r}, default_timeout={TIMEOUT})
at.query_params["run"] = "complete"
at.run()
for page in {list(PAGES)!r}:
    at.switch_page(f"views/{{page}}.py").run()
    assert not at.exception, (page, at.exception)
at.switch_page("views/tag_a_file.py").run()
at.file_uploader(key="tag:upload").set_value(("up.wav", open({str(upload)!r}, "rb").read(), "audio/wav")).run()
assert not at.exception and not at.error
print("torch imported:", "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "torch imported: False" in out.stdout


# ---------------------------------------------------------------------------------------------
# the lead's real tiny run, when the suite provides one
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_pages_on_the_demo_run(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               page: str) -> None:
    try:
        value = request.getfixturevalue("demo_run")
        demo_run = Path(getattr(value, "path", value))  # a path or a RunDir
    except pytest.FixtureLookupError:
        pytest.skip("no demo_run fixture in tests/conftest.py")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / demo_run.name).symlink_to(demo_run, target_is_directory=True)
    at = app(tmp_path / "runs", monkeypatch, page, run=demo_run.name)
    assert at.title
    assert not at.error, [e.value for e in at.error]


# ---------------------------------------------------------------------------------------------
# pure parts
# ---------------------------------------------------------------------------------------------
def test_contradiction_pairs_are_data_driven() -> None:
    tags = ["vocal", "no vocals", "drums", "no drums", "fast", "slow", "piano", "no piano", "guitar"]
    pairs = analysis.contradiction_pairs(tags)
    assert {("vocal", "no vocals"), ("drums", "no drums"), ("fast", "slow"), ("piano", "no piano")} <= set(pairs)
    assert not any("guitar" in p for p in pairs)


def test_contradictions_flag_clips_predicted_with_both_tags() -> None:
    tags = ["vocal", "no vocals", "piano"]
    probs = np.array([[0.9, 0.8, 0.1], [0.9, 0.1, 0.9], [0.2, 0.95, 0.6]])
    truth = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]])
    summary, flagged = analysis.contradictions(tags, truth, probs, 0.5)
    assert summary.to_dict("records") == [{"left": "vocal", "right": "no vocals", "predicted": 1, "annotated": 1}]
    assert flagged.tolist() == ["vocal + no vocals", "", ""]


def test_outcomes_and_counts_with_known_answers() -> None:
    truth = np.array([[1, 0], [1, 1], [0, 0]])
    probs = np.array([[0.9, 0.7], [0.2, 0.6], [0.1, 0.4]])
    assert analysis.outcomes(truth, probs, 0.5).tolist() == [["TP", "FP"], ["FN", "TP"], ["TN", "TN"]]
    counts = analysis.confusion_counts(truth, probs, np.array([0.5, 0.65]))
    assert counts[["tp", "fp", "fn", "tn"]].to_numpy().tolist() == [[1, 0, 1, 1], [0, 1, 1, 1]]
    fp, fn = analysis.top_errors(np.array([0, 0, 1, 1]), np.array([0.9, 0.6, 0.1, 0.4]), 0.5, 5)
    assert fp.tolist() == [0, 1] and fn.tolist() == [2, 3]


def test_a_model_not_trained_here_has_provenance_not_curves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A converted published model (pipeline.pretrained) has no history.csv: the overview says so, no error."""
    build_synthetic_run(tmp_path / "run", n_clips=32, n_tags=6, seconds=2.0, audio_seconds=1.0, n_audio=1,
                        audio_format="wav", n_bootstrap=0)
    run = rd.RunDir(tmp_path / "run")
    (run / rd.HISTORY).unlink()
    run.mark_stage("train", ())
    run.update_manifest(provenance={"original_model": "MTT_musicnn", "distribution": "musicnn==0.1.0",
                                    "authors": "Pons and Serra", "licence": "ISC"})
    at = app(tmp_path, monkeypatch, run="run")
    assert not at.error, [e.value for e in at.error]
    shown = texts(at)  # (md() escapes the underscore of MTT_musicnn)
    assert "No training history" in shown and "converted from MTT" in shown and "licence ISC" in shown


def test_outcomes_without_ground_truth_are_predicted_or_not() -> None:
    from dashboard.theme import PRED, UNPRED

    probs = np.array([[0.9, 0.7, 0.2], [0.2, 0.6, 0.8]])
    assert analysis.outcomes(None, probs, 0.5).tolist() == [[PRED, PRED, UNPRED], [UNPRED, PRED, PRED]]
    truth = np.array([[1, 0, 0], [1, 0, 0]])  # only the first tag is annotated
    labelled = np.array([True, False, False])
    assert analysis.outcomes(truth, probs, 0.5, labelled).tolist() == [["TP", PRED, UNPRED], ["FN", PRED, PRED]]


def test_partly_annotated_predictions_keep_metrics_to_the_annotated_tags(tmp_path: Path) -> None:
    frame = pd.DataFrame({"clip_id": ["a", "b", "c"], "split": ["test"] * 3, "audio_path": ["a.wav", "b.wav", "c.wav"],
                          "prob:rock": [0.9, 0.2, 0.6], "prob:jazz": [0.1, 0.8, 0.4], "prob:kazoo": [0.5, 0.5, 0.5],
                          "true:rock": np.array([1, 0, 0], np.uint8), "true:kazoo": np.array([0, 1, 1], np.uint8)})
    path = tmp_path / rd.PREDICTIONS
    frame.to_parquet(path)
    preds = loaders.load_predictions(str(path), loaders.stamp(path))
    assert preds.labelled.tolist() == [True, False, True] and preds.partly_annotated
    assert preds.truth[:, 1].tolist() == [0, 0, 0]  # jazz: no ground truth, zeros and labelled False
    only = preds.annotated_only()
    assert only.tags == ["rock", "kazoo"] and only.truth.tolist() == [[1, 0], [0, 1], [0, 1]]
    np.testing.assert_array_equal(only.probs, preds.probs[:, [0, 2]])
    aucs = loaders.split_aucs(str(path), loaders.stamp(path), "test")
    assert aucs.index.tolist() == ["rock", "kazoo"] and aucs.loc["rock", "roc_auc"] == 1.0
    frame.drop(columns=["true:rock", "true:kazoo"]).to_parquet(path)
    bare = loaders.load_predictions(str(path), loaders.stamp(path))
    assert bare.truth is None and not bare.labelled.any() and not bare.partly_annotated


def test_a_skipped_stage_is_done_but_not_available(tmp_path: Path) -> None:
    build_synthetic_run(tmp_path / "run", n_clips=32, n_tags=6, seconds=2.0, audio_seconds=1.0, n_audio=1,
                        audio_format="wav", n_bootstrap=0, stages=("train", "score"))
    run = rd.RunDir(tmp_path / "run")
    run.mark_stage("evaluate", (), skipped="the corpus annotates none of the model's 6 tags")
    info = loaders.run_info(run.path)
    assert "evaluate" in info.done and not info.has("evaluate") and "evaluate" not in info.missing
    assert info.skip_reason("evaluate").startswith("the corpus annotates") and info.unannotated
    assert info.status() == "missing embed"


def test_curves_match_the_metrics_module() -> None:
    from pipeline.analysis.metrics import roc_auc_per_tag

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.random(400) * 0.5 + 0.4 * y, 2)  # ties included
    c = analysis.curves(y, s)
    assert np.trapezoid(c["tpr"], c["fpr"]) == pytest.approx(roc_auc_per_tag(y[:, None], s[:, None])[0])
    assert c["recall"][-1] == 1.0 and c["fpr"][-1] == 1.0


def test_auc_per_tag_agrees_with_the_metrics_module() -> None:
    from pipeline.analysis.metrics import pr_auc_per_tag, roc_auc_per_tag

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, (300, 4))
    truth[:, 3] = 0  # a tag without positives has no AUC
    probs = np.clip(rng.random((300, 4)) * 0.6 + 0.3 * truth, 0, 1)
    table = analysis.auc_per_tag(truth, probs)
    np.testing.assert_allclose(table["roc_auc"], roc_auc_per_tag(truth, probs), equal_nan=True)
    np.testing.assert_allclose(table["pr_auc"], pr_auc_per_tag(truth, probs), equal_nan=True)
    assert table["support"].tolist() == truth.sum(axis=0).tolist() and np.isnan(table["roc_auc"][3])


def test_headline_table_reads_the_metrics_schema(runs: Path) -> None:
    metrics = json.loads((runs / "complete" / rd.METRICS).read_text())
    table = loaders.headline_table(metrics).set_index(["metric", "average"])
    assert table.loc[("ROC-AUC", "macro"), "value"] == pytest.approx(metrics["headline"]["roc_auc_macro"])
    low, high = metrics["ci95"]["pr_auc_weighted"]
    assert (table.loc[("PR-AUC", "weighted"), "low"], table.loc[("PR-AUC", "weighted"), "high"]) == (low, high)
    empty = loaders.headline_table(None)  # a run without evaluation: six rows of NaN
    assert len(empty) == 6 and empty[["value", "low", "high"]].isna().all().all()


def test_headline_table_refuses_other_layouts() -> None:
    with pytest.raises(PipelineError, match="headline"):
        loaders.headline_table({"split": "test", "roc_auc": {"macro": {"value": 0.9, "ci": [0.88, 0.92]}}})


def test_state_parses_url_values() -> None:
    assert state.PARAMS["threshold"]("0.25") == 0.25
    assert state.PARAMS["threshold"]("7") == 1.0
    assert state.PARAMS["threshold"]("nan") is None
    assert state.PARAMS["threshold"]("high") is None
    assert state.PARAMS["tuned"]("1") is True and state.PARAMS["tuned"]("0") is False


def test_runs_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard import widgets

    monkeypatch.delenv(loaders.RUNS_ENV, raising=False)
    assert widgets.runs_root([]) == REPO / "data" / "runs"
    assert widgets.runs_root(["--runs", str(tmp_path)]) == tmp_path.resolve()
    monkeypatch.chdir(tmp_path)  # a relative path missing here is taken from the repository
    assert widgets.runs_root(["--runs", "data/runs"]) == (REPO / "data" / "runs").resolve()
    monkeypatch.setenv(loaders.RUNS_ENV, str(tmp_path))
    assert widgets.runs_root([]) == tmp_path.resolve()


def test_synthetic_run_follows_the_contract(runs: Path) -> None:
    run = rd.RunDir(runs / "complete")
    assert run.missing_stages() == []
    manifest = run.manifest()
    assert manifest["synthetic"] is True and manifest["corpus"]["source"] == "synthetic"
    frame = pd.read_parquet(run / rd.PREDICTIONS)
    assert len(frame) == N_CLIPS and frame["clip_id"].is_unique
    probs = frame[[c for c in frame if c.startswith(rd.PROB_PREFIX)]].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    root = Path(manifest["corpus"]["root"])
    assert all(not Path(p).is_absolute() and (root / p).is_file() for p in frame["audio_path"])
    taggrams = np.load(run / rd.TAGGRAMS, mmap_mode="r")
    index = pd.read_parquet(run / rd.TAGGRAMS_INDEX)
    assert taggrams.dtype == np.float16 and taggrams.shape[1] == probs.shape[1]
    assert (index["offset"] + index["n_frames"]).max() == len(taggrams)
    per_tag = pd.read_csv(run / rd.PER_TAG)
    assert list(per_tag.columns[:11]) == ["tag", "support", "roc_auc", "pr_auc", "precision", "recall", "f1",
                                          "threshold", "precision_tuned", "recall_tuned", "f1_tuned"]
    issues = pd.read_parquet(run / rd.LABEL_ISSUES)
    assert set(issues["kind"]) <= {"missing", "wrong"} and set(issues["split"]) <= {"valid", "test"}
    assert issues["rank"].tolist() == list(range(1, len(issues) + 1))
    assert loaders.frame_rate(manifest) == pytest.approx(2.0)


def test_synthetic_onnx_tagger_loads_without_torch(runs: Path) -> None:
    pytest.importorskip("onnxruntime")
    from pipeline.scoring.tagger import OnnxTagger

    tagger = OnnxTagger(runs / "complete")
    probs, taggram = tagger.tag_bytes(io.BytesIO(write_tone(runs.parent / "t.wav", 3.0, (440.0,)).read_bytes())
                                      .getvalue(), "t.wav")
    assert probs.shape == (24,) and taggram.shape[1] == 24 and ((probs > 0) & (probs < 1)).all()
