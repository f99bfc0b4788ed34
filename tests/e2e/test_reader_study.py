"""A reader study end to end in Chromium (issue 19): a two-arm crossover study with three readers on
an 8-case evaluation set. reader1 reads cases of both arms through the Label page (the unaided arm
shows the image alone; the aided arm the model's probability and its map beside the image); the
other ratings are made through the services. The admin's Studies page then shows the model's ROC
with the readers' points and the Obuchowski-Rockette analysis. One server for the file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from medreview.reading.studies import StudyCase, next_case, rate_case, study_results
from medreview.store import Store
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from tests.conftest import make_settings
from tests.e2e.conftest import log_in, new_page, require_chromium, serving
from tests.reading.test_studies import READERS, build_project, make_study, read_all, with_maps

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADMIN = Actor("chief", "admin")
READER = Actor("reader1", "annotator")
THROUGH_THE_UI = 2  # cases reader1 rates in the browser in each arm


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store, dict]]:
    require_chromium()
    data_dir = tmp_path_factory.mktemp("reader-study") / "data"
    data_dir.mkdir()
    store = Store.open(make_settings(data_dir))
    create_first_admin(store, ADMIN.username, "chief-password")
    for reader in READERS:
        create_user(store, ADMIN, reader, f"{reader}-password", "annotator")
    project = build_project(store, readers=False)
    with_maps(project)
    project["study"] = make_study(project)
    try:
        with serving(data_dir) as server:
            yield server.url, store, project
    finally:
        store.close()


def wait_shown(page, image_id: int, arm: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until a viewer on the page has painted ``image_id`` (the case the service says is being
    read). A page that has not painted it after 20 s is reloaded once, as a reader would press F5
    (seen under load: the study's viewer not mounted, or still the worklist's, after the choice)."""
    painted_it = "id => [...document.querySelectorAll('.mrv-root')].some(r => r.dataset.paintedImage === String(id))"
    try:
        page.wait_for_function(painted_it, arg=image_id, timeout=20_000)
    except PlaywrightTimeoutError:
        page.reload()
        page.get_by_label("Worklist").wait_for()
        choose_study(page, arm)
        page.wait_for_function(painted_it, arg=image_id)


def choose_study(page, arm: str) -> None:  # type: ignore[no-untyped-def]
    """Pick the study in the Label page's Worklist box once the page's run has ended (a choice made
    while a run redraws the box is lost), and wait for its ``arm``'s caption; chosen again if lost."""
    for attempt in range(2):
        settle(page)
        page.get_by_label("Worklist").click()
        page.get_by_role("option", name="cxr study").click()
        try:
            page.get_by_text(f"{arm} arm · case").first.wait_for(timeout=20_000)
            return
        except PlaywrightTimeoutError:
            if attempt:
                raise


def settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the app's script run has finished (until then the last run's elements linger)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()


def rate_in_the_browser(page, arm: str, label: str) -> None:  # type: ignore[no-untyped-def]
    """Rate the case on screen: ``label`` at the default confidence, then wait for the next one."""
    settle(page)
    caption = page.get_by_text(f"{arm} arm · case", exact=False)
    before = caption.inner_text().split(" · a rating")[0]
    option = page.get_by_test_id("stRadio").get_by_text(label, exact=True)
    option.click()
    checked = page.locator("[data-testid=stRadio] input[type=radio]:checked")
    try:
        checked.wait_for(state="attached", timeout=10_000)
    except PlaywrightTimeoutError:  # a click that landed while a run redrew the form: as a reader would, again
        option.click()
        checked.wait_for(state="attached")
    page.get_by_role("button", name="Save rating").click()
    page.wait_for_function("before => !document.body.innerText.includes(before)", arg=before)


def test_a_two_arm_study_is_read_in_the_browser_and_its_results_shown(served, shared_chromium):
    url, store, project = served
    study_id = project["study"]
    truth = dict(zip(project["images"], ["normal", "pneumonia"] * 4, strict=True))
    page = new_page(shared_chromium)
    log_in(page, url, READER.username, "reader1-password")
    page.get_by_role("link", name="Label").click()
    page.get_by_label("Worklist").wait_for()
    choose_study(page, "unaided")

    # Unaided (reader1 reads it first): the image alone, no model figure, no map pane.
    for _ in range(THROUGH_THE_UI):
        case = next_case(store, READER, study_id)
        assert isinstance(case, StudyCase) and case.arm == "unaided"
        page.get_by_text("unaided arm · case").wait_for()
        wait_shown(page, case.image_id, "unaided")
        assert page.get_by_text("Model: probability of").count() == 0
        assert page.locator(".mrv-map-pane").count() == 0
        rate_in_the_browser(page, "unaided", truth[case.image_id])
    # The rest of the unaided arm through the services, then the aided arm opens (no washout).
    while (case := next_case(store, READER, study_id)).arm == "unaided":
        rate_case(store, READER, study_id, case.member_id, "unaided", label=truth[case.image_id], confidence=60)
    page.reload()
    page.get_by_label("Worklist").wait_for()
    choose_study(page, "aided")
    for _ in range(THROUGH_THE_UI):
        case = next_case(store, READER, study_id)
        assert isinstance(case, StudyCase) and case.arm == "aided"
        page.get_by_text("aided arm · case").first.wait_for()
        wait_shown(page, case.image_id, "aided")
        # The model's probability beside the image and its map in the second pane.
        page.get_by_text("Model: probability of pneumonia").wait_for()
        page.locator(".mrv-root[data-split='true'] .mrv-map-pane").wait_for()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.mrv-map-pane')].some(p => p.innerText.includes('model map: pneumonia'))"
        )
        rate_in_the_browser(page, "aided", truth[case.image_id])

    # Everything else through the services: reader1's last aided cases and the other two readers,
    # each missing a different case (fewer aided), so the analysis has variance to work with.
    later = dt.datetime.now(dt.UTC)
    for number, reader in enumerate(READERS):
        read_all(store, study_id, reader, misses_some(truth, number), later)
    results = study_results(store, ADMIN, study_id)
    assert {(row["reader"], row["arm"]) for row in results.readers} == {
        (reader, arm) for reader in READERS for arm in ("unaided", "aided")
    }
    assert all(row["cases"] == 8 for row in results.readers) and results.analysis is not None
    f_test = next(line for line in results.analysis_text.splitlines() if line.startswith("Random readers"))

    admin = new_page(shared_chromium)
    log_in(admin, url, ADMIN.username, "chief-password")
    admin.get_by_role("link", name="Studies").click()
    # The model's ROC curve with the readers' operating points (a PNG, loaded), and the OR analysis
    # with each reader's AUC per arm, the F test and the variance components.
    admin.get_by_text("The model's ROC curve, each reader's operating point per arm", exact=False).wait_for()
    admin.get_by_text("Readers per arm").wait_for()
    admin.get_by_role("heading", name="Aided versus unaided: Obuchowski-Rockette, Hillis ddf").wait_for()
    analysis = admin.get_by_test_id("stCode").first
    analysis.wait_for()
    shown = analysis.inner_text()
    assert "2 modalities, 3 readers, 8 cases" in shown and f_test in shown
    assert all(f"reader {reader}" in shown for reader in READERS)
    admin.get_by_text("Variance components").first.wait_for()
    admin.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stImage] img')].some(image => image.naturalWidth > 300)"
    )


def misses_some(truth: dict[int, str], number: int):  # type: ignore[no-untyped-def]
    """Reader ``number``'s ratings: right but for a case of their own (fewer aided), confidences spread."""

    def rate(case: StudyCase) -> tuple[str, int]:
        label = truth[case.image_id]
        if (case.image_id + number) % (8 if case.arm == "aided" else 3) == 0:
            label = "normal" if label == "pneumonia" else "pneumonia"
        return label, (case.image_id * 7 + number * 13) % 100

    return rate
