"""Gold-standard checks on the Team page (AppTest): an admin mixes cases of a frozen evaluation set
into a reader's worklist at a rate, and once the reader has read them sees their accuracy, kappa
against the gold labels and seconds per case, with the trend per week."""

from __future__ import annotations

from medreview.ingest import InputFile, ingest_files
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.store.models import Assignment, GoldCase, User
from medreview.team.roles import Actor
from tests.conftest import run_page_as
from tests.helpers import png_bytes
from tests.pages.test_studies_page import page_project  # noqa: F401 (the fixture)


def table_with(app, column: str):  # type: ignore[no-untyped-def]
    """The one table on the page with ``column``."""
    [frame] = [frame.value for frame in app.dataframe if column in frame.value.columns]
    return frame


def test_an_admin_mixes_gold_in_and_sees_each_reader_scored(page_project):  # noqa: F811 (the fixture)
    page_store = page_project["store"]
    ordinary = ingest_files(
        page_store, LOCAL_ACTOR, [InputFile(f"w{n}.png", png_bytes(seed=60 + n, size=16)) for n in range(6)]
    )
    with page_store.db.write() as session:
        reader_id = session.query(User.id).filter(User.username == "reader1").scalar()
        session.add_all(
            Assignment(image_id=result.image_id, reader_id=reader_id, assigned_by="admin") for result in ordinary
        )
    app = run_page_as("team")
    assert any("No gold cases" in caption.value for caption in app.caption)
    app.selectbox(key="team_gold_set").set_value("holdout")
    app.multiselect(key="team_gold_readers").set_value(["reader1"])
    app.slider(key="team_gold_rate").set_value(0.25)
    [mix] = [button for button in app.button if button.label == "Mix gold cases in"]
    mix.click().run()
    assert not app.exception, app.exception
    # A quarter of the worklist: 6 ordinary cases take 2 gold ones.
    assert "Gold cases added: reader1 2" in [block.value for block in app.success]
    with page_store.db.read() as session:
        gold = {row.image_id: row.label for row in session.query(GoldCase)}
    assert len(gold) == 2

    # reader1 reads both: one right in 4 s, one wrong in 8 s.
    reader = Actor("reader1", "annotator")
    right, wrong = sorted(gold)
    save_read(page_store, reader, right, gold[right], seconds_on_case=4.0)
    save_read(page_store, reader, wrong, "normal" if gold[wrong] == "pneumonia" else "pneumonia", seconds_on_case=8.0)
    app.run()
    assert not app.exception, app.exception
    [scores] = table_with(app, "gold_cases").to_dict("records")
    assert (scores["reader"], scores["gold_cases"], scores["gold_cases_read"]) == ("reader1", 2, 2)
    assert (scores["accuracy"], scores["median_seconds"]) == (0.5, 6.0)
    [week] = table_with(app, "week").to_dict("records")
    assert (week["reader"], week["gold_cases_read"], week["accuracy"]) == ("reader1", 2, 0.5)
    # Only admins see the scores.
    refused = run_page_as("team", reader)
    assert not any("gold_cases" in frame.value.columns for frame in refused.dataframe)
