"""The viewer's TypeScript: its own tests pass (the windowing cases the Python side checks too), and
the committed bundle (ui/viewer/dist/viewer.js, what `make run` serves without Node) is exactly what
its source and package-lock.json build."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

VIEWER = ROOT / "ui" / "viewer"


def npm() -> str:
    found = shutil.which("npm")
    if found is None or shutil.which("node") is None:
        message = "Node and npm are needed to build the viewer (apt-get install nodejs npm; .ci/run does this)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def installed() -> str:
    """`npm ci` from the lock file (once per run, when node_modules is missing or older than it)."""
    command = npm()
    marker = VIEWER / "node_modules" / ".package-lock.json"
    # Parallel test workers (pytest -n) may both get here: one installs, the other waits for it.
    with open(VIEWER / "package-lock.json", "rb") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if not marker.exists() or marker.stat().st_mtime < (VIEWER / "package-lock.json").stat().st_mtime:
            subprocess.run([command, "ci", "--no-audit", "--no-fund"], cwd=VIEWER, check=True, capture_output=True)
    return command


@pytest.mark.slow
def test_typescript_tests_pass(installed):
    completed = subprocess.run([installed, "test"], cwd=VIEWER, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    assert "# fail 0" in completed.stdout


@pytest.mark.slow
def test_the_committed_bundle_is_what_the_source_builds(installed, tmp_path: Path):
    rebuilt = tmp_path / "viewer.js"
    completed = subprocess.run(
        [installed, "run", "build"],
        cwd=VIEWER,
        env={**os.environ, "VIEWER_OUT": str(rebuilt)},
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]
    committed = (VIEWER / "dist" / "viewer.js").read_bytes()
    assert rebuilt.read_bytes() == committed, "ui/viewer/dist/viewer.js is stale: run `npm run build` in ui/viewer"
