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
patterns would match (between ``:`` and ``//``, before ``@``, between ``www`` and its dot), so the
text reads the same but is never linked.

Tables show text as text, but their toolbar's "Download as CSV" writes cells as they are, and a
spreadsheet runs a cell such as ``=HYPERLINK(...)`` as a formula: :func:`spreadsheet_safe`
prefixes such cells as the app's own CSV exports do (:func:`medreview.team.audit.neutralise_formula`).
Every ``st.dataframe`` of the pages shows its data through it (tests/pages/test_table_downloads.py).
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from medreview.team.audit import neutralise_formula

__all__ = ["plain", "spreadsheet_safe"]

_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
# Where an address would be recognised in the text (see above): "://", before "@", "www." (any case).
_LINK_BREAKS = re.compile(r"(?<=:)(?=//)|(?=@)|(?i:(?<=www)(?=\.))")
_WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    """``text`` (any value: names, comments, error messages) escaped for a markdown-rendering call."""
    return _PUNCTUATION.sub(r"\\\1", _LINK_BREAKS.sub(_WORD_JOINER, str(text)))


def spreadsheet_safe(data: Any) -> pd.DataFrame | None:
    """``data`` (a DataFrame, or what ``pd.DataFrame`` takes) for ``st.dataframe``: a copy in which
    text a spreadsheet would run as a formula (in cells, in lists within cells, in column and
    index labels) starts with ``'``. None stays None (a refused request shows no table)."""
    if data is None:
        return None
    frame = data.copy() if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    for position, dtype in enumerate(frame.dtypes):
        if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            frame.isetitem(position, frame.iloc[:, position].map(_neutralised))
    return frame.rename(columns=_neutralised, index=_neutralised)


def _neutralised(value: Any) -> Any:
    if isinstance(value, str):
        return neutralise_formula(value)
    if isinstance(value, list | tuple):
        return type(value)(_neutralised(item) for item in value)
    return value
