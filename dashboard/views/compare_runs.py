"""Compare runs: two runs side by side, headline figures and per-tag deltas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, loaders, state, widgets
from dashboard.loaders import RunInfo
from dashboard.text import code, md
from pipeline.run import rundir as rd

ctx = widgets.context()
run = widgets.need_run(ctx)
widgets.header("Compare runs", "Two runs side by side: which tags got better, which got worse", run)
others = [r.name for r in ctx.runs if r.name != run.name and r.error is None]
if not others:
    st.info(f"Only one readable run in {code(ctx.root)}: train another to compare (e.g. another model with "
            "`python -m pipeline train --model NAME`).", icon=":material/compare_arrows:")
    st.stop()
c1, c2 = st.columns([1, 2])
evaluated = [n for n in others if (ctx.by_name(n) or run).has("evaluate")]
other_name = c1.selectbox("Compare with", others, **state.bind("vs", options=others, default=(evaluated or others)[0]))
other = ctx.by_name(other_name)
assert other is not None
# A run without annotations has no metrics: the two are compared by their model cards only.
unannotated = [r for r in (run, other) if r.unannotated]
if not widgets.no_annotations(run) and unannotated:
    st.info(f"Run **{md(other.name)}**'s corpus has no annotations: it has predictions only, no metrics to "
            "compare.", icon=":material/label_off:")
metric = None if unannotated else c2.segmented_control(
    "Per-tag metric", ["roc_auc", "pr_auc", "f1", "f1_tuned"], default="roc_auc", required=True,
    key="compare:metric", format_func=lambda m: charts.METRIC_TITLES.get(m, m))


def tag_table(r: RunInfo) -> pd.DataFrame | None:
    """Per-tag metrics of a run: per_tag.csv, else ROC/PR-AUC from its predictions' test split."""
    table = widgets.per_tag(r)
    if table is not None:
        return table.set_index("tag")
    if r.has(rd.SCORE_STAGE):
        preds = widgets.predictions(r, stop=False)
        split = "test" if preds is not None and "test" in preds.splits else "all"
        return widgets.guarded(loaders.split_aucs, str(r.file(rd.PREDICTIONS)), r.stamp(rd.PREDICTIONS), split)
    return None


def headline(r: RunInfo) -> pd.DataFrame:
    metrics = None
    if r.has("evaluate"):
        metrics = widgets.guarded(loaders.load_json, str(r.file(rd.METRICS)), r.stamp(rd.METRICS), what=rd.METRICS)
    table = loaders.headline_table(metrics if isinstance(metrics, dict) else r.manifest.get("metrics") or {})
    return table.set_index(["metric", "average"])


# ---- headline figures and model cards
if not unannotated:
    a, b = headline(run), headline(other)
    both = pd.DataFrame({run.name: a["value"], other.name: b["value"]})
    both["change"] = both[other.name] - both[run.name]
    cols = st.columns(4)
    for col, (metric_name, average) in zip(cols, [("ROC-AUC", "macro"), ("PR-AUC", "macro"), ("ROC-AUC", "micro"),
                                                  ("PR-AUC", "micro")]):
        value_b = both.loc[(metric_name, average), other.name]
        change = both.loc[(metric_name, average), "change"]
        col.metric(f"{metric_name} {average}: {md(other.name)}", widgets.fmt(value_b),
                   delta=None if not np.isfinite(change) else f"{change:+.3f} vs {md(run.name)}")
left, right = st.columns([3, 2])
if not unannotated:
    with left:
        st.dataframe(both.reset_index().rename(columns={"metric": "Metric", "average": "Average"}), hide_index=True,
                     width="stretch", column_config={
                         run.name: st.column_config.NumberColumn(format="%.4f"),
                         other.name: st.column_config.NumberColumn(format="%.4f"),
                         "change": st.column_config.NumberColumn(f"{other.name} − {run.name}", format="%+.4f")})
with right if not unannotated else left:
    def card(r: RunInfo) -> dict[str, str]:
        model = r.manifest.get("model") or {}
        corpus = r.manifest.get("corpus") or {}
        params = model.get("params")
        return {"model": str(model.get("name", "–")),
                "parameters": f"{params:,}" if isinstance(params, int) else "–",
                "corpus": f"{corpus.get('name', '?')} ({corpus.get('n_clips', '?')} clips)",
                "tags": str(len(r.manifest.get("tags") or [])),
                "complete stages": ", ".join(r.done) or "none"}
    st.dataframe(pd.DataFrame({run.name: card(run), other.name: card(other)}), width="stretch")

# ---- per-tag deltas
if metric is None:
    st.stop()
st.subheader("Per-tag changes")
ta, tb = tag_table(run), tag_table(other)
if ta is None or tb is None:
    missing = run if ta is None else other
    widgets.require(missing, "evaluate", stop=False)
    st.stop()
if metric not in ta or metric not in tb:
    st.caption(f"{charts.METRIC_TITLES.get(metric, metric)} is not available for both runs (it comes from the "
               "evaluate stage's per_tag.csv).")
    st.stop()
common = [t for t in ta.index if t in tb.index]
if not common:
    st.caption("The two runs share no tag.")
    st.stop()
frame = pd.DataFrame({"tag": common, "a": ta.loc[common, metric].to_numpy(float),
                      "b": tb.loc[common, metric].to_numpy(float)})
frame["delta"] = frame["b"] - frame["a"]
only = sorted(set(ta.index) ^ set(tb.index))
better, worse = int((frame["delta"] > 0).sum()), int((frame["delta"] < 0).sum())
st.caption(f"{len(common)} shared tags: {better} better and {worse} worse in **{md(other.name)}** than in "
           f"**{md(run.name)}**." + (f" Tags in only one run: {', '.join(map(md, only))}." if only else ""))
left, right = st.columns(2)
widgets.chart(charts.run_deltas(frame, metric, run.name, other.name), key="deltas", where=left)
widgets.chart(charts.run_scatter(frame, metric, run.name, other.name), key="scatter", where=right)
st.dataframe(frame.rename(columns={"a": run.name, "b": other.name, "delta": "change"}).sort_values("change"),
             hide_index=True, width="stretch")
