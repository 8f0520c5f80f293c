"""Tag map: how tags cluster in each view (co-occurrence, semantic, acoustic, ...), and the clips' map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import analysis, charts, loaders, widgets
from dashboard.text import md
from pipeline.run import rundir as rd

# Clips drawn on the clip map: a seeded sample of the first count by default (it shows the map's shape, and
# the browser draws it in a fraction of the time of every clip), the others on request.
CLIP_POINTS = (2_000, 5_000, 12_000)

ctx = widgets.context()
run = widgets.need_run(ctx)
widgets.header("Tag map", "Which tags sit together by co-occurrence, by meaning and by sound", run)
unannotated = widgets.no_annotations(run)
widgets.require(run, "embed")
projections = widgets.guarded(loaders.load_table, str(run.file(rd.TAG_PROJECTIONS)), run.stamp(rd.TAG_PROJECTIONS),
                              ("view", "tag"), what=rd.TAG_PROJECTIONS)
report = widgets.guarded(loaders.load_json, str(run.file(rd.TAG_VIEWS)), run.stamp(rd.TAG_VIEWS), what=rd.TAG_VIEWS)
report = report if isinstance(report, dict) else {}
view_info = report.get("views") if isinstance(report.get("views"), dict) else {}

# ROC-AUC per tag for colouring: the evaluation's, else computed from the predictions' test split.
per_tag = widgets.per_tag(run)
if per_tag is not None and "roc_auc" in per_tag and set(per_tag["tag"]) >= set(run.manifest.get("tags") or []):
    auc = per_tag.set_index("tag")["roc_auc"]
elif run.has(rd.SCORE_STAGE) and not unannotated:
    preds_for_auc = widgets.predictions(run, stop=False)
    split = "test" if preds_for_auc is not None and "test" in preds_for_auc.splits else "all"
    aucs = widgets.guarded(loaders.split_aucs, str(run.file(rd.PREDICTIONS)), run.stamp(rd.PREDICTIONS), split)
    auc = aucs["roc_auc"] if aucs is not None else pd.Series(dtype=float)
else:
    auc = pd.Series(dtype=float)

# ---- tag maps, views side by side
# (fragments: changing what a map shows reruns that map's section only)


@st.fragment
def tag_maps() -> None:
    if projections is None or projections.empty:
        st.caption("tag_projections.parquet holds no tags.")
    else:
        views = list(dict.fromkeys(projections["view"].astype(str)))
        c1, c2, c3 = st.columns([1, 1, 2])
        method = c1.segmented_control("Projection", ["umap", "tsne"], default="umap", key="map:method", required=True,
                                      format_func={"umap": "UMAP", "tsne": "t-SNE"}.get)
        if auc.notna().any():
            color = c2.segmented_control("Colour by", ["cluster", "roc_auc"], default="cluster", key="map:color",
                                         required=True, format_func={"cluster": "cluster", "roc_auc": "ROC-AUC"}.get)
        else:  # no ground truth, no ROC-AUC to colour by
            color = "cluster"
        chosen = c3.multiselect("Views", views, default=views[:3], key="map:views")
        unavailable = {name: info for name, info in view_info.items()
                       if isinstance(info, dict) and not info.get("available", True)}
        for name, info in unavailable.items():
            st.caption(f"The **{md(name)}** view is not available: {md(info.get('reason') or 'not built')}.")
        if not chosen:
            st.caption("Choose at least one view.")
        else:
            sized = str(report.get("frequency") or "clips annotated with the tag")
            st.caption(f"Each point is a tag, sized by {md(sized)}; colours are clusters (k-means within each view, "
                       "so cluster numbers are not shared between views)"
                       + (" or ROC-AUC" if auc.notna().any() else "") + ". Hover for details.")
            annotated = report.get("annotated_tags")
            if report.get("basis") == "annotations" and isinstance(annotated, list) and annotated:
                unsized = sorted({str(t) for t in projections["tag"]} - {str(t) for t in annotated})
                if unsized:
                    st.caption(f"This corpus annotates {len(annotated)} of the model's tags: "
                               f"{', '.join(map(md, unsized))} have no annotations here, so they are drawn smallest "
                               "and the co-occurrence view leaves them out.")
            if report.get("basis") == "predictions":
                st.caption("Without annotations the co-occurrence view is built from the model's own predictions "
                           "(co-activation: tags it predicts for the same clips sit together).")
        per_row = 3 if len(chosen) % 3 == 0 or len(chosen) < 3 else 2
        for start in range(0, len(chosen), per_row):
            columns = st.columns(per_row)
            for column, view in zip(columns, chosen[start:start + per_row]):
                frame = projections[projections["view"].astype(str) == view].copy()
                frame["roc_auc"] = auc.reindex(frame["tag"]).to_numpy() if len(auc) else np.nan
                x, y = f"{method}_x", f"{method}_y"
                if x not in frame or frame[x].isna().all():
                    x, y = "umap_x", "umap_y"
                    column.caption(f"No {method} projection for the {view} view; showing UMAP.")
                if "cluster" not in frame:
                    frame["cluster"] = 0
                if "frequency" not in frame:
                    frame["frequency"] = 1
                name = "UMAP" if x.startswith("umap") else "t-SNE"
                widgets.chart(charts.tag_map(frame, x, y, color=color, title=f"{view.capitalize()} view ({name})"),
                              key=f"map:{view}", where=column)
                info = view_info.get(view) or {}
                note = [str(info["source"])] if info.get("source") else []
                if info.get("missing"):
                    missing = list(info["missing"])
                    note.append(f"not placed: {', '.join(missing[:12])}{' …' if len(missing) > 12 else ''}")
                if note:
                    column.caption(" · ".join(note))
        pairs = (report.get("agreement") or {}).get("pairs") if isinstance(report.get("agreement"), dict) else None
        if pairs:
            widgets.chart(charts.agreement(pairs), key="agreement")
            st.caption("For each tag, the share of its nearest tags in one view that are also nearest in the other; the "
                       "grey marks show what random neighbours would share. Low agreement shows where meaning, "
                       "co-occurrence and sound part ways.")


tag_maps()

# ---- the clip map
preds = widgets.predictions(run, stop=False)
# Computed outside the fragment: `widgets.thresholds` may write to the sidebar, which a fragment cannot.
thresholds, how = widgets.thresholds(run, preds.tags) if preds is not None else (None, "")


@st.fragment
def clip_map() -> None:
    st.subheader("Clip map")
    clips = widgets.guarded(loaders.load_table, str(run.file(rd.CLIP_PROJECTIONS)), run.stamp(rd.CLIP_PROJECTIONS),
                            ("clip_id",), what=rd.CLIP_PROJECTIONS)
    if clips is not None and preds is not None and len(clips):
        c1, c2, c3, c4 = st.columns([2, 3, 2, 2])
        tag = widgets.tag_picker(preds.tags, label="Colour clips by tag", container=c1)
        if preds.truth is not None:
            mode = c2.segmented_control("Show", ["probability", "label", "outcome"], default="probability",
                                        key="map:clip_mode", required=True,
                                        format_func={"probability": "prediction", "label": "annotation",
                                                     "outcome": "TP / FP / FN"}.get)
        else:
            mode = "probability"
        if mode != "probability" and not preds.labelled[preds.tags.index(tag)]:
            st.caption(f"'{md(tag)}' has no annotations in this corpus; showing its predicted probability.")
            mode = "probability"
        method = c3.segmented_control("Clip projection", ["umap", "tsne"], default="umap", key="map:clip_method",
                                      required=True, format_func={"umap": "UMAP", "tsne": "t-SNE"}.get)
        x, y = f"{method}_x", f"{method}_y"
        if x not in clips or clips[x].isna().all():
            x, y = "umap_x", "umap_y"
            st.caption(f"No {method} projection of the clips; showing UMAP.")
        counts = [n for n in CLIP_POINTS if n < len(clips)] + [len(clips)]
        drawn = c4.segmented_control("Clips drawn", counts, default=counts[0], key="map:clip_points", required=True,
                                     format_func=lambda n: f"all {n:,}" if n == len(clips) else f"{n:,}",
                                     help="A random sample (the same each time) shows the map's shape; more points "
                                          "take the browser longer to draw.") if len(counts) > 1 else len(clips)
        frame = clips
        if drawn < len(clips):
            frame = frame.sample(drawn, random_state=0)
            st.caption(f"Showing a random {drawn:,} of {len(clips):,} clips.")
        rows = preds.rows_of(frame["clip_id"].tolist())
        known = rows >= 0
        frame, rows = frame[known], rows[known]
        j = preds.tags.index(tag)
        ids = np.asarray(frame["clip_id"].tolist(), dtype=str)  # fixed-width strings: cheap for plotly to copy
        if mode == "probability":
            fig = charts.clip_map(frame[x].to_numpy(), frame[y].to_numpy(), ids, values=preds.probs[rows, j],
                                  title=f"Clips coloured by the predicted probability of '{tag}'", value_name=f"p({tag})")
        elif mode == "label":
            assert preds.truth is not None  # mode is "probability" without annotations
            fig = charts.clip_map(frame[x].to_numpy(), frame[y].to_numpy(), ids,
                                  values=preds.truth[rows, j].astype(float),
                                  title=f"Clips coloured by the annotation of '{tag}' (1 = annotated)", value_name=tag)
        else:
            assert preds.truth is not None and thresholds is not None  # mode is "probability" without annotations
            outcome = analysis.outcomes(preds.truth[rows, j], preds.probs[rows, j], thresholds[j])
            fig = charts.clip_map(frame[x].to_numpy(), frame[y].to_numpy(), ids, categories=outcome,
                                  title=f"Clips coloured by outcome for '{tag}' at {how}")
        if fig is not None:
            widgets.chart(fig, key="clip_map")
            st.caption("Each point is a clip placed by its embedding (penultimate layer); nearby clips sound alike "
                       "to the model.")
    elif clips is not None and not len(clips):
        st.caption("clip_embeddings.parquet holds no clips.")


clip_map()
