"""Decompression bombs are refused within bounded memory, by a real ``medreview ingest`` process.

The process runs under an address-space cap (``RLIMIT_AS``): what the same command needs to ingest
normal files (measured first, in a child of its own) plus 1.5 GiB, three times the default file
limit, which bounds how far a deflated object is inflated. Under it, with the default limits, every
bomb must be refused with a reason that says what it is (not an exception's text, not a path), the
process must finish on its own, and the normal files beside the bombs must be stored.

The bombs are those of the issue, built small: deflated objects whose 16 x 16 header hides 1 GiB and
3 GiB of zeros (1 MB and 3 MB on disk; before the fix the first was stored at a 4.4 GB peak), and
JPEG-in-DICOM whose frames say 20000 x 20000 or 40 x 4096 x 4096 (1.5 MB and 2.6 MB on disk).
"""

from __future__ import annotations

import io
import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from tests.helpers import ROOT, dicom_bytes, png_bytes
from tests.ingest.bomb_files import deflated_dicom, flat_jpeg, jpeg_dicom

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="reads the peak address space from /proc/self/status"),
]

GIB = 1024 * 1024 * 1024
HEADROOM_BYTES = 3 * GIB // 2

# The child: the real command line, then its peak address space (VmPeak) as the last line of stderr.
CHILD = """
import sys
from medreview.cli import main
code = main(sys.argv[1:])
peak = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmPeak:"))
print(f"vm-peak-kib {peak}", file=sys.stderr)
sys.exit(code)
"""


def run_ingest(data_dir: Path, files: list[Path], address_space_cap: int | None = None) -> tuple[int, dict, int]:
    """(exit code, result per file name, peak address space in bytes) of ``ingest --json`` in a child."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MEDREVIEW_")}
    environment["MEDREVIEW_DATA_DIR"] = str(data_dir)  # and the default limits: no MEDREVIEW_MAX_*

    def cap_address_space() -> None:
        if address_space_cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space_cap, address_space_cap))

    completed = subprocess.run(
        [sys.executable, "-c", CHILD, "ingest", "--json", *map(str, files)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=cap_address_space,
    )
    peak = re.search(r"vm-peak-kib (\d+)\s*$", completed.stderr)
    assert peak is not None, f"the child did not finish on its own (exit {completed.returncode}): {completed.stderr}"
    results = {Path(row["file"]).name: row for row in map(json.loads, completed.stdout.splitlines())}
    return completed.returncode, results, int(peak.group(1)) * 1024


def deflated_ct() -> bytes:
    """A normal CT slice written deflated."""
    dataset = pydicom.dcmread(io.BytesIO(dicom_bytes("DEFLATED-CT")))
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


NORMAL_FILES = {
    "ct.dcm": lambda: dicom_bytes("NORMAL-CT"),
    "deflated-ct.dcm": deflated_ct,
    "jpeg.dcm": lambda: jpeg_dicom([flat_jpeg(256, 256)], rows=256, columns=256),
    "picture.png": lambda: png_bytes(5, size=256),
}
BOMBS = {
    "deflated-1gib.dcm": (lambda: deflated_dicom(zero_bytes=GIB), "suspicious compression"),
    # 3 MB at the ratio limit (200) would be 600 MB: the file limit (512 MiB) comes first.
    "deflated-3gib.dcm": (lambda: deflated_dicom(zero_bytes=3 * GIB), "too large once inflated"),
    "jpeg-20000x20000.dcm": (
        lambda: jpeg_dicom([flat_jpeg(20000, 20000)], rows=16, columns=16),
        "compressed frame 1 says it is 20000 x 20000 pixels",
    ),
    "jpeg-40-frames-of-4096x4096.dcm": (
        lambda: jpeg_dicom([flat_jpeg(4096, 4096)] * 40, rows=16, columns=16),
        "compressed frame 1 says it is 4096 x 4096 pixels",
    ),
}


def write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def test_bombs_are_refused_under_an_address_space_cap_and_normal_files_stored(tmp_path: Path) -> None:
    normal = [write(tmp_path / "upload", name, build()) for name, build in NORMAL_FILES.items()]
    bombs = [write(tmp_path / "upload", name, build()) for name, (build, _) in BOMBS.items()]
    assert all(path.stat().st_size < 3_200_000 for path in bombs)

    code, results, baseline = run_ingest(tmp_path / "baseline-store", normal)
    assert code == 0, results
    cap = baseline + HEADROOM_BYTES

    code, results, peak = run_ingest(tmp_path / "store", [*bombs, *normal], address_space_cap=cap)
    print(
        f"baseline VmPeak {baseline / 2**20:.0f} MiB, cap {cap / 2**20:.0f} MiB, with the bombs {peak / 2**20:.0f} MiB"
    )
    assert code == 2, "exit 2: some files were rejected, and the process was neither killed nor crashed"
    for name in NORMAL_FILES:
        assert results[name]["status"] == "stored", results[name]
    for name, (_, reason) in BOMBS.items():
        result = results[name]
        assert result["status"] == "rejected"
        assert reason in result["reason"]
        assert "decompression bomb" in result["reason"]
        assert "memory" not in result["reason"].lower() and "<path>" not in result["reason"]
        assert str(tmp_path) not in result["reason"]
