"""A real Orthanc PACS with its DICOMweb plugin, started by the tests on a loopback port.

Debian's ``orthanc`` and ``orthanc-dicomweb`` packages provide ``/usr/sbin/Orthanc`` and
``/usr/share/orthanc/plugins/libOrthancDicomWeb.so``; ``MEDREVIEW_TEST_ORTHANC`` and
``MEDREVIEW_TEST_ORTHANC_DICOMWEB`` override those paths. Each server gets a throw-away storage
folder, HTTP basic auth, no DICOM (DIMSE) listener and no remote access, and never touches the
system Orthanc service. Without the binary or the plugin the tests that need them skip and say
why; under ``CI=true`` they fail instead, so CI can never pass by skipping them.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

BINARY_CANDIDATES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so*",
)
STARTUP_SECONDS = 20.0


def _missing(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a missing PACS fails the run instead of skipping)")
    pytest.skip(f"{message}; install Debian's orthanc and orthanc-dicomweb to run this test")


def find_orthanc() -> tuple[Path, Path]:
    """(Orthanc binary, DICOMweb plugin), or skip/fail the test with the reason."""
    binary = os.environ.get("MEDREVIEW_TEST_ORTHANC")
    if binary is not None and not os.access(binary, os.X_OK):
        _missing(f"MEDREVIEW_TEST_ORTHANC={binary} is not an executable file")
    binary = binary or shutil.which("Orthanc")
    binary = binary or next((path for path in BINARY_CANDIDATES if os.access(path, os.X_OK)), None)
    if binary is None:
        _missing(f"the Orthanc binary was not found (looked on PATH and for {', '.join(BINARY_CANDIDATES)})")
    plugin = os.environ.get("MEDREVIEW_TEST_ORTHANC_DICOMWEB")
    if plugin is not None and not Path(plugin).is_file():
        _missing(f"MEDREVIEW_TEST_ORTHANC_DICOMWEB={plugin} is not a file")
    if plugin is None:
        matches = (sorted(glob.glob(pattern)) for pattern in PLUGIN_CANDIDATES)
        plugin = next((found[0] for found in matches if found), None)
    if plugin is None:
        _missing(f"the Orthanc DICOMweb plugin was not found (looked for {', '.join(PLUGIN_CANDIDATES)})")
    return Path(binary), Path(plugin)  # type: ignore[arg-type]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class OrthancServer:
    url: str  # Orthanc's REST root, e.g. http://127.0.0.1:PORT
    username: str
    password: str

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def upload(self, data: bytes) -> None:
        """Store one DICOM file through Orthanc's REST API (``POST /instances``)."""
        response = requests.post(f"{self.url}/instances", data=data, auth=(self.username, self.password), timeout=10)
        response.raise_for_status()


def _wait_until_up(server: OrthancServer, process: subprocess.Popen[bytes], log_path: Path) -> bool:
    """True once ``/system`` answers; False if the process died (for example the port was taken)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            response = requests.get(f"{server.url}/system", auth=(server.username, server.password), timeout=1)
            if response.status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    tail = log_path.read_text(errors="replace")[-2000:]
    pytest.fail(f"Orthanc did not answer on {server.url}/system within {STARTUP_SECONDS:g} s; its log ends:\n{tail}")


@contextmanager
def run_orthanc(
    workdir: Path, username: str = "reader", password: str = "pacs-test-password"
) -> Iterator[OrthancServer]:
    """Start Orthanc with storage under ``workdir``; stop it when the block ends."""
    binary, plugin = find_orthanc()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "orthanc.log"
    # The port is free when probed but another process may take it before Orthanc binds it: retry.
    for _attempt in range(3):
        port = free_port()
        config = {
            "Name": "medreview-test",
            "StorageDirectory": str(workdir / "storage"),
            "IndexDirectory": str(workdir / "storage"),
            "HttpPort": port,
            "DicomServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {username: password},
            "SaveJobs": False,
            "Plugins": [str(plugin)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        config_path = workdir / "orthanc.json"
        config_path.write_text(json.dumps(config, indent=2))
        server = OrthancServer(f"http://127.0.0.1:{port}", username, password)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(binary), str(config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
            )
        if _wait_until_up(server, process, log_path):
            break
    else:
        tail = log_path.read_text(errors="replace")[-2000:]
        pytest.fail(f"Orthanc exited at start-up three times; its log ends:\n{tail}")
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
