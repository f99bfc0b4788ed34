"""short_reason: a third-party exception turned into words for the person at the screen."""

from __future__ import annotations

import numpy as np
import pytest

from medreview.errors import OUT_OF_MEMORY_REASON, short_reason


def test_running_out_of_memory_reads_the_same_whatever_raised_it() -> None:
    with pytest.raises(MemoryError) as numpy_error:
        np.empty(2**62, dtype=np.uint8)  # numpy's message names the shape it could not allocate
    assert short_reason(numpy_error.value) == OUT_OF_MEMORY_REASON
    assert short_reason(MemoryError("Unable to allocate output buffer.")) == OUT_OF_MEMORY_REASON


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("EOF reached in file /srv/medreview/data/objects/ab/abcdef.dcm", "EOF reached in file <path>"),
        ("[Errno 2] No such file: '/tmp/upload-x1/Smith_John.dcm'", "[Errno 2] No such file: '<path>'"),
        (r"cannot open C:\medreview\data\scan.dcm now", "cannot open <path> now"),
    ],
)
def test_server_paths_never_reach_the_reason(message: str, shown: str) -> None:
    assert short_reason(ValueError(message)) == shown


@pytest.mark.parametrize(
    "message",
    [
        "could not broadcast input array from shape (400000000,) into shape (256,)",
        "GET http://pacs:8042/dicom-web/studies failed",
        "a ratio of 1/2 and a folder named series/3",
    ],
)
def test_text_that_is_not_a_server_path_is_kept(message: str) -> None:
    assert short_reason(RuntimeError(message)) == message
