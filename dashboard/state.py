"""Shareable state: the selected run, clip, tag and threshold live in the URL.

The state is read from ``st.query_params`` once per session (so a shared link opens on the
same selection), kept in ``st.session_state`` (so it survives page switches, which clear the
URL's query string) and written back to the URL whenever it changes.

Widgets bind to a state name with `bind`, which returns the keyword arguments of the
widget call: its key and an ``on_change`` callback that copies the widget's value into the
state before the next script run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

# URL parameter name -> parser of its text value.
_BOOL_TRUE = {"1", "true", "yes", "on"}


def _parse_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return min(max(value, 0.0), 1.0) if value == value else None  # NaN is rejected


PARAMS: dict[str, Callable[[str], Any]] = {
    "run": str,  # run directory name under the runs folder
    "clip": str,  # clip id
    "tag": str,  # tag name
    "threshold": _parse_float,  # global decision threshold in [0, 1]
    "tuned": lambda text: text.lower() in _BOOL_TRUE,  # per-tag tuned thresholds instead
    "vs": str,  # the second run on the Compare runs page
    "split": str,  # evaluation split on metric pages
}

_PREFIX = "state:"
_LOADED = "state:_loaded_from_url"


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def init() -> None:
    """Load the state from the URL on a session's first run; put it back in the URL on later runs."""
    ss = st.session_state
    if not ss.get(_LOADED):
        ss[_LOADED] = True
        for name, parse in PARAMS.items():
            raw = st.query_params.get(name)
            if raw is None or raw == "":
                continue
            value = parse(raw)
            if value is not None:
                ss[_PREFIX + name] = value
    # One message for the whole URL: a page switch clears the query string, and each change sent
    # alone is a history.pushState in the browser (about 5 ms each at MagnaTagATune scale).
    wanted = {name: _format(ss[_PREFIX + name]) for name in PARAMS if ss.get(_PREFIX + name) is not None}
    url = st.query_params.to_dict()
    if {k: v for k, v in url.items() if k in PARAMS} != wanted:
        st.query_params.from_dict({**{k: v for k, v in url.items() if k not in PARAMS}, **wanted})


def get(name: str, default: Any = None) -> Any:
    """The current value of state ``name`` (one of `PARAMS`)."""
    assert name in PARAMS, name
    return st.session_state.get(_PREFIX + name, default)


def set(name: str, value: Any) -> None:
    """Set state ``name`` and mirror it in the URL (None removes it)."""
    assert name in PARAMS, name
    if value is None:
        st.session_state.pop(_PREFIX + name, None)
    else:
        st.session_state[_PREFIX + name] = value
    _write_url(name)


def _write_url(name: str) -> None:
    value = st.session_state.get(_PREFIX + name)
    if value is None:
        if name in st.query_params:
            del st.query_params[name]
        return
    text = _format(value)
    if st.query_params.get(name) != text:
        st.query_params[name] = text


def widget_key(name: str) -> str:
    return f"w:{name}"


def _copy_from_widget(name: str) -> None:
    set(name, st.session_state[widget_key(name)])


def bind(name: str, *, options: Sequence[Any] | None = None, default: Any = None) -> dict[str, Any]:
    """Keyword arguments that bind a widget to state ``name``.

    The widget's value is set from the state before it is drawn (so a value chosen on another
    page, or in the URL, shows up), falling back to ``default`` (or the first option) when the
    state holds nothing valid. Pass no ``index`` / ``value`` to the widget itself.
    """
    value = get(name, default)
    if options is not None:
        options = list(options)
        if value not in options:
            value = default if default in options else (options[0] if options else None)
    if value is not None and get(name) != value:
        set(name, value)
    key = widget_key(name)
    if value is not None:
        # Always set (not only when it differs): a widget drawn by another page is a new widget
        # even under the same key, and would otherwise start from its default.
        st.session_state[key] = value
    return {"key": key, "on_change": _copy_from_widget, "args": (name,)}


def select(name: str, value: Any) -> None:
    """Set state ``name`` from a button or link callback (also moves its bound widget)."""
    set(name, value)
    st.session_state[widget_key(name)] = value
