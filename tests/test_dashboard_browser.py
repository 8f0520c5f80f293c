"""End to end: `streamlit run` in a subprocess, driven by headless Chromium through Playwright.

Uses Debian's ``chromium`` package (``sudo apt-get install chromium``; `.ci/run` installs it),
never Playwright's own browser download. Screenshots of every step are saved in
``test-artifacts/`` (git-ignored) for a person to look at.

The dashboard stays offline: every request a page makes is recorded, and none may leave
127.0.0.1. A crafted run (HTML and Markdown in its clip ids, tags and names, from
`test_untrusted_inputs.build_crafted_run`) must render as text: no image, no script, no fetch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from test_unlabeled_runs import NO_TRUTH, copy_clips
from test_untrusted_inputs import HTML, IMAGE, RUN_NAME, build_crafted_run

from benchmarks.synthetic_run import build_synthetic_run, write_tone

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "dashboard" / "app.py"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--autoplay-policy=no-user-gesture-required"]
# url path -> the page's title (st.Page url paths follow the file names in dashboard/views/)
PAGES = {"": "Overview", "clip_explorer": "Clip explorer", "tag_metrics": "Tag metrics",
         "error_analysis": "Error analysis", "tag_map": "Tag map", "tag_a_file": "Tag a file",
         "compare_runs": "Compare runs", "review": "Review queue"}
# A chart of the page (dashboard.widgets.chart: Vega-Lite or plotly), and one that has been drawn.
CHART = '[data-testid="stVegaLiteChart"], [data-testid="stPlotlyChart"]'
DRAWN_CHART = '[data-testid="stVegaLiteChart"] svg.marks, [data-testid="stPlotlyChart"] .main-svg'
STEP_TIMEOUT_MS = 60_000  # a busy CI machine can be slow to run a page the first time


OWN_MUSIC = "own-music"  # the tiny run's model scored on a folder of audio without tags (no ground truth)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    from pipeline.cli.main import main
    from pipeline.run.rundir import RunDir
    from pipeline.sources.loader import corpus_from_record

    root = tmp_path_factory.mktemp("browser-runs")
    common = dict(n_clips=120, n_tags=24, seconds=6.0, audio_seconds=3.0, n_audio=2, audio_format="wav",
                  n_bootstrap=20)
    build_synthetic_run(root / "complete", seed=0, **common)
    build_synthetic_run(root / "second", seed=1, **common)
    build_crafted_run(root)
    folder = tmp_path_factory.mktemp("my-music")
    copy_clips(corpus_from_record(RunDir(tiny_run).manifest()["corpus"]), folder)
    assert main(["score", str(tiny_run), "--corpus", str(folder), "--out", str(root / OWN_MUSIC), "--no-progress"]) == 0
    return root


@pytest.fixture(scope="module")
def server(runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard served by `streamlit run` on a free local port (as the browser benchmark serves it)."""
    from benchmarks.browser import serve
    from pipeline.errors import PipelineError
    from pipeline.paths import reviews_root

    log_path = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    try:
        with serve(runs, reviews_root(), log_path) as (base, _pid):
            yield base
    except PipelineError as exc:  # the server did not come up: its log says why
        pytest.fail(f"{exc}\n{log_path.read_text(errors='replace') if log_path.is_file() else ''}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed: install Debian's package with `sudo apt-get install chromium` "
                    "(the browser tests never download Playwright's own browser)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def context(browser: Any) -> Iterator[Any]:
    """One browser profile for the module: its HTTP and code caches keep Streamlit's and plotly's
    scripts between tests, as a person's browser does between visits (a fresh profile per test
    parsed them again every time)."""
    # A tall window: Streamlit scrolls inside the page, so a screenshot shows one window's worth.
    context = browser.new_context(viewport={"width": 1440, "height": 2400})
    yield context
    context.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A new tab for each test: its own Streamlit session."""
    tab = context.new_page()
    tab.set_default_timeout(STEP_TIMEOUT_MS)
    yield tab
    tab.close()


def wait_idle(page: Any) -> None:
    """Wait until the script run the last action started has finished (and stayed finished)."""
    idle = '[data-testid="stApp"][data-test-script-state="notRunning"]'
    page.wait_for_selector(idle)
    page.wait_for_timeout(400)  # a widget change may start a rerun a moment later
    page.wait_for_selector(idle)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()


def open_page(page: Any, base: str, path: str, query: str) -> None:
    page.goto(f"{base}/{path}?{query}")
    wait_idle(page)
    page.wait_for_selector("h1")


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def metric_value(page: Any, label: str) -> int:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return int(box.locator('[data-testid="stMetricValue"]').inner_text().replace(",", ""))


@pytest.mark.parametrize("path", list(PAGES))
def test_each_page_opens(server: str, page: Any, path: str) -> None:
    open_page(page, server, path, "run=complete&vs=second")
    assert page.locator("h1").first.inner_text().strip() == PAGES[path]
    assert "run=complete" in page.url, "the selected run is in the URL"
    if path in ("", "tag_metrics", "tag_map", "compare_runs", "clip_explorer"):
        page.wait_for_selector(DRAWN_CHART)
    screenshot(page, path or "overview")


def test_play_a_clip(server: str, page: Any) -> None:
    open_page(page, server, "clip_explorer", "run=complete&clip=syn000003")
    assert "Clip syn000003" in page.locator("h3").first.inner_text()
    audio = page.locator("audio").first
    audio.wait_for(state="attached")
    started = audio.evaluate("""async (el) => {
        el.muted = true;  // headless: no sound card needed, playback still advances
        await el.play();
        await new Promise((resolve) => setTimeout(resolve, 1200));
        return {time: el.currentTime, error: el.error ? el.error.code : null, paused: el.paused};
    }""")
    assert started["error"] is None, f"the browser could not play the clip: {started}"
    assert started["time"] > 0.2, f"playback did not advance: {started}"
    screenshot(page, "play-a-clip")


def test_the_clip_view_reads_a_tags_activation_under_the_pointer(server: str, page: Any, runs: Path) -> None:
    import numpy as np
    import pandas as pd

    from pipeline.run import rundir as rd

    open_page(page, server, "clip_explorer", "run=complete&clip=syn000003")
    taggram = page.locator(".cv-taggram")  # in the clip view's shadow root, which Playwright's locators enter
    taggram.scroll_into_view_if_needed()
    labels = page.locator(".cv-label").all_inner_texts()
    image = taggram.locator("img")
    box = image.bounding_box()  # the image spans the taggram's own stretch of the time axis
    frames = image.evaluate("(img) => img.naturalWidth")
    frame, row = frames // 2, 1
    page.mouse.move(box["x"] + box["width"] * (frame + 0.5) / frames,
                    box["y"] + box["height"] * (row + 0.5) / len(labels))
    tip = page.locator(".lc-tip")
    tip.wait_for(state="visible")
    tag, _, value = tip.inner_text().rpartition(": ")
    assert tag.startswith(f"{labels[row]} at ") and tag.endswith(" s"), tip.inner_text()
    run = runs / "complete"
    index = pd.read_parquet(run / rd.TAGGRAMS_INDEX).set_index("clip_id").loc["syn000003"]
    stored = np.load(run / rd.TAGGRAMS)[int(index["offset"]) + frame]
    names = [c.removeprefix(rd.PROB_PREFIX) for c in pd.read_parquet(run / rd.PREDICTIONS) if c.startswith(rd.PROB_PREFIX)]
    assert float(value) == pytest.approx(float(stored[names.index(labels[row])]), abs=0.006)
    page.mouse.move(box["x"] - 40, box["y"] - 40)
    tip.wait_for(state="hidden")


def test_the_roc_curve_reads_the_threshold_of_the_point_under_the_pointer(server: str, page: Any,
                                                                          runs: Path) -> None:
    import numpy as np
    import pandas as pd

    from dashboard import analysis
    from pipeline.run import rundir as rd

    open_page(page, server, "tag_metrics", "run=complete&split=test")
    roc = page.locator(".cu-plot").first
    roc.scroll_into_view_if_needed()
    tag = page.locator(".lc-title").filter(has_text="ROC curve").inner_text().rsplit("'", 2)[1]
    box = roc.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
    tip = page.locator(".lc-tip")
    tip.wait_for(state="visible")
    fpr, tpr, threshold = (float(part.split()[-1]) for part in tip.inner_text().split(", "))
    frame = pd.read_parquet(runs / "complete" / rd.PREDICTIONS)
    frame = frame[frame["split"] == "test"]
    curve = analysis.curves(frame[rd.true_column(tag)].to_numpy(), frame[rd.prob_column(tag)].to_numpy())
    i = int(np.argmin(np.abs(curve["fpr"] - fpr) + np.abs(curve["tpr"] - tpr)))
    assert (curve["fpr"][i], curve["tpr"][i]) == (pytest.approx(fpr, abs=6e-4), pytest.approx(tpr, abs=6e-4)), \
        "the hover names a point of the tag's ROC curve"
    assert threshold == pytest.approx(min(curve["roc_thresholds"][i], 1.0), abs=6e-4)


def test_move_the_threshold(server: str, page: Any) -> None:
    open_page(page, server, "tag_metrics", "run=complete&split=all&threshold=0.50")
    before = metric_value(page, "False positives")
    slider = page.locator('[data-testid="stSidebar"] [data-testid="stSlider"]').first
    track = slider.locator('[role="group"] > div').first.bounding_box()
    page.mouse.click(track["x"] + 0.25 * track["width"], track["y"] + track["height"] / 2)  # a quarter along
    wait_idle(page)
    value = slider.locator('[data-testid="stSliderThumbValue"]').inner_text().strip()
    assert 0.15 <= float(value) <= 0.35, value
    page.wait_for_function(f"() => location.search.includes('threshold={value}')")  # the URL follows the state
    after = metric_value(page, "False positives")
    assert after > before, f"a lower threshold must predict more: {before} -> {after}"
    screenshot(page, "threshold-moved")


def test_open_the_tag_cooccurrence_and_find_it_open_on_return(server: str, page: Any) -> None:
    open_page(page, server, "tag_metrics", "run=complete")
    heatmap = '[data-testid="stExpander"] [data-testid="stVegaLiteChart"] svg.marks'
    assert page.locator(heatmap).count() == 0, "closed, it is not drawn"
    page.locator('[data-testid="stExpander"] summary').filter(has_text="Tag co-occurrence").click()
    page.wait_for_selector(heatmap)
    wait_idle(page)
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Overview").click()
    wait_idle(page)
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Tag metrics").click()
    wait_idle(page)
    page.wait_for_selector(heatmap)  # drawn again: the user left it open
    screenshot(page, "tag-cooccurrence")


def test_upload_a_file_and_see_its_tags(server: str, page: Any, tmp_path: Path) -> None:
    upload = write_tone(tmp_path / "upload.wav", 4.0, (220.0, 277.2, 330.0))
    open_page(page, server, "tag_a_file", "run=complete")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(upload))
    page.wait_for_selector('[data-testid="stAlertContentSuccess"]')
    wait_idle(page)
    assert "upload.wav" in page.locator('[data-testid="stAlertContentSuccess"]').inner_text()
    assert page.locator(CHART).count() >= 1, "top tags"
    page.locator(".cv-taggram img").wait_for()  # the taggram (dashboard.light_charts)
    assert page.locator(".cv-label").count() == 15, "the top 15 tags, a row each"
    assert page.get_by_text("Nearest clips in the corpus").count() == 1
    screenshot(page, "tag-a-file")


def test_open_a_clip_from_error_analysis(server: str, page: Any) -> None:
    open_page(page, server, "error_analysis", "run=complete&split=all&tag=guitar")
    # the first card of the first list: its text names the clip, its button is the page's first "Open"
    text = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="p(guitar)").first
    clip_id = text.locator("strong").first.inner_text().strip()
    page.locator('[data-testid^="stBaseButton"]').filter(has_text="Open").first.click()
    page.wait_for_function("() => location.pathname.endsWith('/clip_explorer')")
    wait_idle(page)
    assert f"clip={clip_id}" in page.url
    assert f"Clip {clip_id}" in page.locator("h3").first.inner_text()
    screenshot(page, "opened-from-error-analysis")


LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def record_requests(page: Any) -> list[str]:
    """Start recording the URL of every request the page makes (documents, scripts, fonts, images, ...)."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    return urls


def leaving(urls: list[str]) -> list[str]:
    """The requests that would leave the machine (inline data: and blob: URLs never do)."""
    return [u for u in urls if urlsplit(u).scheme not in ("data", "blob", "about")
            and urlsplit(u).hostname not in LOCAL_HOSTS]


def test_no_request_leaves_the_machine(server: str, page: Any) -> None:
    urls = record_requests(page)
    for path in PAGES:
        open_page(page, server, path, "run=complete&vs=second")
        if path in ("", "tag_metrics", "tag_map", "compare_runs", "clip_explorer"):
            page.wait_for_selector(DRAWN_CHART)
        page.wait_for_timeout(500)  # the favicon and fonts load after the page has drawn
    assert len(urls) > len(PAGES), "the recorder saw the pages load"
    assert not leaving(urls), f"requests left the machine: {sorted(set(leaving(urls)))}"


@pytest.mark.parametrize("path", list(PAGES))
def test_a_crafted_run_renders_text_and_fetches_nothing(server: str, page: Any, path: str) -> None:
    urls = record_requests(page)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    query = urlencode({"run": RUN_NAME, "vs": "complete", "clip": HTML, "tag": IMAGE, "split": "all"})
    open_page(page, server, path, query)
    page.wait_for_timeout(1000)
    screenshot(page, f"crafted-{path or 'overview'}")
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert "onerror" in body, "the crafted names are on the page, as text"
    injected = page.locator('img[src="x"], img[src*="example.invalid"], img[src$="p.png"], '
                            '[data-testid="stMain"] [data-testid="stIconMaterial"]:text("home")')
    assert injected.count() == 0, injected.first.evaluate("e => e.outerHTML")
    assert not dialogs, f"a script from the run ran: {dialogs}"
    fetched = [u for u in urls if urlsplit(u).hostname == "example.invalid" or urlsplit(u).path.endswith(("/x", "/p.png"))]
    assert not fetched, f"the crafted run made the page fetch {fetched}"
    assert not leaving(urls), f"requests left the machine: {sorted(set(leaving(urls)))}"


def test_a_folder_of_music_without_tags_opens_on_every_page(server: str, page: Any) -> None:
    """The run `score --corpus FOLDER --out NEW` made: every page says it has no annotations, none shows an error."""
    for path, title in PAGES.items():
        open_page(page, server, path, f"run={OWN_MUSIC}&vs=complete")
        assert page.locator("h1").first.inner_text().strip() == title
        if path in ("", "clip_explorer", "tag_map"):
            page.wait_for_selector(DRAWN_CHART)  # predictions, maps: real charts
        screenshot(page, f"own-music-{path or 'overview'}")
        assert page.get_by_text(NO_TRUTH).count() >= 1, f"{path or 'overview'}: the no-annotation sentence"
        errors = page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')
        assert errors.count() == 0, f"{path or 'overview'}: {errors.first.inner_text()}"
        body = page.locator('[data-testid="stMain"]').inner_text()
        assert "ROC-AUC (macro)" not in body and "False positives" not in body, path


def question_heading(page: Any) -> str:
    return page.locator("h4").filter(has_text="Question").first.inner_text()


def test_answer_three_questions_reload_and_export(server: str, page: Any, runs: Path, tmp_path: Path) -> None:
    """Answer by clicking; the answers are there after a reload and in `review export`."""
    import pandas as pd

    from pipeline.review.store import VerdictStore, database_path
    from pipeline.run.rundir import RunDir

    open_page(page, server, "review", "run=complete&split=all")
    asked = []
    for n, answer in enumerate(("Present", "Absent", "Unsure"), 1):
        heading = question_heading(page)
        assert f"Question {n} of" in heading, heading
        asked.append(heading)
        page.get_by_role("button", name=answer).click()
        page.wait_for_function(f"() => [...document.querySelectorAll('h4')].some(h => h.innerText.includes('Question {n + 1} of'))")
    wait_idle(page)
    screenshot(page, "review-answered")
    store = VerdictStore(database_path(RunDir(runs / "complete").manifest()["corpus"]["root"]))
    answers = sorted(store.current(), key=lambda v: v.id)
    assert [v.verdict for v in answers] == ["present", "absent", "unsure"]
    for heading, verdict in zip(asked, answers):
        assert verdict.clip_id in heading and verdict.tag in heading, (heading, verdict)

    page.reload()  # the browser comes back: the answers are still there
    wait_idle(page)
    page.get_by_text("Unreviewed only").click()  # show the answered questions too
    wait_idle(page)
    assert "3 of" in page.locator('[data-testid="stProgress"]').first.inner_text()
    assert "Question 1 of" in question_heading(page)
    assert "absent" not in page.locator('[data-testid="stCaptionContainer"]').filter(
        has_text="Earlier verdicts").first.inner_text()  # question 1 was answered present

    out = tmp_path / "export"
    done = subprocess.run([sys.executable, "-m", "pipeline", "review", "export", "--run", str(runs / "complete"),
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    exported = pd.read_csv(out / "verdicts.csv", dtype=str)
    assert sorted(zip(exported["clip_id"], exported["tag"], exported["verdict"])) == sorted(
        (v.clip_id, v.tag, v.verdict) for v in answers)
