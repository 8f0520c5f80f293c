"""The figure builders of `dashboard.charts` that the browser tests cannot see into."""

from __future__ import annotations

import base64
import io

import numpy as np
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


def test_the_clip_view_draws_the_mel_as_an_image_on_an_upright_axis() -> None:
    mel = np.random.default_rng(0).random((96, 1200)).astype(np.float32)
    taggram = np.random.default_rng(1).random((20, 3)).astype(np.float32)
    fig = charts.clip_view(taggram, 2.0, ["a", "b", "c"], ["TP", "FP", "TN"], mel_db=mel, mel_fps=62.5)
    image = next(t for t in fig.data if t.type == "image")
    assert decoded(image.to_plotly_json()).shape[1] <= charts.MAX_SPEC_COLUMNS, "long clips are thinned"
    assert fig.layout.yaxis2.scaleanchor is False and fig.layout.yaxis2.autorange is True
    assert [t.type for t in fig.data].count("heatmap") == 1, "the taggram stays a heatmap (its hover shows values)"
    assert fig.layout.template.layout.paper_bgcolor == theme.PLOTLY_TEMPLATE["layout"]["paper_bgcolor"]


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
