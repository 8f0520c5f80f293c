"""The clip view: a clip's mel-spectrogram above its taggram on one time axis, as a light component.

Drawn by ``clip_view.js`` (a Streamlit components-v2 element in the page itself, no iframe) from
two PNGs: the browser decodes them natively and lays out a few dozen elements, where a plotly
figure of the same cost the Clip explorer and the Review queue about 300 ms of the browser's time
on every new clip (docs/benchmarks.md). The hover reads the value under the pointer: a tag's
activation at a time on the taggram, the time and mel band on the spectrogram.

Everything shown comes from a run folder, so the script sets it as text (``textContent``),
never as HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from dashboard import charts, theme
from dashboard.theme import QUIET

_HERE = Path(__file__).parent
_COMPONENT = st.components.v2.component(
    "musictag.clip_view", js=(_HERE / "clip_view.js").read_text(encoding="utf-8"),
    css=(_HERE / "clip_view.css").read_text(encoding="utf-8"))

MAX_SPEC_COLUMNS = 600  # time columns of a displayed spectrogram (a PNG of at most this width)
MEL_HEIGHT = 170  # px
TAG_ROW = 16  # px per taggram row


def view_data(taggram: np.ndarray | None, frame_rate: float | None, tags: Sequence[str], outcomes: Sequence[str],
              *, mel_db: np.ndarray | None = None, mel_fps: float | None = None,
              title: str = "Mel-spectrogram and taggram") -> dict[str, Any]:
    """What ``clip_view.js`` draws (plain JSON).

    Parameters
    ----------
    taggram : np.ndarray [shape=(frames, len(tags))] or None  activations in [0, 1]
    frame_rate : taggram frames per second (None: the time axis counts frames)
    tags, outcomes : the taggram's rows and their outcome at the threshold (colours the labels)
    mel_db : np.ndarray [shape=(n_mels, t)] or None  the mel-spectrogram, band 0 the lowest
    mel_fps : spectrogram frames per second
    """
    seconds = []
    mel = None
    if mel_db is not None:
        thinned = downsample_columns(np.asarray(mel_db, dtype=np.float32), MAX_SPEC_COLUMNS)[0]
        seconds.append(mel_db.shape[1] / (mel_fps or 1.0))
        mel = {"src": charts.png_data_url(thinned[::-1], theme.SPEC_SCALE),  # the image's top row: the highest band
               "bands": int(mel_db.shape[0]), "height": MEL_HEIGHT, "seconds": seconds[-1]}
    tg = None
    if taggram is not None:
        values = np.clip(np.nan_to_num(np.asarray(taggram, dtype=np.float32).T), 0, 1)  # (tags, frames)
        seconds.append(taggram.shape[0] / (frame_rate or 1.0))
        tg = {"src": charts.png_data_url(values, theme.PROB_SCALE, 0.0, 1.0), "seconds": seconds[-1],
              "tags": [str(t) for t in tags], "values": np.round(values, 3).tolist(), "row": TAG_ROW,
              "colors": [theme.TEXT_QUIET if o in QUIET else theme.OUTCOME_COLORS[o] for o in outcomes],
              "gradient": charts.css_gradient(theme.PROB_SCALE)}
    return {"title": title, "mel": mel, "taggram": tg, "seconds": max(seconds, default=0.0),
            "time_title": "time (s)" if (frame_rate or mel_fps) else "frame",
            "style": {"font": theme.FONT["family"], "text": theme.TEXT, "muted": theme.TEXT_MUTED, "grid": theme.GRID}}


def clip_view(taggram: np.ndarray | None, frame_rate: float | None, tags: Sequence[str], outcomes: Sequence[str],
              *, key: str, mel_db: np.ndarray | None = None, mel_fps: float | None = None,
              title: str = "Mel-spectrogram and taggram") -> None:
    """Draw the clip view (see `view_data` for the parameters; ``key`` names the element)."""
    _COMPONENT(data=view_data(taggram, frame_rate, tags, outcomes, mel_db=mel_db, mel_fps=mel_fps, title=title),
               key=key)


def downsample_columns(matrix: np.ndarray, max_cols: int) -> tuple[np.ndarray, int]:
    """Average blocks of columns so at most ``max_cols`` remain; returns (matrix, block size)."""
    cols = matrix.shape[1]
    if cols <= max_cols:
        return matrix, 1
    block = int(np.ceil(cols / max_cols))
    pad = (-cols) % block
    padded = np.pad(matrix, ((0, 0), (0, pad)), mode="edge")
    return padded.reshape(matrix.shape[0], -1, block).mean(axis=2), block
