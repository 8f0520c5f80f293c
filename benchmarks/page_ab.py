"""``python -m benchmarks page_ab``: this checkout's dashboard against another's, page switch by page switch.

On a shared machine two runs of `benchmarks.browser` minutes apart can differ by 30% with the
same code. This benchmark serves both dashboards at once (each by ``streamlit run`` from its own
checkout, with that checkout's ``.streamlit/config.toml``), opens one browser context on each in
one Chromium, and alternates: every page switch is timed on one dashboard and then at once on the
other (which goes first alternates too), so a slow spell of the machine falls on both. Reported
per page: the medians of the time to settled (`benchmarks.browser`'s definition), of the CPU that
dashboard's server spent and of Chromium's CPU, for both.

Example (the baseline is any commit, checked out beside this one)::

    git worktree add /tmp/base HEAD~3
    python -m benchmarks page_ab --baseline /tmp/base --runs /tmp/bench-browser/runs --run synthetic-25863
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from benchmarks.browser import (
    APP,
    CHROMIUM_ARGS,
    INIT_SCRIPT,
    PAGES,
    QUIET_MS,
    SETTLE,
    STEP_TIMEOUT_MS,
    SWITCH,
    VIEWPORT,
    CpuMeter,
    add_chromium_option,
    check_chromium,
    serve,
)
from pipeline.errors import ParameterError
from pipeline.paths import REPO

SIDES = ("baseline", "this checkout")


async def _measure(servers: dict[str, tuple[str, int]], run: str, pages: list[str], rounds: int,
                   chromium: str) -> dict[tuple[str, str], list[tuple[float, float, float]]]:
    """(page, side) -> one (settled ms, server CPU ms, Chromium CPU ms) a round."""
    from playwright.async_api import async_playwright

    pids = tuple(pid for _, pid in servers.values())
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            tabs, meters = {}, {}
            for side, (base, pid) in servers.items():
                context = await browser.new_context(viewport=VIEWPORT)
                await context.add_init_script(INIT_SCRIPT)
                tab = await context.new_page()
                await tab.goto(f"{base}/?run={run}")
                await tab.evaluate(SETTLE, [QUIET_MS, STEP_TIMEOUT_MS, True])
                await tab.wait_for_selector('[data-testid="stSidebarNav"] a', timeout=STEP_TIMEOUT_MS)
                tabs[side], meters[side] = tab, CpuMeter(pid, pids)
            for n in range(rounds + 1):  # round 0 is every page's first visit, not counted
                for page in pages:
                    for side in (SIDES if n % 2 else SIDES[::-1]):
                        base = servers[side][0]
                        before = meters[side].read()
                        await tabs[side].evaluate(SWITCH, f"{base}/{page}")
                        settled = await tabs[side].evaluate(SETTLE, [QUIET_MS, STEP_TIMEOUT_MS, False])
                        after = meters[side].read()
                        if n:
                            cpu = ((1000 * (after[0] - before[0]), 1000 * (after[1] - before[1]))
                                   if before is not None and after is not None else (float("nan"),) * 2)
                            results.setdefault((page, side), []).append((settled["settled"] - settled["t0"], *cpu))
        finally:
            await browser.close()
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks page_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout of this repository")
    parser.add_argument("--runs", type=Path, required=True, help="the runs folder both dashboards read")
    parser.add_argument("--run", required=True, help="the run (a folder under --runs)")
    titles = dict(PAGES)
    parser.add_argument("--pages", default=",".join(path for path, _ in PAGES),
                        help="comma-separated url paths ('' is the Overview); default: every page")
    parser.add_argument("--rounds", type=int, default=7, help="page switches timed per page and side")
    add_chromium_option(parser)
    args = parser.parse_args(argv)
    pages = [p.strip() for p in args.pages.split(",")]
    unknown = [p for p in pages if p not in titles]
    if unknown:
        raise ParameterError(f"--pages: unknown {', '.join(unknown)}; choose from {', '.join(map(repr, titles))}")
    if args.rounds < 1:
        raise ParameterError(f"--rounds must be at least 1, got {args.rounds}")
    baseline_app = args.baseline / APP.relative_to(REPO)
    if not baseline_app.is_file():
        raise ParameterError(f"--baseline {args.baseline}: no {APP.relative_to(REPO)} there")
    if not (args.runs / args.run).is_dir():
        raise ParameterError(f"--run {args.run}: no such folder in {args.runs}")
    check_chromium(args.chromium)
    apps = {"baseline": (baseline_app, args.baseline.resolve()), "this checkout": (APP, REPO)}
    with tempfile.TemporaryDirectory(prefix="page-ab-") as tmp, ExitStack() as stack:
        servers = {side: stack.enter_context(serve(args.runs, Path(tmp) / f"reviews-{n}", Path(tmp) / f"log-{n}",
                                                   app=app, cwd=cwd))
                   for n, (side, (app, cwd)) in enumerate(apps.items())}
        results = asyncio.run(_measure(servers, args.run, pages, args.rounds, args.chromium))
    print(f"page switches on {args.run}, {args.rounds} a page and side, alternated; medians in ms "
          f"(baseline {args.baseline} -> this checkout)")
    print("| page | settled | server CPU | Chromium CPU |\n|---|--:|--:|--:|")
    for page in pages:
        old, new = results[(page, SIDES[0])], results[(page, SIDES[1])]
        cells = [f"{statistics.median(x[i] for x in old):.0f} -> {statistics.median(x[i] for x in new):.0f}"
                 for i in range(3)]
        print(f"| {titles[page]} | {' | '.join(cells)} |")
    return 0
