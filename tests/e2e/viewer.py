"""Driving the viewer in a real browser: what is painted (the component's own marks and data
attributes), keys once an image has been on screen, and pixels read back from its canvas."""

from __future__ import annotations

import time

# Longer than the viewer's bounce guard (ui/viewer.py MIN_SECONDS_ON_SCREEN): a reader's pace.
READING_PAUSE = 0.3


def painted(page) -> int | None:  # type: ignore[no-untyped-def]
    """The id of the image on the viewer's canvas (None before the first paint)."""
    value = page.locator(".mrv-root").first.get_attribute("data-painted-image")
    return int(value) if value else None


def wait_painted(page, not_image: int | None = None) -> int:  # type: ignore[no-untyped-def]
    """Wait until an image (other than ``not_image``) is painted; returns its id."""
    page.wait_for_function(
        "notImage => { const root = document.querySelector('.mrv-root');"
        " return root && root.dataset.paintedImage && root.dataset.paintedImage !== String(notImage)"
        " && getComputedStyle(root.querySelector('.mrv-message')).display === 'none'; }",
        arg=-1 if not_image is None else not_image,
    )
    return int(painted(page) or 0)


def press_class(page, key: str) -> int:  # type: ignore[no-untyped-def]
    """Press a class key on the image on screen after a reader's pause; returns that image's id."""
    shown = wait_painted(page)
    time.sleep(READING_PAUSE)
    page.keyboard.press(key)
    return shown


def wait_saved(page) -> None:  # type: ignore[no-untyped-def]
    page.locator(".mrv-saved").wait_for()


def header(page) -> str:  # type: ignore[no-untyped-def]
    return page.locator(".mrv-header").first.inner_text()


def canvas_pixel(page, x_fraction: float = 0.5, y_fraction: float = 0.5, canvas: str = ".mrv-canvas") -> list[int]:  # type: ignore[no-untyped-def]
    """The RGBA of the viewer's (first) canvas, or the one ``canvas`` selects, at a point given as
    fractions of its size."""
    return page.evaluate(
        """([fx, fy, selector]) => { const canvas = document.querySelector(selector);
        const x = Math.floor(canvas.width * fx), y = Math.floor(canvas.height * fy);
        return Array.from(canvas.getContext('2d').getImageData(x, y, 1, 1).data); }""",
        [x_fraction, y_fraction, canvas],
    )


def canvas_box(page):  # type: ignore[no-untyped-def]
    return page.locator(".mrv-canvas").first.bounding_box()


def label_in_order(page, class_keys: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    """Label the worklist's images one after another with these class keys ("1", "2", ...), each
    after a reader's look; returns the labelled image ids. Ends when the viewer says it is done."""
    labelled = []
    for key in class_keys:
        labelled.append(press_class(page, key))
    page.get_by_text("Every image on this list is done.").wait_for()
    wait_saved(page)
    return labelled
