"""Team reading in real browsers: two readers label the same images in two browser contexts
(blinded), a reviewer adjudicates the disagreement, and the agreement figures appear."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import artifacts_dir, log_in, new_page
from tests.e2e.viewer import label_in_order, wait_painted

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# (reader one, reader two) per image, in worklist order: they disagree on the third image.
CLASS_KEYS = {"normal": "1", "pneumonia": "2"}
READS = [("normal", "normal"), ("pneumonia", "pneumonia"), ("normal", "pneumonia"), ("pneumonia", "pneumonia")]


def label_worklist(page, url: str, labels: list[str]) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("link", name="Label").click()
    wait_painted(page)
    label_in_order(page, [CLASS_KEYS[class_name] for class_name in labels])


def test_two_readers_a_reviewer_and_agreement(server, browser, tmp_path):
    server.cli("users", "add", "chief", password="chief-password")
    for name, role in (("reader1", "annotator"), ("reader2", "annotator"), ("senior", "reviewer")):
        server.cli("users", "add", name, "--role", role, password=f"{name}-password")
    server.cli("demo")  # 40 generated images, 8 of them unread
    # Four unread images go on both readers' personal worklists (so nothing else is on them).
    assert "8 new assignments" in server.cli(
        "assign", "reader1", "reader2", "--per-image", "2", "--unlabelled", "--limit", "4"
    )

    first, second = new_page(browser), new_page(browser)
    log_in(first, server.url, "reader1", "reader1-password")
    log_in(second, server.url, "reader2", "reader2-password")
    # The two readers work at the same time, image by image, in their own sessions.
    label_worklist(first, server.url, [one for one, _ in READS])
    label_worklist(second, server.url, [two for _, two in READS])

    reviewer = new_page(browser)
    log_in(reviewer, server.url, "senior", "senior-password")
    reviewer.get_by_role("link", name="Review").click()
    reviewer.get_by_text("Disagreements (1)", exact=True).click()
    # Who read what, counted per class; no class is chosen for the reviewer.
    reviewer.get_by_text(
        re.compile(
            r"Reads: (normal: 1 \(reader1\) · pneumonia: 1 \(reader2\)|pneumonia: 1 \(reader2\) · normal: 1 \(reader1\))"
        )
    ).wait_for()
    assert reviewer.locator("input[type=radio]:checked").count() == 0
    reviewer.get_by_text("pneumonia", exact=True).last.click()
    reviewer.get_by_label("Adjudication note").fill("opacity right base")
    reviewer.get_by_role("button", name="Adjudicate").click()
    reviewer.get_by_text("No open disagreements.").wait_for()
    reviewer.get_by_text("Agreement", exact=True).click()
    reviewer.get_by_text("Fleiss' kappa (all readers)").wait_for()
    # 4 shared images; p_o = 3/4, p_e = (2/4)(1/4) + (2/4)(3/4) = 1/2 -> Cohen's kappa 0.5.
    reviewer.get_by_text("0.500").first.wait_for()
    reviewer.screenshot(path=str(artifacts_dir(tmp_path) / "agreement.png"), full_page=True)
