"""A reader's worklist on SQLite and PostgreSQL: its filters (status, my label, modality) decide
the rows, the counts, the position and the next image, all computed by the database.

One store holds seven films in upload order, chest films (CR) and others (DX) interleaved:
CR1 DX1 CR2 DX2 CR3 DX3 CR4.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pydicom
import pytest
from sqlalchemy import event, select

from medreview.errors import MedreviewError
from medreview.ingest import InputFile, ingest_files
from medreview.reading.catalog import get_image
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.review import assign, decide, review_queue
from medreview.reading.schema import add_label_class
from medreview.reading.worklists import (
    WORKLIST_FILTERS,
    WORKLIST_SORTS,
    CaseWorklist,
    WorklistFilter,
    case_list_position,
    case_worklist,
    case_worklist_counts,
    case_worklist_page,
    following_case_ids,
    following_image_ids,
    list_position,
    next_case_id,
    next_image_id,
    worklist,
    worklist_counts,
    worklist_page,
)
from medreview.store import Store
from medreview.store.models import Annotation, Image, Study
from medreview.team.accounts import create_first_admin, create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.helpers import dicom_bytes

ADMIN = Actor("boss", "admin")
REVIEWER = Actor("rev", "reviewer")
ANN = Actor("ann", "annotator")
BOB = Actor("bob", "annotator")
CHEST = WorklistFilter(modality="CR")  # what is left to do, chest films only


@dataclass(frozen=True)
class Films:
    store: Store
    chest: list[int]  # CR1..CR4
    other: list[int]  # DX1..DX3


@pytest.fixture
def films(any_store: Store, fast_hashing: None) -> Films:
    create_first_admin(any_store, ADMIN.username, "boss-password")
    for actor in (REVIEWER, ANN, BOB):
        create_user(any_store, ADMIN, actor.username, f"{actor.username}-password", actor.role)
    modalities = ["CR", "DX", "CR", "DX", "CR", "DX", "CR"]
    files = [
        InputFile(
            f"film{n}.dcm",
            dicom_bytes(f"P{n}", modality=modality, pixels=np.full((16, 16), n, dtype=np.uint16)),
        )
        for n, modality in enumerate(modalities)
    ]
    ids = [result.image_id for result in ingest_files(any_store, LOCAL_ACTOR, files)]
    return Films(
        any_store,
        [i for i, m in zip(ids, modalities, strict=True) if m == "CR"],
        [i for i, m in zip(ids, modalities, strict=True) if m == "DX"],
    )


def test_the_modality_filter_drives_next_never_offering_another_modality(films: Films):
    store, chest = films.store, films.chest
    assert next_image_id(store, ANN, CHEST) == chest[0]
    # A reader working through chest films, saving and taking "next" each time, reads chest
    # films only and is told she is done when they are, though DX films are still unread.
    read = []
    image_id = next_image_id(store, ANN, CHEST)
    while image_id is not None:
        read.append(image_id)
        save_read(store, ANN, image_id, "normal")
        image_id = next_image_id(store, ANN, CHEST, after_image_id=image_id)
    assert read == chest
    assert next_image_id(store, ANN) == films.other[0]  # the unfiltered list still has the DX films


def test_next_wraps_round_within_the_filter(films: Films):
    store, chest = films.store, films.chest
    save_read(store, ANN, chest[0], "normal")
    # After the last chest film comes the first chest film still to do, not a DX film.
    assert next_image_id(store, ANN, CHEST, after_image_id=chest[3]) == chest[1]
    assert following_image_ids(store, ANN, CHEST, chest[3], 5) == []  # no wrap here
    assert following_image_ids(store, ANN, CHEST, None, 2) == chest[1:3]
    assert following_image_ids(store, ANN, CHEST, films.other[0], 10) == chest[1:]


def test_the_last_row_of_a_filtered_list_labelled_leaves_the_list_and_next_follows_the_filter(films: Films):
    store, chest = films.store, films.chest
    page, total = worklist_page(store, ANN, CHEST)
    assert (list(page["image_id"]), total) == (chest, 4)
    last = int(page["image_id"].iloc[-1])
    assert list_position(store, ANN, CHEST, last) == 3
    save_read(store, ANN, last, "pneumonia")  # "1" pressed on the last row
    page, total = worklist_page(store, ANN, CHEST)
    assert (list(page["image_id"]), total) == (chest[:3], 3)
    assert list_position(store, ANN, CHEST, last) is None  # gone from the list, not an error
    assert next_image_id(store, ANN, CHEST, after_image_id=last) == chest[0]


def test_counts_per_status_under_the_label_and_modality_filters(films: Films):
    store, chest = films.store, films.chest
    save_read(store, ANN, chest[0], "normal")
    save_read(store, ANN, chest[1], "pneumonia")
    save_read(store, ANN, films.other[0], "normal")
    save_read(store, BOB, chest[2], "normal")  # Bob's read is not Ann's
    queue = review_queue(store, REVIEWER)
    [chest_read] = queue.loc[(queue["image_id"] == chest[1]) & (queue["reader"] == "ann"), "annotation_id"]
    decide(store, REVIEWER, int(chest_read), "return", "look at the apex")

    assert worklist_counts(store, ANN, CHEST) == {"todo": 3, "unread": 2, "read": 2, "returned": 1, "all": 4}
    assert worklist_counts(store, ANN) == {"todo": 5, "unread": 4, "read": 3, "returned": 1, "all": 7}
    assert worklist_counts(store, ANN, WorklistFilter(label="normal")) == {
        "todo": 0,
        "unread": 0,
        "read": 2,
        "returned": 0,
        "all": 2,
    }
    # Every count is the length of the list that status shows.
    for status in WORKLIST_FILTERS:
        shown = WorklistFilter(status, modality="CR")
        assert worklist_page(store, ANN, shown)[1] == worklist_counts(store, ANN, CHEST)[status], status


def test_pages_cover_the_list_in_order_with_the_same_total(films: Films):
    store = films.store
    everything = WorklistFilter("all")
    pages = [worklist_page(store, BOB, everything, offset, limit=3) for offset in (0, 3, 6, 9)]
    assert [total for _, total in pages] == [7, 7, 7, 7]
    assert [len(page) for page, _ in pages] == [3, 3, 1, 0]
    listed = [image_id for page, _ in pages for image_id in page["image_id"]]
    assert listed == sorted(films.chest + films.other)
    assert list(pages[0][0].columns) == [
        "image_id",
        "file",
        "modality",
        "patient",
        "study_date",
        "study",
        "series",
        "rows",
        "columns",
        "frames",
        "label",
        "status",
    ]
    assert list_position(store, BOB, everything, films.other[1]) == 3  # "image 4 of 7"
    with pytest.raises(ValueError, match="limit"):
        worklist_page(store, BOB, everything, limit=0)


def test_my_label_filter_speaks_of_my_reads_only(films: Films):
    store, chest = films.store, films.chest
    save_read(store, BOB, chest[0], "pneumonia")
    save_read(store, ANN, chest[1], "pneumonia")
    mine = WorklistFilter("all", label="pneumonia")
    page, total = worklist_page(store, ANN, mine)
    assert (list(page["image_id"]), total) == ([chest[1]], 1)
    # Bob's label never shows on Ann's list (blinding).
    assert pd.isna(worklist(store, ANN).set_index("image_id").loc[chest[0], "label"])


def test_assigned_work_limits_every_view_of_the_list(films: Films):
    store, chest = films.store, films.chest
    assign(store, ADMIN, [chest[1], films.other[2]], ["ann"], readers_per_image=1)
    assert worklist_counts(store, ANN)["todo"] == 2
    assert list(worklist_page(store, ANN, WorklistFilter())[0]["image_id"]) == [chest[1], films.other[2]]
    assert next_image_id(store, ANN, CHEST) == chest[1]
    assert next_image_id(store, ANN, CHEST, after_image_id=chest[1]) == chest[1]  # the only one: wraps to it
    assert list_position(store, ANN, WorklistFilter(), chest[0]) is None  # not Ann's work
    assert next_image_id(store, BOB) == chest[0]  # Bob has no assignments: every image


def test_an_unknown_status_filter_is_refused_in_plain_words():
    with pytest.raises(MedreviewError, match="unknown worklist filter 'mine'"):
        WorklistFilter("mine")


def test_the_next_image_query_finds_reads_by_index_on_sqlite(store: Store, fast_hashing: None):
    # The next image of a 20,000-image worklist must not read every annotation per image: each
    # image's own read is looked up through the (image_id, reader_id) unique index.
    create_first_admin(store, ADMIN.username, "boss-password")
    create_user(store, ADMIN, ANN.username, "ann-password", ANN.role)
    statements: list[tuple[str, object]] = []

    def remember(_connection, _cursor, statement, parameters, _context, _executemany):  # type: ignore[no-untyped-def]
        if "ORDER BY images.id" in statement:
            statements.append((statement, parameters))

    event.listen(store.db.engine, "before_cursor_execute", remember)
    try:
        following_image_ids(store, ANN, WorklistFilter(modality="CR"), 5, 10)
        following_image_ids(store, ANN, WorklistFilter("read", label="normal"), 5, 10)
    finally:
        event.remove(store.db.engine, "before_cursor_execute", remember)
    assert len(statements) == 2
    with store.db.engine.connect() as connection:
        for statement, parameters in statements:
            plan = [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            annotations = [step for step in plan if "annotations" in step]
            assert annotations, plan
            assert all(step.startswith("SEARCH annotations USING") for step in annotations), plan
            assert not any(step.startswith("SCAN annotations") for step in plan), plan


# --- search and sort (issue 16 item 13) ----------------------------------------------------------


@dataclass(frozen=True)
class ReadingDay:
    store: Store
    ids: dict[str, int]  # name -> image id, in upload order: z1 a1 m1 b1 z2 m2


def _dated_dicom(patient_id: str, modality: str, study_uid: str, study_date: str | None, value: int) -> bytes:
    dataset = pydicom.dcmread(
        io.BytesIO(dicom_bytes(patient_id, study_uid=study_uid, modality=modality, pixels=np.full((16, 16), value)))
    )
    if study_date:
        dataset.StudyDate = study_date
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture
def reading_day(any_store: Store, fast_hashing: None) -> ReadingDay:
    """Six films of four patients, de-identification off so the dates and patient ids are the ones
    given (the order they sort in is then known): zed (CR, 2024-01-05, two films of one study),
    abe (DX, 2023-12-01), moe (CT, 2024-03-10, two films of one study), bo (CR, undated), uploaded
    interleaved."""
    create_first_admin(any_store, ADMIN.username, "boss-password")
    for actor in (REVIEWER, ANN):
        create_user(any_store, ADMIN, actor.username, f"{actor.username}-password", actor.role)
    set_setting(any_store, ADMIN, "deidentify", False)
    films = [  # name, patient, modality, study, date
        ("z1", "PAT-zed", "CR", "1.2.3.1", "20240105"),
        ("a1", "PAT-abe", "DX", "1.2.3.2", "20231201"),
        ("m1", "PAT-moe", "CT", "1.2.3.3", "20240310"),
        ("b1", "PAT-bo", "CR", "1.2.3.4", None),
        ("z2", "PAT-zed", "CR", "1.2.3.1", "20240105"),
        ("m2", "PAT-moe", "CT", "1.2.3.3", "20240310"),
    ]
    files = [
        InputFile(f"{name}.dcm", _dated_dicom(patient, modality, study, date, value))
        for value, (name, patient, modality, study, date) in enumerate(films)
    ]
    results = ingest_files(any_store, LOCAL_ACTOR, files)
    return ReadingDay(any_store, {name: result.image_id for (name, *_), result in zip(films, results, strict=True)})


def _names(day: ReadingDay, image_ids: list[int]) -> list[str]:
    by_id = {image_id: name for name, image_id in day.ids.items()}
    return [by_id[image_id] for image_id in image_ids]


def test_each_order_sorts_the_table_as_a_reader_expects(reading_day: ReadingDay):
    day = reading_day
    save_read(day.store, ANN, day.ids["m1"], "normal")
    save_read(day.store, ANN, day.ids["a1"], "pneumonia")
    queue = review_queue(day.store, REVIEWER)
    [m1_read] = queue.loc[queue["image_id"] == day.ids["m1"], "annotation_id"]
    decide(day.store, REVIEWER, int(m1_read), "return", "look again")

    def order(sort: str) -> list[str]:
        page, _ = worklist_page(day.store, ANN, WorklistFilter("all", sort=sort))
        return _names(day, list(page["image_id"]))

    assert order("list") == ["z1", "a1", "m1", "b1", "z2", "m2"]
    assert order("patient") == ["a1", "b1", "m1", "m2", "z1", "z2"]  # PAT-abe, PAT-bo, PAT-moe, PAT-zed
    assert order("study_date") == ["m1", "m2", "z1", "z2", "a1", "b1"]  # newest first, undated last
    assert order("modality") == ["z1", "b1", "z2", "m1", "m2", "a1"]  # CR, CT, DX
    # Sent back to me first, then not read, then my submitted read.
    assert get_image(day.store, ANN, day.ids["m1"]).status == "returned"
    assert order("status") == ["m1", "z1", "b1", "z2", "m2", "a1"]
    page, _ = worklist_page(day.store, ANN, WorklistFilter("all", sort="study_date"))
    first = page.iloc[0]
    assert (first["patient"], first["study_date"], first["modality"]) == ("PAT-moe", "2024-03-10", "CT")
    assert page.iloc[-1]["study_date"] == ""  # undated


def test_next_position_and_pages_follow_the_chosen_order(reading_day: ReadingDay):
    # The viewer moves through the list in the order the table shows: next, the images prefetched
    # after one, its position ("image 3 of 6") and the pages all agree, under every order and search.
    # (One store for the fifteen combinations: a store per combination cost 0.35 s each.)
    day = reading_day
    save_read(day.store, ANN, day.ids["z2"], "normal")
    for sort in WORKLIST_SORTS:
        for search in ("", "pat-", "CR"):
            shown = WorklistFilter("all", search=search, sort=sort)
            case = f"sort {sort!r}, search {search!r}"
            table, total = worklist_page(day.store, ANN, shown)
            rows = [int(image_id) for image_id in table["image_id"]]
            assert len(rows) == total > 0, case
            paged = [worklist_page(day.store, ANN, shown, offset, limit=2)[0] for offset in range(0, total, 2)]
            assert [int(image_id) for page in paged for image_id in page["image_id"]] == rows, case
            assert next_image_id(day.store, ANN, shown) == rows[0], case
            for index, image_id in enumerate(rows):
                assert list_position(day.store, ANN, shown, image_id) == index, case
                assert following_image_ids(day.store, ANN, shown, image_id, 10) == rows[index + 1 :], case
                following = rows[(index + 1) % len(rows)]
                assert next_image_id(day.store, ANN, shown, after_image_id=image_id) == following, case
                assert next_image_id(day.store, ANN, shown, after_image_id=image_id, include_anchor=True) == image_id
            assert following_image_ids(day.store, ANN, shown, None, 3) == rows[:3], case


def test_a_film_just_read_leaves_to_do_and_the_list_goes_on_after_its_place(reading_day: ReadingDay):
    day = reading_day
    by_patient = WorklistFilter("todo", sort="patient")  # a1 b1 m1 m2 z1 z2
    save_read(day.store, ANN, day.ids["m1"], "normal")
    assert list_position(day.store, ANN, by_patient, day.ids["m1"]) is None
    assert _names(day, following_image_ids(day.store, ANN, by_patient, day.ids["m1"], 3)) == ["m2", "z1", "z2"]
    assert _names(day, [next_image_id(day.store, ANN, by_patient, day.ids["m1"], include_anchor=True)]) == ["m2"]
    by_date = WorklistFilter("todo", sort="study_date")  # m1 m2 z1 z2 a1 b1
    save_read(day.store, ANN, day.ids["z1"], "normal")
    assert _names(day, following_image_ids(day.store, ANN, by_date, day.ids["z1"], 5)) == ["z2", "a1", "b1"]


def test_search_finds_patient_study_file_and_modality(reading_day: ReadingDay):
    day = reading_day

    def found(search: str, status: str = "all") -> list[str]:
        return _names(day, list(worklist(day.store, ANN, status, search=search)["image_id"]))

    assert found("moe") == ["m1", "m2"]  # patient pseudonym, any case
    assert found("PAT-ZED") == ["z1", "z2"]
    assert found("b1.dcm") == ["b1"]  # file name
    assert found("dx") == ["a1"]  # modality
    assert found("2024-03") == ["m1", "m2"] and found("20231201") == ["a1"]  # study date, either spelling
    assert found("  cr   zed ") == ["z1", "z2"]  # every word must be found
    assert found("%") == [] and found("pat_") == []  # wildcards are taken literally
    save_read(day.store, ANN, day.ids["z1"], "normal")
    assert found("zed", "todo") == ["z2"]
    counts = worklist_counts(day.store, ANN, WorklistFilter(search="zed"))
    assert counts == {"todo": 1, "unread": 1, "read": 1, "returned": 0, "all": 2}


def test_an_unknown_order_or_an_overlong_search_is_refused_in_plain_words():
    with pytest.raises(MedreviewError, match="unknown worklist order 'age'"):
        WorklistFilter(sort="age")
    with pytest.raises(MedreviewError, match="at most 100 characters"):
        WorklistFilter(search="x" * 101)
    assert WorklistFilter(search="  Zed \t CR ").search == "Zed CR"


def test_the_table_shows_pseudonyms_never_the_patient_id_when_de_identified(store: Store, fast_hashing: None):
    create_first_admin(store, ADMIN.username, "boss-password")
    data = _dated_dicom("REAL-ID-4711", "CR", "1.2.3.9", "20240105", 3)
    ingest_files(store, LOCAL_ACTOR, [InputFile("film.dcm", data)])
    [row] = worklist(store, ADMIN).to_dict("records")
    assert "4711" not in " ".join(str(value) for value in row.values())
    assert row["study_date"] == ""  # removed: only a shifted date is kept, by request
    assert worklist(store, ADMIN, search="4711").empty and len(worklist(store, ADMIN, search=row["patient"])) == 1


# --- case worklists (issue 17) ----------------------------------------------------------------------
#
# Three studies of two patients: patient A has a CT study of two series of three slices on
# 2024-01-01 and a later CT study of one series of two slices (2024-06-01, so the first is its
# prior); patient B has an MR study of one series of two slices on 2024-03-01.


@dataclass(frozen=True)
class Studies:
    store: Store
    first_ct: int  # patient A, 2024-01-01, 2 series x 3 slices
    later_ct: int  # patient A, 2024-06-01, 1 series x 2 slices
    mr: int  # patient B, 2024-03-01
    images: dict[int, list[int]]  # study id -> image ids in upload order


STUDY_CASES = CaseWorklist("study")


@pytest.fixture
def studies(any_store: Store, fast_hashing: None) -> Studies:
    create_first_admin(any_store, ADMIN.username, "boss-password")
    for actor in (REVIEWER, ANN, BOB):
        create_user(any_store, ADMIN, actor.username, f"{actor.username}-password", actor.role)
    layout = [  # (patient, study uid, modality, slices per series, date)
        ("PAT-A", "1.2.826.0.1.9001", "CT", [3, 3], "20240101"),
        ("PAT-A", "1.2.826.0.1.9002", "CT", [2], "20240601"),
        ("PAT-B", "1.2.826.0.1.9003", "MR", [2], "20240301"),
    ]
    files = []
    for patient, study_uid, modality, slices, _ in layout:
        for series_number, count in enumerate(slices):
            for slice_number in range(count):
                pixels = np.full((8, 8), len(files), dtype=np.uint16)
                data = dicom_bytes(
                    patient,
                    study_uid=study_uid,
                    series_uid=f"{study_uid}.{series_number}",
                    modality=modality,
                    pixels=pixels,
                    instance_number=slice_number + 1,
                )
                files.append(InputFile(f"{patient}-{series_number}-{slice_number}.dcm", data))
    ids = [result.image_id for result in ingest_files(any_store, LOCAL_ACTOR, files)]
    images: dict[int, list[int]] = {}
    with any_store.db.write() as session:
        for image_id in ids:
            image = session.get(Image, image_id)
            images.setdefault(image.series.study_id, []).append(image_id)
        study_ids = sorted(images)
        for study_id, (*_, study_date) in zip(study_ids, layout, strict=True):
            session.get(Study, study_id).study_date = study_date
    add_label_class(any_store, ADMIN, "pe present", scope="study")
    add_label_class(any_store, ADMIN, "no pe", scope="study")
    return Studies(any_store, *study_ids, images=images)


def test_the_case_worklist_lists_each_study_once_with_its_counts_and_prior(studies: Studies):
    rows, total = case_worklist_page(studies.store, ANN, STUDY_CASES)
    assert total == 3 and rows["case_id"].tolist() == [studies.first_ct, studies.later_ct, studies.mr]
    first, later, mr = (rows.iloc[index] for index in range(3))
    assert (first["series"], first["images"], first["modality"]) == ("2 series", 6, "CT")
    assert (later["series"], later["images"], later["prior_studies"]) == ("1 series", 2, 1)
    assert first["prior_studies"] == 0 and mr["modality"] == "MR"
    # The pseudonymous patient, never the PatientID: one patient's two studies share one.
    assert first["patient"] == later["patient"] != mr["patient"] and "PAT" not in "".join(rows["patient"])
    assert later["study_date"] == "2024-06-01" and later["status"] is None
    assert case_worklist_counts(studies.store, ANN, STUDY_CASES) == {
        "todo": 3, "unread": 3, "read": 0, "returned": 0, "all": 3
    }  # fmt: skip


def test_a_study_read_from_any_slice_takes_the_study_off_the_to_do_list_once(studies: Studies):
    store = studies.store
    # Saved from the fifth slice (second series): the study's one read.
    save_read(store, ANN, studies.images[studies.first_ct][4], "pe present")
    counts = case_worklist_counts(store, ANN, STUDY_CASES)
    assert (counts["todo"], counts["read"], counts["all"]) == (2, 1, 3)
    read = case_worklist(store, ANN, CaseWorklist("study", WorklistFilter("read")))
    assert read[["case_id", "label", "status"]].values.tolist() == [[studies.first_ct, "pe present", "submitted"]]
    assert case_worklist(store, ANN, CaseWorklist("study", WorklistFilter("all", label="no pe"))).empty
    # Another reader's list is their own (blinding): the study is still to do for Bob.
    assert case_worklist_counts(store, BOB, STUDY_CASES)["todo"] == 3
    # "Next" after the study just read is the following study, then round to the start.
    assert next_case_id(store, ANN, STUDY_CASES, after_case_id=studies.first_ct) == studies.later_ct
    assert next_case_id(store, ANN, STUDY_CASES, after_case_id=studies.mr) == studies.later_ct
    assert case_list_position(store, ANN, STUDY_CASES, studies.mr) == 1
    assert case_list_position(store, ANN, STUDY_CASES, studies.first_ct) is None
    # The study read sits at its key image but is not a read of that image on an image worklist.
    assert worklist_counts(store, ANN)["read"] == 0


def test_a_returned_study_read_is_back_on_the_to_do_list(studies: Studies):
    store = studies.store
    save_read(store, ANN, studies.images[studies.mr][1], "no pe")
    annotation_id = int(review_queue(store, REVIEWER)["annotation_id"].iloc[0])
    decide(store, REVIEWER, annotation_id, "return", "look at the second series")
    returned = CaseWorklist("study", WorklistFilter("returned"))
    assert case_worklist(store, ANN, returned)["case_id"].tolist() == [studies.mr]
    assert case_worklist_counts(store, ANN, STUDY_CASES)["todo"] == 3


def test_the_case_worklist_orders_pages_and_next_by_the_chosen_sort(studies: Studies):
    store = studies.store
    save_read(store, ANN, studies.images[studies.mr][0], "no pe")
    save_read(store, ANN, studies.images[studies.first_ct][0], "no pe")
    with store.db.read() as session:
        first_ct_read = session.scalar(select(Annotation.id).where(Annotation.case_id == studies.first_ct))
    decide(store, REVIEWER, first_ct_read, "approve")
    listed = case_worklist(store, ANN, CaseWorklist("study", WorklistFilter("all")))
    by_pseudonym = [int(case_id) for _, case_id in sorted(zip(listed["patient"], listed["case_id"], strict=True))]
    expected_orders = {
        "patient": by_pseudonym,
        "study_date": [studies.later_ct, studies.mr, studies.first_ct],  # newest first
        "modality": [studies.first_ct, studies.later_ct, studies.mr],
        "status": [studies.later_ct, studies.mr, studies.first_ct],  # unread, submitted, approved
    }
    for sort, ordered in expected_orders.items():
        cases = CaseWorklist("study", WorklistFilter("all", sort=sort))
        assert case_worklist(store, ANN, cases)["case_id"].tolist() == ordered, sort
        pages = [case_worklist_page(store, ANN, cases, offset=at, limit=1)[0]["case_id"].iloc[0] for at in range(3)]
        assert pages == ordered, sort
        assert following_case_ids(store, ANN, cases, ordered[0], 5) == ordered[1:], sort
        assert [case_list_position(store, ANN, cases, case_id) for case_id in ordered] == [0, 1, 2], sort


def test_the_case_worklist_filters_by_modality_search_and_assignment(studies: Studies):
    store = studies.store
    by_modality = CaseWorklist("study", WorklistFilter(modality="MR"))
    assert case_worklist(store, ANN, by_modality)["case_id"].tolist() == [studies.mr]
    assert case_worklist_counts(store, ANN, by_modality)["todo"] == 1
    searched = CaseWorklist("study", WorklistFilter(search="anon 2024-06"))
    assert case_worklist(store, ANN, searched)["case_id"].tolist() == [studies.later_ct]
    # Studies assigned to Bob: his list holds those only; Ann's is untouched.
    assign(store, ADMIN, [studies.images[studies.mr][1]], [BOB.username], 1, scope="study")
    assert case_worklist(store, BOB, STUDY_CASES)["case_id"].tolist() == [studies.mr]
    assert case_worklist_counts(store, ANN, STUDY_CASES)["todo"] == 3


def test_a_series_worklist_lists_series_and_refuses_image_scope(studies: Studies):
    rows = case_worklist(studies.store, ANN, CaseWorklist("series"))
    assert len(rows) == 4 and rows["images"].tolist() == [3, 3, 2, 2]
    assert rows["modality"].tolist() == ["CT", "CT", "CT", "MR"]
    with pytest.raises(MedreviewError, match="studies or series"):
        CaseWorklist("image")
