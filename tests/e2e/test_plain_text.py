"""User text shown through ui.text.plain in a real browser: web and e-mail addresses in it are
shown as text, never as links (Streamlit's markdown links them even when every character is
escaped: tests/ui/test_text.py)."""

from __future__ import annotations

import re

import pytest

from medreview.config import Settings
from medreview.reading.reads import LOCAL_ACTOR
from medreview.reading.schema import add_label_class
from medreview.store import Store
from tests.e2e.conftest import log_in, new_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Class names are shown through plain() on the Settings page (at most 64 characters each).
HOSTILE_CLASSES = ("see http://evil.example/track", "www.evil.example", "mail x@evil.example")


def test_addresses_in_class_names_are_text_not_links(server, browser):
    server.cli("users", "add", "chief", password="chief-password")
    store = Store.open(Settings(data_dir=server.data_dir, database_url=f"sqlite:///{server.data_dir / 'medreview.db'}"))
    try:
        for name in HOSTILE_CLASSES:
            add_label_class(store, LOCAL_ACTOR, name)
    finally:
        store.close()
    page = new_page(browser)
    log_in(page, server.url, "chief", "chief-password")
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("heading", name="Label schema").wait_for()
    main = page.get_by_test_id("stMain")
    for name in HOSTILE_CLASSES:  # Streamlit draws a run's elements one after another: wait for each
        as_drawn = re.compile("\u2060?".join(re.escape(character) for character in name))
        page.get_by_test_id("stMarkdownContainer").filter(has_text=as_drawn).first.wait_for()
    page.wait_for_load_state("networkidle")

    shown = main.inner_text().replace("\u2060", "")  # the joiner plain() inserts has no width
    for name in HOSTILE_CLASSES:
        assert name in shown  # the page did draw each name, as typed
    links = main.locator("a").evaluate_all("links => links.map(link => link.getAttribute('href'))")
    assert [href for href in links if href and "evil" in href] == []
