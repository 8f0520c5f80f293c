"""The figure builders of `dashboard.charts` that the browser tests cannot see into."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import plotly.colors
import pytest
from PIL import Image

from dashboard import charts, theme


def decoded(trace: dict) -> np.ndarray:
    header, data = trace["source"].split(",", 1)
    assert header == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def scale_end(name: str, end: int) -> np.ndarray:
    colour = plotly.colors.get_colorscale(name)[end][1]
    return np.array(plotly.colors.unlabel_rgb(plotly.colors.convert_colors_to_same_type(colour, "rgb")[0][0]))


def test_a_spectrogram_image_keeps_its_shape_orientation_and_colours() -> None:
    z = np.zeros((96, 40), dtype=np.float32)
    z[:8] = 4.0  # energy in the lowest bands only
    z[50, 5] = np.nan  # an undecodable cell is drawn as the minimum, not an error
    trace = charts.png_image(z, theme.SPEC_SCALE, 0.0, 4.0, x0=0.25, dx=0.5)
    pixels = decoded(trace)
    assert pixels.shape == (96, 40, 3)
    # plotly draws image row 0 at y0 on a normal (IMAGE_AXIS) axis: band 0 at the bottom, as in the heatmap
    assert (trace["y0"], trace["dy"], trace["x0"], trace["dx"]) == (0, 1, 0.25, 0.5)
    assert np.abs(pixels[0, 0].astype(int) - scale_end(theme.SPEC_SCALE, -1)).max() <= 2, "the loudest colour"
    assert np.abs(pixels[95, 0].astype(int) - scale_end(theme.SPEC_SCALE, 0)).max() <= 2, "the quietest colour"
    assert (pixels[50, 5] == pixels[95, 0]).all()


def test_the_inside_view_draws_the_mel_as_the_same_image() -> None:
    from dashboard import inside_charts

    mel = np.random.default_rng(2).random((96, 2000)).astype(np.float32)
    fig = inside_charts.channel_view(mel, 62.5, np.random.default_rng(3).random(100), 3.0,
                                     taggram=np.random.default_rng(4).random((20, 2)), taggram_fps=2.0,
                                     tags=["a", "b"], title="t")
    image = fig.data[0]
    assert image.type == "image" and decoded(image.to_plotly_json()).shape[0] == 96
    assert image.dx * 62.5 == pytest.approx(2000 / decoded(image.to_plotly_json()).shape[1], rel=0.01), \
        "thinned columns keep the time axis in seconds"
    assert fig.layout.yaxis.scaleanchor is False and fig.layout.yaxis.title.text == "mel band"


# -- Vega-Lite specs ---------------------------------------------------------------------------

CRAFTED = "it's <b>\"loud\"</b> \\ datum.x"  # a tag name from someone else's run


def plain(spec: dict) -> dict:
    """The spec as the browser gets it: its tables as records (Streamlit sends them as Arrow)."""
    spec = dict(spec)
    if "data" in spec:
        spec["data"] = {"values": spec["data"]["values"].to_dict("records")}
    if "datasets" in spec:
        spec["datasets"] = {name: frame.to_dict("records") for name, frame in spec["datasets"].items()}
    return spec


def vega_specs() -> dict[str, dict]:
    rng = np.random.default_rng(0)
    tags = ["a", CRAFTED, "c"]
    table = pd.DataFrame({"tag": tags, "roc_auc": [0.9, 0.8, np.nan], "support": [3, 4, 0]})
    runs = pd.DataFrame({"tag": tags, "a": [0.5, 0.6, 0.7], "b": [0.7, 0.5, 0.7], "delta": [0.2, -0.1, 0.0]})
    headline = pd.DataFrame({"metric": ["ROC-AUC"] * 3 + ["PR-AUC"] * 3, "average": ["macro", "micro", "weighted"] * 2,
                             "value": [0.9, 0.8, np.nan, 0.5, 0.6, 0.7], "low": rng.random(6) * 0.5,
                             "high": 0.5 + rng.random(6) * 0.5})
    projection = pd.DataFrame({"tag": tags, "cluster": [0, 1, 1], "frequency": [3, 9, 1], "umap_x": [0, 1, 2],
                               "umap_y": [1, 0, 2], "roc_auc": [0.7, 0.9, np.nan]})
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.5, 0.4], "valid_roc_auc": [0.6, 0.8, 0.7],
                            "valid_pr_auc": [0.2, np.nan, 0.3]})
    return {
        "split_sizes": charts.split_sizes({"train": 10, "valid": 3, "test": 5}),
        "headline": charts.headline(headline),
        "tag_frequency": charts.tag_frequency(tags, [3, 5, 0]),
        "clip_tags": charts.clip_tags(tags, np.array([0.9, 0.2, 0.5]), ["TP", "FN", "TN"], np.array([0.5, 0.5, 0.4])),
        "per_tag_bars": charts.per_tag_bars(table, "roc_auc", highlight=CRAFTED),
        "cooccurrence": charts.cooccurrence(rng.random((3, 3)) - 0.5, tags, "t", diverging=True),
        "tag_map (clusters)": charts.tag_map(projection, "umap_x", "umap_y", color="cluster", title="t"),
        "tag_map (ROC-AUC)": charts.tag_map(projection, "umap_x", "umap_y", color="roc_auc", title="t"),
        "clip_map (outcomes)": charts.clip_map(rng.random(6), rng.random(6), np.array(tags * 2),
                                               categories=np.array(["TP", "TN", "FP", "TN", "FN", "TP"]), title="t"),
        "clip_map (values)": charts.clip_map(rng.random(6), rng.random(6), np.array(tags * 2), values=rng.random(6),
                                             title="t", value_name=f"p({CRAFTED})"),
        "agreement": charts.agreement([{"views": ["a", "b"], "mean": 0.4, "chance": 0.1}]),
        "top_tags": charts.top_tags(tags, np.array([0.9, 0.2, 0.5]), threshold=0.4),
        "run_deltas": charts.run_deltas(runs, "roc_auc", "A", "B"),
        "run_scatter": charts.run_scatter(runs, "roc_auc", "A", "B"),
        "training_loss": charts.training_loss(history),
        "validation_aucs": charts.validation_aucs(history),
    }


@pytest.mark.parametrize("name", list(vega_specs()))
def test_each_vega_chart_is_a_valid_spec_in_the_apps_look(name: str) -> None:
    import altair

    spec = vega_specs()[name]
    assert spec["config"] is theme.VEGA_CONFIG and spec["width"] == "container" and spec["title"]["text"]
    chart = (altair.LayerChart if "layer" in spec else altair.Chart).from_dict(plain(spec))  # the Vega-Lite schema
    assert chart.to_dict()
    # A name from a run reaches Vega as data, a sort order or plain title text: the specs hold no
    # expression at all, and every field name is the builder's own.
    def walk(node: object) -> list[tuple[str, object]]:
        if isinstance(node, dict):
            return [(k, v) for k, v in node.items()] + [kv for v in node.values() for kv in walk(v)]
        return [kv for v in node for kv in walk(v)] if isinstance(node, list) else []

    outline = walk({k: v for k, v in plain(spec).items() if k not in ("data", "datasets")})
    assert not [k for k, _ in outline if k in ("expr", "test", "calculate", "filter", "signal")]
    assert CRAFTED not in {v for k, v in outline if k == "field"}


def test_the_clip_map_is_drawn_on_a_canvas() -> None:
    """Its thousands of points: SVG cost the browser twice the time (Streamlit picks the canvas only past 2,000)."""
    spec = charts.clip_map(np.arange(5.0), np.arange(5.0), np.array(list("abcde")), values=np.ones(5), title="t")
    assert spec["usermeta"]["embedOptions"]["renderer"] == "canvas" and spec["mark"]["aria"] is False


def test_the_clip_map_draws_quiet_outcomes_first_in_their_colours() -> None:
    outcome = np.array(["TP", "TN", "FP", "TN", "FN"])
    spec = charts.clip_map(np.arange(5.0), np.arange(5.0), np.array(list("abcde")), categories=outcome, title="t")
    frame = spec["data"]["values"]
    assert frame["clip"].tolist() == ["b", "d", "a", "c", "e"], "grey true negatives behind the others"
    scale = spec["encoding"]["color"]["scale"]
    assert dict(zip(scale["domain"], scale["range"])) == {theme.OUTCOME_LABELS[o]: theme.OUTCOME_COLORS[o]
                                                          for o in ("TN", "TP", "FP", "FN")}
    assert set(frame["alpha"][frame["outcome"] == "true negative"]) == {0.35}


def test_the_chosen_tag_is_highlighted_through_the_data() -> None:
    table = pd.DataFrame({"tag": ["a", CRAFTED, "c"], "roc_auc": [0.9, 0.95, 0.7], "support": [3, 4, 5]})
    spec = charts.per_tag_bars(table, "roc_auc", highlight=CRAFTED)
    frame = spec["data"]["values"]
    assert frame["tag"].tolist() == [CRAFTED, "a", "c"], "best first"
    assert frame["chosen"].tolist() == [True, False, False]
    assert spec["encoding"]["color"]["scale"]["range"] == [theme.PRIMARY, theme.SECONDARY]


def test_training_charts_mark_the_best_epoch_and_skip_what_the_history_lacks() -> None:
    history = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.7, 0.5, 0.4], "valid_roc_auc": [0.6, 0.8, 0.7]})
    spec = charts.validation_aucs(history)
    assert spec["datasets"]["best"].to_dict("records") == [{"epoch": 2, "value": 0.8}]
    assert set(spec["datasets"]["curves"]["metric"]) == {"valid ROC-AUC"}, "no PR-AUC column, no PR-AUC line"
    assert charts.training_loss(history.drop(columns="train_loss")) is None
    assert charts.validation_aucs(history[["epoch", "train_loss"]]) is None
