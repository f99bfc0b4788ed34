"""Shared fixtures: a store on a real SQLite file, and the same on the real PostgreSQL server.

PostgreSQL (127.0.0.1:5432, database ``test``) and Redis (127.0.0.1:6379) are real servers. On a
machine without them the tests that need them skip and say why; under ``CI=true`` a missing
server fails the run instead, so CI can never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from medreview.config import IngestLimits, Settings
from medreview.store import Store
from medreview.team.roles import Actor
from tests.helpers import ROOT, cxr_sample_paths

POSTGRES_URL = os.environ.get("MEDREVIEW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MEDREVIEW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def pytest_xdist_make_scheduler(config: pytest.Config, log):  # type: ignore[no-untyped-def]
    """`make test` runs the suite on every core (pytest -n auto). Each test is its own unit of
    work, handed to whichever worker is free, except the browser tests (tests/e2e): they are one
    unit, so one worker runs them in turn, starting first (they are the longest part), while the
    other cores take the rest. Two servers and two Chromiums at once on 2 cores made timing-bound
    steps (a key bounce, a save in flight) miss their moment. (xdist's own --dist loadgroup does
    not group under pytest 9: it renames nodeids, which pytest 9 no longer reads back.)"""
    from xdist.scheduler import LoadScopeScheduling

    class BrowserTestsInTurn(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "browser" if nodeid.startswith("tests/e2e/") else nodeid

    return BrowserTestsInTurn(config, log)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not running on {host}:{port}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a missing server fails the run instead of skipping)")
    pytest.skip(f"{message}; start it to run this test")


def make_settings(tmp_path: Path, database_url: str | None = None, limits: IngestLimits | None = None) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url or f"sqlite:///{tmp_path / 'medreview.db'}",
        limits=limits or IngestLimits(),
    )


def _postgres_schema(action: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        if action == "create":
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        else:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="session")
def new_store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SQLite file of a store just made (migrated to head and seeded), made once per test
    process: a test's new store starts as a copy of it. Making one runs every Alembic migration,
    0.2 s of CPU, which hundreds of tests paid; the migrations themselves are tested from empty
    and from old stores in tests/store."""
    data_dir = tmp_path_factory.mktemp("new-store")
    Store.open(make_settings(data_dir)).close()
    made = data_dir / "medreview.db"
    assert not made.with_name("medreview.db-wal").exists()  # closed: everything is in the file
    return made


def _new_sqlite_store(data_dir: Path, new_store_file: Path) -> Store:
    shutil.copyfile(new_store_file, data_dir / "medreview.db")
    return Store.open(make_settings(data_dir))


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_store_file: Path) -> Iterator[Store]:
    """A fresh store on a real SQLite file in a temporary data dir."""
    monkeypatch.setenv("MEDREVIEW_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MEDREVIEW_DATABASE_URL", raising=False)
    monkeypatch.delenv("MEDREVIEW_REDIS_URL", raising=False)
    opened = _new_sqlite_store(tmp_path, new_store_file)
    yield opened
    opened.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_store_file: Path
) -> Iterator[Store]:
    """The same tests on SQLite and on the real PostgreSQL server."""
    monkeypatch.setenv("MEDREVIEW_DATA_DIR", str(tmp_path))
    schema = None
    if request.param == "postgresql":
        require_server("PostgreSQL", "127.0.0.1", 5432)
        # A schema of its own per test (first on the search path), so test runs sharing the
        # server (a developer's and CI's, or parallel helpers) never see each other's tables.
        schema = f"medreview_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        _postgres_schema("create", schema)
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        settings = make_settings(tmp_path, url)
        monkeypatch.setenv("MEDREVIEW_DATABASE_URL", url)
    else:
        monkeypatch.delenv("MEDREVIEW_DATABASE_URL", raising=False)
    opened = Store.open(settings) if schema is not None else _new_sqlite_store(tmp_path, new_store_file)
    yield opened
    opened.close()
    if schema is not None:
        _postgres_schema("drop", schema)


@pytest.fixture
def cxr_files() -> list[Path]:
    return cxr_sample_paths()


# --- pages (AppTest) ------------------------------------------------------------------------------

ADMIN = Actor("admin", "admin")


@pytest.fixture
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2 parameters keep account tests fast; production uses the library defaults."""
    from argon2 import PasswordHasher

    from medreview.team import accounts

    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))


@pytest.fixture(autouse=True, scope="session")
def components_scanned_once() -> Iterator[None]:
    """A running server scans the installed packages for Components v2 manifests once, at start;
    AppTest scans them again at every run (importlib.metadata over ~110 distributions: 0.35 s a
    run, half the time of a page test). The packages do not change during a test session, so the
    scan's answer is kept after its first run; every run still registers what it found."""
    import functools

    from streamlit.components.v2 import manifest_scanner

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            manifest_scanner,
            "scan_component_manifests",
            functools.cache(manifest_scanner.scan_component_manifests),
        )
        yield


@pytest.fixture(autouse=True, scope="session")
def script_runs_without_keras_cleanup() -> Iterator[None]:
    """After every script run Streamlit calls keras.backend.clear_session() when keras has been
    imported into its process (and a full gc.collect(2), see below). The app's server never imports
    keras (training runs in the worker), but a test process does once a training test has run in it,
    and from then on every AppTest run paid for clearing TensorFlow's state and collecting its heap:
    0.2 s page tests took 2-4 s after a training test in the same worker. AppTest runs here do what a
    running server does: nothing for keras."""
    from streamlit.runtime.scriptrunner import script_runner

    def without_keras() -> None:
        if "matplotlib.pyplot" in sys.modules:  # the rest of what Streamlit cleans after a run
            sys.modules["matplotlib.pyplot"].close("all")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(script_runner, "_clean_problem_modules", without_keras)
        yield


@pytest.fixture(autouse=True)
def steady_state_navigation(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTest resets Streamlit's legacy `pages/` discovery flag before every run, so each run
    would start in legacy mode and pay the one-time switch that a real server makes on its first
    request (ui/session.leave_legacy_page_discovery), losing that run's button click. Start
    every AppTest run in the state a running server is in after its first request."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
    # Users see only an error's type (.streamlit/config.toml).
    from streamlit import config

    monkeypatch.setattr(config, "get_option", _test_run_options(config.get_option))


def _test_run_options(get_option):  # type: ignore[no-untyped-def]
    """Tests want the whole error of a failing page; and no full garbage collection after each
    AppTest run (runner.postScriptGC): a server's heap is the app's, small, while a test process
    also holds what earlier tests loaded (TensorFlow), which made each collection cost 0.25 s."""

    def patched(key: str):  # type: ignore[no-untyped-def]
        if key == "client.showErrorDetails":
            return "full"
        if key == "runner.postScriptGC":
            return False
        return get_option(key)

    return patched


@pytest.fixture
def page_store(store: Store, fast_hashing: None) -> Iterator[Store]:
    """A store with an admin account, and the pages' cached Store pointed at it."""
    import streamlit as st

    from medreview.team.accounts import create_first_admin

    st.cache_resource.clear()
    create_first_admin(store, ADMIN.username, "admin-password-1")
    yield store
    st.cache_resource.clear()


def run_page_as(name: str, actor: Actor | None = ADMIN, timeout: int = 60):  # type: ignore[no-untyped-def]
    """Run pages/<name>.py in AppTest, logged in as ``actor`` (None: not logged in)."""
    from streamlit.testing.v1 import AppTest

    from medreview.store.models import utcnow
    from medreview.team.accounts import LoginSession

    app = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=timeout)
    if actor is not None:
        app.session_state["login"] = LoginSession(actor, utcnow())
    app.run()
    assert not app.exception, app.exception
    return app
