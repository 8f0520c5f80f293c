"""A run folder is untrusted input: a crafted run neither runs code nor injects markup.

- a pickle where a baseline belongs is refused by `load_run` and by ``python -m pipeline tag``,
  never unpickled (a pickle runs code when loaded);
- clip ids, tag names and the corpus, model and run names holding HTML and Markdown render as
  literal text on every page of the dashboard (AppTest reads what each element would render);
- the dashboard's config shows a visitor no traceback, and its page icons are local.

The browser side (no request leaves the machine, a crafted run fetches nothing and runs no
script) is in ``test_dashboard_browser.py``, which builds its crafted run with `build_crafted_run`.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from benchmarks.synthetic_run import build_synthetic_run, write_tone
from dashboard import loaders
from dashboard.text import code, md
from pipeline.errors import PipelineError
from pipeline.io import read_json, write_json
from pipeline.run import rundir as rd
from pipeline.run.rundir import BASELINE_FILE

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
PAGES = ("overview", "clip_explorer", "tag_metrics", "error_analysis", "tag_map", "tag_a_file", "compare_runs",
         "review", "inside_model")

HTML = "<img src=x onerror=alert(1)>"
IMAGE = "![p](http://example.invalid/p.png)"
EVIL = f"{HTML} {IMAGE} :material/home: **bold**"
# A folder name cannot hold '/': the run's name carries the HTML and a relative image.
RUN_NAME = f"{HTML} ![p](p.png)"
EVIL_IDS = {"syn000000": HTML, "syn000001": IMAGE, "syn000002": EVIL}


# ---------------------------------------------------------------------------------------------
# a pickle where a baseline belongs
# ---------------------------------------------------------------------------------------------
class _RunsCode:
    """Unpickling this creates ``marker``: the stand-in for any code a crafted pickle would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _pickled_baseline_run(path: Path, marker: Path) -> Path:
    """A baseline run folder whose estimator files are pickles (the old name and the current one)."""
    import torch

    tags = ["rock", "pop"]
    run = rd.RunDir(path)
    path.mkdir(parents=True)
    run.update_manifest(tags=tags)
    torch.save({"kind": "baseline", "model_name": "knn", "model_kwargs": {}, "tags": tags, "features": {},
                "normalizer": {}, "chunk_frames": 0}, path / rd.CHECKPOINT)
    payload = pickle.dumps(_RunsCode(marker))
    for name in {"baseline.joblib", BASELINE_FILE}:
        (path / name).write_bytes(payload)
    frame = pd.DataFrame({"clip_id": ["a"], "split": ["test"], "audio_path": ["a.wav"],
                          **{rd.prob_column(t): [0.5] for t in tags}})
    frame.to_parquet(path / rd.PREDICTIONS, index=False)
    run.mark_stage("score", files=(rd.PREDICTIONS,))
    return path


def test_a_pickled_baseline_is_refused_not_run(tmp_path: Path) -> None:
    from pipeline.scoring.inference import load_run

    marker = tmp_path / "code-ran"
    run = _pickled_baseline_run(tmp_path / "run", marker)
    with pytest.raises(PipelineError, match=re.escape(BASELINE_FILE)):
        load_run(run)
    assert not marker.exists(), "loading a crafted run ran the code of its pickle"


def test_tag_cli_refuses_a_pickled_baseline(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    run = _pickled_baseline_run(tmp_path / "run", marker)
    audio = write_tone(tmp_path / "tone.wav", 1.0, (440.0,))
    from test_cli_errors import run_cli  # the command's entry point, in this process (a pickle would run here too)

    proc = run_cli("tag", audio, "--run", run, "--torch")
    assert not marker.exists(), "python -m pipeline tag ran the code of a crafted pickle"
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "error:" in proc.stderr and BASELINE_FILE in proc.stderr


# ---------------------------------------------------------------------------------------------
# HTML and Markdown in ids, tags and names
# ---------------------------------------------------------------------------------------------
def build_crafted_run(root: Path) -> Path:
    """A complete synthetic run whose ids, tags, corpus, model and run names hold HTML and Markdown."""
    tags = [HTML, IMAGE, EVIL, *(f"tag{i}" for i in range(5))]
    path = root / RUN_NAME
    build_synthetic_run(path, n_clips=96, tags=tags, seed=5, seconds=4.0, audio_seconds=1.0, n_audio=1,
                        audio_format="wav", n_bootstrap=10, neighbors=5)
    for table in path.glob("*.parquet"):
        frame = pd.read_parquet(table)
        for column in ("clip_id", "neighbor_id"):
            if column in frame:
                frame[column] = frame[column].replace(EVIL_IDS)
        frame.to_parquet(table, index=False)
    manifest = read_json(path / rd.MANIFEST)
    manifest["corpus"]["name"] = EVIL
    manifest["corpus"]["source"] = IMAGE
    manifest["model"]["name"] = EVIL
    manifest["description"] = EVIL
    write_json(path / rd.MANIFEST, manifest)
    return path


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with the crafted run and a plain one to compare it with."""
    root = tmp_path_factory.mktemp("crafted-runs")
    build_crafted_run(root)
    build_synthetic_run(root / "plain", n_clips=96, n_tags=8, seed=6, seconds=4.0, audio_seconds=1.0, n_audio=1,
                        audio_format="wav", n_bootstrap=10, neighbors=5)
    return root


# What Streamlit renders as Markdown: bodies, labels and tooltips of every element and block.
MARKDOWN_FIELDS = {"body", "label", "help", "placeholder"}
PLAIN_ELEMENTS = {"code", "text"}  # rendered as plain text
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")


def _markdown_of(message, out: list[str]) -> None:
    for field, value in message.ListFields():
        if field.type == field.TYPE_MESSAGE:
            for item in [value] if hasattr(value, "ListFields") else value:  # one message or a repeated field
                _markdown_of(item, out)
        elif field.name in MARKDOWN_FIELDS and isinstance(value, str):
            out.append(value)


def rendered_markdown(at: AppTest) -> list[str]:
    """Every Markdown source the page hands to the browser (code spans, which stay literal, removed)."""
    out: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and getattr(node, "type", "") not in PLAIN_ELEMENTS:
            _markdown_of(proto, out)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return [CODE_SPAN.sub("", s) for s in out]


def _open(root: Path, monkeypatch: pytest.MonkeyPatch, page: str, **params: str) -> AppTest:
    monkeypatch.setenv(loaders.RUNS_ENV, str(root))
    at = AppTest.from_file(str(APP), default_timeout=60)
    for key, value in {"run": RUN_NAME, "vs": "plain", **params}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


def assert_inert(sources: list[str]) -> None:
    """No HTML tag, Markdown image or Streamlit icon directive formed from run text."""
    for source in sources:
        for raw in ("<img", "![", "](http", "](p.png", ":material/home:", "**bold**"):
            assert raw not in source, f"run text reaches the page as markup ({raw!r}): {source[:300]!r}"


@pytest.mark.parametrize("page", PAGES)
def test_crafted_names_render_as_text(crafted: Path, monkeypatch: pytest.MonkeyPatch, page: str) -> None:
    params = {"clip": HTML, "tag": IMAGE} if page in ("clip_explorer", "error_analysis", "tag_metrics") else {}
    at = _open(crafted, monkeypatch, page, **params)
    sources = rendered_markdown(at)
    assert any("onerror" in s for s in sources), "the crafted text reaches the page (so the test can fail)"
    assert_inert(sources)
    assert any(md(RUN_NAME) in s for s in sources), "the run's name is shown, escaped"


def test_crafted_clip_card_and_chips_render_as_text(crafted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Clip explorer's chips and the Error analysis cards (HTML with unsafe_allow_html) hold escaped text."""
    at = _open(crafted, monkeypatch, "clip_explorer", clip=HTML)
    sources = rendered_markdown(at)
    assert any("tag-chip" in s and "onerror" in s for s in sources), "a chip names a crafted tag"
    assert_inert(sources)
    assert any(f"Clip {md(HTML)}" in s for s in sources)
    at = _open(crafted, monkeypatch, "error_analysis", tag=HTML, split="all")
    assert_inert(rendered_markdown(at))


def test_md_and_code_keep_text_literal() -> None:
    assert md(IMAGE) == "&#33;&#91;p&#93;&#40;http:\u2060//example.invalid/p.png&#41;"
    assert md(HTML) == "&#60;img src=x onerror=alert&#40;1&#41;&#62;"
    assert md("upload-1.wav") == "upload-1.wav", "plain names stay readable"
    # what only makes syntax at the start of a line is escaped there: no heading, list or quote forms
    assert [md(s) for s in ("# a", " - a", "12. a", "> a")] == ["&#35; a", " &#45; a", "12&#46; a", "&#62; a"]
    assert md("a\n\n# b") == "a # b", "one line: no paragraph or heading can start inside"
    assert code("a`b") == "``a`b``" and code("`x") == "`` `x ``"


def test_a_small_table_is_one_markdown_element_whose_cells_stay_text() -> None:
    from dashboard import widgets

    drawn: list[str] = []

    class Where:
        def markdown(self, text: str) -> None:
            drawn.append(text)

    frame = pd.DataFrame({"stage": ["train", HTML], "status": ["complete", "a | b"], "AUC": [0.91234, float("nan")],
                          "clips": [12000, 7]})
    widgets.table(frame, where=Where())
    (text,) = drawn
    lines = text.split("\n")
    assert lines[0] == "| stage | status | AUC | clips |" and lines[1] == "|:--|:--|--:|--:|", "numbers right-aligned"
    assert lines[2] == "| train | complete | 0.912 | 12,000 |"
    assert "<img" not in text and IMAGE not in text and lines[3].count("|") == 5, "a cell's '|' starts no column"
    assert lines[3].endswith("| – | 7 |"), "a missing number shows as a dash"


def test_dashboard_config_hides_tracebacks_trusts_no_origin_and_icons_are_local() -> None:
    config = (REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8")
    setting = re.search(r'^showErrorDetails\s*=\s*"(\w+)"', config, re.MULTILINE)
    assert setting and setting.group(1) in ("type", "none"), "a traceback shows visitors server paths"
    # a full garbage collection after every rerun cost half the server's time of a page switch
    assert re.search(r"^postScriptGC\s*=\s*false", config, re.MULTILINE), "every rerun waits on gc.collect()"
    # Streamlit's default lets its cloud's domains drive an embedded app through postMessage
    assert re.search(r"^allowedOrigins\s*=\s*\[\s*\]", config, re.MULTILINE), "no site may drive the dashboard"
    # a Material page icon makes the browser fetch the favicon from fonts.gstatic.com
    assert ":material/" not in APP.read_text(encoding="utf-8")


def test_no_pickle_on_any_read_path() -> None:
    """Nothing in the product unpickles: no joblib / pickle loads, numpy and torch loads refuse pickles."""
    unpickling = re.compile(r"joblib\.load|pickle\.loads?\(|read_pickle|allow_pickle\s*=\s*True|weights_only\s*=\s*False")
    torch_load = re.compile(r"torch\.load\((?:[^()]|\([^()]*\))*\)")
    hits = []
    for package in ("pipeline", "dashboard", "models"):
        for source in sorted((REPO / package).rglob("*.py")):
            text = source.read_text(encoding="utf-8")
            hits += [f"{source.relative_to(REPO)}: {m.group(0)}" for m in unpickling.finditer(text)]
            hits += [f"{source.relative_to(REPO)}: {m.group(0)}" for m in torch_load.finditer(text)
                     if "weights_only=True" not in m.group(0)]
    assert not hits, f"a read path that can unpickle: {hits}"
