"""The whole loop in a real browser: create the first admin, upload the 16 sample chest X-rays,
label each one, train a tiny model, run predictions, and see a Grad-CAM overlay beside the image."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import artifacts_dir, new_page, open_page
from tests.e2e.viewer import canvas_pixel, label_in_order, wait_painted
from tests.helpers import cxr_sample_paths

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_upload_label_train_predict_in_a_real_browser(server, browser, tmp_path):
    samples = cxr_sample_paths()
    assert len(samples) == 16
    artifacts = artifacts_dir(tmp_path)
    page = new_page(browser)
    # Every request of the whole session, to check at the end that none leaves the app's origin.
    requested: list[str] = []
    page.context.on("request", lambda request: requested.append(request.url))

    # First visit to an empty store: create the administrator.
    open_page(page, server.url)
    page.get_by_label("User name").fill("chief")
    page.get_by_label("Password (at least 10 characters)").fill("chief-password")
    page.get_by_label("Repeat the password").fill("chief-password")
    page.get_by_role("button", name="Create administrator").click()
    page.get_by_text("Signed in as chief").wait_for()

    # Upload all 16 films at once.
    page.get_by_role("link", name="Upload").click()
    page.locator("input[type=file]").set_input_files([str(path) for path in samples])
    page.get_by_role("button", name="Store 16 file(s)").click()
    page.get_by_text("16 stored, 0 duplicate, 0 rejected").wait_for(timeout=120_000)

    # Label with the keyboard: each class key saves and shows the next image at once.
    page.get_by_role("link", name="Label").click()
    wait_painted(page)
    # The worklist runs in upload order. The films are shown under de-identified display names
    # ("image-1a2b3c4d5e6f.jpg"), never the uploaded names, so the class comes from the order.
    name = page.locator(".mrv-header b").first.inner_text()
    assert name.startswith("image-") and not any(path.stem in name for path in samples)
    label_in_order(page, ["1" if path.name.startswith("NORMAL") else "2" for path in samples])
    page.screenshot(path=str(artifacts / "label.png"), full_page=True)

    # Train a tiny model in the background worker and watch it finish.
    page.get_by_role("link", name="Train").click()
    page.get_by_label("Epochs").fill("2")  # no Enter: that would submit the form a second time
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("Run 1: succeeded").wait_for(timeout=300_000)
    page.get_by_text("ROC AUC").first.wait_for()
    page.screenshot(path=str(artifacts / "train.png"))
    # The model list below the live run refreshed when the run ended: version 1, the first, is the
    # active one, and the version selector says so (it follows the active version).
    active = page.get_by_role("button", name="Version 1 is the active one")
    active.scroll_into_view_if_needed()
    active.wait_for()
    assert active.is_disabled()
    page.screenshot(path=str(artifacts / "train-models.png"))

    # Predict all images and see the Grad-CAM overlay beside the image.
    page.get_by_role("link", name="Predictions").click()
    page.get_by_text("All images").click()
    page.get_by_role("button", name="Run predictions").click()
    page.get_by_text("Grad-CAM for").first.wait_for(timeout=300_000)
    # The map is a layer over the image in the viewport beside it: O hides it, and that canvas changes.
    wait_painted(page)
    with_map = canvas_pixel(page, canvas=".mrv-map-pane .mrv-canvas")
    page.keyboard.press("o")
    page.wait_for_function("pixel => { const c = document.querySelector('.mrv-map-pane .mrv-canvas');"
                           " const d = c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data;"
                           " return Array.from(d).join() !== pixel.join(); }", arg=with_map)  # fmt: skip
    page.screenshot(path=str(artifacts / "predictions.png"), full_page=True)

    # Nothing left the machine: every asset (icons and fonts included) came from the app itself.
    outside = sorted({url for url in requested if not url.startswith((server.url, "data:", "blob:"))})
    assert requested and outside == []
