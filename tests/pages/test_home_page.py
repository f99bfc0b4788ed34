"""Home: where the data lives (the server's data folder and database address) is for admins only;
loading the demo data says what was loaded; readers hear what review decided against their reads."""

from __future__ import annotations

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.review import adjudicate, decide, review_queue
from medreview.team.accounts import create_user
from medreview.team.roles import Actor
from tests.conftest import ADMIN, run_page_as
from tests.helpers import png_bytes


def page_text(app) -> str:  # type: ignore[no-untyped-def]
    """Everything the page sent to the browser (every element's protobuf, as text)."""

    def walk(node):  # type: ignore[no-untyped-def]
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return "\n".join(str(node.proto) for node in walk(app._tree) if getattr(node, "proto", None) is not None)


def test_only_admins_see_the_data_folder_and_the_database_address(page_store):
    data_dir = str(page_store.settings.data_dir)
    database = page_store.db.engine.url.render_as_string(hide_password=True)
    for name, role in (("ann", "annotator"), ("rev", "reviewer")):
        create_user(page_store, ADMIN, name, f"{role}-password-1", role)
        shown = page_text(run_page_as("home", Actor(name, role)))
        assert "Images" in shown  # the page did draw
        assert data_dir not in shown and database not in shown and "Where the data lives" not in shown, role
    shown = page_text(run_page_as("home", ADMIN))
    assert data_dir in shown and database in shown


def test_loading_the_demo_data_says_what_was_loaded(page_store):
    app = run_page_as("home")
    app.button(key="load_demo").click().run()
    assert not app.exception
    assert [success.value for success in app.success] == [
        "Demo data loaded: 40 images stored, 32 of them labelled (16 normal, 16 pneumonia) and 8 left to "
        "label. Open **Label** to read them or **Train** to train a model on them."
    ]
    assert [metric.value for metric in app.metric][:2] == ["40", "32"]
    app.run()  # said once: the next run of the page no longer repeats it
    assert app.success.len == 0


def test_a_reader_hears_which_reads_were_sent_back_rejected_or_overruled_and_why(page_store):
    reviewer, ann, bob = Actor("rev", "reviewer"), Actor("ann", "annotator"), Actor("bob", "annotator")
    for reader in (reviewer, ann, bob):
        create_user(page_store, ADMIN, reader.username, f"{reader.username}-password-1", reader.role)
    results = ingest_files(page_store, LOCAL_ACTOR, [InputFile(f"film{n}.png", png_bytes(90 + n)) for n in range(3)])
    sent_back, rejected, disputed = (result.image_id for result in results)
    for image_id in (sent_back, rejected, disputed):
        save_read(page_store, ann, image_id, "normal")
    save_read(page_store, bob, disputed, "pneumonia")
    queue = review_queue(page_store, reviewer).set_index(["reader", "image_id"])["annotation_id"]
    decide(page_store, reviewer, int(queue[("ann", sent_back)]), "return", "look at the left base again")
    decide(page_store, reviewer, int(queue[("ann", rejected)]), "reject", "lateral view, not PA")
    adjudicate(page_store, reviewer, disputed, "pneumonia", "air bronchograms")

    app = run_page_as("home", ann)
    assert [warning.value for warning in app.warning] == [
        "3 of your reads came back from review: 1 sent back to you, 1 rejected, 1 overruled by an "
        "adjudication. Sent-back reads are on the Label page under **Returned to me**."
    ]
    [told] = [table.value.set_index("review") for table in app.dataframe]
    assert told.loc["sent back to you", "reviewer's comment"] == "look at the left base again"
    assert told.loc["rejected", ["reviewer's comment", "reviewer"]].tolist() == ["lateral view, not PA", "rev"]
    assert told.loc["overruled by an adjudication", ["your label", "final label", "reviewer's comment"]].tolist() == [
        "normal",
        "pneumonia",
        "air bronchograms",
    ]
    assert told.loc["rejected", "final label"] == "—"  # not "None"
    # Bob's read was approved by the adjudication: nothing to tell him.
    app = run_page_as("home", bob)
    assert app.warning.len == 0 and app.dataframe.len == 0
