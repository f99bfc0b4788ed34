"""User and file text is shown as text on every page: a file name, a class name or a comment that
looks like markdown (an image that would load from an outside address, a link) is never rendered
as markdown."""

from __future__ import annotations

import re

import numpy as np
from sqlalchemy import select

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.review import decide
from medreview.reading.schema import add_label_class
from medreview.store.models import Annotation, Job, ModelVersion, Prediction
from medreview.team.accounts import create_user
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.conftest import ADMIN, run_page_as
from tests.helpers import png_bytes
from tests.pages.viewer import viewer_data
from ui.text import plain

HOSTILE_NAME = "![x](http://evil.example/track.png) [click](http://evil.example) :red[alarm].png"
HOSTILE_COMMENT = "see ![](http://evil.example/pixel.gif) and <img src=http://evil.example/x>"
HOSTILE_CLASS = "[nodule](http://evil.example)"
# Pages show a file's own name, the part after the last "/" of an upload or archive member name.
SHOWN_NAME = HOSTILE_NAME.rsplit("/", 1)[-1]
# An unescaped "![", "](" or ":red[" in a markdown string would render as an image, a link or colour.
MARKDOWN_SYNTAX = re.compile(r"(?<!\\)!\[|(?<!\\)\]\(|(?<!\\):red\[alarm")
MARKDOWN_ELEMENTS = ("markdown", "caption", "subheader", "header", "title", "error", "warning", "info", "success")


def rendered_markdown(app) -> list[str]:
    texts = [element.value for kind in MARKDOWN_ELEMENTS for element in getattr(app, kind)]
    texts += [button.label for button in app.button]
    return [str(text) for text in texts]


def assert_shown_as_text(app, *fragments: str) -> None:
    texts = rendered_markdown(app)
    assert [text for text in texts if MARKDOWN_SYNTAX.search(text)] == []
    for fragment in fragments:  # the text is there, escaped: the page did show it
        assert any(plain(fragment) in text for text in texts), fragment


def hostile_store(store) -> int:
    # Without de-identification the names are shown as uploaded (with it, derived names are shown).
    set_setting(store, LOCAL_ACTOR, "deidentify", False)
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile(HOSTILE_NAME, png_bytes(77))])
    add_label_class(store, LOCAL_ACTOR, HOSTILE_CLASS)
    create_user(store, ADMIN, "reader1", "reader-password-1", "annotator")
    reader = Actor("reader1", "annotator")
    save_read(store, reader, result.image_id, "normal", comment=HOSTILE_COMMENT)
    with store.db.read() as session:
        annotation_id = session.scalar(select(Annotation.id))
    decide(store, ADMIN, annotation_id, "return", HOSTILE_COMMENT)
    return result.image_id


def test_label_page_shows_names_and_the_reviewers_comment_as_text(page_store):
    hostile_store(page_store)
    app = run_page_as("label", Actor("reader1", "annotator"))
    app.session_state["label_status"] = "returned"
    app.run()
    assert not app.exception
    assert_shown_as_text(app, HOSTILE_COMMENT)
    # The file and class names are drawn by the viewer, which inserts them as text, never as HTML
    # (tests/e2e/test_viewer.py checks that in the browser); the page passes them on unaltered.
    data = viewer_data(app, "label_viewer")
    assert data["images"][0]["name"] == SHOWN_NAME and HOSTILE_CLASS in data["classes"]


def test_review_page_shows_reads_as_text(page_store):
    image_id = hostile_store(page_store)
    save_read(page_store, Actor("reader1", "annotator"), image_id, HOSTILE_CLASS, comment=HOSTILE_COMMENT)
    app = run_page_as("review", ADMIN)
    assert_shown_as_text(app, HOSTILE_CLASS)


def test_browse_page_shows_the_file_name_as_text(page_store):
    hostile_store(page_store)
    app = run_page_as("browse", ADMIN)
    assert_shown_as_text(app, SHOWN_NAME)


def test_predictions_page_shows_names_as_text(page_store):
    image_id = hostile_store(page_store)
    with page_store.db.write() as session:
        job = Job(kind="train", status="succeeded", params={}, progress={}, result={}, created_by="x")
        session.add(job)
        session.flush()
        version = ModelVersion(
            job_id=job.id, path="m.keras", sha256="", architecture="small_cnn", input_size=8,
            class_names=["normal", HOSTILE_CLASS], is_active=True,
        )  # fmt: skip
        session.add(version)
        session.flush()
        heatmap = "cache/gradcam/plain-text.npy"
        page_store.data_path(heatmap).parent.mkdir(parents=True, exist_ok=True)
        np.save(page_store.data_path(heatmap), np.zeros((2, 4, 4), dtype=np.float16))
        session.add(
            Prediction(
                image_id=image_id, model_version_id=version.id, predicted_class=HOSTILE_CLASS, probability=0.9,
                probabilities={"normal": 0.1, HOSTILE_CLASS: 0.9}, heatmap_path=heatmap,
            )
        )  # fmt: skip
    app = run_page_as("predictions", ADMIN)
    assert_shown_as_text(app, SHOWN_NAME, HOSTILE_CLASS)


def test_settings_page_shows_class_names_as_text(page_store):
    add_label_class(page_store, LOCAL_ACTOR, HOSTILE_CLASS)
    app = run_page_as("settings", ADMIN)
    assert_shown_as_text(app, HOSTILE_CLASS)
