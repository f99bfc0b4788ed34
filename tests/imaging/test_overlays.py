"""The heat-map colours: a perceptually uniform scale over the image, and its colour bar."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from medreview.imaging.overlays import HEATMAP_COLORMAP, colour_bar, overlay_heatmap


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of sRGB uint8 colours (..., 3) -> (...) in [0, 1]."""
    channels = rgb.astype(np.float64) / 255.0
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def test_the_heat_map_scale_is_perceptually_uniform():
    assert HEATMAP_COLORMAP in ("inferno", "viridis", "magma", "cividis")


@pytest.mark.parametrize("step", [0, 40, 128, 191, 255])
def test_a_pure_overlay_is_matplotlibs_colour_for_that_heat(step):
    heat = step / 255  # the overlay samples the colour map at 256 steps
    grey = np.zeros((2, 2), dtype=np.uint8)
    pure = overlay_heatmap(grey, np.full((2, 2), heat), 1.0)
    expected = np.rint(np.asarray(matplotlib.colormaps[HEATMAP_COLORMAP](heat)[:3]) * 255.0)
    np.testing.assert_allclose(pure[0, 0], expected, atol=1)


def test_brighter_overlay_means_more_evidence():
    # Whatever the image below, more heat never looks darker: no band in the middle of the scale
    # (jet's cyan and yellow) outshines the top.
    heat = np.linspace(0.0, 1.0, 64)[np.newaxis]  # (1, 64)
    for grey_level in (0, 128, 255):
        grey = np.full((1, 64), grey_level, dtype=np.uint8)
        luminance = relative_luminance(overlay_heatmap(grey, heat, 0.5)[0])
        assert np.all(np.diff(luminance) >= -1e-9), grey_level


def test_colour_bar_has_the_size_asked_and_rising_luminance():
    bar = colour_bar(12, 200)
    assert bar.shape == (12, 200, 3) and bar.dtype == np.uint8
    inside = bar[1:-1, 1:-1]
    assert np.all(inside == inside[:1])  # every row the same scale
    luminance = relative_luminance(inside[0])
    assert np.all(np.diff(luminance) >= 0) and luminance[-1] - luminance[0] > 0.8
    # The ends are the overlay's colours for no evidence and for the most evidence.
    np.testing.assert_array_equal(
        inside[0, 0], overlay_heatmap(np.zeros((1, 1), np.uint8), np.zeros((1, 1)), 1.0)[0, 0]
    )
    np.testing.assert_array_equal(
        inside[0, -1], overlay_heatmap(np.zeros((1, 1), np.uint8), np.ones((1, 1)), 1.0)[0, 0]
    )
    # A grey frame that shows on a dark page as on a light one.
    edges = np.concatenate([bar[0], bar[-1], bar[:, 0], bar[:, -1]])
    assert np.all(edges == 128)


def test_colour_bar_refuses_a_size_with_no_room_for_the_scale():
    with pytest.raises(ValueError, match="at least 3 x 3"):
        colour_bar(2, 100)
