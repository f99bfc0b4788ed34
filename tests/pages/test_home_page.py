"""Home: where the data lives (the server's data folder and database address) is for admins only."""

from __future__ import annotations

from medreview.team.accounts import create_user
from medreview.team.roles import Actor
from tests.conftest import ADMIN, run_page_as


def page_text(app) -> str:  # type: ignore[no-untyped-def]
    """Everything the page sent to the browser (every element's protobuf, as text)."""

    def walk(node):  # type: ignore[no-untyped-def]
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return "\n".join(str(node.proto) for node in walk(app._tree) if getattr(node, "proto", None) is not None)


def test_only_admins_see_the_data_folder_and_the_database_address(page_store):
    data_dir = str(page_store.settings.data_dir)
    database = page_store.db.engine.url.render_as_string(hide_password=True)
    for name, role in (("ann", "annotator"), ("rev", "reviewer")):
        create_user(page_store, ADMIN, name, f"{role}-password-1", role)
        shown = page_text(run_page_as("home", Actor(name, role)))
        assert "Images" in shown  # the page did draw
        assert data_dir not in shown and database not in shown and "Where the data lives" not in shown, role
    shown = page_text(run_page_as("home", ADMIN))
    assert data_dir in shown and database in shown
