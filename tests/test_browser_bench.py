"""`python -m benchmarks browser` end to end on a tiny synthetic run: every step measured, every row reported.

Timings are not asserted (they depend on the machine); what is checked is that the benchmark
drives every page and interaction in two concurrent sessions (two browser contexts), and reports each.
Skips without Debian's Chromium, like tests/test_dashboard_browser.py.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import browser as bench
from benchmarks.cli import main as benchmarks_cli
from benchmarks.synthetic_run import build_synthetic_run

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
REPEAT = 1  # each interaction once a session: what is checked is that every step is driven and reported
INTERACTIONS = ("clip explorer: open a similar clip", "clip explorer: play (play() to 'playing')",
                "clip explorer: choose a clip in the picker", "clip explorer: move the threshold",
                "tag metrics: choose a tag", "tag metrics: move the threshold", "tag map: colour the clip map",
                "error analysis: switch section", "review queue: answer, next question")


def need_chromium() -> None:
    """Skip without Debian's Chromium or Playwright (the benchmarks never download a browser)."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed: install Debian's package with `sudo apt-get install chromium`")
    pytest.importorskip("playwright.async_api")


def tiny_runs(tmp_path: Path) -> Path:
    """A runs folder holding one small synthetic run, "tiny"."""
    runs = tmp_path / "runs"
    build_synthetic_run(runs / "tiny", n_clips=120, n_tags=24, seconds=6.0, audio_seconds=3.0, n_audio=2,
                        audio_format="wav", n_bootstrap=20)
    return runs


def table_rows(printed: str) -> list[list[str]]:
    """The cells of each row of a printed markdown table (the header row included)."""
    return [[c.strip() for c in line.split("|")[1:-1]] for line in printed.splitlines()
            if line.startswith("| ") and "---" not in line]


@pytest.mark.browser
def test_every_step_is_measured_in_two_concurrent_sessions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need_chromium()
    runs = tiny_runs(tmp_path)
    out = tmp_path / "figures.json"
    code = bench.main(["--runs", str(runs), "--run", "tiny", "--repeat", str(REPEAT), "--sessions", "2",
                       "--chromium", CHROMIUM, "--json", str(out), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0, captured.out + captured.err

    titles = [title for _, title in bench.PAGES]
    expected = {bench.FIRST_LOAD: 1, **{f"first visit: {t}": 1 for t in titles},
                **{f"page switch: {t}": REPEAT for t in titles}, **{step: REPEAT for step in INTERACTIONS}}
    figures = json.loads(out.read_text())
    assert figures["size"].startswith("120 clips x 24 tags")
    assert [s["sessions"] for s in figures["scenarios"]] == [2]
    for scenario in figures["scenarios"]:
        n = scenario["sessions"]
        rows = {r["step"]: r for r in scenario["rows"]}
        assert set(rows) == {*expected, bench.COLD_LOAD}, set(rows) ^ {*expected, bench.COLD_LOAD}
        assert rows.pop(bench.COLD_LOAD)["n"] == 1, "the freshly started server's first load, once"
        for step, count in expected.items():
            assert rows[step]["n"] == count * n, (n, step, rows[step])
            assert rows[step]["median"] <= rows[step]["p90"] <= rows[step]["max"], rows[step]
        samples = scenario["samples"]
        assert {s["session"] for s in samples} == set(range(n)), "every session measured its own steps"
        assert all(math.isfinite(s["ms"]) and s["ms"] >= 0 and s["render_ms"] >= s["ms"] for s in samples), samples
        reruns = [s for s in samples if not s["step"].startswith("clip explorer: play")]
        assert all(s["server_ms"] is not None and 0 <= s["server_ms"] <= s["ms"] + 50 for s in reruns), reruns
        assert all(s["server_cpu_ms"] is None and s["browser_cpu_ms"] is None and s["main_thread_ms"] is None
                   for s in samples), \
            "CPU per step is measured for one session alone"
        assert math.isfinite(scenario["overall_median"])
        assert scenario["load_before"] and scenario["load_after"]
    for step in [*expected, bench.COLD_LOAD]:  # the printed table: one row a step
        assert printed.count(f"| {step} ") == 1, step
    assert "## 2 sessions at once" in printed and "overall median" in printed


def _grows(meter: bench.CpuMeter, which: int, start: tuple[float, float], by: float) -> tuple[float, float]:
    """The meter's reading once figure ``which`` (0 server, 1 browser) has grown ``by`` seconds (60 s at most)."""
    deadline = time.monotonic() + 60  # a busy machine gives a busy loop its 0.5 s of CPU late
    while True:
        now = meter.read()
        assert now is not None
        if now[which] - start[which] >= by or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def test_cpu_meter_counts_the_server_and_the_processes_below_this_one() -> None:
    """The server's CPU, and that of this process's other children (where Chromium runs), grow with their work."""
    if not Path("/proc/self/stat").is_file():
        pytest.skip("CPU times are read from /proc (Linux)")
    busy = [sys.executable, "-c", "import time\nt = time.process_time()\n"
            "while time.process_time() - t < 0.5: pass\ntime.sleep(120)"]
    server = subprocess.Popen(busy)
    try:
        meter = bench.CpuMeter(server.pid)
        assert meter.available
        start = meter.read()
        assert start is not None
        middle = _grows(meter, 0, start, 0.4)  # the server works 0.5 s of CPU, then sleeps
        worker = subprocess.Popen(busy)  # a child of this process that is not the server: counted as the browser
        try:
            end = _grows(meter, 1, middle, 0.4)
        finally:
            worker.kill()
            worker.wait()
    finally:
        server.kill()
        server.wait()
    assert middle[0] - start[0] >= 0.4, (start, middle)
    assert middle[1] - start[1] < 0.2, "the server's work is not the browser's"
    assert end[1] - middle[1] >= 0.4, (middle, end)
    assert end[0] - middle[0] < 0.2, "the other child's work is not the server's"
    assert not bench.CpuMeter(2 ** 30).available, "no such process"


def test_every_chart_cost_variant_draws(tmp_path: Path) -> None:
    """Each variant's code runs (in-process, no browser): a broken variant fails here, not mid-benchmark."""
    from streamlit.testing.v1 import AppTest

    from benchmarks import chart_cost

    app = tmp_path / "charts_app.py"
    app.write_text(chart_cost._app_source())
    for name in chart_cost.VARIANTS:
        at = AppTest.from_file(str(app), default_timeout=60)
        at.query_params["v"] = name
        at.run()
        assert not at.exception, (name, at.exception)
        drawn = [*at.markdown, *at.get("vega_lite_chart"), *at.get("plotly_chart"), *at.dataframe,
                 *at.get("bidi_component")]  # the last: the light charts (dashboard.light_charts)
        assert name == "empty" or drawn, f"{name} drew nothing"


@pytest.mark.browser
def test_page_ab_alternates_two_dashboards(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need_chromium()
    from benchmarks import page_ab
    from pipeline.paths import REPO

    assert page_ab.main(["--baseline", str(REPO), "--runs", str(tiny_runs(tmp_path)), "--run", "tiny",
                         "--pages", ",tag_metrics", "--rounds", "1", "--chromium", CHROMIUM]) == 0
    rows = table_rows(capsys.readouterr().out)[1:]
    assert [r[0] for r in rows] == ["Overview", "Tag metrics"], "one row a page, in order"
    for row in rows:  # both sides measured: "old -> new" in every column
        for cell in row[1:]:
            old, new = (float(v) for v in cell.split("->"))
            assert old >= 0 and new >= 0, row


@pytest.mark.parametrize(("args", "message"), [
    (["--runs", "RUNS"], "--runs needs --run NAME"),
    (["--runs", "RUNS", "--run", "nothing"], "--run nothing: no run directory"),
    (["--synthetic", "3"], "--synthetic must be at least 10 clips, got 3"),
    (["--runs", "RUNS", "--run", "tiny", "--repeat", "0"], "--repeat must be at least 1, got 0"),
    (["--runs", "RUNS", "--run", "tiny", "--chromium", "/no/such/chromium"], "--chromium /no/such/chromium: no such file"),
])
def test_bad_options_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                         message: str) -> None:
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "manifest.json").write_text("{}")
    args = [str(tmp_path) if a == "RUNS" else a for a in args]
    assert benchmarks_cli(["browser", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err


def test_sessions_must_be_positive_counts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--synthetic", "100", "--sessions", "1,zero"])
    assert exit_.value.code == 2
    assert "--sessions takes counts separated by commas" in capsys.readouterr().err


@pytest.mark.browser
def test_chart_cost_times_each_variant(capsys: pytest.CaptureFixture[str]) -> None:
    need_chromium()
    from benchmarks import chart_cost

    variants = ["empty", "plotly_own", "image", "curve_vega"]
    assert chart_cost.main(["--variants", ",".join(variants), "--count", "1", "--repeat", "1",
                            "--chromium", CHROMIUM]) == 0
    rows = table_rows(capsys.readouterr().out)[1:]
    assert [r[0] for r in rows] == variants, "one row a variant, in order"
    for row in rows:
        assert float(row[2]) > 0 and float(row[3]) >= 0, row


@pytest.mark.parametrize(("args", "message"), [
    (["--variants", "plotly,pie"], "--variants: unknown pie"),
    (["--repeat", "0"], "--count and --repeat must be at least 1"),
    (["--chromium", "/no/such/chromium"], "--chromium /no/such/chromium: no such file"),
])
def test_chart_cost_bad_options_are_one_line_errors(capsys: pytest.CaptureFixture[str], args: list[str],
                                                    message: str) -> None:
    assert benchmarks_cli(["chart_cost", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err


@pytest.mark.parametrize(("args", "message"), [
    (["--baseline", "/no/such/checkout", "--runs", ".", "--run", "x"],
     "--baseline /no/such/checkout: no dashboard/app.py there"),
    (["--baseline", ".", "--runs", ".", "--run", "x", "--pages", "nowhere"], "--pages: unknown nowhere"),
    (["--baseline", ".", "--runs", ".", "--run", "x", "--rounds", "0"], "--rounds must be at least 1, got 0"),
])
def test_page_ab_bad_options_are_one_line_errors(capsys: pytest.CaptureFixture[str], args: list[str],
                                                 message: str) -> None:
    assert benchmarks_cli(["page_ab", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1, err
