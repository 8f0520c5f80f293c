"""Run-supplied text made inert before Streamlit renders it.

A run folder may come from anyone, and its clip ids, tag names, file names and corpus name
reach ``st.markdown``, captions, titles, widget labels and tooltips, which all render Markdown:
``![x](http://host/x.png)`` would become an image the browser fetches from any host, and
``:material/name:`` an icon. `md` makes a value literal text for any of those (and for the HTML
of the tag chips, rendered with ``unsafe_allow_html``); `code` shows it as an inline code span.
Plain elements (``st.text``, ``st.code``, ``st.dataframe``, selectbox options) need neither.
"""

from __future__ import annotations

import re

# Characters that make Markdown, HTML or Streamlit syntax anywhere in a line. Each becomes a
# numeric character reference, which Markdown and HTML both decode to the literal character and
# never read as syntax. ('.', '-', '/' and the like are left as they are: they only matter at
# the start of a line, which `md` handles, or not at all.)
_SPECIAL = frozenset("\\`*_{}[]()!|<>~$&")
_LINE_START = re.compile(r"^\s*(?:[#+=>-]|\d+[.)])")  # a heading, list item, rule or quote if a line began so
_WORD_JOINER = "\u2060"  # invisible; breaks ':material/x:' and ':smile:' after references are decoded
_BREAKS = re.compile(r"[\r\n\t\f\v\u2028\u2029]+")


def md(value: object) -> str:
    """``value`` as literal text inside Markdown or HTML (one line; nothing in it is markup).

    >>> md("![x](http://h/x.png)")
    '&#33;&#91;x&#93;&#40;http:\u2060//h/x.png&#41;'
    """
    text = _BREAKS.sub(" ", str(value))
    start = _LINE_START.match(text)
    cut = start.end() if start else 0
    out = [f"&#{ord(ch)};" if start and i == cut - 1 else ch for i, ch in enumerate(text[:cut])]
    for ch in text[cut:]:
        if ch in _SPECIAL:
            out.append(f"&#{ord(ch)};")
        elif ch == ":":
            out.append(":" + _WORD_JOINER)
        else:
            out.append(ch)
    return "".join(out)


def code(value: object) -> str:
    """``value`` as a Markdown inline code span (one line), whatever backticks it holds."""
    text = _BREAKS.sub(" ", str(value))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"
