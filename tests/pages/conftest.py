"""The page tests run the app's pages in-process (Streamlit's AppTest: the whole page script, its
services and a real store, a run or several per test), so they are outside the fast loop
(`pytest -m "not slow"`) like the tests that train, drive a browser or run a server."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)
