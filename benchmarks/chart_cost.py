"""``python -m benchmarks chart_cost``: what one chart costs headless Chromium, variant against variant.

A small Streamlit app (written to a temporary folder) draws ``--count`` charts of one kind with
fresh data on every rerun; Chromium (Debian's, as in `benchmarks.browser`) clicks its rerun
button ``--repeat`` times per variant. Reported: the median from the click to the page settled
(`benchmarks.browser`'s definition) and the median CPU Chromium's processes spent on it (the
300 ms quiet period included), against an empty page. This isolates what the dashboard's pages
pay per figure, e.g. Streamlit's in-browser plotly theme (`dashboard.widgets.chart` skips it).

Example::

    python -m benchmarks chart_cost --repeat 7
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from benchmarks.browser import (
    CHROMIUM_ARGS,
    INIT_SCRIPT,
    QUIET_MS,
    SETTLE,
    VIEWPORT,
    CpuMeter,
    add_chromium_option,
    check_chromium,
    serve,
)
from pipeline.errors import ParameterError

# variant -> (what it draws, the Python that draws chart number ``i`` with generator ``rng``)
VARIANTS: dict[str, tuple[str, str]] = {
    "empty": ("no chart (the rerun itself)", ""),
    "plotly": ("plotly bar chart, 25 bars, Streamlit's theme (the default)",
               "st.plotly_chart(bars(rng), key=f'c{i}')"),
    "plotly_own": ("the same, theme=None and the dashboard's template (dashboard.widgets.chart)",
                   "widgets.chart(bars(rng, template=PLOTLY_TEMPLATE), key=f'c{i}')"),
    "vega": ("Vega-Lite bar chart, 25 bars (st.vega_lite_chart)",
             "st.vega_lite_chart(pd.DataFrame({'tag': TAGS, 'p': rng.random(25)}), VEGA_BARS, key=f'c{i}')"),
    "heatmap": ("plotly heatmap 96 x 600 (a clip's mel-spectrogram), theme=None",
                "widgets.chart(go.Figure([dict(type='heatmap', z=spectrogram(rng))], "
                "dict(height=300, template=PLOTLY_TEMPLATE)), key=f'c{i}')"),
    "image": ("the same 96 x 600 values as a PNG in a plotly image trace (dashboard.charts.png_image), theme=None",
              "widgets.chart(go.Figure([charts.png_image(spectrogram(rng), 'Magma', 0.0, 1.0)], "
              "dict(height=300, template=PLOTLY_TEMPLATE)), key=f'c{i}')"),
    "svg_5k": ("plotly scatter (SVG), 5,000 points, theme=None", "widgets.chart(points(rng, 5000, 'scatter'), key=f'c{i}')"),
    "webgl_5k": ("plotly scattergl, 5,000 points, theme=None", "widgets.chart(points(rng, 5000), key=f'c{i}')"),
    "webgl_25k": ("plotly scattergl, 25,863 points (every MagnaTagATune clip), theme=None",
                  "widgets.chart(points(rng, 25863), key=f'c{i}')"),
    "curves": ("the dashboard's ROC and PR curves (dashboard.light_charts.roc_pr), 1,500 points each, drawn by its "
               "own script",
               "light_charts.roc_pr(curve(rng), 0.9, 0.8, 0.1, POINTS, 'tag', key=f'c{i}')"),
    "curve_vega": ("the same as a Vega-Lite spec in the dashboard's look (lines, legend, tooltips, points)",
                   "widgets.chart(curve_spec(rng), key=f'c{i}')"),
    "clip_view": ("the Clip explorer's clip view (dashboard.light_charts.clip_view): a 96 x 600 spectrogram PNG above a 20-tag x "
                  "58-frame taggram PNG, with their hover, in a components-v2 element (a plotly figure before 2026-12-02)",
                  "light_charts.clip_view(rng.random((58, 20)), 2.0, TAGS[:20], OUTCOMES20, "
                  "mel_db=spectrogram(rng), mel_fps=20.6, key=f'c{i}')"),
    "cooccurrence": ("the Tag metrics co-occurrence heatmap (dashboard.charts.cooccurrence), 50 x 50 tags",
                     "widgets.chart(charts.cooccurrence(rng.random((50, 50)), TAGS50, 'co-occurrence'), key=f'c{i}')"),
    "markdown_100": ("no chart: 100 st.markdown elements of one line (what an element costs)",
                     "[st.markdown(f'line {k}: **{rng.random():.3f}**') for k in range(100)]"),
    "markdown_joined": ("no chart: the same 100 lines in one st.markdown",
                        "st.markdown(chr(10).join(f'line {k}: **{rng.random():.3f}**  ' for k in range(100)))"),
    "clip_map": ("the Tag map's clip map (dashboard.charts.clip_map): 2,000 clips coloured by probability, with "
                 "tooltips and zoom, on a canvas",
                 "widgets.chart(charts.clip_map(rng.random(2000), rng.random(2000), "
                 "np.char.add('clip ', np.arange(2000).astype(str)), values=rng.random(2000), title='clips'), "
                 "key=f'c{i}')"),
    "vega_5k": ("Vega-Lite points (SVG, as Streamlit draws them), 5,000 points with a tooltip, coloured by value",
                "st.vega_lite_chart(cloud(rng, 5000), VEGA_POINTS, key=f'c{i}')"),
}
APP = '''
import numpy as np, pandas as pd, plotly.graph_objects as go, streamlit as st
from dashboard import charts, light_charts, widgets
from dashboard.theme import PLOTLY_TEMPLATE, VEGA_CONFIG
TAGS = [f"tag {j}" for j in range(25)]
TAGS50 = [f"tag {j}" for j in range(50)]
OUTCOMES20 = ["TP", "FP", "FN"] * 3 + ["TN"] * 11
VEGA_BARS = {"mark": "bar", "height": 300, "encoding": {"x": {"field": "tag", "type": "nominal"},
                                                      "y": {"field": "p", "type": "quantitative"}}}
VEGA_POINTS = {"mark": {"type": "circle", "size": 12}, "height": 520, "width": "container",
               "encoding": {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"},
                            "color": {"field": "p", "type": "quantitative"},
                            "tooltip": [{"field": "clip"}, {"field": "p", "format": ".3f"}]}}
def cloud(rng, n):
    return pd.DataFrame({"x": rng.random(n), "y": rng.random(n), "p": rng.random(n),
                         "clip": np.char.add("clip ", np.arange(n).astype(str))})
POINTS = {"threshold in use 0.50": {"fpr": 0.2, "recall": 0.7}, "tuned threshold 0.30": {"fpr": 0.4, "recall": 0.9}}
def curve(rng):
    fpr = np.sort(rng.random(1500)); fpr[0], fpr[-1] = 0, 1
    return {"fpr": fpr, "tpr": np.sqrt(fpr), "roc_thresholds": 1 - fpr,
            "recall": fpr, "precision": 1 - fpr ** 2, "pr_thresholds": 1 - fpr}
def curve_spec(rng):
    c = curve(rng)
    line = pd.DataFrame({"x": c["fpr"], "y": c["tpr"], "threshold": c["roc_thresholds"], "series": "ROC",
                         "order": np.arange(len(c["fpr"]))})
    chance = pd.DataFrame({"x": [0.0, 1.0], "y": [0.0, 1.0], "series": "chance", "order": [0, 1]})
    marks = pd.DataFrame([{"name": n, "x": p["fpr"], "y": p["recall"]} for n, p in POINTS.items()])
    xy = {"x": {"field": "x", "type": "quantitative"}, "y": {"field": "y", "type": "quantitative"}}
    series = {"field": "series", "type": "nominal", "scale": {"domain": ["ROC", "chance"]}}
    tips = [{"field": "x", "format": ".3f"}, {"field": "y", "format": ".3f"}, {"field": "threshold", "format": ".3f"}]
    return {"title": {"text": "ROC curve"}, "height": 340, "width": "container", "config": VEGA_CONFIG,
            "datasets": {"line": line, "chance": chance, "points": marks}, "layer": [
                {"data": {"name": "chance"}, "mark": "line", "encoding": {**xy, "color": series}},
                {"data": {"name": "line"}, "mark": {"type": "line", "strokeWidth": 2.5},
                 "encoding": {**xy, "order": {"field": "order", "type": "quantitative"}, "color": series,
                              "tooltip": tips}},
                {"data": {"name": "points"}, "mark": {"type": "point", "filled": True, "size": 140},
                 "encoding": {**xy, "shape": {"field": "name", "type": "nominal"}}}]}
def bars(rng, **layout):
    return go.Figure([dict(type="bar", x=TAGS, y=rng.random(25))], dict(height=340, **layout))
def spectrogram(rng):
    """96 x 600 values in [0, 1], smooth along time and frequency like a log-mel (compresses like one)."""
    z = np.cumsum(np.cumsum(rng.standard_normal((96, 600)), axis=1), axis=0)
    return (z - z.min()) / np.ptp(z)
def points(rng, n, kind="scattergl"):
    return go.Figure([dict(type=kind, x=rng.random(n), y=rng.random(n), mode="markers")],
                     dict(height=520, template=PLOTLY_TEMPLATE))
variant, count = st.query_params.get("v", "empty"), int(st.query_params.get("n", "1"))
st.button("rerun", key="rerun")
rng = np.random.default_rng()  # fresh data: every rerun redraws every chart
for i in range(count):
{draws}
'''
_RERUN = """() => { window.__bench.arm();
  [...document.querySelectorAll('button')].find((b) => b.innerText.includes('rerun')).click(); }"""


def _app_source() -> str:
    draws = "\n".join(f"    {'if' if n == 0 else 'elif'} variant == {name!r}:\n        {code or 'pass'}"
                      for n, (name, (_, code)) in enumerate(VARIANTS.items()))
    return APP.replace("{draws}", draws)


async def _measure(base: str, pid: int, variants: list[str], count: int, repeat: int,
                   chromium: str) -> dict[str, tuple[float, float]]:
    from playwright.async_api import async_playwright

    meter = CpuMeter(pid)
    results = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for name in variants:
            context = await browser.new_context(viewport=VIEWPORT)
            await context.add_init_script(INIT_SCRIPT)
            page = await context.new_page()
            await page.goto(f"{base}/?v={name}&n={count}")
            await page.evaluate(SETTLE, [QUIET_MS, 120_000, True])
            ms, cpu = [], []
            for _ in range(repeat):
                before = meter.read()
                await page.evaluate(_RERUN)
                settled = await page.evaluate(SETTLE, [QUIET_MS, 120_000, False])
                after = meter.read()
                ms.append(settled["settled"] - settled["t0"])
                if before is not None and after is not None:
                    cpu.append((after[1] - before[1]) * 1000)
            results[name] = (statistics.median(ms), statistics.median(cpu) if cpu else float("nan"))
            await context.close()
        await browser.close()
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks chart_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--count", type=int, default=3, help="charts on the page")
    parser.add_argument("--repeat", type=int, default=5, help="reruns timed per variant")
    add_chromium_option(parser)
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if args.count < 1 or args.repeat < 1:
        raise ParameterError(f"--count and --repeat must be at least 1, got {args.count} and {args.repeat}")
    if unknown:
        raise ParameterError(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    check_chromium(args.chromium)
    with tempfile.TemporaryDirectory(prefix="chart-cost-") as tmp:
        app = Path(tmp) / "charts_app.py"
        app.write_text(_app_source())
        with serve(None, Path(tmp) / "reviews", Path(tmp) / "streamlit.log", app=app) as (base, pid):
            results = asyncio.run(_measure(base, pid, variants, args.count, args.repeat, args.chromium))
    print(f"{args.count} chart(s) a page, {args.repeat} reruns each; medians")
    print("| variant | what | click to settled (ms) | Chromium CPU (ms) |\n|---|---|--:|--:|")
    for name in variants:
        ms, cpu = results[name]
        print(f"| {name} | {VARIANTS[name][0]} | {ms:.0f} | {cpu:.0f} |")
    return 0
