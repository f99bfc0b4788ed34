"""The process-wide cache of decoded images is bounded by bytes, not by count."""

from __future__ import annotations

import numpy as np

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
