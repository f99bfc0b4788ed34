"""User and file text shown as text: never as markdown, links, images, icons or HTML.

Streamlit renders the string of ``st.markdown``, ``st.caption``, ``st.subheader``, ``st.error``
and friends (and radio and expander labels) as markdown, with its own extensions (``:icon:``,
``:red[...]``, ``$math$``). A comment such as ``![](http://host/x.png)`` would make every reader's
browser fetch an outside address. :func:`plain` escapes every ASCII punctuation character, which
CommonMark allows for all of them, so the text shows exactly as typed. Tables (``st.dataframe``)
and widget values show text as text already.
"""

from __future__ import annotations

import re

__all__ = ["plain"]

_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")


def plain(text: object) -> str:
    """``text`` (any value: names, comments, error messages) escaped for a markdown-rendering call."""
    return _PUNCTUATION.sub(r"\\\1", str(text))
