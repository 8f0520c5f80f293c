"""Charts the dashboard draws with its own small script (``light_charts.js``), not plotly.

A Streamlit components-v2 element in the page itself (no iframe). Mounting a plotly figure cost
the browser 175-450 ms on every page switch or new clip; these lay out a few dozen elements
(docs/benchmarks.md, "Light charts"):

- `clip_view`: a clip's mel-spectrogram above its taggram on one time axis, two PNGs; the hover
  reads a tag's activation at a time on the taggram, the time and mel band on the spectrogram;
- `roc_pr`: a tag's ROC and precision-recall curves side by side, with the operating points of
  its thresholds; the hover reads the threshold at the curve's point nearest the pointer.

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
    "musictag.light_chart", js=(_HERE / "light_charts.js").read_text(encoding="utf-8"),
    css=(_HERE / "light_charts.css").read_text(encoding="utf-8"))

MAX_SPEC_COLUMNS = 600  # time columns of a displayed spectrogram (a PNG of at most this width)
MEL_HEIGHT = 170  # px
TAG_ROW = 16  # px per taggram row
CURVES_HEIGHT = 340  # px, the plots of the ROC and PR curves
# The theme's font and colours, which the script sets as CSS properties (--lc-*).
STYLE = {"font": theme.FONT["family"], "text": theme.TEXT, "muted": theme.TEXT_MUTED, "grid": theme.GRID}


def clip_view_data(taggram: np.ndarray | None, frame_rate: float | None, tags: Sequence[str],
                   outcomes: Sequence[str], *, mel_db: np.ndarray | None = None, mel_fps: float | None = None,
                   title: str = "Mel-spectrogram and taggram") -> dict[str, Any]:
    """What ``light_charts.js`` draws for the clip view (plain JSON).

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
        thinned = charts.thin_columns(np.asarray(mel_db, dtype=np.float32), MAX_SPEC_COLUMNS)[0]
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
    return {"kind": "clip_view", "title": title, "mel": mel, "taggram": tg, "seconds": max(seconds, default=0.0),
            "time_title": "time (s)" if (frame_rate or mel_fps) else "frame", "style": STYLE}


def clip_view(taggram: np.ndarray | None, frame_rate: float | None, tags: Sequence[str], outcomes: Sequence[str],
              *, key: str, mel_db: np.ndarray | None = None, mel_fps: float | None = None,
              title: str = "Mel-spectrogram and taggram") -> None:
    """Draw the clip view (see `clip_view_data` for the parameters; ``key`` names the element)."""
    _COMPONENT(data=clip_view_data(taggram, frame_rate, tags, outcomes, mel_db=mel_db, mel_fps=mel_fps, title=title),
               key=key)


def roc_pr_data(curve: dict[str, np.ndarray], auc: float, ap: float, base_rate: float,
                points: dict[str, dict[str, float]], tag: str) -> dict[str, Any]:
    """What ``light_charts.js`` draws for a tag's ROC and PR curves (plain JSON).

    Parameters
    ----------
    curve : ``fpr``, ``tpr``, ``roc_thresholds``, ``recall``, ``precision``, ``pr_thresholds`` arrays
        (`dashboard.analysis.curves`)
    auc, ap : the tag's ROC-AUC and average precision (the legend shows them)
    base_rate : the tag's share of positive clips: the PR curve's chance level
    points : operating points by name (at most two: a circle, then a diamond), each with ``fpr``,
        ``recall`` and ``precision``; a point with a missing value is left out of that panel
    """
    symbols = ("circle", "diamond")
    named = list(zip(points.items(), symbols))

    def line(x: str, y: str, t: str, names: tuple[str, str], colour: str) -> dict[str, Any]:
        # The first threshold is +inf (above every score: nothing predicted); probabilities stop at 1.
        return {"x": _rounded(curve[x]), "y": _rounded(curve[y]), "t": _rounded(np.minimum(curve[t], 1.0)), "names": names,
                "color": colour}

    def marks(x: str, y: str) -> list[dict[str, Any]]:
        return [{"name": name, "x": float(p[x]), "y": float(p[y]), "symbol": symbol} for (name, p), symbol in named
                if np.isfinite(p.get(x, np.nan)) and np.isfinite(p.get(y, np.nan))]

    rate = float(base_rate) if np.isfinite(base_rate) else 0.0
    panels = [
        {"x_title": "false-positive rate", "y_title": "true-positive rate (recall)", "chance": [[0, 0], [1, 1]],
         "line": line("fpr", "tpr", "roc_thresholds", ("FPR", "TPR"), theme.PRIMARY), "points": marks("fpr", "recall")},
        {"x_title": "recall", "y_title": "precision", "chance": [[0, rate], [1, rate]],
         "line": line("recall", "precision", "pr_thresholds", ("recall", "precision"), theme.SECONDARY),
         "points": marks("recall", "precision")}]
    legend = [{"name": f"ROC (AUC {auc:.3f})", "kind": "line", "color": theme.PRIMARY},
              {"name": f"PR (AP {ap:.3f})", "kind": "line", "color": theme.SECONDARY},
              {"name": "chance", "kind": "dotted", "color": theme.MUTED},
              *({"name": name, "kind": symbol, "color": theme.TEXT} for (name, _), symbol in named)]
    return {"kind": "curves", "title": f"ROC curve (left) and precision-recall curve (right) of '{tag}'",
            "panels": panels, "legend": legend, "height": CURVES_HEIGHT, "style": STYLE}


def roc_pr(curve: dict[str, np.ndarray], auc: float, ap: float, base_rate: float,
           points: dict[str, dict[str, float]], tag: str, *, key: str) -> None:
    """Draw a tag's ROC and PR curves (see `roc_pr_data` for the parameters; ``key`` names the element)."""
    _COMPONENT(data=roc_pr_data(curve, auc, ap, base_rate, points, tag), key=key)


def _rounded(values: np.ndarray) -> list[float]:
    """Finite values at 4 decimals (a tenth of a pixel at any width; the JSON stays small)."""
    return np.round(np.nan_to_num(np.asarray(values, dtype=float)), 4).tolist()
