"""``python -m benchmarks browser``: the dashboard in a real browser, from a user's action to the page settled.

Starts ``streamlit run dashboard/app.py`` on a free local port (headless, no file watcher, no usage
statistics; review answers go to a temporary verdict database, ``$MUSICTAG_REVIEWS``) and drives
Debian's Chromium (``/usr/bin/chromium``, never Playwright's own download) with Playwright's async
API. Each browser context is its own Streamlit session, so ``--sessions 5`` runs five users at once
in one process.

What is timed, in the browser's own clock (``performance.now()``):

- an init script watches the ``data-test-script-state`` attribute of ``[data-testid="stApp"]``
  (``running`` while the server runs the page's script, ``notRunning`` once it has finished, for
  a whole-page rerun and for a fragment's rerun alike) and records every input event;
- an action starts at its input event (``t0``: the click a script dispatches, or the key or mouse
  event Playwright sends), and the page is *settled* once the script has run and then neither the
  state nor the server's WebSocket messages have changed for a quiet period (300 ms, not counted:
  a widget may start a second rerun a moment after the first); the time is the later of the last
  state change and the first animation frame after the last message (a quick rerun's ``running``
  and ``notRunning`` can reach React in one batch and never show in the attribute);
- *rendered* is, in addition, the moment no element of the page still shows its loading skeleton
  (Streamlit draws a placeholder while a component's code, e.g. plotly's, is fetched);
- the first load runs from the navigation's start to settled, in a fresh browser context; play
  runs from ``audio.play()`` to the ``playing`` event.

Targets (issue 12, on 2 cores): median <= 300 ms and p90 <= 500 ms for every page switch and
interaction; first load <= 3 s at MagnaTagATune scale; with 5 concurrent sessions, median <= 600 ms.

Examples::

    MUSICTAG_DATA=/tmp/demo-data python -m benchmarks browser --runs /tmp/demo-data/runs --run demo
    python -m benchmarks browser --synthetic 25863 --out /tmp/bench --sessions 1,5 --json before.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.dashboard import reusable_synthetic_run
from benchmarks.synthetic_run import MTT_CLIPS, build_synthetic_run
from pipeline.errors import ParameterError, PipelineError
from pipeline.io import write_json
from pipeline.paths import REPO, REVIEWS_ENV

log = logging.getLogger(__name__)

APP = REPO / "dashboard" / "app.py"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                 "--disable-backgrounding-occluded-windows", "--autoplay-policy=no-user-gesture-required"]
# (url path, title) in the sidebar's order; st.Page url paths follow the file names in dashboard/views/.
PAGES: tuple[tuple[str, str], ...] = (
    ("", "Overview"), ("tag_metrics", "Tag metrics"), ("compare_runs", "Compare runs"),
    ("clip_explorer", "Clip explorer"), ("error_analysis", "Error analysis"), ("review", "Review queue"),
    ("tag_a_file", "Tag a file"), ("tag_map", "Tag map"), ("inside_model", "Inside the model"))
MEDIAN_TARGET_MS = 300.0
P90_TARGET_MS = 500.0
FIRST_LOAD_TARGET_S = 3.0
SESSIONS_MEDIAN_TARGET_MS = 600.0
COLD_LOAD = "first load, server just started"
FIRST_LOAD = "first load"
QUIET_MS = 300  # the state must stay notRunning this long to count as settled (not counted in the time)
START_TIMEOUT_S = 120
STEP_TIMEOUT_MS = 120_000  # a first load at MTT scale on busy cores can take a while; a hang still ends
WAIT_TIMEOUT_MS = 60_000  # for an element to appear before an action
OPEN_TRIES, OPEN_WAIT_MS = 5, 5_000  # clicks on a selectbox until its list opens, and the wait after each
VIEWPORT = {"width": 1440, "height": 1000}

# Installed in every page before its own scripts: records the script-state transitions and input events.
INIT_SCRIPT = r"""
(() => {
  const bench = window.__bench = {states: [], inputs: []};
  const ATTR = 'data-test-script-state';
  // Watched on the whole document (filtered to the one attribute, so cheap): a remounted app
  // element is still seen. A record carries the value before its change; the value after is the
  // next record's old value for the same element, or the element's current one.
  new MutationObserver((records) => {
    const now = performance.now();
    records.forEach((r, i) => {
      const next = records.slice(i + 1).find((x) => x.target === r.target);
      bench.states.push([next ? next.oldValue : r.target.getAttribute(ATTR), now]);
    });
  }).observe(document, {subtree: true, attributes: true, attributeFilter: [ATTR], attributeOldValue: true});
  // Every message from the server, and the first animation frame after it: a quick rerun's
  // "running" and "notRunning" can reach React in one batch and never show in the attribute, but
  // its messages (new session, deltas, script finished) always arrive.
  bench.messages = [];
  bench.frames = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => {
        bench.messages.push(performance.now());
        requestAnimationFrame(() => bench.frames.push(performance.now()));
      });
    }
  };
  // The end of every long task (50 ms or more) on the main thread: a chart library draws after
  // the message that carried its figure (plotly lays out in later tasks), and the page is not
  // settled while that runs.
  bench.longTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) bench.longTasks.push(e.startTime + e.duration);
  }).observe({type: 'longtask', buffered: true});
  bench.current = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app ? app.getAttribute(ATTR) : null;
  };
  for (const type of ['pointerdown', 'mousedown', 'keydown', 'click'])
    window.addEventListener(type, (e) => bench.inputs.push([type, e.timeStamp]), true);
  bench.arm = () => { bench.mark = bench.states.length; bench.inputMark = bench.inputs.length;
                      bench.messageMark = bench.messages.length; bench.longMark = bench.longTasks.length;
                      bench.armedAt = performance.now(); };
  // Resolves once the script has run (a state change or a message since the action) and then nothing
  // has changed for `quiet` ms: settled is the latest of the last state change, the first frame
  // drawn after the last message and the end of the last long task. Rejects at `timeout`.
  bench.settle = (quiet, timeout, fromStart) => new Promise((resolve, reject) => {
    const mark = fromStart ? 0 : bench.mark, messageMark = fromStart ? 0 : bench.messageMark;
    const longMark = fromStart ? 0 : bench.longMark;
    const began = performance.now();
    let settled = null, clearSince = null;  // clearSince: since when no loading skeleton is on the page
    const tick = () => {
      const now = performance.now(), seen = bench.states.slice(mark), heard = bench.messages.slice(messageMark);
      // Only a skeleton the user can see counts (one in a collapsed expander or a hidden tab does not).
      if ([...document.querySelectorAll('[data-testid="stSkeleton"]')].some((e) => e.checkVisibility())) clearSince = null;
      else if (clearSince === null) clearSince = now;
      const ran = seen.some(([s]) => s === 'running') || heard.length > 0;
      const lastState = seen.length ? seen[seen.length - 1][1] : 0;
      const lastMessage = heard.length ? heard[heard.length - 1] : 0;
      const frame = bench.frames.find((t) => t >= lastMessage);
      const long = bench.longTasks.slice(longMark);
      const last = Math.max(lastState, heard.length ? (frame === undefined ? Infinity : frame) : 0,
                            long.length ? Math.max(...long) : 0);
      if (settled === null && ran && bench.current() === 'notRunning' && now - last >= quiet) settled = last;
      if (settled !== null && clearSince !== null) {
        const input = bench.inputs.slice(fromStart ? 0 : bench.inputMark)[0];
        const t0 = fromStart ? 0 : (input ? input[1] : bench.armedAt);
        const exception = document.querySelector('[data-testid="stException"]');
        resolve({t0, settled, rendered: Math.max(settled, clearSince), messages: heard.length,
                 lastMessage: heard.length ? lastMessage : null,
                 stateSeen: seen.some(([s]) => s === 'running'),
                 exception: exception ? exception.innerText.slice(0, 500) : null});
        return;
      }
      if (now - began > timeout) {
        reject(new Error(`not settled after ${timeout} ms (script states since the action: ${JSON.stringify(seen)}, `
                         + `now ${bench.current()}, ${heard.length} messages, ${location.href})`));
        return;
      }
      setTimeout(tick, settled === null ? 10 : 5);
    };
    tick();
  });
})();
"""

# Waits for settled (the init script's definition): called with [quiet ms, timeout ms, from the start].
SETTLE = "([q, t, s]) => window.__bench.settle(q, t, s)"
# Clicks the sidebar's link to a page, matched on the link's resolved URL (a CSS match on href would
# compare the attribute's text); called with the page's full URL.
SWITCH = """(href) => { const a = [...document.querySelectorAll('[data-testid="stSidebarNav"] a')]
                       .find((x) => x.href === href);
                    if (!a) throw new Error('no sidebar link to ' + href);
                    window.__bench.arm(); a.click(); }"""
# A click dispatched from the page itself, so t0 is the click event's own timestamp.
_CLICK = """([selector, index]) => {
  const all = [...document.querySelectorAll(selector)];
  if (!all.length) throw new Error('nothing matches ' + selector);
  window.__bench.arm();
  all[index % all.length].click();
}"""
_PLAY = """async (el) => {
  el.muted = true;  // headless: no sound card needed, playback still advances
  el.currentTime = 0;
  const playing = new Promise((resolve) => el.addEventListener('playing', (e) => resolve(e.timeStamp), {once: true}));
  const t0 = performance.now();
  await el.play();
  const t1 = await playing;
  el.pause();
  return t1 - t0;
}"""


@dataclass
class Sample:
    """One timed action: milliseconds from the action to the page settled, and to the page rendered."""

    step: str
    ms: float
    render_ms: float
    session: int = 0
    state_seen: bool = True  # the script state showed "running" (else only the server's messages told)
    server_ms: float | None = None  # to the server's last message (its script finished), None without one
    server_cpu_ms: float | None = None  # CPU the server process spent on the step (one session only)
    browser_cpu_ms: float | None = None  # CPU Chromium's processes spent on it, quiet period included
    main_thread_ms: float | None = None  # the page's main thread busy (CDP TaskDuration), one session only


@dataclass
class Timings:
    """Every sample of one scenario run (one or several concurrent sessions)."""

    sessions: int
    samples: list[Sample] = field(default_factory=list)

    def by_step(self) -> dict[str, list[Sample]]:
        out: dict[str, list[Sample]] = {}
        for s in self.samples:
            out.setdefault(s.step, []).append(s)
        return out


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------
def add_chromium_option(parser: argparse.ArgumentParser) -> None:
    """``--chromium``: Debian's browser by default (the benchmarks never use Playwright's download)."""
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium",
                        help="the Chromium executable (Debian's package; never Playwright's download)")


def check_chromium(path: str) -> None:
    if not Path(path).is_file():
        raise ParameterError(f"--chromium {path}: no such file; install Debian's package "
                             "(`sudo apt-get install chromium`)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(runs: Path | None, reviews: Path, log_path: Path, *, app: Path = APP,
          cwd: Path = REPO) -> Iterator[tuple[str, int]]:
    """``streamlit run dashboard/app.py -- --runs RUNS`` on a free local port; yields its base URL and pid.

    ``app`` serves another script (with ``runs`` None: no arguments), as `benchmarks.chart_cost` does;
    ``cwd`` is where it starts, whose ``.streamlit/config.toml`` it reads (another checkout's, for
    `benchmarks.page_ab`).
    """
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"] + ([] if runs is None else ["--", "--runs", str(runs)])
    env = {**os.environ, REVIEWS_ENV: str(reviews)}  # review answers never land in the user's database
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise PipelineError(f"streamlit exited with {proc.returncode}; its log: {log_path}")
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as answer:
                    if answer.read().strip() == b"ok":
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise PipelineError(f"streamlit not healthy after {START_TIMEOUT_S} s; its log: {log_path}")
            time.sleep(0.3)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds: user + system) of a Linux process, None when it is gone or unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (name) "; a name may hold spaces
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds of the server process and of this process's Chromium (every process under it), via /proc.

    A figure steadier than wall time on a shared machine: what a step costs, not how long it
    waited for a core. Linux only; elsewhere `available` is False and no CPU is reported.
    """

    def __init__(self, server_pid: int, others: tuple[int, ...] = ()) -> None:
        self.server_pid = server_pid
        self.servers = {server_pid, *others}  # other servers started here are not the browser either
        self.available = Path(f"/proc/{server_pid}/stat").is_file()

    def read(self) -> tuple[float, float] | None:
        if not self.available:
            return None
        server = _proc_stat(self.server_pid)
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
                stats[int(entry.name)] = stat
        # Chromium is started by Playwright's driver, a child of this process: everything below us but the server.
        children: dict[int, list[int]] = {}
        for pid, (parent, _) in stats.items():
            children.setdefault(parent, []).append(pid)
        below, todo = [], [os.getpid()]
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in self.servers:  # a server (also started here) and what it starts are not the browser
                    below.append(child)
                    todo.append(child)
        browser = sum(stats[p][1] for p in below)
        return (server[1] if server else 0.0), browser


# ---------------------------------------------------------------------------------------------
# One user's session
# ---------------------------------------------------------------------------------------------
def _key(key: str) -> str:
    """The CSS class Streamlit gives the container of the widget with ``key`` (non-word characters become '-')."""
    return ".st-key-" + "".join(c if c.isalnum() or c in "_-" else "-" for c in key)


class Session:
    """One browser context (one Streamlit session) and the actions a user takes in it."""

    def __init__(self, context: Any, page: Any, base: str, run: str, index: int, timings: Timings,
                 shots: Path | None, meter: CpuMeter | None, devtools: Any = None) -> None:
        self.context, self.page, self.base, self.run, self.index = context, page, base, run, index
        self.timings, self.shots, self.meter, self.devtools = timings, shots, meter, devtools

    @classmethod
    async def open(cls, browser: Any, base: str, run: str, index: int, timings: Timings,
                   shots: Path | None = None, meter: CpuMeter | None = None) -> Session:
        """A fresh browser context on ``base``; ``meter`` (one session alone) times each step's CPU too."""
        context = await browser.new_context(viewport=VIEWPORT)
        await context.add_init_script(INIT_SCRIPT)
        page = await context.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        devtools = None
        if meter is not None:  # the main thread's busy time: Chromium's own counter (DevTools protocol)
            devtools = await context.new_cdp_session(page)
            await devtools.send("Performance.enable")
        return cls(context, page, base, run, index, timings, shots, meter, devtools)

    async def _busy(self) -> float | None:
        """Seconds the page's main thread has run tasks so far (None without the DevTools session)."""
        if self.devtools is None:
            return None
        metrics = (await self.devtools.send("Performance.getMetrics"))["metrics"]
        return next((m["value"] for m in metrics if m["name"] == "TaskDuration"), None)

    async def close(self) -> None:
        await self.context.close()

    def _record(self, step: str, result: dict[str, Any], cpu: tuple[float, float] | None,
                busy: tuple[float | None, float | None] = (None, None)) -> None:
        t0 = result["t0"]
        sample = Sample(step, result["settled"] - t0, result["rendered"] - t0, self.index, result["stateSeen"],
                        None if result["lastMessage"] is None else result["lastMessage"] - t0)
        after = self.meter.read() if self.meter is not None else None
        if cpu is not None and after is not None:
            sample.server_cpu_ms, sample.browser_cpu_ms = ((b - a) * 1000 for a, b in zip(cpu, after))
        if None not in busy:
            sample.main_thread_ms = (busy[1] - busy[0]) * 1000
        self.timings.samples.append(sample)

    async def _settled(self, step: str, *, from_start: bool = False) -> dict[str, Any]:
        try:
            result = await self.page.evaluate(SETTLE, [QUIET_MS, STEP_TIMEOUT_MS, from_start])
        except Exception as exc:
            raise PipelineError(f"{step}: {await self._fail(step, exc)}") from exc
        if result["exception"]:
            raise PipelineError(f"{step}: the page shows an error: {result['exception']}{await self._fail(step)}")
        return result

    async def _fail(self, step: str, exc: BaseException | None = None) -> str:
        text = str(exc).splitlines()[0] if exc is not None else ""
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            shot = self.shots / f"failed-s{self.index}-{''.join(c if c.isalnum() else '-' for c in step)[:60]}.png"
            with contextlib.suppress(Exception):
                await self.page.screenshot(path=str(shot), full_page=True)
                text += f" (screenshot {shot})"
        return text

    async def _measure(self, step: str, action: Callable[[], Any]) -> None:
        """Arm, act, wait until settled; record from the action's input event."""
        cpu = self.meter.read() if self.meter is not None else None
        busy = await self._busy()
        await action()
        result = await self._settled(step)
        self._record(step, result, cpu, (busy, await self._busy()))

    async def load(self, path: str = "", step: str = FIRST_LOAD) -> None:
        """Open ``path`` in this (fresh) context: from the navigation's start to settled."""
        cpu = self.meter.read() if self.meter is not None else None
        busy = await self._busy()
        await self.page.goto(f"{self.base}/{path}?run={self.run}")
        result = await self._settled(step, from_start=True)
        self._record(step, {**result, "t0": 0.0}, cpu, (busy, await self._busy()))

    async def wait_for(self, selector: str) -> None:
        """Wait until ``selector`` is on the page (its component may still be loading after the rerun)."""
        try:
            await self.page.wait_for_selector(selector, state="attached", timeout=WAIT_TIMEOUT_MS)
        except Exception as exc:
            raise PipelineError(f"waiting for {selector}: {await self._fail(selector, exc)}") from exc

    async def click(self, step: str, selector: str, index: int = 0) -> None:
        """Click the ``index``-th element matching ``selector`` from within the page and time the rerun."""
        await self.wait_for(selector)
        await self._measure(step, lambda: self.page.evaluate(_CLICK, [selector, index]))

    async def switch(self, path: str, step: str | None = None) -> None:
        """Click the sidebar's link to page ``path`` (timed when ``step`` is given)."""
        await self.wait_for('[data-testid="stSidebarNav"] a')
        if step is None:
            await self.page.evaluate(SWITCH, f"{self.base}/{path}")
            await self._settled(f"switch to /{path}")
        else:
            await self._measure(step, lambda: self.page.evaluate(SWITCH, f"{self.base}/{path}"))

    async def choose_option(self, step: str, key: str, index: int) -> None:
        """Open the selectbox with ``key`` and click its ``index``-th option (t0: the option's click)."""
        opener = f'{_key(key)} button[aria-haspopup="listbox"]'  # the combobox's own "Open" button
        options = '[role="listbox"] [role="option"]'
        await self.wait_for(opener)
        for _ in range(OPEN_TRIES):
            # A click that lands while a rerun redraws the widget can leave the list closed: try again.
            await self.page.locator(opener).first.click()
            with contextlib.suppress(Exception):
                await self.page.wait_for_selector(options, state="attached", timeout=OPEN_WAIT_MS)
                break
        await self.click(step, options, index)

    async def press_slider(self, step: str, key: str, direction: str) -> None:
        """Focus the slider with ``key`` and press an arrow key (t0: the keydown event)."""
        thumb = f'{_key(key)} input[type="range"]'
        await self.wait_for(thumb)
        await self.page.locator(thumb).first.focus()
        await self.page.evaluate("window.__bench.arm()")
        await self._measure(step, lambda: self.page.keyboard.press(direction))

    async def play(self, step: str) -> None:
        """Play the page's first audio element: from ``play()`` to the ``playing`` event."""
        audio = self.page.locator('[data-testid="stMain"] audio').first
        await audio.wait_for(state="attached")
        try:
            ms = await audio.evaluate(_PLAY)
        except Exception as exc:
            raise PipelineError(f"{step}: {await self._fail(step, exc)}") from exc
        self.timings.samples.append(Sample(step, ms, ms, self.index))

    async def heading(self, text: str) -> str:
        return await self.page.evaluate(
            "(t) => ([...document.querySelectorAll('h4')].find((h) => h.innerText.includes(t)) || {}).innerText || ''",
            text)


# ---------------------------------------------------------------------------------------------
# The scenario
# ---------------------------------------------------------------------------------------------
async def move_threshold(session: Session, name: str, repeat: int) -> None:
    """The sidebar threshold moved by its arrow keys, right then left, ``repeat`` times."""
    for i in range(repeat):
        await session.press_slider(name, "w:threshold", "ArrowRight" if i % 2 == 0 else "ArrowLeft")


async def scenario(session: Session, repeat: int) -> None:
    """What a user does, each interaction ``repeat`` times with alternating values so each one reruns."""
    await session.load()
    titles = dict(PAGES)
    order = [p for p, _ in PAGES[1:]] + [""]
    for path in order:  # the first visit of each page (its code and figures load for the first time)
        await session.switch(path, f"first visit: {titles[path]}")
    for _ in range(repeat):
        for path in order:
            await session.switch(path, f"page switch: {titles[path]}")

    await session.switch("clip_explorer")
    for _ in range(repeat):
        # A similar clip's "Open" button selects it in place: a new clip, decoded for its spectrogram.
        await session.click("clip explorer: open a similar clip", f'{_key("similar:0")} button')
        await session.play("clip explorer: play (play() to 'playing')")
    for i in range(repeat):
        await session.choose_option("clip explorer: choose a clip in the picker", "w:clip", 1 + i % 2)
    await move_threshold(session, "clip explorer: move the threshold", repeat)

    await session.switch("tag_metrics")
    for i in range(repeat):
        await session.choose_option("tag metrics: choose a tag", "w:tag", 1 + i % 2)
    await move_threshold(session, "tag metrics: move the threshold", repeat)

    await session.switch("tag_map")
    modes = f'{_key("map:clip_mode")} button'
    await session.wait_for(modes)
    for i in range(repeat):  # prediction -> annotation -> TP / FP / FN -> ...
        await session.click("tag map: colour the clip map", modes, (i + 1) % 3)

    await session.switch("error_analysis")
    sections = f'{_key("errors:section")} button'
    for i in range(repeat):  # errors -> issues -> contradictions -> errors ...
        await session.click("error analysis: switch section", sections, (i + 1) % 3)

    await session.switch("review")
    for i in range(repeat):
        before = await session.heading("Question")
        verdict = "present" if i % 2 == 0 else "absent"
        await session.click("review queue: answer, next question", f'{_key(f"review:answer:{verdict}")} button')
        after = await session.heading("Question")
        if not after or after == before:
            raise PipelineError(f"review queue: answering {verdict!r} did not load the next question "
                                f"(still {before!r})")


async def measure(base: str, run: str, *, sessions: int, repeat: int, chromium: str,
                  shots: Path | None = None, server_pid: int | None = None) -> Timings:
    """Run the scenario in ``sessions`` concurrent browser contexts against the server at ``base``.

    With one session and the server's ``server_pid``, each step's CPU time is measured as well.
    """
    from playwright.async_api import async_playwright

    timings = Timings(sessions)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            meter = CpuMeter(server_pid) if server_pid is not None and sessions == 1 else None
            # The first load a freshly started server answers: it loads and indexes the run (cold caches).
            cold = await Session.open(browser, base, run, 0, timings, shots, meter)
            await cold.load(step=COLD_LOAD)
            await cold.close()
            opened = [await Session.open(browser, base, run, i, timings, shots, meter) for i in range(sessions)]
            try:
                await asyncio.gather(*(scenario(s, repeat) for s in opened))
            finally:
                for s in opened:
                    await s.close()
        finally:
            await browser.close()
    return timings


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def _p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(timings: Timings) -> list[dict[str, Any]]:
    """One row a step: n, median, p90, max (ms to settled) and the medians of the other figures."""
    rows = []
    for step, samples in timings.by_step().items():
        ms = [s.ms for s in samples]
        rows.append({"step": step, "n": len(ms), "median": statistics.median(ms), "p90": _p90(ms), "max": max(ms),
                     "rendered": _median([s.render_ms for s in samples]),
                     "server": _median([s.server_ms for s in samples]),
                     "server_cpu": _median([s.server_cpu_ms for s in samples]),
                     "browser_cpu": _median([s.browser_cpu_ms for s in samples]),
                     "main_thread": _median([s.main_thread_ms for s in samples])})
    return rows


def _is_interaction(step: str) -> bool:
    return not step.startswith(("first load", "first visit"))


def _mark(row: dict[str, Any], sessions: int) -> str:
    if row["step"] in (FIRST_LOAD, COLD_LOAD):
        return "ok" if row["median"] <= FIRST_LOAD_TARGET_S * 1000 else "SLOW"
    if not _is_interaction(row["step"]):
        return ""
    if sessions > 1:
        return "ok" if row["median"] <= SESSIONS_MEDIAN_TARGET_MS else "SLOW"
    return "ok" if row["median"] <= MEDIAN_TARGET_MS and row["p90"] <= P90_TARGET_MS else "SLOW"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def report(timings: Timings) -> tuple[str, dict[str, Any]]:
    """The table of one scenario run (markdown) and its figures."""
    rows = summarize(timings)
    width = max(len(r["step"]) for r in rows)
    lines = [f"| {'step':<{width}} | n | median | p90 | max | rendered | server done | server cpu | browser cpu "
             "| main thread | target |",
             f"|{'-' * (width + 2)}|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in rows:
        lines.append(f"| {r['step']:<{width}} | {r['n']} | {r['median']:.0f} | {r['p90']:.0f} | {r['max']:.0f} | "
                     f"{_ms(r['rendered'])} | {_ms(r['server'])} | {_ms(r['server_cpu'])} | {_ms(r['browser_cpu'])} | "
                     f"{_ms(r['main_thread'])} | {_mark(r, timings.sessions)} |")
    interactions = [s.ms for s in timings.samples if _is_interaction(s.step)]
    overall = statistics.median(interactions) if interactions else float("nan")
    slow = [r["step"] for r in rows if _mark(r, timings.sessions) == "SLOW"]
    target = SESSIONS_MEDIAN_TARGET_MS if timings.sessions > 1 else MEDIAN_TARGET_MS
    lines += ["", "ms from the action to settled: median, p90, max; then medians: to rendered (no loading skeleton "
              "left), to the server's last message, the CPU the server and Chromium spent on the step "
              "and the time the page's main thread was busy (one session alone)" + (f"; {timings.sessions} sessions' samples pooled" if timings.sessions > 1 else ""),
              f"overall median of every page switch and interaction: {overall:.0f} ms (target {target:.0f} ms): "
              f"{'ok' if overall <= target else 'SLOW'}; {len(slow)} of "
              f"{sum(_mark(r, timings.sessions) != '' for r in rows)} rows miss their target"
              + (f": {', '.join(slow)}" if slow else "")]
    figures = {"sessions": timings.sessions, "rows": rows, "overall_median": overall, "slow": slow,
               "samples": [vars(s) for s in timings.samples]}
    return "\n".join(lines), figures


def _run_size(run_dir: Path) -> str:
    import pyarrow.parquet as pq

    from pipeline.run import rundir as rd

    run = rd.RunDir(run_dir)
    manifest = run.manifest()
    clips = pq.ParquetFile(run / rd.PREDICTIONS).metadata.num_rows
    return f"{clips:,} clips x {len(manifest.get('tags', []))} tags" + (" (synthetic)" if manifest.get("synthetic") else "")


def _machine() -> dict[str, Any]:
    import streamlit

    try:
        from importlib.metadata import version

        playwright_version = version("playwright")
    except Exception:  # not installed: the run stops with its own message later
        playwright_version = "?"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = ""
    with contextlib.suppress(OSError):
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    return {"cpus": cpus, "cpu": model or platform.processor(), "python": platform.python_version(),
            "streamlit": streamlit.__version__, "playwright": playwright_version}


def _commit() -> str:
    """The repository's commit (``+`` when the working tree has changes): what was measured."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (head or "?") + ("+" if dirty else "")


def _chromium_version(path: str) -> str:
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def _sessions(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--sessions takes counts separated by commas (e.g. 1,5), got {text!r}")
    return values


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks browser", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--runs", type=Path, help="a runs folder holding the run to measure (with --run)")
    which.add_argument("--synthetic", type=int, metavar="CLIPS",
                       help=f"build (or reuse, under --out) a synthetic run of CLIPS clips (MagnaTagATune: {MTT_CLIPS})")
    parser.add_argument("--run", help="the run's name in --runs")
    parser.add_argument("--tags", type=int, default=50, help="tags of the synthetic run")
    parser.add_argument("--repeat", type=int, default=5, help="samples of each interaction per session")
    parser.add_argument("--sessions", type=_sessions, default=[1, 5],
                        help="concurrent sessions, one scenario run per count (default 1,5)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the synthetic run (kept and reused) and failure screenshots "
                             "(default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure and sample to this file")
    add_chromium_option(parser)
    args = parser.parse_args(argv)
    if args.runs is not None:
        if not args.run:
            raise ParameterError("--runs needs --run NAME (the run directory's name in the runs folder)")
        if not (args.runs / args.run / "manifest.json").is_file():
            raise ParameterError(f"--run {args.run}: no run directory with a manifest.json in {args.runs}")
    if args.synthetic is not None and args.synthetic < 10:
        raise ParameterError(f"--synthetic must be at least 10 clips, got {args.synthetic}")
    if args.repeat < 1:
        raise ParameterError(f"--repeat must be at least 1, got {args.repeat}")
    check_chromium(args.chromium)
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        raise ParameterError("the browser benchmark needs the playwright package (pip install playwright; "
                             "its browser download is not needed)") from exc

    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        out = (args.out or Path(tmp)).expanduser().resolve()
        if args.synthetic is not None:
            runs, name = out / "runs", f"synthetic-{args.synthetic}"
            if reusable_synthetic_run(runs / name, args.synthetic, args.tags):
                print(f"reusing {runs / name}")
            else:
                started = time.perf_counter()
                build_synthetic_run(runs / name, n_clips=args.synthetic, n_tags=args.tags)
                print(f"built {runs / name} in {time.perf_counter() - started:.1f} s")
        else:
            runs, name = args.runs.expanduser().resolve(), args.run
        machine = _machine()
        size = _run_size(runs / name)
        commit = _commit()
        print(f"run {runs / name}: {size}; dashboard at commit {commit}")
        print(f"machine: {machine['cpus']} CPUs ({machine['cpu']}), Python {machine['python']}, streamlit "
              f"{machine['streamlit']}, playwright {machine['playwright']}, {_chromium_version(args.chromium)}")
        results: dict[str, Any] = {"date": datetime.now().isoformat(timespec="seconds"), "run": str(runs / name),
                                   "size": size, "commit": commit, "machine": machine, "repeat": args.repeat, "scenarios": []}
        for n in args.sessions:
            load_before = _load()
            # A fresh server for each scenario: its first session meets cold caches, as after a restart.
            with serve(runs, Path(tmp) / f"reviews-{n}", Path(tmp) / f"streamlit-{n}.log") as (base, pid):
                timings = asyncio.run(measure(base, name, sessions=n, repeat=args.repeat, chromium=args.chromium,
                                              shots=out / "screenshots", server_pid=pid))
            load_after = _load()
            table, figures = report(timings)
            figures.update(load_before=load_before, load_after=load_after)
            results["scenarios"].append(figures)
            print(f"\n## {n} session{'s' if n > 1 else ''} at once, {size}, repeat {args.repeat} "
                  f"(load average before {load_before}, after {load_after})\n")
            print(table)
            if args.json is not None:  # after each scenario: a later one that fails leaves the earlier figures
                write_json(args.json, results)
        if args.json is not None:
            print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
