"""Reader studies and gold-standard checks (medreview.reading.studies): the schedule (per-reader
order from the seed, crossover with washout), ratings that cannot be changed, what a reader is
given in each arm, the results beside the MRMC analysis, the exports, and gold mixing and scoring."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, func, text, update

from medreview.errors import MedreviewError, NotFoundError, PermissionDeniedError
from medreview.ingest import InputFile, ingest_files
from medreview.reading import mrmc
from medreview.reading.evaluation_sets import create_evaluation_set
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.studies import (
    ACTIVE_SECONDS_CAP,
    StudyCase,
    StudyWait,
    create_study,
    gold_scores,
    gold_trend,
    list_studies,
    mix_gold,
    next_case,
    rate_case,
    ratings_csv,
    ratings_frame,
    reading_schedule,
    results_json,
    roc_png,
    study_results,
)
from medreview.store import Store, schema
from medreview.store.models import Assignment, GoldCase, Prediction, User
from medreview.team.audit import query
from medreview.team.roles import Actor
from tests.conftest import make_settings
from tests.helpers import add_model_version, add_predictions, png_bytes

READERS = ("reader1", "reader2", "reader3")
START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
# Truth of the 8 cases in image order: 4 normal, 4 pneumonia.
TRUTH = ["normal", "pneumonia"] * 4


def add_readers(store: Store, *names: str, role: str = "annotator") -> None:
    with store.db.write() as session:
        for name in names:
            # A password hash that no password matches: the account can hold a sign-in (page tests).
            session.add(User(username=name, role=role, password_hash="unusable"))


# The built project (build_project and with_maps), made once per test process: each test starts
# from a copy of its data dir (a file copy, milliseconds) instead of ingesting and predicting again.
_TEMPLATE: dict[str, tuple[Path, dict]] = {}


def project_template(tmp_path_factory: pytest.TempPathFactory, new_store_file: Path) -> tuple[Path, dict]:
    """(the data dir of a built project, its images and model version id); closed, ready to copy."""
    if "built" not in _TEMPLATE:
        data_dir = tmp_path_factory.mktemp("reader-study-template")
        shutil.copyfile(new_store_file, data_dir / "medreview.db")
        store = Store.open(make_settings(data_dir))
        try:
            built = build_project(store)
            with_maps(built)
        finally:
            store.close()
        _TEMPLATE["built"] = (data_dir, {"images": built["images"], "model": built["model"]})
    return _TEMPLATE["built"]


def open_project_copy(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, new_store_file: Path
) -> dict:
    """A copy of the built project in ``data_dir``, the data dir the pages' store opens too; the
    caller closes ``["store"]``."""
    template_dir, built = project_template(tmp_path_factory, new_store_file)
    shutil.copytree(template_dir, data_dir, dirs_exist_ok=True)
    monkeypatch.setenv("MEDREVIEW_DATA_DIR", str(data_dir))
    monkeypatch.delenv("MEDREVIEW_DATABASE_URL", raising=False)
    monkeypatch.delenv("MEDREVIEW_REDIS_URL", raising=False)
    return {"store": Store.open(make_settings(data_dir)), **built}


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory, new_store_file: Path
) -> Iterator[dict]:
    copy = open_project_copy(tmp_path, monkeypatch, tmp_path_factory, new_store_file)
    yield copy
    copy["store"].close()


def with_maps(project: dict) -> None:
    """A stored (C, h, w) map per prediction, as a prediction job leaves it: the identity for
    pneumonia, nothing for normal."""
    store = project["store"]
    for image_id in project["images"]:
        path = store.data_path(f"heatmaps/test-{image_id}.npy")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.stack([np.zeros((4, 4)), np.eye(4)]).astype(np.float32))  # normal, pneumonia
    with store.db.write() as session:
        session.execute(
            update(Prediction)
            .where(Prediction.model_version_id == project["model"])
            .values(heatmap_path=func.printf("heatmaps/test-%d.npy", Prediction.image_id))
        )


def build_project(store: Store, readers: bool = True) -> dict:
    """8 images frozen as the set "holdout", a model version's predictions on them, three readers
    (``readers`` False: the caller makes their accounts)."""
    results = ingest_files(store, LOCAL_ACTOR, [InputFile(f"c{n}.png", png_bytes(seed=n, size=16)) for n in range(8)])
    images = [result.image_id for result in results]
    for image_id, label in zip(images, TRUTH, strict=True):
        save_read(store, LOCAL_ACTOR, image_id, label)
    create_evaluation_set(store, LOCAL_ACTOR, "holdout", images)
    model = add_model_version(store)
    # The model ranks every pneumonia above every normal but one.
    probability = {
        image_id: 0.8 if label == "pneumonia" else 0.2 for image_id, label in zip(images, TRUTH, strict=True)
    }
    probability[images[0]] = 0.9
    add_predictions(store, model, {i: {"normal": 1 - p, "pneumonia": p} for i, p in probability.items()})
    if readers:
        add_readers(store, *READERS)
    return {"store": store, "images": images, "model": model}


def make_study(project: dict, **options) -> int:
    settings = dict(positive_class="pneumonia", model_version_id=project["model"], seed=7) | options
    return create_study(project["store"], LOCAL_ACTOR, "cxr study", "holdout", list(READERS), **settings).id


def read_all(store: Store, study_id: int, reader: str, rate, now: dt.datetime, seconds: float = 10.0) -> dt.datetime:
    """Rate every case open to ``reader`` now, ``seconds`` apart; ``rate(case) -> (label, confidence)``."""
    actor = Actor(reader, "annotator")
    while isinstance(case := next_case(store, actor, study_id, now=now), StudyCase):
        label, confidence = rate(case)
        now += dt.timedelta(seconds=seconds)
        rate_case(store, actor, study_id, case.member_id, case.arm, label=label, confidence=confidence, now=now)
    return now


def truthful(project: dict):
    """A reader who calls every case right, surer in the aided arm."""
    truth = dict(zip(project["images"], TRUTH, strict=True))
    return lambda case: (truth[case.image_id], 90 if case.arm == "aided" else 60)


def test_each_reader_gets_their_own_order_from_the_seed_and_the_arms_counterbalanced():
    members = list(range(100, 110))
    first = reading_schedule(7, 1, 0, members, ["unaided", "aided"], "crossover")
    assert [block[0][0] for block in first] == ["unaided", "aided"]
    assert reading_schedule(7, 1, 0, members, ["unaided", "aided"], "crossover") == first  # stored seed: same
    assert sorted(m for _, m in first[0]) == members and [m for _, m in first[0]] != members
    second = reading_schedule(7, 2, 1, members, ["unaided", "aided"], "crossover")
    assert [block[0][0] for block in second] == ["aided", "unaided"]  # the next reader starts aided
    assert [m for _, m in second[0]] != [m for _, m in first[0]]
    assert reading_schedule(8, 1, 0, members, ["unaided", "aided"], "crossover") != first
    [crossed] = reading_schedule(7, 1, 0, members, ["unaided", "aided"], "crossed")
    assert len(crossed) == 20 and {arm for arm, _ in crossed[:10]} == {"unaided", "aided"}


def test_the_second_arm_opens_only_after_the_washout(project):
    store = project["store"]
    study_id = make_study(project, washout_days=14)
    finished = read_all(store, study_id, "reader1", truthful(project), START)
    wait = next_case(store, Actor("reader1", "annotator"), study_id, now=finished + dt.timedelta(days=13))
    assert isinstance(wait, StudyWait) and not wait.done
    assert wait.opens_at == finished + dt.timedelta(days=14) and "washout" in wait.message
    after = next_case(store, Actor("reader1", "annotator"), study_id, now=finished + dt.timedelta(days=14))
    assert isinstance(after, StudyCase) and after.arm == "aided" and after.order == 1
    end = read_all(store, study_id, "reader1", truthful(project), finished + dt.timedelta(days=14))
    assert next_case(store, Actor("reader1", "annotator"), study_id, now=end).done
    # reader2 (second in the study) reads the aided arm first.
    assert next_case(store, Actor("reader2", "annotator"), study_id, now=START).arm == "aided"


def test_a_rating_cannot_be_changed_or_made_out_of_order(project):
    store = project["store"]
    study_id = make_study(project)
    reader = Actor("reader1", "annotator")
    first = next_case(store, reader, study_id, now=START)
    rate_case(store, reader, study_id, first.member_id, first.arm, label="normal", confidence=40, now=START)
    with pytest.raises(MedreviewError, match="cannot be changed"):
        rate_case(store, reader, study_id, first.member_id, first.arm, label="pneumonia", confidence=90)
    second = next_case(store, reader, study_id, now=START)
    members = ratings_frame(store, LOCAL_ACTOR, study_id)
    assert len(members) == 1 and members["rating"].iloc[0] == 30.0  # normal at 40: 50 - 40 / 2
    with pytest.raises(MedreviewError, match="not the case you are reading"):
        rate_case(store, reader, study_id, second.member_id + 1000, second.arm, label="normal", confidence=50)
    with pytest.raises(MedreviewError, match="0 to 100"):
        rate_case(store, reader, study_id, second.member_id, second.arm, label="normal", confidence=150)
    with pytest.raises(NotFoundError, match="not a reader"):
        next_case(store, Actor("chief", "admin"), study_id)
    # The audit trail holds the rating, and an annotator cannot see the study's ratings.
    assert any(event["action"] == "reader_study.rate" for event in query(store, LOCAL_ACTOR).to_dict("records"))
    with pytest.raises(PermissionDeniedError):
        ratings_frame(store, reader, study_id)


def test_what_a_reader_is_given_unaided_and_aided(project):
    store = project["store"]
    study_id = make_study(project, design="crossed")
    reader = Actor("reader1", "annotator")
    seen = {"unaided": None, "aided": None}
    now = START
    while None in seen.values():
        case = next_case(store, reader, study_id, now=now)
        seen[case.arm] = seen[case.arm] or case
        rate_case(store, reader, study_id, case.member_id, case.arm, label="normal", confidence=50, now=now)
    unaided, aided = seen["unaided"], seen["aided"]
    assert (unaided.model_probability, unaided.model_class, unaided.heatmap_path) == (None, None, None)
    assert aided.model_probability in (0.8, 0.2, 0.9)
    # No field carries the truth or another reader's rating.
    assert {"truth", "label", "reader", "readers"}.isdisjoint(vars(aided))


def test_results_per_reader_the_model_and_the_mrmc_analysis(project):
    store = project["store"]
    study_id = make_study(project)
    truth = dict(zip(project["images"], TRUTH, strict=True))
    wrong_once = {project["images"][1]}  # reader3 misses one pneumonia unaided

    def reader3(case):
        label = truth[case.image_id]
        if case.arm == "unaided" and case.image_id in wrong_once:
            return "normal", 20
        return label, 70

    for reader, rate in (("reader1", truthful(project)), ("reader2", truthful(project)), ("reader3", reader3)):
        read_all(store, study_id, reader, rate, START, seconds=ACTIVE_SECONDS_CAP + 30 if reader == "reader2" else 12)
    results = study_results(store, LOCAL_ACTOR, study_id)
    figures = {(row["reader"], row["arm"]): row for row in results.readers}
    assert figures["reader3", "unaided"]["sensitivity"] == 0.75
    low, high = figures["reader3", "unaided"]["sensitivity_ci"]
    assert (low, high) == pytest.approx(mrmc.wilson_interval(3, 4))
    assert figures["reader1", "aided"]["auc"] == 1.0 and figures["reader1", "aided"]["specificity"] == 1.0
    # The analysis is mrmc's on the exported ratings.
    direct = mrmc.analyze(ratings_frame(store, LOCAL_ACTOR, study_id)[list(mrmc.COLUMNS)])
    assert results.analysis == direct.as_json() and results.analysis["variance_components"]["var"] is not None
    model = results.model
    # One normal at 0.9 above the four pneumonia cases at 0.8: each beats 3 of the 4 normals.
    assert model["auc"] == pytest.approx(12 / 16)
    assert {(row["arm"], row["reader"]) for row in model["against_readers"]} == {
        (arm, reader) for arm in ("unaided", "aided") for reader in READERS
    }
    [average_aided] = [row for row in model["against_average_reader"] if row["arm"] == "aided"]
    assert average_aided["average_reader_auc"] == 1.0 and average_aided["difference"] == pytest.approx(-0.25)
    timing = {(row["reader"], row["arm"]): row for row in results.timing}
    assert (
        timing["reader1", "unaided"]["median_seconds"] == 12 and timing["reader1", "unaided"]["cases_per_hour"] == 300
    )
    assert timing["reader2", "aided"]["median_seconds"] == ACTIVE_SECONDS_CAP  # a case left open counts the cap
    # Exports: the long CSV that reader-study analyze reads, the JSON and the ROC plot.
    exported = pd.read_csv(io.BytesIO(ratings_csv(store, LOCAL_ACTOR, study_id)), dtype=str)
    assert list(exported.columns) == ["modality", "reader", "case", "truth", "rating", "arm", "order", "seconds"]
    assert len(exported) == 3 * 2 * 8
    assert mrmc.analyze(exported).as_json() == direct.as_json()
    as_json = json.loads(json.dumps(results_json(results)))
    assert as_json["analysis"]["f"] == direct.as_json()["f"] and as_json["study"]["name"] == "cxr study"
    assert roc_png(results).startswith(b"\x89PNG")
    exports = [e for e in query(store, LOCAL_ACTOR).to_dict("records") if e["action"] == "export"]
    assert exports and exports[-1]["object_type"] == "reader_study"


def test_study_creation_refuses_in_plain_words(project):
    store = project["store"]
    with pytest.raises(MedreviewError, match="no case labelled 'fracture'"):
        make_study(project, positive_class="fracture")
    with pytest.raises(MedreviewError, match="choose a model version"):
        make_study(project, model_version_id=None)
    with pytest.raises(MedreviewError, match="no such user: ghost"):
        create_study(store, LOCAL_ACTOR, "s", "holdout", ["ghost"], positive_class="pneumonia", arms=("unaided",))
    with pytest.raises(PermissionDeniedError):
        create_study(store, Actor("reader1", "annotator"), "s", "holdout", ["reader1"], positive_class="pneumonia")
    study_id = make_study(project, scale="five_point")
    assert [s.id for s in list_studies(store, Actor("reader1", "annotator"))] == [study_id]
    case = next_case(store, Actor("reader1", "annotator"), study_id, now=START)
    with pytest.raises(MedreviewError, match="1, 2, 3, 4 or 5"):
        rate_case(store, Actor("reader1", "annotator"), study_id, case.member_id, case.arm, confidence=7)


def test_gold_cases_are_mixed_at_the_rate_and_scored_against_the_set(project):
    store = project["store"]
    images = project["images"]
    extra = ingest_files(
        store, LOCAL_ACTOR, [InputFile(f"w{n}.png", png_bytes(seed=50 + n, size=16)) for n in range(6)]
    )
    with store.db.write() as session:
        reader_id = session.query(User.id).filter(User.username == "reader1").scalar()
        for result in extra:
            session.add(Assignment(image_id=result.image_id, reader_id=reader_id, assigned_by="admin"))
    # A quarter gold: 6 ordinary cases take 2 gold ones (2 / 8).
    assert mix_gold(store, LOCAL_ACTOR, ["reader1"], "holdout", 0.25, seed=3) == {"reader1": 2}
    assert mix_gold(store, LOCAL_ACTOR, ["reader1"], "holdout", 0.25, seed=3) == {"reader1": 0}  # already at rate
    with store.db.read() as session:
        gold = {row.image_id: row.label for row in session.query(GoldCase)}
        assigned = session.query(Assignment).filter(Assignment.reader_id == reader_id).count()
    assert len(gold) == 2 and assigned == 8 and set(gold) <= set(images)
    reader = Actor("reader1", "annotator")
    first, second = sorted(gold)
    save_read(store, reader, first, gold[first], seconds_on_case=4.0)
    save_read(store, reader, second, "normal" if gold[second] == "pneumonia" else "pneumonia", seconds_on_case=8.0)
    [scores] = gold_scores(store, LOCAL_ACTOR).to_dict("records")
    assert (scores["reader"], scores["gold_cases"], scores["gold_cases_read"]) == ("reader1", 2, 2)
    assert scores["accuracy"] == 0.5 and scores["median_seconds"] == 6.0
    [week] = gold_trend(store, LOCAL_ACTOR).to_dict("records")
    assert week["gold_cases_read"] == 2 and week["accuracy"] == 0.5
    with pytest.raises(MedreviewError, match=r"at most 0\.5"):
        mix_gold(store, LOCAL_ACTOR, ["reader1"], "holdout", 0.9)


def test_a_0009_store_upgrades_to_reader_studies(tmp_path):
    from alembic import command

    from tests.store.test_schema import first_release_store

    data_dir = first_release_store(tmp_path)
    engine = create_engine(f"sqlite:///{data_dir / 'medreview.db'}")
    with engine.connect() as connection, connection.begin():
        config = schema._config(connection)
        command.stamp(config, schema.BASELINE)
        command.upgrade(config, "0009_case_scope")
        users_before = connection.execute(text("SELECT count(*) FROM users")).scalar()
    engine.dispose()
    store = Store.open(make_settings(data_dir))
    try:
        assert schema.current_revision(store.db.engine) == schema.head_revision()
        with store.db.read() as session:
            assert session.execute(text("SELECT count(*) FROM users")).scalar() == users_before
            for table in ("reader_studies", "reader_study_readers", "reader_study_ratings", "gold_cases"):
                assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
    finally:
        store.close()
