"""The music-tagging dashboard: ``streamlit run dashboard/app.py -- --runs data/runs``.

Reads run directories only (see `pipeline.run.rundir`); it never trains and never imports torch.
The sidebar picks a run and a decision threshold; the selected run, clip, tag and threshold
live in the URL's query parameters, so a link reopens the same view.

The runs folder is ``--runs`` (after ``--``), else ``$AUTOTAG_RUNS``, else ``data/runs`` of the
repository. ``.streamlit/config.toml`` (read when streamlit starts in the repository root, as
``make dashboard`` does) binds the server to localhost, turns usage statistics off and shows a
visitor an unexpected error's type only (no traceback, no server paths); from elsewhere pass
``--server.address localhost --browser.gatherUsageStats false --client.showErrorDetails type``.
Nothing the pages load leaves the machine (no remote fonts or icons), and every text a run
supplies is escaped before it is rendered (`dashboard.text`).

Pages live in ``dashboard/views/`` (see `dashboard.widgets.PAGES`); each draws the shared
sidebar first (`dashboard.widgets.context`), then reads artifacts through the cached loaders
of `dashboard.loaders`, transforms them with `dashboard.analysis` and draws the figures of
`dashboard.charts` in the colours of `dashboard.theme`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts dashboard/ on sys.path, not the repository; the pages import
# `dashboard.*` and `pipeline.*`, so the repository root goes first.
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import streamlit as st  # noqa: E402

from dashboard import state  # noqa: E402
from dashboard.widgets import PAGES  # noqa: E402

# Emoji icons only: a Material icon as a page icon makes the browser fetch the tab's favicon from
# fonts.gstatic.com, and the dashboard stays offline (an emoji favicon is an inline SVG).
st.set_page_config(page_title="Music tagging dashboard", page_icon="🎵", layout="wide")

state.init()
pages = {
    "Results": [
        st.Page(PAGES["overview"], title="Overview", icon="📊", default=True),
        st.Page(PAGES["metrics"], title="Tag metrics", icon="📈"),
        st.Page(PAGES["compare"], title="Compare runs", icon="⚖️"),
    ],
    "Listen": [
        st.Page(PAGES["explorer"], title="Clip explorer", icon="🎧"),
        st.Page(PAGES["errors"], title="Error analysis", icon="🔍"),
        st.Page(PAGES["review"], title="Review queue", icon="✅"),
        st.Page(PAGES["tag"], title="Tag a file", icon="🏷️"),
    ],
    "Explore": [
        st.Page(PAGES["map"], title="Tag map", icon="🗺️"),
        st.Page(PAGES["inside"], title="Inside the model", icon="🔬"),
    ],
}
page = st.navigation(pages)
page.run()  # each page draws the shared sidebar first (widgets.context)
