"""The process-wide cache of decoded images is bounded by bytes, not by count; the case reads a case
viewer holds are read back for saving."""

from __future__ import annotations

import numpy as np

import ui.viewer as viewer
from medreview.imaging.decoding import DecodedImage
from ui.viewer import DecodedCache

MB = 1024 * 1024


def image_of(megabytes: int) -> DecodedImage:
    frames = np.zeros((1, megabytes * MB // 4), dtype=np.float32)  # (F, H*W) float32: the size is what counts
    return DecodedImage(
        frames=frames,
        is_color=False,
        photometric_interpretation="MONOCHROME2",
        modality="CT",
        default_window=None,
        voi_lut=None,
    )


def test_large_images_push_out_the_least_recently_used_until_the_bytes_fit():
    cache = DecodedCache(max_bytes=100 * MB)
    loads: list[int] = []

    def load(image_id: int) -> DecodedImage:
        loads.append(image_id)
        return image_of(40)

    for image_id in (1, 2):
        cache.get(image_id, load)
    cache.get(1, load)  # 1 is now the most recently used
    cache.get(3, load)  # 120 MB > 100 MB: 2 goes, not 1
    assert cache.size_bytes <= 100 * MB
    cache.get(1, load)
    cache.get(2, load)
    assert loads == [1, 2, 3, 2]


def test_an_image_larger_than_the_whole_cache_is_served_but_not_kept():
    cache = DecodedCache(max_bytes=10 * MB)
    image = cache.get(7, lambda _: image_of(20))
    assert image.frames.nbytes == 20 * MB and cache.size_bytes == 0


def test_pending_case_reads_are_the_case_viewers_reads_and_nothing_else(monkeypatch):
    sync = {
        "pending": [
            {"seq": 7, "caseId": "study:3", "label": "PE present", "seconds": 4.2, "viewport": 2, "owner": "o"},
            {"seq": 8, "imageId": 5, "label": "normal"},  # an image read of the worklist viewer: not a case read
            {"seq": "x", "caseId": "study:3", "label": "normal"},  # garbled: nothing to save
            {"seq": 9, "caseId": "study:3", "label": "normal", "seconds": -1},  # an impossible time is dropped
        ]
    }
    monkeypatch.setattr(viewer, "viewer_state", lambda key: sync if key == "case" else {})
    reads = viewer.pending_case_reads("case")
    assert [(read["seq"], read["caseId"], read["label"], read["viewport"]) for read in reads] == [
        (7, "study:3", "PE present", 2),
        (9, "study:3", "normal", 0),
    ]
    assert reads[0]["seconds"] == 4.2 and reads[1]["seconds"] is None
    assert viewer.pending_case_reads("other") == []
