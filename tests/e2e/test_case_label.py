"""Reading a study on the Label page in a real browser (issue 17 items 2, 5 and the "done when"): the
project's classes are study-scoped, so the worklist lists studies; the first study is hung with the
patient's prior beside it (the project's CT protocol asks for one) and that viewport's corner says
"Prior · 2024-01-01"; one class key is one study read in the database, and the next study opens at
once (painted before the read is acknowledged).
Screenshots of the case mode at 1440x900 and 1280x720, and of the next study just opened, under
/tmp/shots (case-label-*.png).

One server for the file: a store made in this process (generated CT slices: patient P1's current and
prior studies, patient P2's one study)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from medreview.ingest import InputFile, ingest_files
from medreview.reading.protocols import DEFAULT_PROTOCOLS
from medreview.reading.reads import LOCAL_ACTOR
from medreview.reading.schema import add_label_class
from medreview.store import Store
from medreview.store.models import Annotation, Study
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.conftest import make_settings
from tests.e2e.conftest import log_in, new_page, require_chromium, serving
from tests.helpers import dicom_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADMIN = Actor("chief", "admin")
READER = Actor("reader1", "annotator")
PASSWORD = "case-label-password"
SHOTS = Path(os.environ.get("MEDREVIEW_SHOTS", "/tmp/shots"))
SLICES = 12
# What a site reading chest CT against the last scan would add to the shipped protocols.
CT_WITH_PRIOR = {
    "name": "CT: current and prior",
    "modality": ["CT"],
    "layout": "1x2",
    "viewports": [{"modality": "CT"}, {"modality": "CT", "prior": True}],
}
# (patient, study date): the first study listed is P1's current one, whose prior is the second.
STUDIES = [("P1", "20240601"), ("P1", "20240101"), ("P2", "20240301")]


def ct_slice(study: int, slice_number: int) -> np.ndarray:
    """(64, 64) uint16: a disc whose size changes with the slice (scrolling shows it moving)."""
    y, x = np.mgrid[:64, :64]
    radius = 8 + 2 * abs(slice_number - SLICES // 2) + 4 * study
    return np.where((y - 32) ** 2 + (x - 32) ** 2 < radius**2, 1200, 100).astype(np.uint16)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list[int]]]:
    require_chromium()
    data_dir = tmp_path_factory.mktemp("case-label") / "data"
    data_dir.mkdir()
    store = Store.open(make_settings(data_dir))
    try:
        create_first_admin(store, ADMIN.username, PASSWORD)
        create_user(store, ADMIN, READER.username, PASSWORD, READER.role)
        for name in ("pe present", "no pe"):
            add_label_class(store, ADMIN, name, scope="study")
        set_setting(store, ADMIN, "hanging_protocols", [CT_WITH_PRIOR, *DEFAULT_PROTOCOLS])
        files = []
        for study, (patient, _) in enumerate(STUDIES):
            study_uid = f"1.2.826.0.1.7800.{study}"
            for slice_number in range(SLICES):
                data = dicom_bytes(
                    patient,
                    study_uid=study_uid,
                    series_uid=f"{study_uid}.1",
                    instance_number=slice_number + 1,
                    pixels=ct_slice(study, slice_number),
                )
                files.append(InputFile(f"ct-{study}-{slice_number:02d}.dcm", data))
        assert {result.status for result in ingest_files(store, LOCAL_ACTOR, files)} == {"stored"}
        with store.db.write() as session:
            study_ids = list(session.scalars(select(Study.id).order_by(Study.id)))
            for study_id, (_, study_date) in zip(study_ids, STUDIES, strict=True):
                session.get(Study, study_id).study_date = study_date
    finally:
        store.close()
    with serving(data_dir) as server:
        yield server.url, data_dir, study_ids


def label_page(browser, url: str, width: int, height: int):  # type: ignore[no-untyped-def]
    """Signed in as the reader, on Label, with a case painted."""
    page = new_page(browser, width, height)
    log_in(page, url, READER.username, PASSWORD)
    page.get_by_role("link", name="Label").click()
    page.locator('.mrv-case:not([data-painted="0"])[data-painted]').wait_for()
    return page


def table_drawn(page) -> None:  # type: ignore[no-untyped-def]
    """The worklist's table drawn (its canvas), for the screenshots."""
    page.locator('[data-testid="stDataFrame"] canvas').first.wait_for()
    page.wait_for_timeout(500)


def test_a_reader_labels_a_study_with_one_key_beside_its_prior(shared_chromium, served):  # type: ignore[no-untyped-def]
    url, data_dir, (current, prior, _) = served
    SHOTS.mkdir(parents=True, exist_ok=True)
    small = label_page(shared_chromium, url, 1280, 720)
    small.locator('.mrv-case[data-painted="2"]').wait_for()
    for stage in small.locator(".mrv-case .mrv-stage").all():
        box = stage.bounding_box()
        assert box is not None and box["y"] + box["height"] <= 720, box
    table_drawn(small)
    small.screenshot(path=str(SHOTS / "case-label-1280x720.png"))
    small.context.close()

    page = label_page(shared_chromium, url, 1440, 900)
    case = page.locator(".mrv-case")
    assert case.get_attribute("data-case-id") == f"study:{current}"
    # Hung by the CT protocol: the study, and the patient's prior beside it, which says it is the prior.
    page.locator('.mrv-case[data-painted="2"]').wait_for()
    assert case.get_attribute("data-layout") == "1x2"
    stages = page.locator(".mrv-case .mrv-stage")
    assert stages.nth(1).locator(".mrv-topLeft").inner_text().startswith("Prior · 2024-01-01")
    assert "Prior" not in stages.nth(0).locator(".mrv-topLeft").inner_text()
    page.get_by_text("Studies: 3 to do").wait_for()  # a study counts once, not per slice
    table_drawn(page)
    page.screenshot(path=str(SHOTS / "case-label-1440x900.png"))

    stages.nth(0).click()
    page.keyboard.press("1")
    # The next study on the list (P1's prior, read as a study of its own) opens from the browser at
    # once: painted while the read was still on its way to the server, not after the page's rerun.
    page.locator(f'.mrv-case[data-case-id="study:{prior}"][data-painted-ahead-of-save]').wait_for()
    assert case.get_attribute("data-opened-ahead") == "true"
    assert case.get_attribute("data-painted-ahead-of-save") == "true"
    page.screenshot(path=str(SHOTS / "case-label-next-opened.png"))
    # Then saved and acknowledged: the page follows (the counts) and nothing is left pending.
    page.get_by_text("Studies: 2 to do").wait_for()
    store = Store.open(make_settings(data_dir))
    try:
        with store.db.read() as session:
            reads = session.execute(select(Annotation.scope, Annotation.case_id)).all()
    finally:
        store.close()
    assert [tuple(read) for read in reads] == [("study", current)]  # one read, of the study
    page.locator('.mrv-case[data-pending-reads="0"]').wait_for()
    assert case.get_attribute("data-case-id") == f"study:{prior}"  # the server's case is the one opened
