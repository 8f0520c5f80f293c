"""Error analysis: listen through a tag's worst false positives and negatives, likely label issues, contradictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import analysis, review, widgets
from dashboard.text import md
from dashboard.theme import FN, FP, OUTCOME_COLORS
from pipeline.run import rundir as rd

ctx = widgets.context()
run = widgets.need_run(ctx)
widgets.header("Error analysis", "Listen to where the model and the annotations disagree", run)
preds = widgets.scored_predictions(run, "errors and label issues are where the predictions and the "
                                   "annotations disagree")
tags = preds.tags

c1, c2, c3 = st.columns([1, 1, 1])
split = widgets.split_picker(preds.splits, container=c1)
tag = widgets.tag_picker(tags, container=c2)
n_show = c3.slider("Clips per list", 3, 30, 5, key="errors:n")  # 5 a list: one screen, and a quick page
rows = preds.rows(split)
if len(rows) == 0:
    st.info(f"{widgets.split_phrase(split).capitalize()} has no clips.")
    st.stop()
thresholds, how = widgets.thresholds(run, tags)
j = tags.index(tag)
truth, probs = preds.truth[rows, j], preds.probs[rows, j]
fp, fn = analysis.top_errors(truth, probs, float(thresholds[j]), n_show)
n_fp = int(((probs >= thresholds[j]) & (truth == 0)).sum())
n_fn = int(((probs < thresholds[j]) & (truth == 1)).sum())


@st.fragment
def sections() -> None:
    """The chosen section (a fragment: switching sections, or answering on a card, reruns this part only)."""
    review.show_notes()
    # Only the chosen section is computed (each lists playable clips, which is the costly part).
    titles = {"errors": f"Errors on '{md(tag)}'", "issues": "Likely label issues", "contradictions": "Contradictions"}
    section = st.segmented_control("Show", list(titles), format_func=titles.get, default="errors",
                                   key="errors:section", required=True, label_visibility="collapsed")

    # ---- the tag's worst errors, playable in place
    if section == "errors":
        st.caption(f"At {how} on {widgets.split_phrase(split, bold=True)}, '{md(tag)}' has {n_fp:,} false positives and {n_fn:,} false "
                   "negatives. A confident false positive is often a missing annotation: listen and judge.")
        left, right = st.columns(2)
        for column, picked, outcome, title, empty in (
                (left, fp, FP, "Most confident false positives", "No false positive at this threshold."),
                (right, fn, FN, "Most clearly missed (false negatives)", "No false negative at this threshold.")):
            column.markdown(f"<h4 style='border-left:6px solid {OUTCOME_COLORS[outcome]};padding-left:8px'>{title}</h4>",
                            unsafe_allow_html=True)
            if not len(picked):
                column.caption(empty)
            for rank, i in enumerate(picked, 1):
                widgets.clip_card(preds, int(rows[i]), detail=f"#{rank} · p({md(tag)}) = {probs[i]:.3f}",
                                  key=f"err:{outcome}:{rank}", container=column, tag=tag, run=run, source="errors")

    # ---- likely label issues (embed stage)
    if section == "issues":
        issues = widgets.artifact(run, "embed", rd.LABEL_ISSUES, ("clip_id", "tag"))
        if issues is not None:
            f1, f2, f3, f4 = st.columns(4)
            only_tag = f1.toggle(f"Only '{md(tag)}'", value=False, key="issues:only_tag")
            only_flagged = f2.toggle("Only flagged", value=False, key="issues:flagged", disabled="flagged" not in issues,
                                     help="Keep the pairs that confident learning (cleanlab) flags as label errors.")
            kinds = sorted(issues["kind"].astype(str).unique()) if "kind" in issues else []
            kind = f3.selectbox("Kind", ["all", *kinds], key="issues:kind",
                                format_func=lambda k: {"missing": "missing (tag not annotated)",
                                                       "wrong": "wrong (tag annotated)"}.get(k, k))
            n_issues = f4.slider("Playable", 3, 30, 5, key="issues:n")
            view = issues
            if only_flagged and "flagged" in view:
                view = view[view["flagged"].astype(bool)]
            if split != "all" and "split" in view:
                view = view[view["split"].astype(str) == split]
            if only_tag:
                view = view[view["tag"] == tag]
            if kind != "all":
                view = view[view["kind"].astype(str) == kind]
            order = "rank" if "rank" in view else ("score" if "score" in view else None)
            if order:
                view = view.sort_values(order, ascending=order == "rank", kind="stable")
            st.caption(f"{len(view):,} candidate label issues (clip, tag pairs where the model confidently disagrees "
                       f"with the annotation) on {widgets.split_phrase(split)}" + (f" for '{md(tag)}'" if only_tag else "") +
                       ", most likely first.")
            if view.empty:
                st.caption("None match the filters.")
            for n, issue in enumerate(view.head(n_issues).itertuples(index=False), 1):
                row = preds.row(str(issue.clip_id))
                if row is None:
                    continue
                annotated = int(getattr(issue, "annotated", preds.truth[row, tags.index(issue.tag)]
                                        if issue.tag in tags else 0))
                verdict = "annotated but the model disagrees" if annotated else "not annotated but the model hears it"
                detail = (f"#{md(getattr(issue, 'rank', n))} · **{md(issue.tag)}**: {verdict}"
                          + (f" · p = {issue.probability:.3f}" if hasattr(issue, "probability") else "")
                          + (f" · {md(issue.kind)}" if hasattr(issue, "kind") else ""))
                widgets.clip_card(preds, row, detail=detail, key=f"issue:{n}", tag=str(issue.tag), run=run,
                                  source="issues")
            columns = [c for c in ("rank", "clip_id", "split", "tag", "annotated", "probability", "score", "kind", "flagged")
                       if c in view]
            with st.expander(f"All {min(len(view), 1000):,} shown in a table"):
                st.dataframe(view[columns].head(1000), hide_index=True, width="stretch")

    # ---- contradictions (pairs defined in dashboard.analysis.CONTRADICTIONS)
    if section == "contradictions":
        pairs = analysis.contradiction_pairs(tags)
        if not pairs:
            st.caption("No contradictory tag pairs in this vocabulary (e.g. 'vocals' with 'no vocals').")
        else:
            summary, flagged = analysis.contradictions(tags, preds.truth[rows], preds.probs[rows], thresholds)
            st.caption(f"Tag pairs that cannot both hold (e.g. 'vocal' and 'no vocals'), predicted together at {how} on "
                       f"{widgets.split_phrase(split)}; 'annotated' counts clips where the annotators did the same.")
            seen = summary[(summary["predicted"] > 0) | (summary["annotated"] > 0)]
            seen = seen.sort_values(["predicted", "annotated"], ascending=False, kind="stable")
            st.dataframe(seen.rename(columns={"left": "tag", "right": "contradicts", "predicted": "predicted together",
                                              "annotated": "annotated together"}),
                         hide_index=True, width="stretch")
            st.caption(f"{len(summary)} contradictory pairs in this vocabulary; {len(summary) - len(seen)} never occur "
                       "together and are not listed.")
            hit = np.flatnonzero(flagged != "")
            if not len(hit):
                st.success("No clip has a contradictory pair predicted at this threshold.")
            else:
                # Most confident contradictions first: the larger of each clip's weaker-side probabilities.
                index = {t: i for i, t in enumerate(tags)}
                strength = []
                for i in hit:
                    worst = 0.0
                    for pair in flagged[i].split("; "):
                        a, b = pair.split(" + ")
                        worst = max(worst, min(preds.probs[rows[i], index[a]], preds.probs[rows[i], index[b]]))
                    strength.append(worst)
                hit = hit[np.argsort(-np.asarray(strength), kind="stable")]
                st.markdown(f"**{len(hit):,} clips** with contradictory predictions; the most confident:")
                for n, i in enumerate(hit[:n_show], 1):
                    widgets.clip_card(preds, int(rows[i]), detail=f"predicted together: {md(flagged[i])}", key=f"contra:{n}")
                with st.expander("All flagged clips"):
                    st.dataframe(pd.DataFrame({"clip_id": preds.clips["clip_id"].to_numpy()[rows[hit]],
                                               "contradictions": flagged[hit]}), hide_index=True, width="stretch")


sections()
