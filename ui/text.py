"""User and file text shown as text: never as markdown, links, images, icons or HTML.

Streamlit renders the string of ``st.markdown``, ``st.caption``, ``st.subheader``, ``st.error``
and friends (and radio and expander labels) as markdown, with its own extensions (``:icon:``,
``:red[...]``, ``$math$``). A comment such as ``![](http://host/x.png)`` would make every reader's
browser fetch an outside address. :func:`plain` escapes every ASCII punctuation character, which
CommonMark allows for all of them, so the text shows exactly as typed. Tables (``st.dataframe``)
and widget values show text as text already.

Escaping is not enough for addresses: GFM's autolink literals (``http://...``, ``www....``,
``name@host.tld``) are found by Streamlit's markdown after parsing, in the text with its escapes
resolved, and become links. :func:`plain` puts an invisible WORD JOINER (U+2060) where those
patterns would match (after every colon, before every ``@``, between ``www`` and its dot), so the
text reads the same but is never linked (the joiner after a colon also stops icon
shortcodes such as ``:material_home:``, likewise found in the resolved text).
"""

from __future__ import annotations

import re

__all__ = ["plain"]

_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
# Where an address or a shortcode would be recognised in the text (see above): after ":", before
# "@", between "www" and "." (any case).
_LINK_BREAKS = re.compile(r"(?<=:)|(?=@)|(?i:(?<=www)(?=\.))")
_WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    """``text`` (any value: names, comments, error messages) escaped for a markdown-rendering call."""
    return _PUNCTUATION.sub(r"\\\1", _LINK_BREAKS.sub(_WORD_JOINER, str(text)))
