"""Tag metrics: per-tag ROC-AUC, PR-AUC, precision, recall, F1 and support; curves; co-occurrence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import analysis, charts, light_charts, loaders, state, widgets
from dashboard.text import md
from pipeline.run import rundir as rd

ctx = widgets.context()
run = widgets.need_run(ctx)
widgets.header("Tag metrics", "How well each tag is predicted, at the threshold chosen in the sidebar", run)
preds = widgets.scored_predictions(run, "per-tag ROC-AUC, PR-AUC, precision and recall compare the "
                                   "predictions with annotations")
tags = preds.tags

c1, _ = st.columns([1, 3])
split = widgets.split_picker(preds.splits, label="Evaluated split", container=c1)

rows = preds.rows(split)
if len(rows) == 0:
    st.info(f"{widgets.split_phrase(split).capitalize()} has no clips.")
    st.stop()
truth, probs = preds.truth[rows], preds.probs[rows]
thresholds, how = widgets.thresholds(run, tags)
evaluated = widgets.per_tag(run)
# per_tag.csv names the corpus's tags; scored across vocabularies they may differ from the model's
# (pipeline.sources.vocab), and the figures are then computed here per model tag.
if (evaluated is not None and split == widgets.evaluated_split(run)
        and {"support", "roc_auc", "pr_auc"} <= set(evaluated.columns) and set(tags) <= set(evaluated["tag"])):
    aucs = evaluated.set_index("tag").reindex(tags)[["support", "roc_auc", "pr_auc"]]  # the evaluation's own
else:  # another split: computed here once (cached)
    aucs = widgets.guarded(loaders.split_aucs, str(run.file(rd.PREDICTIONS)), run.stamp(rd.PREDICTIONS), split,
                           what="per-tag AUCs")
if aucs is None:
    st.stop()
counts = analysis.confusion_counts(truth, probs, thresholds)
table = pd.DataFrame({"tag": tags, "support": aucs["support"].to_numpy(), "roc_auc": aucs["roc_auc"].to_numpy(),
                      "pr_auc": aucs["pr_auc"].to_numpy(), "precision": counts["precision"], "recall": counts["recall"],
                      "f1": counts["f1"], "tp": counts["tp"], "fp": counts["fp"], "fn": counts["fn"],
                      "threshold": thresholds})
if evaluated is not None:
    extra = evaluated.set_index("tag").reindex(tags)
    table["tuned_threshold"] = extra["tuned_threshold"].to_numpy()
    if "f1_tuned" in extra:
        table["f1_tuned"] = extra["f1_tuned"].to_numpy()

# ---- summary at the current thresholds
tp, fp, fn = int(counts["tp"].sum()), int(counts["fp"].sum()), int(counts["fn"].sum())
m = st.columns(6)
m[0].metric("Clips", f"{len(rows):,}", help=widgets.split_phrase(split))
m[1].metric("ROC-AUC (macro)", widgets.fmt(np.nanmean(table["roc_auc"])) if table["roc_auc"].notna().any() else "–")
m[2].metric("F1 (macro)", widgets.fmt(np.nanmean(table["f1"])) if table["f1"].notna().any() else "–",
            help=f"at {how}")
m[3].metric("True positives", f"{tp:,}", help=f"(clip, tag) pairs annotated and predicted at {how}")
m[4].metric("False positives", f"{fp:,}", help=f"pairs predicted but not annotated at {how}")
m[5].metric("False negatives", f"{fn:,}", help=f"pairs annotated but not predicted at {how}")
st.caption(f"Precision, recall, F1 and counts at {how} on {widgets.split_phrase(split, bold=True)}; ROC-AUC and PR-AUC do not depend "
           "on the threshold." + (" Tuned thresholds come from the evaluate stage (per_tag.csv)."
                                  if evaluated is not None else ""))

# ---- the table and its plot. The plot, the curves and the co-occurrence are fragments: choosing
# what one of them shows reruns that part only (page switches and the threshold rerun everything).


@st.fragment
def per_tag_plot() -> None:
    metric = st.segmented_control("Plot", ["roc_auc", "pr_auc", "f1", "precision", "recall", "support"],
                                  format_func=lambda m: charts.METRIC_TITLES.get(m, m), default="roc_auc",
                                  key="metrics:plot", required=True)
    widgets.chart(charts.per_tag_bars(table, metric, highlight=state.get("tag")), key="per_tag_bars")


per_tag_plot()
progress = dict(min_value=0.0, max_value=1.0, format="%.3f")
st.dataframe(
    table, hide_index=True, width="stretch", height=min(600, 38 + 35 * len(table)),
    column_config={
        "tag": st.column_config.TextColumn("Tag", pinned=True),
        "support": st.column_config.NumberColumn("Support", help="annotated clips in the split", format="%d"),
        "roc_auc": st.column_config.ProgressColumn("ROC-AUC", **progress),
        "pr_auc": st.column_config.ProgressColumn("PR-AUC", **progress),
        "precision": st.column_config.NumberColumn("Precision", format="%.3f"),
        "recall": st.column_config.NumberColumn("Recall", format="%.3f"),
        "f1": st.column_config.NumberColumn("F1", format="%.3f"),
        "tp": st.column_config.NumberColumn("TP", format="%d"),
        "fp": st.column_config.NumberColumn("FP", format="%d"),
        "fn": st.column_config.NumberColumn("FN", format="%d"),
        "threshold": st.column_config.NumberColumn("Threshold used", format="%.2f"),
        "tuned_threshold": st.column_config.NumberColumn("Tuned threshold", format="%.2f",
                                                         help="maximises the tag's F1 on the validation split"),
        "f1_tuned": st.column_config.NumberColumn("F1 at tuned", format="%.3f"),
    })
undefined = table.loc[table["roc_auc"].isna(), "tag"].tolist()
if undefined:
    st.caption(f"No ROC-AUC for {', '.join(map(md, undefined))}: no positive or no negative clip in {widgets.split_phrase(split)}.")

# ---- curves of the chosen tag


@st.fragment
def tag_curves() -> None:
    c1, _ = st.columns([1, 3])
    tag = widgets.tag_picker(tags, label="Tag for the curves", container=c1)
    st.subheader(f"Curves of '{md(tag)}'")
    j = tags.index(tag)
    curve = analysis.curves(truth[:, j], probs[:, j])
    if not len(curve["fpr"]):
        st.caption(f"'{md(tag)}' has no positive or no negative clip in {widgets.split_phrase(split)}, "
                   "so it has no curves.")
        return
    points = {f"threshold in use {thresholds[j]:.2f}":
              analysis.operating_point(truth[:, j], probs[:, j], float(thresholds[j]))}
    tuned = float(table["tuned_threshold"][j]) if "tuned_threshold" in table else np.nan
    if np.isfinite(tuned) and abs(tuned - thresholds[j]) > 1e-9:
        points[f"tuned threshold {tuned:.2f}"] = analysis.operating_point(truth[:, j], probs[:, j], tuned)
    light_charts.roc_pr(curve, float(table["roc_auc"][j]), float(table["pr_auc"][j]), float(truth[:, j].mean()),
                        points, tag, key="curves")


tag_curves()

# ---- co-occurrence: annotations vs predictions (one matrix drawn at a time: tabs would draw all three)
COOCCURRENCE = {"annotations": "Annotations", "predictions": "Predictions", "difference": "Predictions minus annotations"}


COOCCURRENCE_OPEN, COOCCURRENCE_KEPT = "metrics:cooccurrence_open", "metrics:cooccurrence_kept"


def _keep_cooccurrence_open() -> None:
    # A widget's own state is dropped on a page where it is not drawn; this copy outlives page switches.
    st.session_state[COOCCURRENCE_KEPT] = bool(st.session_state[COOCCURRENCE_OPEN])


@st.fragment
def cooccurrence() -> None:
    # Drawn when opened (a 2,500-cell heatmap is a third of the page's time in the browser); once
    # opened it stays open, on this page and when the user comes back to it.
    st.session_state[COOCCURRENCE_OPEN] = st.session_state.get(COOCCURRENCE_KEPT, False)
    box = st.expander("Tag co-occurrence: annotations vs predictions", key=COOCCURRENCE_OPEN,
                      on_change=_keep_cooccurrence_open)
    if not box.open:
        return
    with box:
        cooccurrence_matrix()


def cooccurrence_matrix() -> None:
    st.caption("Each cell is P(column tag | row tag): the share of clips with the row tag that also have the "
               f"column tag, on {widgets.split_phrase(split)}. Predictions are taken at {how}.")
    shown = st.segmented_control("Co-occurrence of", list(COOCCURRENCE), format_func=COOCCURRENCE.get,
                                 default="annotations", key="metrics:cooccurrence", required=True,
                                 label_visibility="collapsed")
    ann = loaders.annotation_cooccurrence(str(run.file(rd.PREDICTIONS)), run.stamp(rd.PREDICTIONS), split)
    if shown == "annotations":
        widgets.chart(charts.cooccurrence(ann, tags, "Annotated co-occurrence P(column | row)"), key="co_ann")
        return
    pred = analysis.cooccurrence(probs >= thresholds)
    if shown == "predictions":
        widgets.chart(charts.cooccurrence(pred, tags, "Predicted co-occurrence P(column | row)"), key="co_pred")
    else:
        widgets.chart(charts.cooccurrence(pred - ann, tags, "Where predictions co-occur more (red) or less (blue) "
                                          "than annotations", diverging=True), key="co_diff")


cooccurrence()
