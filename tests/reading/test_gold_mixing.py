"""Gold-standard cases mixed into a reader's worklist unannounced (reading.studies.mix_gold, and the
worklist's place order in reading.worklists): spread among the reader's own cases at the rate, not
together at the top where their older image ids would put them, in an order reproducible from the
seed, with "next" and the position running through them, and nothing on the list telling them apart.

The project: 12 labelled images frozen as the set "gold set", uploaded first (the smallest ids, as
evaluation sets usually are), then 12 ordinary images assigned to reader1 and reader2.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

from sqlalchemy import select

from medreview.ingest import InputFile, ingest_files
from medreview.reading.evaluation_sets import create_evaluation_set
from medreview.reading.reads import LOCAL_ACTOR, save_read
from medreview.reading.review import assign
from medreview.reading.studies import mix_gold
from medreview.reading.worklists import (
    WORKLIST_COLUMNS,
    WorklistFilter,
    following_image_ids,
    list_position,
    next_image_id,
    worklist,
    worklist_page,
)
from medreview.store import Store
from medreview.store.models import GoldCase, User
from medreview.team.roles import Actor
from tests.conftest import make_settings, run_page_as
from tests.helpers import png_bytes

READER1 = Actor("reader1", "annotator")
READER2 = Actor("reader2", "annotator")
GOLD_SET = "gold set"


def build_project(store: Store) -> dict[str, list[int]]:
    """The gold set's images (labelled and frozen) and the ordinary images assigned to both readers."""
    with store.db.write() as session:
        for actor in (READER1, READER2):
            session.add(User(username=actor.username, role=actor.role, password_hash="unusable"))
    files = [InputFile(f"g{n}.png", png_bytes(seed=n, size=16)) for n in range(12)]
    gold_images = [result.image_id for result in ingest_files(store, LOCAL_ACTOR, files)]
    for n, image_id in enumerate(gold_images):
        save_read(store, LOCAL_ACTOR, image_id, "pneumonia" if n % 2 else "normal")
    create_evaluation_set(store, LOCAL_ACTOR, GOLD_SET, gold_images)
    files = [InputFile(f"w{n}.png", png_bytes(seed=100 + n, size=16)) for n in range(12)]
    ordinary = [result.image_id for result in ingest_files(store, LOCAL_ACTOR, files)]
    assign(store, LOCAL_ACTOR, ordinary, [READER1.username, READER2.username], readers_per_image=2)
    return {"gold": gold_images, "ordinary": ordinary}


def gold_of(store: Store, reader: Actor) -> set[int]:
    with store.db.read() as session:
        reader_id = session.scalar(select(User.id).where(User.username == reader.username))
        return set(session.scalars(select(GoldCase.image_id).where(GoldCase.reader_id == reader_id)))


def listed(store: Store, reader: Actor, status: str = "todo", sort: str = "list") -> list[int]:
    return [int(image_id) for image_id in worklist(store, reader, status=status, sort=sort)["image_id"]]


def test_gold_cases_are_spread_among_the_readers_own_cases_never_two_together(any_store):
    project = build_project(any_store)
    assert listed(any_store, READER1) == project["ordinary"]  # before: upload order
    # Half of what reader1 has to read is gold: 12 ordinary cases take 12 gold ones; a quarter for
    # reader2: 12 ordinary cases take 4 (4 / 16).
    assert mix_gold(any_store, LOCAL_ACTOR, ["reader1"], GOLD_SET, 0.5, seed=5) == {"reader1": 12}
    assert mix_gold(any_store, LOCAL_ACTOR, ["reader2"], GOLD_SET, 0.25, seed=5) == {"reader2": 4}
    for reader, count in ((READER1, 12), (READER2, 4)):
        order = listed(any_store, reader)
        gold = gold_of(any_store, reader)
        assert len(order) == 12 + count and set(order) == set(project["ordinary"]) | gold and len(gold) == count
        is_gold = [image_id in gold for image_id in order]
        # No two gold cases side by side, and not gathered at the top (their ids are the smallest).
        assert not any(first and second for first, second in itertools.pairwise(is_gold)), is_gold
        assert is_gold[:count] != [True] * count
        # The reader's own cases keep their order.
        assert [image_id for image_id in order if image_id not in gold] == project["ordinary"]
    # The "status" order (every case unread: one rank) runs through the cases in the same order.
    assert listed(any_store, READER1, sort="status") == listed(any_store, READER1)


def test_a_second_mix_tops_up_among_the_cases_left_to_read(store):
    project = build_project(store)
    assert mix_gold(store, LOCAL_ACTOR, ["reader1"], GOLD_SET, 0.25, seed=2) == {"reader1": 4}
    assert mix_gold(store, LOCAL_ACTOR, ["reader1"], GOLD_SET, 0.25, seed=2) == {"reader1": 0}  # at the rate
    # reader1 reads the first 9 cases of the list; the rate is of what is left to read, so a new mix
    # adds the gold cases that keeps it, and places them among the cases still to read.
    for image_id in listed(store, READER1)[:9]:
        save_read(store, READER1, image_id, "normal")
    left = listed(store, READER1)
    ordinary_left = [image_id for image_id in left if image_id not in gold_of(store, READER1)]
    gold_left = len(left) - len(ordinary_left)
    wanted = max(0, -(-len(ordinary_left) // 3) - gold_left)  # gold / (ordinary + gold) = 1/4
    assert mix_gold(store, LOCAL_ACTOR, ["reader1"], GOLD_SET, 0.25, seed=3) == {"reader1": wanted}
    after = listed(store, READER1)
    gold = gold_of(store, READER1)
    assert [image_id for image_id in after if image_id not in gold] == ordinary_left
    is_gold = [image_id in gold for image_id in after]
    assert not any(first and second for first, second in itertools.pairwise(is_gold)), is_gold
    assert set(after) - set(left) <= set(project["gold"])


def copy_of(store: Store, data_dir: Path) -> Store:
    """A second store holding what ``store`` holds now (SQLite's backup: the WAL included)."""
    data_dir.mkdir()
    source_file = store.settings.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(source_file) as source, sqlite3.connect(data_dir / "medreview.db") as target:
        source.backup(target)
    return Store.open(make_settings(data_dir))


def test_the_places_are_reproducible_from_the_seed(store, tmp_path):
    build_project(store)
    again, other_seed, alone = (copy_of(store, tmp_path / name) for name in ("again", "other", "alone"))
    try:
        for copy, seed in ((store, 7), (again, 7), (other_seed, 8)):
            mix_gold(copy, LOCAL_ACTOR, ["reader1", "reader2"], GOLD_SET, 0.25, seed=seed)
        for reader in (READER1, READER2):
            assert listed(store, reader) == listed(again, reader)
        assert listed(store, READER1) != listed(other_seed, READER1)
        # One reader's cases and places do not depend on who else was mixed at the same time.
        mix_gold(alone, LOCAL_ACTOR, ["reader2"], GOLD_SET, 0.25, seed=7)
        assert listed(alone, READER2) == listed(store, READER2)
    finally:
        for copy in (again, other_seed, alone):
            copy.close()


def test_next_and_position_run_through_the_gold_cases(store):
    build_project(store)
    mix_gold(store, LOCAL_ACTOR, ["reader1"], GOLD_SET, 0.25, seed=4)
    todo = WorklistFilter()
    order = listed(store, READER1)
    gold = gold_of(store, READER1)
    assert [list_position(store, READER1, todo, image_id) for image_id in order] == list(range(len(order)))
    assert next_image_id(store, READER1, todo) == order[0]
    for here, following in itertools.pairwise(order):
        assert next_image_id(store, READER1, todo, after_image_id=here) == following
    assert following_image_ids(store, READER1, todo, order[0], 30) == order[1:]
    page, total = worklist_page(store, READER1, todo, offset=3, limit=5)
    assert total == len(order) and list(page["image_id"]) == order[3:8]
    # A gold case just read leaves the "to do" list and the list goes on after its place.
    first_gold = next(index for index, image_id in enumerate(order) if image_id in gold)
    save_read(store, READER1, order[first_gold], "normal")
    assert next_image_id(store, READER1, todo, after_image_id=order[first_gold]) == order[first_gold + 1]
    assert list_position(store, READER1, todo, order[first_gold]) is None
    assert list_position(store, READER1, todo, order[first_gold + 1]) == first_gold
    # Under "all" it keeps its place.
    assert listed(store, READER1, status="all") == order


def test_nothing_the_reader_is_sent_tells_a_gold_case(page_store):
    build_project(page_store)
    mix_gold(page_store, LOCAL_ACTOR, ["reader1"], GOLD_SET, 0.25, seed=6)
    order = listed(page_store, READER1)
    gold = gold_of(page_store, READER1)
    page, _ = worklist_page(page_store, READER1, WorklistFilter("all"))
    assert list(page.columns) == WORKLIST_COLUMNS
    # A gold row reads like an ordinary one: the same kinds of values, no read of the reader's.
    gold_rows = page[page["image_id"].isin(gold)]
    assert gold_rows["status"].isna().all() and gold_rows["label"].isna().all()
    # The Label page opens the list at its first case and hands the viewer the list's order.
    app = run_page_as("label", READER1)
    assert not app.exception, app.exception
    [viewer] = [element for element in app.get("bidi_component") if element.key == "label_viewer"]
    data = json.loads(viewer.proto.json)
    assert data["position"] == order[0]
    assert data["order"] == order[: len(data["order"])] and len(data["order"]) > 1
    sent = viewer.proto.json.lower()
    for word in ("gold", "list_place", GOLD_SET, "evaluation"):
        assert word not in sent, word
    shown = [frame.value for frame in app.dataframe]
    for frame in shown:
        assert not {"gold", "list_place", "evaluation_set"} & set(frame.columns)
    # The worklist table's rows are the list's first page, in its order.
    [table] = [frame for frame in shown if "image_id" in frame.columns]
    assert [int(image_id) for image_id in table["image_id"]] == order[: len(table)]
