"""Crafted run folders: a runs folder is untrusted input, and one bad run never hurts another.

A good synthetic run sits beside manifests of the wrong shape (``[]``, ``"stages": []``, wrong
types), a run of an older schema version, a run whose audio paths leave the corpus root
(``/etc/passwd``, ``../../x``, a symlink pointing out) and a run whose corpus has moved. The
dashboard (driven by AppTest) must list the bad ones with a reason and a rebuild command,
never serve a file outside a corpus, and show a moved corpus's run with a way to re-point it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from test_dashboard_app import app, charts_on  # the one AppTest driver of the dashboard tests

from benchmarks.synthetic_run import build_synthetic_run
from dashboard import loaders
from dashboard.text import md
from pipeline.errors import RunDirError
from pipeline.run import locate
from pipeline.run import rundir as rd

PAGES = ("overview", "clip_explorer", "tag_metrics", "error_analysis", "tag_map", "compare_runs", "review",
         "inside_model")
BAD_MANIFESTS = {
    "list": [],
    "stages_list": {"schema_version": rd.SCHEMA_VERSION, "name": "stages_list", "stages": []},
    "name_number": {"schema_version": rd.SCHEMA_VERSION, "name": 7, "stages": {}},
    "root_number": {"schema_version": rd.SCHEMA_VERSION, "name": "root_number",
                    "corpus": {"name": "c", "root": 3}, "stages": {}},
    "stage_string": {"schema_version": rd.SCHEMA_VERSION, "name": "stage_string", "stages": {"score": "done"}},
    "stage_file_escape": {"schema_version": rd.SCHEMA_VERSION, "name": "stage_file_escape",
                          "stages": {"score": {"finished": "now", "files": ["../../etc/passwd"]}}},
}
REASONS = {  # the field each reason must name
    "list": "expected a JSON object", "stages_list": "stages", "name_number": "name", "root_number": "corpus.root",
    "stage_string": "stages.score", "stage_file_escape": "stages.score.files", "old": "schema version 1",
}


def _manifest(run: Path) -> dict:
    return json.loads((run / rd.MANIFEST).read_text())


def _write_manifest(run: Path, manifest: object) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / rd.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder: ``good``, the `BAD_MANIFESTS`, ``old``, ``escape`` and ``moved``."""
    root = tmp_path_factory.mktemp("crafted")
    good = root / "good"
    build_synthetic_run(good, n_clips=32, n_tags=6, seconds=2.0, audio_seconds=1.0, n_audio=1, audio_format="wav",
                        n_bootstrap=0)
    for name, manifest in BAD_MANIFESTS.items():
        _write_manifest(root / name, manifest)

    shutil.copytree(good, root / "old", symlinks=True)
    _write_manifest(root / "old", {**_manifest(good), "schema_version": 1})

    # A hostile run: its predictions name files outside its corpus (written by hand, as an attacker would).
    escape = root / "escape"
    shutil.copytree(good, escape, symlinks=True)
    corpus = Path(_manifest(escape)["corpus"]["root"])
    (corpus / "link.wav").symlink_to("/etc/passwd")
    frame = pd.read_parquet(escape / rd.PREDICTIONS)
    frame.loc[0, "audio_path"] = "/etc/passwd"
    frame.loc[1, "audio_path"] = "../../../../../../etc/passwd"
    frame.loc[2, "audio_path"] = "link.wav"
    frame.to_parquet(escape / rd.PREDICTIONS, index=False)

    # A run whose corpus moved away: everything but audio still shows.
    moved = root / "moved"
    shutil.copytree(good, moved, symlinks=True)
    manifest = _manifest(moved)
    manifest["corpus"]["root"] = str(root / "gone")
    _write_manifest(moved, manifest)
    return root


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("warning", "info", "error", "success", "markdown", "caption", "code")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


# ---------------------------------------------------------------------------------------------
# listing: bad runs are listed with a reason and a command, never break another run
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*BAD_MANIFESTS, "old"])
def test_a_bad_manifest_is_listed_with_its_reason(runs: Path, name: str) -> None:
    info = loaders.run_info(runs / name)
    assert info.status() == "unreadable" and REASONS[name] in info.error
    assert "\n" not in info.error and str(runs) not in info.error  # one line, no server path
    assert info.rebuild.startswith("python -m pipeline train ") and str(runs / name) in info.rebuild


@pytest.mark.parametrize("page", PAGES)
def test_bad_runs_never_break_a_good_run(runs: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    at = app(runs, monkeypatch, page, run="good")
    assert not at.error, [e.value for e in at.error]
    shown = texts(at)
    for name in [*BAD_MANIFESTS, "old"]:
        # the sidebar's list, with reasons (escaped: a run's name and reason are run-supplied text)
        assert f"**{md(name)}**: " in shown and md(REASONS[name]) in shown
    assert f"python -m pipeline train --corpus CORPUS --out {runs / 'list'} --force" in shown


@pytest.mark.parametrize("name", [*BAD_MANIFESTS, "old"])
def test_a_bad_run_selected_says_why_and_how_to_rebuild(runs: Path, monkeypatch: pytest.MonkeyPatch,
                                                        name: str) -> None:
    at = app(runs, monkeypatch, "clip_explorer", run=name)
    message = at.error[0].value
    assert "cannot be read" in message and REASONS[name] in message and "python -m pipeline train" in message


# ---------------------------------------------------------------------------------------------
# audio paths are confined under the corpus root
# ---------------------------------------------------------------------------------------------
def _predictions(runs: Path, name: str) -> loaders.Predictions:
    info = loaders.run_info(runs / name)
    return loaders.load_predictions(str(info.file(rd.PREDICTIONS)), info.stamp(rd.PREDICTIONS), info.corpus_root,
                                    info.corpus_name)


@pytest.mark.parametrize("row", [0, 1, 2])
def test_audio_outside_the_corpus_is_refused_by_the_loader(runs: Path, row: int) -> None:
    preds = _predictions(runs, "escape")
    with pytest.raises(RunDirError, match="refused"):
        preds.audio_file(row)
    assert preds.audio_file(3).is_file()  # the run's other clips still play


@pytest.mark.parametrize("clip", ["syn000000", "syn000001", "syn000002"])
def test_clip_explorer_never_serves_a_file_outside_the_corpus(runs: Path, monkeypatch: pytest.MonkeyPatch,
                                                              clip: str) -> None:
    read: list[Path] = []  # every file the page opens for audio (the player, the spectrogram)
    for name in ("audio_bytes", "mel_spectrogram"):
        original = getattr(loaders, name)
        monkeypatch.setattr(loaders, name, lambda path, *a, _f=original, **k: (read.append(Path(path)), _f(path, *a, **k))[1])
    at = app(runs, monkeypatch, "clip_explorer", run="escape", clip=clip)
    assert "refused" in texts(at)
    corpus = Path(_manifest(runs / "escape")["corpus"]["root"]).resolve()
    assert read, "the similar clips still play"
    assert all(corpus in p.resolve().parents and p.name != "link.wav" for p in read), read


def test_clip_explorer_still_plays_the_escape_runs_good_clips(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = app(runs, monkeypatch, "clip_explorer", run="escape", clip="syn000003")
    assert at.get("audio")


# ---------------------------------------------------------------------------------------------
# a moved corpus: everything but audio, and one variable or option re-points it
# ---------------------------------------------------------------------------------------------
def test_a_moved_corpus_shows_everything_but_audio(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(locate.CORPUS_ROOT_ENV, raising=False)
    at = app(runs, monkeypatch, "clip_explorer", run="moved", clip="syn000001")
    assert not at.get("audio") and charts_on(at)
    # the page says how to re-point it (the hint goes through md(): rendered, it reads MUSICTAG_CORPUS_ROOT)
    assert md(locate.CORPUS_ROOT_ENV) in texts(at) and "is missing" in texts(at)
    at.switch_page("views/overview.py").run()
    assert not at.exception and not at.error and at.metric


def test_the_environment_variable_repoints_a_moved_corpus(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _manifest(runs / "moved")["corpus"]["name"]
    monkeypatch.setenv(locate.CORPUS_ROOT_ENV, f"{name}={runs / 'good' / 'audio'}")
    at = app(runs, monkeypatch, "clip_explorer", run="moved", clip="syn000001")
    assert at.get("audio") and "is missing" not in texts(at)


def test_the_corpus_root_option_repoints_a_moved_corpus(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(locate.CORPUS_ROOT_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["app.py", "--corpus-root", str(runs / "good" / "audio")])
    at = app(runs, monkeypatch, "clip_explorer", run="moved", clip="syn000001")
    assert at.get("audio")
