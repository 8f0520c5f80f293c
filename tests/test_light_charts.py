"""The light charts' data (`dashboard.light_charts`): what the page's own script draws and reads in its hover."""

from __future__ import annotations

import numpy as np
import pytest
from test_charts import CRAFTED, decoded, scale_end

from dashboard import analysis, light_charts, theme


def test_the_clip_view_draws_the_mel_upright_and_the_taggram_a_tag_a_row() -> None:
    mel = np.zeros((96, 1200), dtype=np.float32)
    mel[:8] = 1.0  # energy in the lowest bands only
    taggram = np.zeros((20, 3), dtype=np.float32)
    taggram[:, 1] = 1.0  # tag "b" on throughout
    data = light_charts.clip_view_data(taggram, 2.0, ["a", CRAFTED, "c"], ["TP", "FP", "TN"], mel_db=mel, mel_fps=62.5)
    pixels = decoded({"source": data["mel"]["src"]})
    assert pixels.shape[1] <= light_charts.MAX_SPEC_COLUMNS, "long clips are thinned"
    loud = scale_end(theme.SPEC_SCALE, -1)
    assert np.abs(pixels[-1, 0].astype(int) - loud).max() <= 2 and np.abs(pixels[0, 0].astype(int) - loud).max() > 50, \
        "band 0 is the image's bottom row"
    rows = decoded({"source": data["taggram"]["src"]})
    assert rows.shape[:2] == (3, 20), "a row a tag, a column a frame"
    assert np.abs(rows[1, 0].astype(int) - scale_end(theme.PROB_SCALE, -1)).max() <= 2
    tg = data["taggram"]
    assert tg["tags"] == ["a", CRAFTED, "c"], "names stay as they are: the script sets them as text"
    assert tg["colors"] == [theme.OUTCOME_COLORS["TP"], theme.OUTCOME_COLORS["FP"], theme.TEXT_QUIET]
    assert tg["values"][1] == [1.0] * 20 and tg["seconds"] == 10.0
    assert data["mel"]["seconds"] == pytest.approx(1200 / 62.5) == data["seconds"]
    assert data["time_title"] == "time (s)"
    only_tags = light_charts.clip_view_data(taggram, None, ["a", "b", "c"], ["PRED", "UNPRED", "PRED"])
    assert only_tags["mel"] is None and only_tags["time_title"] == "frame" and only_tags["seconds"] == 20


def test_the_curves_carry_both_panels_their_thresholds_and_the_operating_points() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(400) < 0.3
    probs = np.clip(truth * 0.3 + rng.random(400) * 0.7, 0, 1)
    curve = analysis.curves(truth, probs)
    points = {"threshold in use 0.50": analysis.operating_point(truth, probs, 0.5),
              "tuned threshold 0.30": {"fpr": 0.4, "recall": 0.9, "precision": np.nan}}
    data = light_charts.roc_pr_data(curve, 0.8, 0.7, float(truth.mean()), points, CRAFTED)
    assert data["kind"] == "curves" and data["title"].endswith(f"'{CRAFTED}'"), "the name as it is: set as text"
    roc, pr = data["panels"]
    np.testing.assert_allclose(roc["line"]["x"], curve["fpr"], atol=5e-5)
    np.testing.assert_allclose(pr["line"]["y"], curve["precision"], atol=5e-5)
    # what the hover reads: the threshold at each point, the first (+inf: nothing predicted) shown as 1
    assert roc["line"]["t"][0] == 1.0 and roc["line"]["t"][1:] == pytest.approx(curve["roc_thresholds"][1:], abs=5e-5)
    assert pr["chance"] == [[0, pytest.approx(truth.mean())], [1, pytest.approx(truth.mean())]]
    assert [p["name"] for p in roc["points"]] == list(points), "both points on the ROC panel"
    assert [p["name"] for p in pr["points"]] == ["threshold in use 0.50"], "no precision: not on the PR panel"
    assert roc["points"][0]["symbol"] == "circle" and roc["points"][1]["symbol"] == "diamond"
    legend = [(item["name"], item["kind"]) for item in data["legend"]]
    assert legend == [("ROC (AUC 0.800)", "line"), ("PR (AP 0.700)", "line"), ("chance", "dotted"),
                      ("threshold in use 0.50", "circle"), ("tuned threshold 0.30", "diamond")]
    assert roc["line"]["color"] == theme.PRIMARY and pr["line"]["color"] == theme.SECONDARY
