"""Figure builders: plain data in, a titled chart out (no Streamlit, no loading).

Bars, maps and heatmaps are Vega-Lite specs (`Spec`: a dict whose tables are DataFrames,
which Streamlit sends to the browser as Arrow): Vega draws one (as SVG) for a fraction of the
browser's time of a plotly figure, 50 against 153 ms of Chromium's CPU for a bar chart and 453
against 970 ms for a 5,000-point map (docs/benchmarks.md, "Vega-Lite charts"). The views of
`dashboard.inside_charts` stay plotly `go.Figure`s, built from plain dicts handed to one
``go.Figure(data, layout)`` call (plotly validates each property once that way, several times
faster than ``add_trace`` / ``update_layout`` / ``make_subplots``); `dashboard.widgets.chart`
shows both kinds. The clip view and the ROC / PR curves are drawn by the dashboard's own script
(`dashboard.light_charts`, from this module's `png_data_url` images for the former): a plotly
figure cost the browser 175-450 ms to mount.

Every chart uses the palette of `dashboard.theme`, so TP / FP / FN, splits and runs have the
same colours everywhere; titles say what the chart shows. Names from a run (tags, clip ids)
reach Vega only as data, a sort order or plain title text, never inside an expression.
"""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors
from PIL import Image

from dashboard import theme
from dashboard.theme import FN, FP, OUTCOME_COLORS, OUTCOME_LABELS, OUTCOMES, QUIET, TN, TP

METRIC_TITLES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "precision": "precision", "recall": "recall",
                 "f1": "F1", "support": "support", "f1_tuned": "F1 (tuned)"}


def thin_columns(matrix: np.ndarray, max_cols: int) -> tuple[np.ndarray, int]:
    """Average blocks of the last axis's columns so that at most ``max_cols`` remain; (matrix, block size).

    A displayed spectrogram or map needs no more columns than the screen has pixels.
    """
    cols = matrix.shape[-1]
    if cols <= max_cols:
        return matrix, 1
    block = int(np.ceil(cols / max_cols))
    pad = (-cols) % block
    padded = np.pad(matrix, [(0, 0)] * (matrix.ndim - 1) + [(0, pad)], mode="edge")
    return padded.reshape(*matrix.shape[:-1], -1, block).mean(axis=-1), block


def png_image(z: np.ndarray, colorscale: str, zmin: float | None = None, zmax: float | None = None, *,
              x0: float = 0.0, dx: float = 1.0, **trace: Any) -> dict[str, Any]:
    """A (rows, columns) matrix as one PNG in a plotly ``image`` trace, row 0 at the bottom.

    The colour scale spans ``zmin`` to ``zmax``, by default the matrix's finite minimum and maximum
    (NaN is drawn as the minimum). Its y axis takes `IMAGE_AXIS`.

    A heatmap trace makes the browser paint every cell in script: a 96 x 600 mel-spectrogram costs
    Chromium ~270 ms of CPU as a heatmap, ~150 ms as a PNG, which it decodes natively (`python -m
    benchmarks chart_cost`). The hover gives the position (time, row), not the value.
    """
    return dict(type="image", source=png_data_url(z, colorscale, zmin, zmax), x0=x0, dx=dx, y0=0, dy=1, **trace)


def png_data_url(z: np.ndarray, colorscale: str, zmin: float | None = None, zmax: float | None = None) -> str:
    """A (rows, columns) matrix as a PNG ``data:`` URL, row 0 first, in a named plotly colour scale.

    The scale spans ``zmin`` to ``zmax``, by default the matrix's finite minimum and maximum (NaN
    is drawn as the minimum).
    """
    z = np.asarray(z, dtype=np.float32)
    finite = z[np.isfinite(z)]
    zmin = (float(finite.min()) if finite.size else 0.0) if zmin is None else zmin
    zmax = (float(finite.max()) if finite.size else 1.0) if zmax is None else zmax
    values = np.nan_to_num((z - zmin) / max(zmax - zmin, 1e-12), nan=0.0)
    rgb = _lut(colorscale)[np.clip(values * 255, 0, 255).astype(np.uint8)]
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def css_gradient(colorscale: str, stops: int = 9) -> str:
    """A named plotly colour scale as a CSS gradient from its low end (bottom) to its high end (top)."""
    lut = _lut(colorscale)
    colours = [lut[round(i * 255 / (stops - 1))] for i in range(stops)]
    return "linear-gradient(to top, " + ", ".join(f"rgb({r},{g},{b})" for r, g, b in colours) + ")"


# The y axis of a `png_image`: plotly pins an image's pixels square and turns its axis upside down.
IMAGE_AXIS: dict[str, Any] = dict(scaleanchor=False, autorange=True)


@functools.lru_cache(maxsize=8)
def _lut(colorscale: str) -> np.ndarray:
    """256 RGB colours sampled from a named plotly colour scale."""
    stops = plotly.colors.get_colorscale(colorscale)
    positions = np.array([float(p) for p, _ in stops])
    colours = np.array([plotly.colors.unlabel_rgb(plotly.colors.convert_colors_to_same_type(c, "rgb")[0][0])
                        for _, c in stops], dtype=float)
    grid = np.linspace(0, 1, 256)
    return np.stack([np.interp(grid, positions, colours[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


Spec = dict[str, Any]  # a Vega-Lite spec (see the module docstring)


def _spec(title: str, height: int, *, subtitle: str | None = None, **spec: Any) -> Spec:
    """A Vega-Lite spec in the app's look (`theme.VEGA_CONFIG`), as wide as its column."""
    heading: dict[str, Any] = {"text": title}
    if subtitle:
        heading["subtitle"] = subtitle
    return {"title": heading, "height": height, "width": "container", "config": theme.VEGA_CONFIG, **spec}


def _field(name: str, kind: str = "quantitative", **extra: Any) -> dict[str, Any]:
    return {"field": name, "type": kind, **extra}


def _tip(name: str, title: str, fmt: str | None = None) -> dict[str, Any]:
    return {"field": name, "title": title, **({"format": fmt} if fmt else {})}


def _hidden(name: str, padding: int = 12) -> dict[str, Any]:
    """A position channel without axis or grid (a projection's coordinates mean nothing), with
    ``padding`` pixels inside the plot's edges so the outermost points are drawn whole."""
    return _field(name, axis=None, scale={"zero": False, "nice": False, "padding": padding})


ZOOM = {"name": "zoom", "select": "interval", "bind": "scales"}  # drag to pan, wheel to zoom


# ---------------------------------------------------------------------------------------------
# Overview
# ---------------------------------------------------------------------------------------------
def split_sizes(sizes: dict[str, int]) -> Spec:
    order = ["train", "valid", "test"]
    names = [n for n in order if n in sizes] + [n for n in sizes if n not in order]
    frame = pd.DataFrame({"split": names, "clips": [int(sizes[n]) for n in names]})
    colours = {"domain": names, "range": [theme.SPLIT_COLORS.get(n, theme.MUTED) for n in names]}
    y = _field("split", "nominal", sort=names, title=None)
    tips = [_tip("split", "split"), _tip("clips", "clips", ",")]
    return _spec("Clips per split", 150, data={"values": frame}, layer=[
        {"mark": {"type": "bar", "cornerRadiusEnd": 2},
         "encoding": {"y": y, "x": _field("clips", title="clips", scale={"domainMax": 1.12 * max([1, *frame["clips"]])}),
                      "color": _field("split", "nominal", scale=colours, legend=None), "tooltip": tips}},
        {"mark": {"type": "text", "align": "left", "dx": 4},
         "encoding": {"y": y, "x": _field("clips"), "text": _field("clips", format=",")}}])


def headline(table: pd.DataFrame) -> Spec:
    """Grouped bars of ROC-AUC and PR-AUC (macro / micro / weighted) with CI error bars."""
    frame = table[table["metric"].isin(["ROC-AUC", "PR-AUC"])][["metric", "average", "value", "low", "high"]].copy()
    frame["label"] = [f"{v:.3f}" if np.isfinite(v) else "" for v in frame["value"].to_numpy(float)]
    averages = list(dict.fromkeys(frame["average"].tolist()))
    x = _field("average", "nominal", sort=averages, title=None, axis={"labelAngle": 0})
    offset = _field("metric", "nominal", sort=["ROC-AUC", "PR-AUC"])
    colours = {"domain": ["ROC-AUC", "PR-AUC"], "range": list(theme.RUN_COLORS)}
    tips = [_tip("metric", "metric"), _tip("average", "average"), _tip("value", "value", ".3f"),
            _tip("low", "95% CI low", ".3f"), _tip("high", "95% CI high", ".3f")]
    return _spec("Test-set ROC-AUC and PR-AUC, with 95% bootstrap intervals", 300, data={"values": frame}, layer=[
        {"mark": {"type": "bar"},
         "encoding": {"x": x, "xOffset": offset, "y": _field("value", title="score", scale={"domain": [0, 1.08]}),
                      "color": _field("metric", "nominal", scale=colours), "tooltip": tips}},
        {"mark": {"type": "rule", "color": theme.TEXT, "strokeWidth": 1.2},
         "encoding": {"x": x, "xOffset": offset, "y": _field("low"), "y2": {"field": "high"}}},
        {"mark": {"type": "text", "baseline": "bottom", "dy": -4, "color": "white"},
         "encoding": {"x": x, "xOffset": offset, "y": {"datum": 0}, "text": _field("label", "nominal")}}])


def training_loss(history: pd.DataFrame) -> Spec | None:
    """Training loss per epoch; None when ``history`` has no train_loss."""
    if "train_loss" not in history:
        return None
    frame = pd.DataFrame({"epoch": history["epoch"].to_numpy(int), "loss": history["train_loss"].to_numpy(float)})
    return _spec("Training loss", 300, data={"values": frame},
                 mark={"type": "line", "color": theme.MUTED, "point": {"size": 30, "color": theme.MUTED}}, encoding={
                     "x": _field("epoch", title="epoch", axis={"tickMinStep": 1}),
                     "y": _field("loss", title="training loss", scale={"zero": False}),
                     "tooltip": [_tip("epoch", "epoch"), _tip("loss", "training loss", ".4f")]})


def validation_aucs(history: pd.DataFrame) -> Spec | None:
    """Validation ROC-AUC and PR-AUC per epoch, the best epoch by ROC-AUC marked; None without either.

    Two Vega-Lite charts side by side (this and `training_loss`) replace one plotly figure of two
    panels: the Overview's page switch spent about 200 ms of the browser's time drawing that figure.
    """
    series = [(column, label, color) for column, label, color in
              (("valid_roc_auc", "valid ROC-AUC", theme.PRIMARY), ("valid_pr_auc", "valid PR-AUC", theme.SECONDARY))
              if column in history]
    if not series:
        return None
    epoch = history["epoch"].to_numpy(int)
    frame = pd.concat([pd.DataFrame({"epoch": epoch, "metric": label, "value": history[column].to_numpy(float)})
                       for column, label, _ in series], ignore_index=True)
    colours = {"domain": [label for _, label, _ in series], "range": [color for _, _, color in series]}
    x = _field("epoch", title="epoch", axis={"tickMinStep": 1})
    layers: list[dict[str, Any]] = [
        {"data": {"name": "curves"}, "mark": {"type": "line", "point": {"size": 30}},
         "encoding": {"x": x, "y": _field("value", title="validation AUC", scale={"zero": False}),
                      "color": _field("metric", "nominal", scale=colours),
                      "tooltip": [_tip("epoch", "epoch"), _tip("metric", "metric"), _tip("value", "AUC", ".4f")]}}]
    datasets = {"curves": frame}
    subtitle = None
    if "valid_roc_auc" in history and history["valid_roc_auc"].notna().any():
        best = history.loc[history["valid_roc_auc"].idxmax()]
        datasets["best"] = pd.DataFrame({"epoch": [int(best["epoch"])], "value": [float(best["valid_roc_auc"])]})
        layers.append({"data": {"name": "best"}, "mark": {"type": "point", "shape": "diamond", "filled": True,
                                                          "size": 180, "color": theme.PRIMARY},
                       "encoding": {"x": _field("epoch"), "y": _field("value"),
                                    "tooltip": [_tip("epoch", "best epoch"), _tip("value", "valid ROC-AUC", ".4f")]}})
        subtitle = f"Diamond: the best epoch by validation ROC-AUC ({int(best['epoch'])})"
    return _spec("Validation AUC", 300, subtitle=subtitle, datasets=datasets, layer=layers)


def tag_frequency(tags: Sequence[str], counts: Sequence[int], *, top: int = 50,
                  title: str = "How often each tag is annotated (evaluated split)",
                  y_title: str = "annotated clips") -> Spec:
    """Clips per tag, most frequent first (annotated clips, or predicted ones for a run without annotations)."""
    order = np.argsort(-np.asarray(counts), kind="stable")[:top]
    frame = pd.DataFrame({"tag": [str(tags[i]) for i in order], "clips": [int(counts[i]) for i in order]})
    return _spec(title, 300, data={"values": frame}, mark={"type": "bar", "color": theme.PRIMARY}, encoding={
        "x": _field("tag", "nominal", sort=None, title=None, axis={"labelAngle": -45}),
        "y": _field("clips", title=y_title), "tooltip": [_tip("tag", "tag"), _tip("clips", y_title, ",")]})


# ---------------------------------------------------------------------------------------------
# Clip explorer
# ---------------------------------------------------------------------------------------------
def clip_tags(tags: Sequence[str], probs: np.ndarray, outcomes: Sequence[str], thresholds: np.ndarray,
              *, top: int = 25) -> Spec:
    """A clip's predicted probability per tag, bars coloured by outcome, thresholds marked.

    Without ground truth (outcomes ``PRED`` / ``UNPRED`` only) the bars say predicted or not.
    """
    order = np.argsort(-probs, kind="stable")
    # Always show every annotated or predicted tag, then the most probable others.
    keep = [i for i in order if outcomes[i] not in QUIET][:top]
    keep += [i for i in order if outcomes[i] in QUIET][: max(0, top - len(keep))]
    keep = sorted(keep, key=lambda i: -probs[i])
    frame = pd.DataFrame({"tag": [str(tags[i]) for i in keep], "probability": probs[keep].astype(float),
                          "threshold": np.asarray(thresholds, float)[keep],
                          "outcome": [OUTCOME_LABELS[outcomes[i]] for i in keep]})
    present = [o for o in OUTCOMES if any(outcomes[i] == o for i in keep)]
    colours = {"domain": [OUTCOME_LABELS[o] for o in present], "range": [OUTCOME_COLORS[o] for o in present]}
    x = _field("tag", "nominal", sort=None, title=None, axis={"labelAngle": -45})
    tips = [_tip("tag", "tag"), _tip("probability", "probability", ".3f"), _tip("outcome", "outcome"),
            _tip("threshold", "threshold", ".2f")]
    title = ("Predicted probability per tag, coloured by outcome"
             if any(outcomes[i] in (TP, FP, FN, TN) for i in keep) else "Predicted probability per tag")
    return _spec(title, 300, subtitle="Black marks: each tag's decision threshold", data={"values": frame}, layer=[
        {"mark": {"type": "bar"},
         "encoding": {"x": x, "y": _field("probability", title="probability", scale={"domain": [0, 1.02]}),
                      "color": _field("outcome", "nominal", scale=colours), "tooltip": tips}},
        {"mark": {"type": "tick", "color": theme.TEXT, "thickness": 2},
         "encoding": {"x": x, "y": _field("threshold"), "tooltip": tips}}])


# ---------------------------------------------------------------------------------------------
# Tag metrics
# ---------------------------------------------------------------------------------------------
def per_tag_bars(table: pd.DataFrame, metric: str, *, highlight: str | None = None) -> Spec:
    """One metric per tag, sorted, the chosen tag highlighted."""
    frame = table[["tag", metric, "support"]].dropna(subset=[metric]).sort_values(metric, ascending=False)
    frame = pd.DataFrame({"tag": frame["tag"].astype(str), "value": frame[metric].to_numpy(float),
                          "support": frame["support"].to_numpy(float), "chosen": frame["tag"] == highlight})
    name = METRIC_TITLES.get(metric, metric)
    colours = {"domain": [False, True], "range": [theme.PRIMARY, theme.SECONDARY]}
    return _spec(f"{name} per tag, best first" + (f" ('{highlight}' highlighted)" if highlight else ""), 300,
                 data={"values": frame}, mark={"type": "bar"}, encoding={
                     "x": _field("tag", "nominal", sort=None, title=None, axis={"labelAngle": -45}),
                     "y": _field("value", title=name),
                     "color": _field("chosen", "nominal", scale=colours, legend=None),
                     "tooltip": [_tip("tag", "tag"), _tip("value", name, ".3f"), _tip("support", "support", ",")]})


def cooccurrence(matrix: np.ndarray, tags: Sequence[str], title: str, *, diverging: bool = False) -> Spec:
    """A tag x tag heatmap of P(column | row) (or its difference between two sources)."""
    z = np.round(np.asarray(matrix, dtype=float), 3)
    names = [str(t) for t in tags]
    frame = pd.DataFrame({"row": np.repeat(names, len(names)), "column": np.tile(names, len(names)),
                          "value": z.ravel()})
    if diverging:
        lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        scale = {"scheme": theme.VEGA_SCHEMES[theme.DELTA_SCALE], "reverse": True, "domain": [-lim, lim],
                 "domainMid": 0}
        tip = _tip("value", "difference", "+.2f")
    else:
        scale = {"scheme": theme.VEGA_SCHEMES["Blues"], "domain": [0, 1]}
        tip = _tip("value", "P(column | row)", ".2f")
    axis = {"labelFontSize": 10, "labelLimit": 120}
    # sort=None keeps the tags in the order they first appear, which is ``tags``' order: an explicit
    # list makes Vega look each of the n^2 cells up in it, a fifth of the chart's time at 50 tags.
    return _spec(title, min(700, 180 + 11 * len(names)), data={"values": frame}, mark={"type": "rect"}, encoding={
        "x": _field("column", "nominal", sort=None, title=None, axis={**axis, "labelAngle": -60}),
        "y": _field("row", "nominal", sort=None, title=None, axis=axis),
        "color": _field("value", scale=scale, legend={"title": None, "direction": "vertical", "orient": "right"}),
        "tooltip": [_tip("row", "row"), _tip("column", "column"), tip]})


# ---------------------------------------------------------------------------------------------
# Tag map and clip map
# ---------------------------------------------------------------------------------------------
def tag_map(frame: pd.DataFrame, x: str, y: str, *, color: str, title: str) -> Spec:
    """Tags placed by a 2-D projection, coloured by cluster or ROC-AUC, sized by frequency.

    ``frame`` has tag, cluster, frequency, ``x``, ``y`` and (for color="roc_auc") roc_auc.
    """
    freq = frame["frequency"].to_numpy(float)
    diameter = 8 + 28 * np.sqrt(freq / max(freq.max(initial=0.0), 1.0))
    cluster = frame["cluster"].to_numpy()
    data = pd.DataFrame({"tag": frame["tag"].astype(str).to_numpy(), "x": frame[x].to_numpy(float),
                         "y": frame[y].to_numpy(float), "cluster": [f"cluster {c}" for c in cluster],
                         "frequency": freq, "area": diameter ** 2,
                         "roc_auc": frame["roc_auc"].to_numpy(float) if "roc_auc" in frame else np.nan})
    if color == "cluster":
        order = sorted(set(cluster.tolist()))
        colour = _field("cluster", "nominal", legend=None, scale={
            "domain": [f"cluster {c}" for c in order], "range": [theme.cluster_color(c) for c in order]})
    else:
        colour = _field("roc_auc", scale={"scheme": theme.VEGA_SCHEMES[theme.METRIC_SCALE]},
                        legend={"title": "ROC-AUC", "direction": "vertical", "orient": "right"})
    position = {"x": _hidden("x", 30), "y": _hidden("y", 30)}  # room for the largest points and their labels
    tips = [_tip("tag", "tag"), _tip("cluster", "cluster"), _tip("frequency", "annotated clips", ","),
            _tip("roc_auc", "ROC-AUC", ".3f")]
    return _spec(title, 420, data={"values": data}, layer=[
        {"params": [ZOOM], "mark": {"type": "circle", "opacity": 0.8, "stroke": "white", "strokeWidth": 1},
         "encoding": {**position, "size": _field("area", scale=None, legend=None), "color": colour, "tooltip": tips}},
        {"mark": {"type": "text", "baseline": "bottom", "dy": -7, "fontSize": 10},
         "encoding": {**position, "text": _field("tag", "nominal")}}])


def clip_map(x: np.ndarray, y: np.ndarray, clip_ids: np.ndarray, *, values: np.ndarray | None = None,
             categories: np.ndarray | None = None, title: str, value_name: str = "probability") -> Spec:
    """Clips placed by a 2-D projection, coloured by a value (continuous) or outcome category."""
    dot = 4 if len(x) > 5000 else (6 if len(x) > 500 else 9)  # smaller dots where they crowd
    frame = pd.DataFrame({"x": np.asarray(x, float), "y": np.asarray(y, float), "clip": np.asarray(clip_ids, str)})
    encoding: dict[str, Any] = {"x": _hidden("x"), "y": _hidden("y")}
    if categories is not None:
        categories = np.asarray(categories)
        quiet = np.isin(categories, QUIET)
        frame["outcome"] = [OUTCOME_LABELS[c] for c in categories]
        frame["size"] = np.where(quiet, dot, dot + 2) ** 2
        frame["alpha"] = np.where(quiet, 0.35, 0.85)
        frame = frame.iloc[np.argsort(~quiet, kind="stable")]  # grey outcomes first: the coloured ones on top
        present = [o for o in [*QUIET, *(o for o in OUTCOMES if o not in QUIET)] if (categories == o).any()]
        encoding.update(
            color=_field("outcome", "nominal", scale={"domain": [OUTCOME_LABELS[o] for o in present],
                                                      "range": [OUTCOME_COLORS[o] for o in present]}),
            size=_field("size", scale=None, legend=None), opacity=_field("alpha", scale=None, legend=None),
            tooltip=[_tip("clip", "clip"), _tip("outcome", "outcome")])
        mark = {"type": "circle"}
    else:
        frame["value"] = np.asarray(values, float)
        encoding.update(color=_field("value", scale={"scheme": theme.VEGA_SCHEMES[theme.PROB_SCALE], "domain": [0, 1]},
                                     legend={"title": value_name, "direction": "vertical", "orient": "right"}),
                        tooltip=[_tip("clip", "clip"), _tip("value", value_name, ".2f")])
        mark = {"type": "circle", "size": dot ** 2, "opacity": 0.75}
    # Thousands of points: drawn on a canvas, without an ARIA label per point. Streamlit picks the
    # canvas itself only past 2,000 points, and the SVG of 2,000 cost the browser 250 ms against
    # 132 (`python -m benchmarks chart_cost --variants empty,clip_map`).
    return _spec(title, 480, data={"values": frame}, params=[ZOOM], mark={**mark, "aria": False}, encoding=encoding,
                 usermeta={"embedOptions": {"renderer": "canvas"}})


def agreement(pairs: list[dict]) -> Spec:
    """Neighbourhood overlap between views (bars) against its chance level (grey marks)."""
    frame = pd.DataFrame({"pair": [" vs ".join(map(str, p.get("views", []))) for p in pairs],
                          "mean": [float(p.get("mean", np.nan)) for p in pairs],
                          "chance": [float(p.get("chance", np.nan)) for p in pairs]})
    x = _field("pair", "nominal", sort=None, title=None, axis={"labelAngle": 0})
    tips = [_tip("pair", "views"), _tip("mean", "shared neighbours", ".2f"), _tip("chance", "chance", ".2f")]
    return _spec("How far the views agree: share of each tag's nearest tags in common", 260,
                 subtitle="Grey marks: what random neighbours would share", data={"values": frame}, layer=[
                     {"mark": {"type": "bar", "color": theme.PRIMARY},
                      "encoding": {"x": x, "y": _field("mean", title="shared neighbours", scale={"domain": [0, 1]}),
                                   "tooltip": tips}},
                     {"mark": {"type": "tick", "color": theme.MUTED, "thickness": 3},
                      "encoding": {"x": x, "y": _field("chance"), "tooltip": tips}}])


# ---------------------------------------------------------------------------------------------
# Tag a file, compare runs
# ---------------------------------------------------------------------------------------------
def top_tags(tags: Sequence[str], probs: np.ndarray, *, top: int = 15, threshold: float | None = None) -> Spec:
    top = min(top, len(tags))
    order = np.argsort(-probs, kind="stable")[:top]
    frame = pd.DataFrame({"tag": [str(tags[i]) for i in order], "probability": probs[order].astype(float),
                          "above": [threshold is None or probs[i] >= threshold for i in order]})
    y = _field("tag", "nominal", sort=None, title=None)
    layers: list[dict[str, Any]] = [
        {"mark": {"type": "bar"},
         "encoding": {"y": y, "x": _field("probability", title="probability", scale={"domain": [0, 1]}),
                      "color": _field("above", "nominal", legend=None,
                                      scale={"domain": [True, False], "range": [theme.PRIMARY, theme.MUTED]}),
                      "tooltip": [_tip("tag", "tag"), _tip("probability", "probability", ".3f")]}},
        {"mark": {"type": "text", "align": "left", "dx": 4},
         "encoding": {"y": y, "x": _field("probability"), "text": _field("probability", format=".2f")}}]
    if threshold is not None:
        layers.append({"mark": {"type": "rule", "color": theme.TEXT, "strokeDash": [4, 3]},
                       "encoding": {"x": {"datum": float(threshold)}}})
    return _spec(f"Top {top} tags of the file", 24 * top,
                 subtitle=f"Dashed line: the threshold, {threshold:.2f}" if threshold is not None else None,
                 data={"values": frame}, layer=layers)


_CHANGE = {"domain": [True, False], "range": [theme.BETTER, theme.WORSE]}  # run B better, worse


def run_deltas(frame: pd.DataFrame, metric: str, name_a: str, name_b: str) -> Spec:
    """Per-tag change of a metric from run A to run B (blue: B better, vermillion: B worse)."""
    frame = frame.dropna(subset=["delta"]).sort_values("delta", ascending=False)
    data = pd.DataFrame({"tag": frame["tag"].astype(str), "a": frame["a"].to_numpy(float),
                         "b": frame["b"].to_numpy(float), "delta": frame["delta"].to_numpy(float),
                         "better": frame["delta"].to_numpy(float) >= 0})
    name = METRIC_TITLES.get(metric, metric)
    tips = [_tip("tag", "tag"), _tip("a", name_a, ".3f"), _tip("b", name_b, ".3f"), _tip("delta", "change", "+.3f")]
    return _spec(f"Per-tag change in {name} ({name_b} vs {name_a})", max(240, 18 * len(data)),
                 data={"values": data}, layer=[
                     {"mark": {"type": "bar"},
                      "encoding": {"y": _field("tag", "nominal", sort=None, title=None),
                                   "x": _field("delta", title=f"{name}: {name_b} minus {name_a}"),
                                   "color": _field("better", "nominal", legend=None, scale=_CHANGE),
                                   "tooltip": tips}},
                     {"mark": {"type": "rule", "color": theme.TEXT}, "encoding": {"x": {"datum": 0}}}])


def run_scatter(frame: pd.DataFrame, metric: str, name_a: str, name_b: str) -> Spec:
    values = np.r_[frame["a"].dropna(), frame["b"].dropna()]
    lo = max(0.0, (float(values.min()) if len(values) else 0.0) - 0.02)
    name = METRIC_TITLES.get(metric, metric)
    points = pd.DataFrame({"tag": frame["tag"].astype(str), "a": frame["a"].to_numpy(float),
                           "b": frame["b"].to_numpy(float), "better": frame["delta"].to_numpy(float) >= 0})
    domain = {"domain": [lo, 1.01]}
    return _spec(f"{name} per tag: {name_b} against {name_a} (above the line: {name_b} better)", 380,
                 datasets={"points": points, "equal": pd.DataFrame({"a": [lo, 1.0], "b": [lo, 1.0]})}, layer=[
                     {"data": {"name": "equal"}, "mark": {"type": "line", "color": theme.MUTED, "strokeDash": [3, 3]},
                      "encoding": {"x": _field("a", title=name_a, scale=domain), "y": _field("b", title=name_b,
                                                                                              scale=domain)}},
                     {"data": {"name": "points"}, "mark": {"type": "circle", "size": 80, "opacity": 0.9},
                      "encoding": {"x": _field("a"), "y": _field("b"),
                                   "color": _field("better", "nominal", legend=None, scale=_CHANGE),
                                   "tooltip": [_tip("tag", "tag"), _tip("a", name_a, ".3f"),
                                               _tip("b", name_b, ".3f")]}}])
