"""One palette for every page: outcome colours (TP / FP / FN / TN), splits, scales.

Colours come from the Okabe-Ito set, which stays distinguishable under the common forms of
colour blindness. The same outcome always has the same colour on every page and chart.
"""

from __future__ import annotations

import html

from dashboard.text import md

# Outcome of one (clip, tag) pair at a decision threshold. A tag the corpus does not annotate
# (a user's own music, or a corpus labelling only some of the model's tags) has no ground truth,
# so its pairs are only "predicted" or "not predicted", never true or false.
TP, FP, FN, TN = "TP", "FP", "FN", "TN"
PRED, UNPRED = "PRED", "UNPRED"
OUTCOMES: tuple[str, ...] = (TP, FP, FN, TN, PRED, UNPRED)
QUIET: tuple[str, ...] = (TN, UNPRED)  # outcomes drawn grey, behind the others

OUTCOME_COLORS: dict[str, str] = {
    TP: "#009E73",  # bluish green: annotated and predicted
    FP: "#E69F00",  # amber: predicted, not annotated (false alarm or a missing label)
    FN: "#CC79A7",  # reddish purple: annotated, not predicted (missed)
    TN: "#D5D9E0",  # light grey: neither
    PRED: "#0072B2",  # blue (the accent): predicted, no annotation to compare with
    UNPRED: "#D5D9E0",  # light grey: not predicted, no annotation
}
OUTCOME_LABELS: dict[str, str] = {
    TP: "true positive",
    FP: "false positive",
    FN: "false negative",
    TN: "true negative",
    PRED: "predicted",
    UNPRED: "not predicted",
}

PRIMARY = "#0072B2"  # blue: the app's accent (also set in .streamlit/config.toml)
SECONDARY = "#D55E00"  # vermillion: a second series (run B, PR curves, thresholds)
MUTED = "#8A94A6"  # grey: reference lines, chance level
TEXT = "#1F2937"
TEXT_MUTED = "#4B5563"  # axis titles, subtitles
TEXT_QUIET = "#6B7280"  # secondary lines, and the labels of tags neither annotated nor predicted

SPLIT_COLORS: dict[str, str] = {
    "train": "#56B4E9",
    "valid": "#F0A202",
    "test": "#0072B2",
    "none": "#8A94A6",
}

# Runs compared side by side, and a change between them.
RUN_COLORS: tuple[str, str] = (PRIMARY, SECONDARY)
BETTER, WORSE = PRIMARY, SECONDARY

# Continuous scales: probabilities and spectrograms (sequential), deltas (diverging).
PROB_SCALE = "Viridis"
SPEC_SCALE = "Magma"
DELTA_SCALE = "RdBu"
METRIC_SCALE = "Cividis"
# Cluster colours (qualitative, 10 then repeating).
CLUSTER_COLORS: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9",
    "#D55E00", "#F0E442", "#6A3D9A", "#8C564B", "#7F7F7F",
)

FONT = dict(family="Inter, 'Source Sans Pro', 'Helvetica Neue', Arial, sans-serif", size=13, color=TEXT)
GRID = "#E5E7EB"  # grid and axis lines: light, so the data stays in front

# Every figure carries this small template and is drawn with ``theme=None``: Streamlit's own plotly
# theme is merged into each figure in the browser, a quarter of Chromium's time for a bar chart
# (docs/benchmarks.md, "Lighter charts"). Axis and hover styling match the app's light theme.
_AXIS = dict(gridcolor=GRID, linecolor=GRID, zerolinecolor=GRID, tickcolor=GRID, automargin=True,
             title=dict(font=dict(size=13, color=TEXT_MUTED)))
PLOTLY_TEMPLATE: dict = dict(layout=dict(
    paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", colorway=list(CLUSTER_COLORS),
    xaxis=_AXIS, yaxis=_AXIS, hoverlabel=dict(bgcolor="white", bordercolor=GRID, font=dict(color=TEXT)),
    legend=dict(bgcolor="rgba(0,0,0,0)")))
# What the chart's toolbar offers: a PNG for slides, zoom reset; no logo, no lasso or select tools
# (nothing reads a selection).
PLOTLY_CONFIG: dict = dict(displaylogo=False, modeBarButtonsToRemove=["lasso2d", "select2d"],
                           toImageButtonOptions=dict(format="png", scale=2))

# The same look for the Vega-Lite charts (`dashboard.charts`), drawn with ``theme=None`` too: Vega
# draws a bar chart for about a third of plotly's browser time (docs/benchmarks.md).
VEGA_CONFIG: dict = {
    "background": "transparent",
    "font": FONT["family"],
    "view": {"stroke": None},
    "title": {"anchor": "start", "fontSize": 15, "fontWeight": "normal", "color": TEXT, "offset": 12,
              "subtitleColor": TEXT_MUTED, "subtitleFontSize": 12},
    "axis": {"gridColor": GRID, "domainColor": GRID, "tickColor": GRID, "labelColor": TEXT, "labelFontSize": 12,
             "titleColor": TEXT_MUTED, "titleFontSize": 13, "titleFontWeight": "normal", "labelLimit": 180},
    "legend": {"orient": "top", "direction": "horizontal", "labelFontSize": 12, "labelColor": TEXT, "title": None,
               "symbolType": "square"},
    "range": {"category": list(CLUSTER_COLORS)},
    "text": {"font": FONT["family"], "fontSize": 11, "color": TEXT},
}
# Plotly's scale names as Vega's schemes.
VEGA_SCHEMES: dict[str, str] = {PROB_SCALE: "viridis", METRIC_SCALE: "cividis", DELTA_SCALE: "redblue", "Blues": "blues"}


def cluster_color(cluster: int) -> str:
    return CLUSTER_COLORS[int(cluster) % len(CLUSTER_COLORS)]


def chip(text: str, outcome: str, *, title: str | None = None) -> str:
    """An inline HTML 'chip' in the outcome's colour.

    ``text`` (a tag name from a run) is made literal for both HTML and the Markdown around the
    chip (`dashboard.text.md`): a chip goes through ``st.markdown(..., unsafe_allow_html=True)``.
    """
    background = OUTCOME_COLORS[outcome]
    color = TEXT if outcome in QUIET else "#FFFFFF"
    tip = f' title="{html.escape(title, quote=True)}"' if title else ""
    return (f'<span class="tag-chip"{tip} style="display:inline-block;margin:2px 4px 2px 0;'
            f"padding:2px 10px;border-radius:12px;font-size:0.86rem;background:{background};"
            f'color:{color}">{md(text)}</span>')


def legend_html() -> str:
    """The TP / FP / FN legend shown wherever chips appear."""
    return " ".join(chip(OUTCOME_LABELS[o], o) for o in (TP, FP, FN))
