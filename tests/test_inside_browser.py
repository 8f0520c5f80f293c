"""The "Inside the model" page in a real browser: pick a layer and a channel, then play what the channel hears.

Reuses the server, browser and page fixtures of `test_dashboard_browser` (Debian's Chromium through
Playwright against `streamlit run`; skipped where Chromium is absent) over a runs folder holding the
session's real tiny run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_dashboard_browser import browser, context, open_page, page, screenshot, server, wait_idle  # noqa: F401  (fixtures)

from pipeline.run import files as rf
from pipeline.run.rundir import RunDir

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """The runs folder `server` serves: the tiny run (a narrow musicnn) as "tiny"."""
    root = tmp_path_factory.mktemp("inside-browser-runs")
    (root / "tiny").symlink_to(tiny_run, target_is_directory=True)
    return root


def choose(page: Any, label: str, option: str) -> None:  # noqa: F811  (the page fixture's value)
    """Open the selectbox labelled ``label`` and click ``option``."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.click()
    page.get_by_role("option", name=option).first.click()
    wait_idle(page)


def test_pick_a_layer_a_channel_and_play(server: str, page: Any, runs: Path) -> None:  # noqa: F811
    clip = str(RunDir(runs / "tiny").read_table(rf.PREDICTIONS)["clip_id"].iat[0])
    open_page(page, server, "inside_model", f"run=tiny&clip={clip}")
    assert page.locator("h1").first.inner_text().strip() == "Inside the model"
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg')
    layers = json.loads((runs / "tiny" / rf.INSPECT).read_text())["layers"]
    last = layers[-1]
    choose(page, "Layer", f"{last['name']} · {last['channels']} ch · time")
    channel_box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Channel").first
    channel_box.click()
    options = page.get_by_role("option")
    assert options.count() == last["channels"]
    second = options.nth(1).inner_text().strip()
    options.nth(1).click()
    wait_idle(page)
    channel = second.split(" ")[0]
    page.get_by_text(f"Through channel {channel} of {last['name']}").wait_for()
    audio = page.locator("audio").nth(1)  # the original first, the channel beside it
    audio.wait_for(state="attached")
    started = audio.evaluate("""async (el) => {
        el.muted = true;  // headless: no sound card needed, playback still advances
        await el.play();
        await new Promise((resolve) => setTimeout(resolve, 1200));
        return {time: el.currentTime, error: el.error ? el.error.code : null, duration: el.duration};
    }""")
    assert started["error"] is None, f"the browser could not play the channel: {started}"
    assert started["time"] > 0.2, f"playback did not advance: {started}"
    screenshot(page, "inside-the-model")
