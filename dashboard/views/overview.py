"""Overview: the corpus, the headline results with confidence intervals, training curves, a model card."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, loaders, review, widgets
from dashboard.text import code, md
from pipeline.run import rundir as rd

ctx = widgets.context()
run = widgets.need_run(ctx)
manifest = run.manifest
corpus = manifest.get("corpus") or {}
model = manifest.get("model") or {}

widgets.header("Overview", "What was trained, on what, and how well it tags", run)
if manifest.get("synthetic"):
    st.info(md(manifest["description"]) if manifest.get("description") else "This run holds synthetic data for benchmarks and development; "
            "its figures are not results.", icon=":material/science:")
unannotated = widgets.no_annotations(run)
if run.missing:
    st.warning(f"This run is incomplete: stage(s) {', '.join(f'**{md(s)}**' for s in run.missing)} missing. "
               "Pages that need them say so.", icon=":material/hourglass_empty:")

# ---- headline numbers
metrics = None
if run.has("evaluate"):
    metrics = widgets.guarded(loaders.load_json, str(run.file(rd.METRICS)), run.stamp(rd.METRICS), what=rd.METRICS)
table = loaders.headline_table(metrics if isinstance(metrics, dict) else manifest.get("metrics") or {})
tags = manifest.get("tags") or []
cols = st.columns(3 if unannotated else 5)
cols[0].metric("Clips", f"{corpus.get('n_clips', 0):,}" if corpus.get("n_clips") else "–",
               help=f"Corpus '{md(corpus.get('name', '?'))}' ({md(corpus.get('source', '?'))})")
cols[1].metric("Tags", len(tags) or "–")
if not unannotated:  # no ground truth, no figures (not even dashes where they would be)
    for col, metric in zip(cols[2:4], ("ROC-AUC", "PR-AUC")):
        row = table[(table["metric"] == metric) & (table["average"] == "macro")].iloc[0]
        ci = f"95% CI {row['low']:.3f}–{row['high']:.3f}" if np.isfinite(row["low"]) else None
        col.metric(f"{metric} (macro)", widgets.fmt(row["value"]), help=ci, delta=ci, delta_color="off",
                   delta_arrow="off")
cols[-1].metric("Model", md(model.get("name", "–")),
                help=f"{model.get('params'):,} parameters" if isinstance(model.get("params"), int) else None)
evaluated = run.record.stage("evaluate") if run.record is not None and run.has("evaluate") else None
unevaluated = (evaluated.info.get("unannotated_tags") if evaluated is not None else None) or []
if unevaluated and isinstance(unevaluated, list):
    n_done = len(tags) - len(unevaluated)
    st.caption(f"Metrics cover the {n_done} of the model's {len(tags)} tags this corpus annotates; "
               f"{', '.join(map(md, unevaluated))} have no ground truth here.")

left, right = st.columns([3, 2])
with left:
    if unannotated:
        preds = widgets.predictions(run, stop=False)
        if preds is not None and len(preds.tags):
            thresholds, how = widgets.thresholds(run, preds.tags)
            widgets.chart(charts.tag_frequency(preds.tags, (preds.probs >= thresholds).sum(axis=0).tolist(),
                                               title=f"How often the model predicts each tag (at {how})",
                                               y_title="clips predicted"), key="predicted_frequency")
            st.caption("Without annotations there are no metrics; these are the model's predictions over every clip.")
    elif table["value"].notna().any():
        widgets.chart(charts.headline(table), key="headline")
        shown = {}
        for metric in ("ROC-AUC", "PR-AUC"):
            rows = table[table["metric"] == metric].set_index("average")
            shown[metric] = rows["value"].map(widgets.fmt)
            shown[f"{metric} 95% CI"] = [f"{lo:.3f} – {hi:.3f}" if np.isfinite(lo) else "–"
                                         for lo, hi in zip(rows["low"], rows["high"])]
        widgets.table(pd.DataFrame(shown), index=True)
    elif run.has("evaluate"):
        st.caption("metrics.json holds no ROC-AUC / PR-AUC figures this dashboard recognises.")
    else:
        widgets.require(run, "evaluate", stop=False)
with right:
    sizes = corpus.get("split_sizes") or {}
    if sizes:
        widgets.chart(charts.split_sizes({k: int(v) for k, v in sizes.items()}), key="splits")
    else:
        st.caption("The manifest records no split sizes.")
    labels = corpus.get("labels") or {}
    st.markdown(
        f"**Corpus** {code(corpus.get('name', '?'))} from {code(corpus.get('root', '?'))} "
        f"(source: {md(corpus.get('source', '?'))}). "
        + (f"Top-{md(labels.get('top_n'))} tags" if labels.get("top_n") else "All tags")
        + (", synonyms merged" if labels.get("merge_synonyms") else "")
        + (f", split: {md(labels.get('split'))}" if labels.get("split") else "") + ".")

# ---- verdicts given by ear on this corpus's clips, and what they change
trained_with = manifest.get("corrections") if isinstance(manifest.get("corrections"), dict) else None
if trained_with:
    st.caption(f"Trained on corrected labels: {md(trained_with.get('applied', '?'))} verdicts applied, "
               f"{md(trained_with.get('changed', '?'))} labels changed, from {code(trained_with.get('file', '?'))}.")
db = review.store(run, quiet=True) if not unannotated else None
if db is not None and db.count():
    preds = widgets.predictions(run, stop=False)
    split = widgets.evaluated_split(run) or "test"
    change = (review.effect(db, preds, split if split in preds.splits else "all", run.stamp(rd.PREDICTIONS))
              if preds is not None else None)
    if change is not None:
        st.subheader("Reviewed by ear")
        k1, k2, k3, k4 = st.columns(4)
        k1.metric("Clips with verdicts", f"{change.clips:,}", help=f"{change.verdicts:,} answers by every reviewer")
        k2.metric("Labels changed", f"{change.changed:,}", help="where the reviewers' verdict differs from the annotation")
        for col, name, key in ((k3, "ROC-AUC", "roc_auc_macro"), (k4, "PR-AUC", "pr_auc_macro")):
            b, a = change.before.get(key, np.nan), change.after.get(key, np.nan)
            col.metric(f"{name} (macro) on corrected labels", widgets.fmt(a),
                       delta=f"{a - b:+.3f}" if np.isfinite(a) and np.isfinite(b) else None,
                       help=f"Against the annotations: {widgets.fmt(b)} ({widgets.split_phrase(change.split)})")
        st.caption(f"The corpus's verdicts (the Review queue and the clip cards' answers) applied to the annotations of "
                   f"{widgets.split_phrase(change.split)}: the model's scores are the same, only the labels differ."
                   + (f" {change.disagreements} pair(s) where reviewers disagree are left out." if change.disagreements
                      else ""))

# ---- training curves and tag frequencies
st.subheader("Training")
origin = manifest.get("origin") if isinstance(manifest.get("origin"), dict) else None
provenance = manifest.get("provenance") if isinstance(manifest.get("provenance"), dict) else {}
trained_here = run.record is not None and (entry := run.record.stage("train")) is not None and rd.HISTORY in entry.files
if origin:
    st.caption(f"This run holds the model of run {code(origin.get('name', '?'))}, scored on another corpus"
               + ("; the curves are that model's training on its own corpus." if trained_here else "."))
if run.has("train") and not trained_here:  # a converted published model has no training history
    st.caption("No training history: this model was not trained by this toolkit"
               + (f" (converted from {md(provenance.get('original_model', '?'))}, "
                  f"{md(provenance.get('distribution', '?'))})." if provenance else "."))
elif run.has("train"):
    history = widgets.guarded(loaders.load_history, str(run.file(rd.HISTORY)), run.stamp(rd.HISTORY),
                              what=rd.HISTORY)
    if history is not None and len(history):
        drawn = [(key, spec) for key, spec in (("history:loss", charts.training_loss(history)),
                                               ("history:auc", charts.validation_aucs(history))) if spec is not None]
        for column, (key, spec) in zip(st.columns(len(drawn)) if drawn else [], drawn):
            widgets.chart(spec, key=key, where=column)
        last = history.iloc[-1]
        total = history["seconds"].sum() if "seconds" in history else np.nan
        st.caption(f"{len(history)} epochs" + (f", {total / 60:.1f} minutes of training" if np.isfinite(total) else "")
                   + (f"; final learning rate {last['lr']:.2g}" if "lr" in history else "") + ".")
    elif history is not None:
        st.caption("history.csv is empty.")
else:
    widgets.require(run, "train", stop=False)

per_tag = widgets.per_tag(run)
if per_tag is not None and "support" in per_tag:
    widgets.chart(charts.tag_frequency(per_tag["tag"].tolist(), per_tag["support"].fillna(0).astype(int).tolist()),
                  key="frequency")
    st.caption("Support counts the annotated clips of the evaluated split.")

# ---- model card
st.subheader("Model card")
features = manifest.get("features") or {}
params = model.get("params")
card = {
    "Model": code(model.get("name", "–")) + (f", {params:,} parameters" if isinstance(params, int) else ""),
    "Architecture options": ", ".join(f"{md(k)}={md(v)}" for k, v in (model.get("kwargs") or {}).items())
    or "defaults",
    "Input features": ", ".join(f"{md(k)}={md(v)}" for k, v in features.items() if v is not None) or "–",
    "Corpus": f"{md(corpus.get('name', '?'))} ({md(corpus.get('n_clips', '?'))} clips, "
              f"source: {md(corpus.get('source', '?'))})",
    f"Tags ({len(tags)})": ", ".join(md(t) for t in tags) if tags else "–",
}
if provenance:  # a converted published model: where it came from, under which licence
    card["Provenance"] = (f"{md(provenance.get('original_model', '?'))} from {md(provenance.get('distribution', '?'))}"
                          f" ({md(provenance.get('authors', '?'))}), licence {md(provenance.get('licence', '?'))}")
with st.container(border=True):
    st.markdown("  \n".join(f"**{key}**: {value}" for key, value in card.items()))
stages = manifest.get("stages") or {}
widgets.table(pd.DataFrame([
    {"stage": s, "status": "complete" if run.has(s) else (f"skipped: {run.skip_reason(s)}" if run.skip_reason(s)
                                                          else "incomplete" if s in stages else "missing"),
     "finished": (stages.get(s) or {}).get("finished", "")} for s in rd.STAGE_FILES]))


@st.fragment
def configuration() -> None:
    """Drawn on request: the code highlighter's first use cost 0.8 s of the browser's time on every first load."""
    if st.toggle("Show the resolved training configuration", key="overview:config"):
        st.code(json.dumps(manifest.get("config") or {}, indent=2, default=str), language="json")


configuration()
