"""Plotly figure builders: plain data in, a titled `go.Figure` out (no Streamlit, no loading).

Every chart uses the palette of `dashboard.theme`, so TP / FP / FN, splits and runs have the
same colours everywhere; titles say what the chart shows.

Figures are built from plain dicts handed to one ``go.Figure(data, layout)`` call (subplots
laid out by hand): plotly validates each property once that way, several times faster than
``add_trace`` / ``update_layout`` / ``make_subplots``, which matters at 300 ms a page.
"""

from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
from PIL import Image

from dashboard import theme
from dashboard.theme import FN, FP, OUTCOME_COLORS, OUTCOME_LABELS, OUTCOMES, QUIET, TN, TP

MAX_SPEC_COLUMNS = 600  # time columns of a displayed spectrogram (keeps the figure light)
METRIC_TITLES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "precision": "precision", "recall": "recall",
                 "f1": "F1", "support": "support", "f1_tuned": "F1 (tuned)"}


def _figure(data: list[dict[str, Any]], title: str, *, height: int = 360, legend: bool = True,
            **layout: Any) -> go.Figure:
    """One validated figure from trace dicts and layout entries, in the app's small template
    (`theme.PLOTLY_TEMPLATE`; shown by `widgets.chart`, which skips Streamlit's in-browser theme)."""
    # The title sits at the top; a legend goes in its own band between title and plot.
    base = dict(
        title=dict(text=title, x=0, xanchor="left", y=1, yanchor="top", yref="container", pad=dict(t=8, l=4),
                   font=dict(size=15)),
        font=theme.FONT, height=height + (28 if legend else 0), margin=dict(l=10, r=10, t=78 if legend else 48, b=10),
        showlegend=legend, legend=dict(orientation="h", yanchor="bottom", y=1.01, xanchor="left", x=0),
        hoverlabel=dict(font_size=12), template=theme.PLOTLY_TEMPLATE)
    base.update(layout)
    return go.Figure(data=data, layout=base)


def _downsample_columns(matrix: np.ndarray, max_cols: int) -> tuple[np.ndarray, int]:
    """Average blocks of columns so at most ``max_cols`` remain; returns (matrix, block size)."""
    cols = matrix.shape[1]
    if cols <= max_cols:
        return matrix, 1
    block = int(np.ceil(cols / max_cols))
    pad = (-cols) % block
    padded = np.pad(matrix, ((0, 0), (0, pad)), mode="edge")
    return padded.reshape(matrix.shape[0], -1, block).mean(axis=2), block


def png_image(z: np.ndarray, colorscale: str, zmin: float | None = None, zmax: float | None = None, *,
              x0: float = 0.0, dx: float = 1.0, **trace: Any) -> dict[str, Any]:
    """A (rows, columns) matrix as one PNG in a plotly ``image`` trace, row 0 at the bottom.

    The colour scale spans ``zmin`` to ``zmax``, by default the matrix's finite minimum and maximum
    (NaN is drawn as the minimum). Its y axis takes `IMAGE_AXIS`.

    A heatmap trace makes the browser paint every cell in script: a 96 x 600 mel-spectrogram costs
    Chromium ~270 ms of CPU as a heatmap, ~150 ms as a PNG, which it decodes natively (`python -m
    benchmarks chart_cost`). The hover gives the position (time, row), not the value.
    """
    z = np.asarray(z, dtype=np.float32)
    finite = z[np.isfinite(z)]
    zmin = (float(finite.min()) if finite.size else 0.0) if zmin is None else zmin
    zmax = (float(finite.max()) if finite.size else 1.0) if zmax is None else zmax
    values = np.nan_to_num((z - zmin) / max(zmax - zmin, 1e-12), nan=0.0)
    rgb = _lut(colorscale)[np.clip(values * 255, 0, 255).astype(np.uint8)]
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", compress_level=1)
    source = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return dict(type="image", source=source, x0=x0, dx=dx, y0=0, dy=1, **trace)


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


def colored_label(text: str, outcome: str) -> str:
    """An axis label in an outcome's colour (plotly accepts a span with a colour style; ``text`` is escaped)."""
    color = "#6B7280" if outcome in QUIET else OUTCOME_COLORS[outcome]
    return f'<span style="color:{color}">{html.escape(text)}</span>'


def _hidden_axis() -> dict[str, Any]:
    return dict(showticklabels=False, title=None, zeroline=False, showgrid=False)


# ---------------------------------------------------------------------------------------------
# Overview
# ---------------------------------------------------------------------------------------------
def split_sizes(sizes: dict[str, int]) -> go.Figure:
    order = ["train", "valid", "test"]
    names = [n for n in order if n in sizes] + [n for n in sizes if n not in order]
    values = [int(sizes[n]) for n in names]
    bar = dict(type="bar", x=values, y=names, orientation="h", text=[f"{v:,}" for v in values],
               textposition="auto", marker=dict(color=[theme.SPLIT_COLORS.get(n, theme.MUTED) for n in names]),
               hovertemplate="%{y}: %{x:,} clips<extra></extra>")
    return _figure([bar], "Clips per split", height=220, legend=False,
                   yaxis=dict(autorange="reversed"), xaxis=dict(title="clips"))


def headline(table: pd.DataFrame) -> go.Figure:
    """Grouped bars of ROC-AUC and PR-AUC (macro / micro / weighted) with CI error bars."""
    data = []
    for metric, color in zip(("ROC-AUC", "PR-AUC"), theme.RUN_COLORS):
        rows = table[table["metric"] == metric]
        value = rows["value"].to_numpy(float)
        low, high = rows["low"].to_numpy(float), rows["high"].to_numpy(float)
        data.append(dict(
            type="bar", name=metric, x=rows["average"].tolist(), y=value, marker=dict(color=color),
            text=[f"{v:.3f}" if np.isfinite(v) else "" for v in value], textposition="inside",
            insidetextanchor="start",
            error_y=dict(type="data", array=np.where(np.isfinite(high), high - value, 0),
                         arrayminus=np.where(np.isfinite(low), value - low, 0), visible=True,
                         color=theme.TEXT, thickness=1.2),
            customdata=np.c_[low, high],
            hovertemplate=f"{metric} %{{x}}: %{{y:.3f}}<br>95% CI [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}}]"
                          "<extra></extra>"))
    return _figure(data, "Test-set ROC-AUC and PR-AUC, with 95% bootstrap intervals", height=340,
                   barmode="group", yaxis=dict(range=[0, 1.08], title="score"))


def training_curves(history: pd.DataFrame) -> go.Figure:
    """Training loss and validation AUCs per epoch, side by side."""
    epoch = history["epoch"].to_numpy()
    line = dict(type="scatter", mode="lines+markers", marker=dict(size=4))
    data = []
    if "train_loss" in history:
        data.append({**line, "x": epoch, "y": history["train_loss"].to_numpy(float), "name": "train loss",
                     "line": dict(color=theme.MUTED)})
    for column, label, color in (("valid_roc_auc", "valid ROC-AUC", theme.PRIMARY),
                                 ("valid_pr_auc", "valid PR-AUC", theme.SECONDARY)):
        if column in history:
            data.append({**line, "x": epoch, "y": history[column].to_numpy(float), "name": label,
                         "line": dict(color=color), "xaxis": "x2", "yaxis": "y2"})
    if "valid_roc_auc" in history and history["valid_roc_auc"].notna().any():
        best = history.loc[history["valid_roc_auc"].idxmax()]
        data.append(dict(type="scatter", x=[best["epoch"]], y=[best["valid_roc_auc"]], mode="markers",
                         name="best epoch", marker=dict(size=12, symbol="star", color=theme.PRIMARY),
                         xaxis="x2", yaxis="y2"))
    return _figure(data, "Training curves: loss (left) and validation AUC (right)", height=320,
                   xaxis=dict(domain=[0, 0.45], title="epoch"), yaxis=dict(title="training loss"),
                   xaxis2=dict(domain=[0.55, 1], title="epoch", anchor="y2"),
                   yaxis2=dict(anchor="x2", title="validation AUC"))


def tag_frequency(tags: Sequence[str], counts: Sequence[int], *, top: int = 50,
                  title: str = "How often each tag is annotated (evaluated split)",
                  y_title: str = "annotated clips") -> go.Figure:
    """Clips per tag, most frequent first (annotated clips, or predicted ones for a run without annotations)."""
    order = np.argsort(-np.asarray(counts), kind="stable")[:top]
    bar = dict(type="bar", x=[tags[i] for i in order], y=[int(counts[i]) for i in order],
               marker=dict(color=theme.PRIMARY), hovertemplate="%{x}: %{y:,} clips<extra></extra>")
    return _figure([bar], title, height=320, legend=False, xaxis=dict(tickangle=-45), yaxis=dict(title=y_title))


# ---------------------------------------------------------------------------------------------
# Clip explorer
# ---------------------------------------------------------------------------------------------
def clip_view(taggram: np.ndarray | None, frame_rate: float | None, tags: Sequence[str], outcomes: Sequence[str],
              *, mel_db: np.ndarray | None = None, mel_fps: float | None = None,
              title: str = "Mel-spectrogram and taggram") -> go.Figure:
    """The mel-spectrogram above the taggram (tag activations over time), on one time axis.

    Parameters
    ----------
    taggram : np.ndarray [shape=(frames, len(tags))] or None
    frame_rate : taggram frames per second (None: the x axis counts frames)
    tags, outcomes : the tag rows to show and their outcome at the threshold (colours the labels)
    mel_db : np.ndarray [shape=(n_mels, t)] or None
    mel_fps : spectrogram frames per second
    """
    has_mel, has_tg = mel_db is not None, taggram is not None
    if not (has_mel or has_tg):
        return _figure([], title, height=120, legend=False)
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {}
    spec_height = 170 if has_mel else 0
    tg_height = max(160, 16 * len(tags) + 60) if has_tg else 0
    split = tg_height / (spec_height + tg_height)  # share of the plot height the taggram takes
    time_title = "time (s)" if (frame_rate or mel_fps) else "frame"
    if has_mel:
        mel, block = _downsample_columns(mel_db, MAX_SPEC_COLUMNS)
        step = block / (mel_fps or 1.0)
        data.append(png_image(mel, theme.SPEC_SCALE, x0=step / 2, dx=step, xaxis="x", yaxis="y2" if has_tg else "y",
                              hovertemplate="%{x:.1f} s, mel band %{y}<extra></extra>"))
    if has_tg:
        dt = 1.0 / frame_rate if frame_rate else 1.0
        data.append(dict(
            type="heatmap", z=np.round(taggram.T, 3), x0=dt / 2, dx=dt, y=list(range(len(tags))),
            colorscale=theme.PROB_SCALE, zmin=0, zmax=1, xaxis="x", yaxis="y",
            colorbar=dict(title=dict(text="prob."), len=split, y=0, yanchor="bottom", thickness=12),
            customdata=np.repeat(np.asarray(tags, dtype=str)[:, None], taggram.shape[0], axis=1),
            hovertemplate="%{customdata} at %{x:.1f} s: %{z:.2f}<extra></extra>"))
        layout["yaxis"] = dict(domain=[0, split - 0.03 if has_mel else 1], tickmode="array",
                               tickvals=list(range(len(tags))), autorange="reversed",
                               ticktext=[colored_label(t, o) for t, o in zip(tags, outcomes)])
        if has_mel:
            layout["yaxis2"] = dict(domain=[split + 0.02, 1], title="mel band", anchor="x", **IMAGE_AXIS)
    else:
        layout["yaxis"] = dict(title="mel band", **IMAGE_AXIS)
    layout["xaxis"] = dict(title=time_title, anchor="y")
    return _figure(data, title, height=spec_height + tg_height + 50, legend=False, **layout)


def clip_tags(tags: Sequence[str], probs: np.ndarray, outcomes: Sequence[str], thresholds: np.ndarray,
              *, top: int = 25) -> go.Figure:
    """A clip's predicted probability per tag, bars coloured by outcome, thresholds marked.

    Without ground truth (outcomes ``PRED`` / ``UNPRED`` only) the bars say predicted or not.
    """
    order = np.argsort(-probs, kind="stable")
    # Always show every annotated or predicted tag, then the most probable others.
    keep = [i for i in order if outcomes[i] not in QUIET][:top]
    keep += [i for i in order if outcomes[i] in QUIET][: max(0, top - len(keep))]
    keep = sorted(keep, key=lambda i: -probs[i])
    names = [tags[i] for i in keep]
    data = []
    for outcome in OUTCOMES:
        idx = [i for i in keep if outcomes[i] == outcome]
        if idx:
            data.append(dict(type="bar", x=[tags[i] for i in idx], y=probs[idx], name=OUTCOME_LABELS[outcome],
                             marker=dict(color=OUTCOME_COLORS[outcome]),
                             hovertemplate="%{x}: %{y:.3f}<extra>" + OUTCOME_LABELS[outcome] + "</extra>"))
    data.append(dict(type="scatter", x=names, y=thresholds[keep], mode="markers", name="threshold",
                     marker=dict(symbol="line-ew-open", size=22, color=theme.TEXT, line=dict(width=2)),
                     hovertemplate="threshold %{y:.2f}<extra></extra>"))
    title = ("Predicted probability per tag, coloured by outcome"
             if any(outcomes[i] in (TP, FP, FN, TN) for i in keep) else "Predicted probability per tag")
    return _figure(data, title, height=340, barmode="overlay",
                   xaxis=dict(categoryorder="array", categoryarray=names, tickangle=-45),
                   yaxis=dict(range=[0, 1.02], title="probability"))


# ---------------------------------------------------------------------------------------------
# Tag metrics
# ---------------------------------------------------------------------------------------------
def per_tag_bars(table: pd.DataFrame, metric: str, *, highlight: str | None = None) -> go.Figure:
    """One metric per tag, sorted, the chosen tag highlighted."""
    frame = table[["tag", metric, "support"]].dropna(subset=[metric]).sort_values(metric, ascending=False)
    colors = [theme.SECONDARY if t == highlight else theme.PRIMARY for t in frame["tag"]]
    name = METRIC_TITLES.get(metric, metric)
    bar = dict(type="bar", x=frame["tag"].tolist(), y=frame[metric].to_numpy(float), marker=dict(color=colors),
               customdata=frame["support"].to_numpy(), hovertemplate="%{x}: %{y:.3f}<br>support %{customdata:,}"
                                                                     "<extra></extra>")
    return _figure([bar], f"{name} per tag, best first" + (f" ('{highlight}' highlighted)" if highlight else ""),
                   height=340, legend=False, xaxis=dict(tickangle=-45), yaxis=dict(title=name))


def _operating_points(points: dict[str, dict[str, float]], x: str, y: str) -> list[dict[str, Any]]:
    out = []
    for (name, point), symbol in zip(points.items(), ("circle", "diamond")):
        if np.isfinite(point.get(x, np.nan)) and np.isfinite(point.get(y, np.nan)):
            out.append(dict(type="scatter", x=[point[x]], y=[point[y]], mode="markers", name=name,
                            marker=dict(size=12, symbol=symbol, color=theme.TEXT, line=dict(color="white", width=1.5)),
                            hovertemplate=f"{name}<br>{x} %{{x:.3f}}, {y} %{{y:.3f}}<extra></extra>"))
    return out


def roc(curve: dict[str, np.ndarray], auc: float, points: dict[str, dict[str, float]], tag: str) -> go.Figure:
    data = [dict(type="scatter", x=[0, 1], y=[0, 1], mode="lines", name="chance",
                 line=dict(color=theme.MUTED, dash="dot"), hoverinfo="skip"),
            dict(type="scatter", x=curve["fpr"], y=curve["tpr"], mode="lines", name=f"ROC (AUC {auc:.3f})",
                 line=dict(color=theme.PRIMARY, width=2.5), customdata=curve["roc_thresholds"],
                 hovertemplate="FPR %{x:.3f}, TPR %{y:.3f}<br>threshold %{customdata:.3f}<extra></extra>"),
            *_operating_points(points, "fpr", "recall")]
    return _figure(data, f"ROC curve of '{tag}'", height=380,
                   xaxis=dict(title="false-positive rate", range=[0, 1]),
                   yaxis=dict(title="true-positive rate (recall)", range=[0, 1.02]))


def pr(curve: dict[str, np.ndarray], ap: float, base_rate: float, points: dict[str, dict[str, float]],
       tag: str) -> go.Figure:
    data = [dict(type="scatter", x=[0, 1], y=[base_rate, base_rate], mode="lines", name="chance",
                 line=dict(color=theme.MUTED, dash="dot"), hoverinfo="skip"),
            dict(type="scatter", x=curve["recall"], y=curve["precision"], mode="lines", name=f"PR (AP {ap:.3f})",
                 line=dict(color=theme.SECONDARY, width=2.5), customdata=curve["pr_thresholds"],
                 hovertemplate="recall %{x:.3f}, precision %{y:.3f}<br>threshold %{customdata:.3f}<extra></extra>"),
            *_operating_points(points, "recall", "precision")]
    return _figure(data, f"Precision-recall curve of '{tag}'", height=380,
                   xaxis=dict(title="recall", range=[0, 1]), yaxis=dict(title="precision", range=[0, 1.02]))


def cooccurrence(matrix: np.ndarray, tags: Sequence[str], title: str, *, diverging: bool = False) -> go.Figure:
    """A tag x tag heatmap of P(column | row) (or its difference between two sources)."""
    z = np.round(matrix, 3)
    if diverging:
        lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
        scale = dict(colorscale=theme.DELTA_SCALE, zmid=0, zmin=-lim, zmax=lim, reversescale=True)
        hover = "P(%{x} | %{y}) differs by %{z:+.2f}<extra></extra>"
    else:
        scale = dict(colorscale="Blues", zmin=0, zmax=1)
        hover = "P(%{x} | %{y}) = %{z:.2f}<extra></extra>"
    heat = dict(type="heatmap", z=z, x=list(tags), y=list(tags), hovertemplate=hover,
                colorbar=dict(thickness=12), **scale)
    return _figure([heat], title, height=min(760, 240 + 11 * len(tags)), legend=False,
                   xaxis=dict(tickangle=-60, tickfont=dict(size=10)),
                   yaxis=dict(autorange="reversed", tickfont=dict(size=10)))


# ---------------------------------------------------------------------------------------------
# Tag map and clip map
# ---------------------------------------------------------------------------------------------
def tag_map(frame: pd.DataFrame, x: str, y: str, *, color: str, title: str) -> go.Figure:
    """Tags placed by a 2-D projection, coloured by cluster or ROC-AUC, sized by frequency.

    ``frame`` has tag, cluster, frequency, ``x``, ``y`` and (for color="roc_auc") roc_auc.
    """
    freq = frame["frequency"].to_numpy(float)
    size = 8 + 28 * np.sqrt(freq / max(freq.max(initial=0.0), 1.0))
    auc = frame["roc_auc"].to_numpy(float) if "roc_auc" in frame else np.full(len(frame), np.nan)
    cluster = frame["cluster"].to_numpy()
    custom = np.c_[cluster, freq, auc]
    hover = ("<b>%{text}</b><br>cluster %{customdata[0]}<br>annotated clips %{customdata[1]:,}"
             "<br>ROC-AUC %{customdata[2]:.3f}<extra></extra>")
    xs, ys, names = frame[x].to_numpy(float), frame[y].to_numpy(float), frame["tag"].to_numpy(dtype=str)
    base = dict(type="scatter", mode="markers+text", textposition="top center", textfont=dict(size=10),
                hovertemplate=hover)
    if color == "cluster":
        data = []
        for c in sorted(set(cluster.tolist())):
            rows = cluster == c
            data.append({**base, "x": xs[rows], "y": ys[rows], "text": names[rows], "customdata": custom[rows],
                         "name": f"cluster {c}", "marker": dict(size=size[rows], color=theme.cluster_color(c),
                                                                opacity=0.8, line=dict(color="white", width=1))})
    else:
        data = [{**base, "x": xs, "y": ys, "text": names, "customdata": custom, "name": "tags",
                 "marker": dict(size=size, color=auc, colorscale=theme.METRIC_SCALE, showscale=True,
                                colorbar=dict(title=dict(text="ROC-AUC"), thickness=12),
                                line=dict(color="white", width=1))}]
    return _figure(data, title, height=460, legend=False, xaxis=_hidden_axis(), yaxis=_hidden_axis())


def clip_map(x: np.ndarray, y: np.ndarray, clip_ids: np.ndarray, *, values: np.ndarray | None = None,
             categories: np.ndarray | None = None, title: str, value_name: str = "probability") -> go.Figure:
    """Clips placed by a 2-D projection (WebGL), coloured by a value (continuous) or outcome category."""
    data = []
    dot = 4 if len(x) > 5000 else (6 if len(x) > 500 else 9)  # smaller dots where they crowd
    if categories is not None:
        # grey outcomes first so the coloured ones are drawn on top
        for outcome in [*QUIET, *(o for o in OUTCOMES if o not in QUIET)]:
            rows = categories == outcome
            quiet = outcome in QUIET
            if rows.any():
                data.append(dict(
                    type="scattergl", x=x[rows], y=y[rows], mode="markers", name=OUTCOME_LABELS[outcome],
                    text=clip_ids[rows], hovertemplate="clip %{text}<extra>" + OUTCOME_LABELS[outcome] + "</extra>",
                    marker=dict(size=dot if quiet else dot + 2, color=OUTCOME_COLORS[outcome],
                                opacity=0.35 if quiet else 0.85)))
    else:
        data.append(dict(type="scattergl", x=x, y=y, mode="markers", text=clip_ids, name="clips",
                         marker=dict(size=dot, color=values, colorscale=theme.PROB_SCALE, cmin=0, cmax=1, opacity=0.75,
                                     showscale=True, colorbar=dict(title=dict(text=value_name), thickness=12)),
                         hovertemplate="clip %{text}: %{marker.color:.2f}<extra></extra>"))
    return _figure(data, title, height=520, legend=categories is not None, xaxis=_hidden_axis(),
                   yaxis=_hidden_axis())


def agreement(pairs: list[dict]) -> go.Figure:
    """Neighbourhood overlap between views (bars) against its chance level (markers)."""
    names = [" vs ".join(p.get("views", [])) for p in pairs]
    data = [dict(type="bar", x=names, y=[p.get("mean", np.nan) for p in pairs], marker=dict(color=theme.PRIMARY),
                 name="shared neighbours", hovertemplate="%{x}: %{y:.2f}<extra></extra>"),
            dict(type="scatter", x=names, y=[p.get("chance", np.nan) for p in pairs], mode="markers", name="chance",
                 marker=dict(symbol="line-ew-open", size=30, color=theme.MUTED, line=dict(width=3)))]
    return _figure(data, "How far the views agree: share of each tag's nearest tags in common", height=300,
                   yaxis=dict(range=[0, 1], title="shared neighbours"))


# ---------------------------------------------------------------------------------------------
# Tag a file, compare runs
# ---------------------------------------------------------------------------------------------
def top_tags(tags: Sequence[str], probs: np.ndarray, *, top: int = 15, threshold: float | None = None) -> go.Figure:
    top = min(top, len(tags))
    order = np.argsort(-probs, kind="stable")[:top][::-1]
    colors = [theme.PRIMARY if threshold is None or probs[i] >= threshold else theme.MUTED for i in order]
    bar = dict(type="bar", x=probs[order], y=[tags[i] for i in order], orientation="h", marker=dict(color=colors),
               text=[f"{probs[i]:.2f}" for i in order], textposition="auto",
               hovertemplate="%{y}: %{x:.3f}<extra></extra>")
    shapes, notes = [], []
    if threshold is not None:
        shapes.append(dict(type="line", x0=threshold, x1=threshold, y0=0, y1=1, yref="paper",
                           line=dict(color=theme.TEXT, dash="dash", width=1)))
        notes.append(dict(x=threshold, y=1, yref="paper", text=f"threshold {threshold:.2f}", showarrow=False,
                          yanchor="bottom"))
    return _figure([bar], f"Top {top} tags of the file", height=80 + 24 * top, legend=False,
                   xaxis=dict(range=[0, 1], title="probability"), shapes=shapes, annotations=notes)


def run_deltas(frame: pd.DataFrame, metric: str, name_a: str, name_b: str) -> go.Figure:
    """Per-tag change of a metric from run A to run B (blue: B better, vermillion: B worse)."""
    frame = frame.dropna(subset=["delta"]).sort_values("delta")
    name = METRIC_TITLES.get(metric, metric)
    bar = dict(type="bar", x=frame["delta"].to_numpy(float), y=frame["tag"].tolist(), orientation="h",
               marker=dict(color=np.where(frame["delta"] >= 0, theme.BETTER, theme.WORSE).tolist()),
               customdata=np.c_[frame["a"], frame["b"]],
               hovertemplate="%{y}: %{customdata[0]:.3f} → %{customdata[1]:.3f} (%{x:+.3f})<extra></extra>")
    zero = dict(type="line", x0=0, x1=0, y0=0, y1=1, yref="paper", line=dict(color=theme.TEXT, width=1))
    return _figure([bar], f"Per-tag change in {name} ({name_b} vs {name_a})", height=max(320, 18 * len(frame) + 80),
                   legend=False, xaxis=dict(title=f"{name}: {name_b} minus {name_a}"), shapes=[zero])


def run_scatter(frame: pd.DataFrame, metric: str, name_a: str, name_b: str) -> go.Figure:
    values = np.r_[frame["a"].dropna(), frame["b"].dropna()]
    lo = max(0.0, (float(values.min()) if len(values) else 0.0) - 0.02)
    name = METRIC_TITLES.get(metric, metric)
    data = [dict(type="scatter", x=[lo, 1], y=[lo, 1], mode="lines", line=dict(color=theme.MUTED, dash="dot"),
                 name="equal", hoverinfo="skip"),
            dict(type="scatter", x=frame["a"].to_numpy(float), y=frame["b"].to_numpy(float), mode="markers",
                 text=frame["tag"].tolist(), name="tags",
                 marker=dict(size=9, color=np.where(frame["delta"] >= 0, theme.BETTER, theme.WORSE).tolist()),
                 hovertemplate="%{text}: %{x:.3f} → %{y:.3f}<extra></extra>")]
    return _figure(data, f"{name} per tag: {name_b} against {name_a} (above the line: {name_b} better)",
                   height=420, legend=False, xaxis=dict(title=name_a, range=[lo, 1.01]),
                   yaxis=dict(title=name_b, range=[lo, 1.01], scaleanchor="x"))
