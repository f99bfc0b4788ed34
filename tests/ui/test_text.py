"""ui.text: user and file text shown as text. plain() output must not turn into links where
Streamlit renders it as markdown; table() cells must not run as formulas where a table is
downloaded as CSV (Streamlit's table toolbar) and opened in a spreadsheet."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import streamlit

from ui.text import plain

# Streamlit renders markdown with react-markdown and remark-gfm. GFM's "autolink literals" are found
# after parsing, in the text with its backslash escapes already resolved, so escaping alone does not
# stop them: mdast-util-gfm-autolink-literal's two expressions, as in Streamlit's bundle (the JS
# source, checked below, so a Streamlit upgrade that changes them fails here). JavaScript's \w is
# ASCII only: re.ASCII. The e-mail expression's look-behind is left out (it only narrows matches).
BUNDLED_URL_LITERAL = r"/(https?:\/\/|www(?=\.))([-.\w]+)([^ \t\r\n]*)/gi"
BUNDLED_EMAIL_LITERAL = r"/(?<=^|\s|\p{P}|\p{S})([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)/gu"
URL_LITERAL = re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE | re.ASCII)
EMAIL_LITERAL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)
# CommonMark: a backslash before ASCII punctuation is an escape; the text holds the character.
ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
INVISIBLE = "\u2060"  # what plain() may insert: a word joiner (no width, no line break)

HOSTILE_TEXTS = [
    "see http://evil.example/x and more",
    "HTTPS://evil.example",
    "visit www.evil.example today",
    "WWW.evil.example",
    "mail me at someone@evil.example",
    "(http://evil.example)",
    "comment: https://evil.example/a?b=c#d",
]


def markdown_text(source: str) -> str:
    """The text a markdown renderer has once it resolved ``source``'s backslash escapes."""
    return ESCAPE.sub(r"\1", source)


@pytest.mark.slow
def test_the_autolink_expressions_are_streamlits_own():
    bundles = list((Path(streamlit.__file__).parent / "static" / "static" / "js").glob("StreamlitMarkdown.*.js"))
    assert len(bundles) == 1, bundles
    source = bundles[0].read_text(encoding="utf-8")
    assert BUNDLED_URL_LITERAL in source
    assert BUNDLED_EMAIL_LITERAL in source


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_addresses_in_plain_text_never_become_links(text):
    shown = markdown_text(plain(text))
    assert URL_LITERAL.search(shown) is None, shown
    assert EMAIL_LITERAL.search(shown) is None, shown
    # A reader sees the text exactly as typed (the inserted joiner has no width).
    assert shown.replace(INVISIBLE, "") == text
