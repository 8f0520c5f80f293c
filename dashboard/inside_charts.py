"""Figures of the "Inside the model" page: plain arrays in, a titled `go.Figure` out (no Streamlit).

Each figure is one ``go.Figure(data, layout)`` call over trace dicts (subplots laid out by
hand), the fast way to build plotly figures, in the palette of
`dashboard.theme`. Time axes are in seconds, so a map lines up with the spectrogram, the
taggram and the audio player.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard import charts, theme

MAX_COLUMNS = 600  # time columns drawn per heatmap (blocks averaged beyond)
GRID_COLUMNS = 6
GRID_CELL_COLUMNS = 120  # time columns per small-multiple cell
ACT_SCALE = "Viridis"
FILTER_SCALE = "RdBu"


def _layout(title: str, height: int, **extra: Any) -> dict[str, Any]:
    base = dict(title=dict(text=title, x=0, xanchor="left", font=dict(size=15)), font=theme.FONT, height=height,
                margin=dict(l=10, r=10, t=48, b=10), showlegend=False, hoverlabel=dict(font_size=12),
                template=theme.PLOTLY_TEMPLATE)
    base.update(extra)
    return base


def _thin(matrix: np.ndarray, max_cols: int = MAX_COLUMNS) -> tuple[np.ndarray, int]:
    """`charts.thin_columns`, to this module's column budget by default."""
    return charts.thin_columns(matrix, max_cols)


def _heat(z: np.ndarray, fps: float, **extra: Any) -> dict[str, Any]:
    """A heatmap trace of (rows, T) on a time axis in seconds."""
    thin, block = _thin(np.asarray(z, dtype=np.float32))
    step = block / fps
    return dict(type="heatmap", z=np.round(thin, 3), x0=step / 2, dx=step, **extra)


def channel_view(mel: np.ndarray | None, mel_fps: float, channel_map: np.ndarray, map_fps: float, *,
                 taggram: np.ndarray | None = None, taggram_fps: float | None = None, tags: Sequence[str] = (),
                 title: str) -> go.Figure:
    """The mel-spectrogram, one channel's activation and the taggram, stacked on one time axis.

    Parameters
    ----------
    mel : np.ndarray [shape=(n_mels, t)] or None
    channel_map : np.ndarray [shape=(T',) or (F', T')]  (a line, or a frequency x time heatmap)
    taggram : np.ndarray [shape=(frames, len(tags))] or None
    """
    panels = [p for p, on in (("mel", mel is not None), ("map", True), ("tags", taggram is not None and len(tags)))
              if on]
    heights = {"mel": 150, "map": 150 if channel_map.ndim == 2 else 110, "tags": 14 * len(tags) + 40}
    total = sum(heights[p] for p in panels)
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {}
    top = 1.0
    for i, panel in enumerate(panels):
        axis = "y" if i == 0 else f"y{i + 1}"
        share = heights[panel] / total
        layout[f"yaxis{'' if i == 0 else i + 1}"] = dict(domain=[max(0.0, top - share + 0.04), top], anchor="x")
        top -= share
        if panel == "mel":  # one PNG, as in the clip view (charts.png_image: a heatmap costs the browser twice)
            thin, block = _thin(np.asarray(mel, dtype=np.float32))
            step = block / mel_fps
            data.append(charts.png_image(thin, theme.SPEC_SCALE, x0=step / 2, dx=step, yaxis=axis,
                                         hovertemplate="%{x:.2f} s, mel band %{y}<extra></extra>"))
            layout[f"yaxis{'' if i == 0 else i + 1}"].update(title="mel band", **charts.IMAGE_AXIS)
        elif panel == "map" and channel_map.ndim == 2:
            data.append({**_heat(channel_map, map_fps, colorscale=ACT_SCALE, showscale=False,
                                 hovertemplate="%{x:.2f} s, row %{y}: %{z:.3f}<extra></extra>"), "yaxis": axis})
            layout[f"yaxis{'' if i == 0 else i + 1}"]["title"] = "freq. row"
        elif panel == "map":
            t = (np.arange(len(channel_map)) + 0.5) / map_fps
            values, block = _thin(np.asarray(channel_map, np.float32)[None])
            t = t[::block][:values.shape[1]] if block > 1 else t
            data.append(dict(type="scatter", x=t, y=np.round(values[0], 4), mode="lines", yaxis=axis,
                             line=dict(color=theme.PRIMARY, width=1.5), fill="tozeroy",
                             hovertemplate="%{x:.2f} s: %{y:.3f}<extra></extra>"))
            layout[f"yaxis{'' if i == 0 else i + 1}"]["title"] = "activation"
        else:
            assert taggram is not None
            data.append({**_heat(taggram.T, taggram_fps or 1.0, colorscale=theme.PROB_SCALE, zmin=0, zmax=1,
                                 showscale=False, y=list(tags),
                                 hovertemplate="%{y} at %{x:.2f} s: %{z:.2f}<extra></extra>"), "yaxis": axis})
            layout[f"yaxis{'' if i == 0 else i + 1}"].update(autorange="reversed", tickfont=dict(size=10))
    layout["xaxis"] = dict(title="time (s)", anchor=f"y{len(panels)}" if len(panels) > 1 else "y")
    return go.Figure(data=data, layout=_layout(title, total + 70, **layout))


def channel_grid(maps: np.ndarray, channels: Sequence[int], means: np.ndarray, map_fps: float, *,
                 selected: int | None = None, title: str) -> go.Figure:
    """Small multiples: each of ``channels``' maps ((C, T') or (C, F', T')) in its own cell, in the given order.

    Drawn as one trace on one pair of axes (cells placed side by side, NaN between them): a grid
    of separate subplots costs plotly ~10 ms a cell to validate, this a few ms in all.
    """
    n = len(channels)
    cols = min(GRID_COLUMNS, max(n, 1))
    rows = max(1, -(-n // cols))
    cells = [np.asarray(maps[ch], dtype=np.float32) for ch in channels]
    notes = []
    if cells and cells[0].ndim == 2:  # frequency x time: one image of all cells, each scaled to its own maximum
        thin = [_thin(c, GRID_CELL_COLUMNS)[0] for c in cells]
        h, w = thin[0].shape
        gap = max(2, h // 3)  # rows left blank above each cell: room for its label
        image = np.full((rows * (h + gap), cols * (w + 2)), np.nan, dtype=np.float32)
        for k, cell in enumerate(thin):
            r, c = divmod(k, cols)
            top = float(np.nanmax(cell)) if cell.size else 0.0
            y0 = (rows - 1 - r) * (h + gap)
            image[y0:y0 + h, c * (w + 2):c * (w + 2) + w] = cell / top if top > 0 else 0.0
        data = [dict(type="heatmap", z=np.round(image, 3), colorscale=ACT_SCALE, showscale=False, zmin=0, zmax=1,
                     hoverinfo="skip")]
        cell_w, cell_h, line_h = w + 2, h + gap, h
    else:  # time only: one line trace, each cell's line scaled into its box
        xs, ys = [], []
        w = 0
        for k, cell in enumerate(cells):
            r, c = divmod(k, cols)
            values = _thin(cell[None], GRID_CELL_COLUMNS)[0][0]
            w = len(values)
            lo, hi = float(values.min()), float(values.max())
            scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
            xs.extend([*(c * (w + 2) + np.arange(w)), None])
            ys.extend([*((rows - 1 - r) * 1.4 + scaled), None])
        data = [dict(type="scatter", x=xs, y=ys, mode="lines", line=dict(color=theme.PRIMARY, width=1.1),
                     hoverinfo="skip")]
        cell_w, cell_h, line_h = w + 2, 1.4, 1.0
    for k, ch in enumerate(channels):
        r, c = divmod(k, cols)
        mark = " ◀" if ch == selected else ""
        notes.append(dict(text=f"ch {ch} · {means[ch]:.2f}{mark}", x=c * cell_w, y=(rows - 1 - r) * cell_h + line_h,
                          xanchor="left", yanchor="bottom", showarrow=False,
                          font=dict(size=10, color=theme.SECONDARY if ch == selected else theme.TEXT)))
    hidden = dict(showticklabels=False, zeroline=False, showgrid=False)
    return go.Figure(data=data, layout=_layout(title, 70 + 95 * rows, annotations=notes,
                                               xaxis=dict(range=[-1, cols * cell_w], **hidden),
                                               yaxis=dict(range=[-0.05 * cell_h, rows * cell_h + 0.2 * cell_h],
                                                          **hidden)))


def channel_tags(correlations: np.ndarray, channels: Sequence[int], tags: Sequence[str], *,
                 selected: int | None = None, top: int = 24, title: str) -> go.Figure:
    """Channel x tag heatmap of correlations (diverging), the ``top`` tags most correlated with any channel."""
    r = np.asarray(correlations, dtype=np.float64)
    strength = np.nanmax(np.abs(np.where(np.isfinite(r), r, 0.0)), axis=0) if r.size else np.zeros(len(tags))
    keep = np.argsort(-strength, kind="stable")[:top]
    labels = [f"ch {c}" + (" ◀" if c == selected else "") for c in channels]
    heat = dict(type="heatmap", z=np.round(r[:, keep], 3), x=[tags[j] for j in keep], y=labels, zmid=0, zmin=-1,
                zmax=1, colorscale=theme.DELTA_SCALE, reversescale=True, colorbar=dict(title=dict(text="r"), thickness=12),
                hovertemplate="%{y} and '%{x}': r = %{z:.2f}<extra></extra>")
    return go.Figure(data=[heat], layout=_layout(title, 160 + 18 * len(channels),
                                                 xaxis=dict(tickangle=-45), yaxis=dict(autorange="reversed")))


def channel_spectrum(hz: Sequence[float], spectrum: np.ndarray, corpus: np.ndarray, *, kind: str,
                     title: str) -> go.Figure:
    """What a channel lets through (activation-weighted input spectrum) against the corpus's average spectrum."""
    x = np.asarray(hz, dtype=np.float64)
    data = [dict(type="scatter", x=x, y=np.round(corpus, 4), mode="lines", name="corpus average",
                 line=dict(color=theme.MUTED, dash="dot"), hovertemplate="%{x:.0f} Hz: %{y:.3f}<extra>corpus</extra>"),
            dict(type="scatter", x=x, y=np.round(spectrum, 4), mode="lines", name="this channel",
                 line=dict(color=theme.SECONDARY, width=2.2),
                 hovertemplate="%{x:.0f} Hz: %{y:.3f}<extra>channel</extra>")]
    y_title = "log-mel input (normalised)" if kind == "mel" else "log power"
    return go.Figure(data=data, layout=_layout(title, 300, showlegend=True,
                                               legend=dict(orientation="h", y=1.0, yanchor="bottom", x=1,
                                                           xanchor="right"),
                                               xaxis=dict(title="frequency (Hz)", type="log" if kind == "mel" else
                                                          "linear"), yaxis=dict(title=y_title)))


def kernel_images(kernels: np.ndarray, *, max_kernels: int = 48, title: str) -> go.Figure:
    """2-D kernels (C, height, width) as small images (frequency up), each in its own colour range.

    One mosaic heatmap (kernels side by side, NaN between them), each kernel divided by its
    largest magnitude, so blue is negative and red positive in every tile.
    """
    n = min(len(kernels), max_kernels)
    h, w = kernels.shape[1], kernels.shape[2]
    # long temporal filters (1 x 128) get fewer per row, so tiles stay readable
    cols = max(1, min(n, 12 if w <= 16 else max(1, 512 // max(w, 1))))
    rows = max(1, -(-n // cols))
    gap = max(1, min(h, w) // 3)
    image = np.full((rows * (h + gap), cols * (w + gap)), np.nan, dtype=np.float32)
    for k in range(n):
        r, c = divmod(k, cols)
        tile = np.asarray(kernels[k], dtype=np.float32)
        lim = float(np.abs(tile).max())
        y0 = (rows - 1 - r) * (h + gap)
        image[y0:y0 + h, c * (w + gap):c * (w + gap) + w] = tile / lim if lim > 0 else 0.0
    heat = dict(type="heatmap", z=np.round(image, 3), colorscale=FILTER_SCALE, zmid=0, zmin=-1, zmax=1,
                showscale=False, hoverinfo="skip")
    hidden = dict(showticklabels=False, zeroline=False, showgrid=False)
    tile_px = int(np.clip(900 / cols * h / max(w, 1), 8, 160))
    return go.Figure(data=[heat], layout=_layout(title, 70 + (tile_px + 6) * rows, xaxis=hidden,
                                                 yaxis=dict(**hidden)))


def kernel_responses(freqs: np.ndarray, db: np.ndarray, *, title: str) -> go.Figure:
    """Frequency responses of 1-D kernels (C, n_freqs) in dB, one row per kernel, sorted by peak frequency."""
    order = np.argsort(np.argmax(db, axis=1), kind="stable")
    heat = dict(type="heatmap", z=np.round(db[order], 1), x=np.round(freqs, 1), y=[str(i) for i in order],
                colorscale="Magma", zmin=-40, zmax=0, colorbar=dict(title=dict(text="dB"), thickness=12),
                hovertemplate="kernel %{y}<br>%{x:.0f} Hz: %{z:.1f} dB<extra></extra>")
    return go.Figure(data=[heat], layout=_layout(title, 360, xaxis=dict(title="frequency (Hz)"),
                                                 yaxis=dict(title="kernel (sorted by peak frequency)",
                                                            showticklabels=False)))


def layer_spectra(hz: Sequence[float], spectra: np.ndarray, corpus: np.ndarray, channels: Sequence[int], *,
                  kind: str, selected: int | None = None, title: str) -> go.Figure:
    """Each precomputed channel's response spectrum minus the corpus average (channels x frequency, diverging)."""
    diff = np.asarray(spectra, dtype=np.float64) - np.asarray(corpus, dtype=np.float64)[None]
    finite = diff[np.isfinite(diff)]
    lim = float(np.abs(finite).max()) if finite.size else 1.0
    labels = [f"ch {c}" + (" ◀" if c == selected else "") for c in channels]
    x = [f"{f:.0f}" for f in hz]
    heat = dict(type="heatmap", z=np.round(diff, 3), x=x, y=labels, zmid=0, zmin=-lim, zmax=lim,
                colorscale=theme.DELTA_SCALE, reversescale=True, colorbar=dict(thickness=12),
                hovertemplate="%{y} at %{x} Hz: %{z:+.3f} vs the corpus<extra></extra>")
    return go.Figure(data=[heat], layout=_layout(title, 140 + 18 * len(channels),
                                                 xaxis=dict(title=f"{'mel band' if kind == 'mel' else 'STFT bin'} "
                                                            "centre (Hz)", nticks=12),
                                                 yaxis=dict(autorange="reversed")))
