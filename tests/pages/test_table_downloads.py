"""Tables of user and file text are safe to download: Streamlit's table toolbar ("Download as CSV")
writes cells as they are, and a spreadsheet runs ``=HYPERLINK(...)`` as a formula. A comment, a
file name or a class name that starts a formula reaches every table's data neutralised (``'``
first), as the app's own CSV exports write it."""

from __future__ import annotations

import ast

import numpy as np
import pandas as pd
from sqlalchemy import select

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.review import decide
from medreview.reading.schema import add_label_class
from medreview.store.models import Annotation
from medreview.team.accounts import create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.conftest import ADMIN, run_page_as
from tests.helpers import ROOT, png_bytes
from ui.text import spreadsheet_safe

FORMULA = '=HYPERLINK("http://evil.example","click")'
HOSTILE_FILE = f"{FORMULA}.png"
# A class name is kept in lower case.
HOSTILE_CLASS = "@sum(1+1)"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
READER = Actor("reader1", "annotator")
OTHER_READER = Actor("reader2", "annotator")


def shown_text(app) -> list[str]:  # type: ignore[no-untyped-def]
    """Every text cell, column name and index label of every table on the page."""
    texts: list[str] = []

    def add(value: object) -> None:
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list | tuple | np.ndarray):
            for item in value:
                add(item)

    for element in app.dataframe:
        frame: pd.DataFrame = element.value
        for column in frame.columns:
            add(column)
            for value in frame[column]:
                add(value)
        for label in frame.index:
            add(label)
    return texts


def assert_neutralised(app, *hostile: str) -> None:  # type: ignore[no-untyped-def]
    texts = shown_text(app)
    for text in hostile:
        assert "'" + text in texts, (text, texts)  # shown, and neutralised
    assert [text for text in texts if text.startswith(FORMULA_STARTS)] == []


def hostile_store(store) -> int:  # type: ignore[no-untyped-def]
    """An image uploaded under a formula name, read by two readers with formula comments, one
    read sent back with a formula comment, and a class named like a formula."""
    set_setting(store, LOCAL_ACTOR, "deidentify", False)  # names shown as uploaded
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile(HOSTILE_FILE, png_bytes(91))])
    add_label_class(store, LOCAL_ACTOR, HOSTILE_CLASS)
    for reader in (READER, OTHER_READER):
        create_user(store, ADMIN, reader.username, f"{reader.username}-password-1", "annotator")
    save_read(store, READER, result.image_id, HOSTILE_CLASS, comment=FORMULA)
    save_read(store, OTHER_READER, result.image_id, "normal", comment=FORMULA)
    return result.image_id


def test_the_review_queue_and_the_other_reads_are_neutralised(page_store):
    hostile_store(page_store)
    app = run_page_as("review", ADMIN)
    assert len(app.dataframe) == 2  # the queue and the image's reads
    assert_neutralised(app, FORMULA, HOSTILE_CLASS)


def test_the_disagreements_and_agreement_tables_are_neutralised(page_store):
    hostile_store(page_store)
    app = run_page_as("review", ADMIN)
    app.segmented_control(key="review_section").set_value("disagreements").run()
    assert not app.exception
    assert_neutralised(app, FORMULA)
    app.segmented_control(key="review_section").set_value("agreement").run()
    assert not app.exception
    assert_neutralised(app, HOSTILE_CLASS)  # the per-class agreement tables


def test_the_label_worklist_and_other_readers_are_neutralised(page_store):
    image_id = hostile_store(page_store)
    with page_store.db.read() as session:
        annotation_id = session.scalar(select(Annotation.id).where(Annotation.reader_id.is_not(None)))
    decide(page_store, ADMIN, annotation_id, "return", FORMULA)
    app = run_page_as("label", READER)
    app.session_state["label_status"] = "all"
    app.run()
    assert not app.exception
    # The worklist's file name and label, and (after the reader's own read) the other reader's
    # read with its comment.
    assert_neutralised(app, HOSTILE_FILE, HOSTILE_CLASS, FORMULA)
    assert image_id in set(app.dataframe[0].value["image_id"])


def test_the_upload_results_are_neutralised(page_store):
    set_setting(page_store, LOCAL_ACTOR, "deidentify", False)
    app = run_page_as("upload", ADMIN)
    app.file_uploader(key="upload_files").set_value(
        [(HOSTILE_FILE, png_bytes(5), "image/png"), ("=bad.png", b"<html>not an image</html>", "image/png")]
    ).run()
    app.button(key="upload_store").click().run()
    assert not app.exception
    assert_neutralised(app, HOSTILE_FILE, "=bad.png")


def test_the_audit_trail_is_neutralised(page_store):
    add_label_class(page_store, ADMIN, HOSTILE_CLASS)  # audited with the class name as its object
    app = run_page_as("team", ADMIN)
    assert_neutralised(app, HOSTILE_CLASS)


def test_table_neutralises_cells_lists_and_labels_and_keeps_the_rest():
    frame = pd.DataFrame(
        {"comment": [FORMULA, "fine", None], "labels": [["+x", "y"], [], None], "count": [1, 2, 3]},
        index=["-a", "b", "c"],
    )
    shown = spreadsheet_safe(frame)
    assert list(shown["comment"][:2]) == ["'" + FORMULA, "fine"] and pd.isna(shown["comment"].iloc[2])
    assert list(shown["labels"][:2]) == [["'+x", "y"], []] and shown["labels"].iloc[2] is None
    assert list(shown["count"]) == [1, 2, 3] and list(shown.index) == ["'-a", "b", "c"]
    assert frame["comment"].iloc[0] == FORMULA  # the caller's frame is left as it was
    assert list(spreadsheet_safe(pd.DataFrame({"=total": [1]})).columns) == ["'=total"]
    assert spreadsheet_safe(None) is None


def test_numbers_stay_readable_and_formulas_built_from_them_do_not():
    # The Browse page's DICOM header shows values as text: a negative rescale intercept or a
    # position (backslash-separated values) is a number to a spreadsheet, never a formula.
    numbers = ["-1024", "-1024.0", "+5", "-.5", "-1.5e-3", "-125.0\\-125.0\\0.0"]
    formulas = ['-1+HYPERLINK("http://evil.example")', "-1024\\=cmd", "+A1", "-", "-1e5+cmd|' /C calc'!A0"]
    shown = spreadsheet_safe(pd.DataFrame({"value": numbers + formulas}))
    assert list(shown["value"]) == numbers + ["'" + text for text in formulas]


def test_every_table_of_the_pages_shows_its_data_through_spreadsheet_safe():
    # A table added later without it fails here: its CSV download would carry formulas.
    unwrapped = []
    for path in sorted([*ROOT.glob("pages/*.py"), *ROOT.glob("ui/*.py"), ROOT / "app.py"]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in ("dataframe", "data_editor"):
                continue
            data = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "data"), None)
            through_it = (
                isinstance(data, ast.Call) and isinstance(data.func, ast.Name) and data.func.id == "spreadsheet_safe"
            )
            if not through_it:
                unwrapped.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert unwrapped == []
