"""Export and import beyond tests/reading/test_review.py (which covers the reads JSON round trip,
one COCO export, the labels CSV header, single-row import refusals and an "=" comment in CSV):
every kind in each format, all formula prefixes, who may export and the audit of it, and an
import that refuses a bad row part-way imports nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from medreview.errors import MedreviewError, PermissionDeniedError
from medreview.ingest import InputFile, ingest_files
from medreview.reading.catalog import get_image
from medreview.reading.exchange import export_data, import_labels, write_export
from medreview.reading.reads import LOCAL_ACTOR, reads_table, save_read
from medreview.reading.schema import label_classes
from medreview.store import Store
from medreview.store.models import Annotation, Prediction, User
from medreview.team.audit import query
from medreview.team.roles import Actor
from medreview.team.settings import set_setting
from tests.conftest import make_settings
from tests.helpers import add_model_version, add_predictions, png_bytes

ANNOTATOR = Actor("ann", "annotator")
REVIEWER = Actor("rev", "reviewer")
BOX = {"label": "pneumonia", "x": 4, "y": 5, "width": 6, "height": 7}


@pytest.fixture
def project(store: Store) -> tuple[Store, list[int]]:
    """Three images: normal (with a box), pneumonia, unread; an active model predicted all three."""
    results = ingest_files(store, LOCAL_ACTOR, [InputFile(f"img{n}.png", png_bytes(900 + n)) for n in range(3)])
    ids = [result.image_id for result in results]
    save_read(store, LOCAL_ACTOR, ids[0], "normal", boxes=[BOX])
    save_read(store, LOCAL_ACTOR, ids[1], "pneumonia")
    model_id = add_model_version(store, active=True)
    add_predictions(
        store,
        model_id,
        {
            image_id: {predicted: 0.8}
            for image_id, predicted in zip(ids, ["pneumonia", "pneumonia", "normal"], strict=True)
        },
    )
    return store, ids


def shown_name(store: Store, image_id: int) -> str:
    return get_image(store, LOCAL_ACTOR, image_id).display_name


def test_original_names_are_for_admins_and_audited(project, tmp_path):
    store, ids = project
    with pytest.raises(PermissionDeniedError):
        write_export(store, REVIEWER, "labels", tmp_path / "labels.csv", "csv", original_names=True)
    write_export(store, LOCAL_ACTOR, "labels", tmp_path / "labels.csv", "csv", original_names=True)
    rows = read_csv(tmp_path / "labels.csv")
    assert [(row["display_name"], row["original_name"]) for row in rows] == [
        (shown_name(store, ids[0]), "img0.png"),
        (shown_name(store, ids[1]), "img1.png"),
    ]
    [details] = query(store, LOCAL_ACTOR, action="export")["details"]
    assert json.loads(details)["original_names"] is True


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_labels_export_in_csv_and_json(project, tmp_path):
    store, ids = project
    assert write_export(store, REVIEWER, "labels", tmp_path / "labels.csv", "csv") == 2
    rows = read_csv(tmp_path / "labels.csv")
    # De-identified by default: images are named by their display names, never by the upload's.
    assert [(row["display_name"], row["label"], row["method"]) for row in rows] == [
        (shown_name(store, ids[0]), "normal", "unanimous"),
        (shown_name(store, ids[1]), "pneumonia", "unanimous"),
    ]
    assert "img0.png" not in (tmp_path / "labels.csv").read_text()
    assert all(len(row["sha256"]) == 64 and len(row["source_sha256"]) == 64 for row in rows)
    assert write_export(store, REVIEWER, "labels", tmp_path / "labels.json", "json") == 2
    document = json.loads((tmp_path / "labels.json").read_text())
    assert (document["format"], document["kind"]) == ("medreview-labels", "labels")
    assert [row["image_id"] for row in document["rows"]] == ids[:2]


def test_reads_export_in_csv_carries_reader_and_review_state(project, tmp_path):
    store, _ = project
    assert write_export(store, REVIEWER, "reads", tmp_path / "reads.csv", "csv") == 2
    rows = read_csv(tmp_path / "reads.csv")
    assert [(row["reader"], row["label"], row["status"]) for row in rows] == [
        ("local", "normal", "submitted"),
        ("local", "pneumonia", "submitted"),
    ]


def refuse_non_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def test_predictions_export_names_the_model_and_the_label(project, tmp_path):
    store, ids = project
    assert write_export(store, REVIEWER, "predictions", tmp_path / "predictions.csv", "csv") == 3
    rows = read_csv(tmp_path / "predictions.csv")
    assert [(row["display_name"], row["predicted_class"]) for row in rows] == [
        (shown_name(store, ids[0]), "pneumonia"),
        (shown_name(store, ids[1]), "pneumonia"),
        (shown_name(store, ids[2]), "normal"),
    ]
    assert [row["label"] for row in rows[:2]] == ["normal", "pneumonia"]
    assert {row["model_version_id"] for row in rows} == {"1"}
    assert write_export(store, REVIEWER, "predictions", tmp_path / "predictions.json", "json") == 3
    document = json.loads((tmp_path / "predictions.json").read_text(), parse_constant=refuse_non_json)
    assert [row["image_id"] for row in document["rows"]] == ids
    # The unlabelled image's label is null: strict JSON readers (JSON.parse, jq) reject NaN.
    assert [row["label"] for row in document["rows"]] == ["normal", "pneumonia", None]


def test_predictions_export_flags_an_image_outside_the_training_data_instead_of_a_class(project, tmp_path):
    store, ids = project
    reason = "modality NM, trained on DX"
    with store.db.write() as session:
        prediction = session.scalar(select(Prediction).where(Prediction.image_id == ids[2]))
        prediction.out_of_distribution, prediction.out_of_distribution_reason = True, reason
    write_export(store, REVIEWER, "predictions", tmp_path / "predictions.csv", "csv")
    flagged, kept = read_csv(tmp_path / "predictions.csv")[2], read_csv(tmp_path / "predictions.csv")[0]
    assert (flagged["predicted_class"], flagged["probability"]) == ("", "")
    assert (flagged["outside_training_data"], flagged["outside_reason"]) == ("True", reason)
    assert (kept["predicted_class"], kept["outside_training_data"], kept["outside_reason"]) == (
        "pneumonia",
        "False",
        "",
    )
    write_export(store, REVIEWER, "predictions", tmp_path / "predictions.json", "json")
    rows = json.loads((tmp_path / "predictions.json").read_text(), parse_constant=refuse_non_json)["rows"]
    assert {
        key: rows[2][key] for key in ("predicted_class", "probability", "outside_training_data", "outside_reason")
    } == {
        "predicted_class": None,
        "probability": None,
        "outside_training_data": True,
        "outside_reason": reason,
    }
    assert (rows[0]["predicted_class"], rows[0]["probability"], rows[0]["outside_training_data"]) == (
        "pneumonia",
        0.8,
        False,
    )


def test_predictions_export_needs_an_active_model(store, tmp_path):
    with pytest.raises(MedreviewError, match="no active model"):
        write_export(store, REVIEWER, "predictions", tmp_path / "p.csv", "csv")
    assert not (tmp_path / "p.csv").exists()


def test_coco_export_is_json_only(project, tmp_path):
    store, ids = project
    assert write_export(store, REVIEWER, "coco", tmp_path / "boxes.json", "json") == 1
    coco = json.loads((tmp_path / "boxes.json").read_text())
    assert [image["id"] for image in coco["images"]] == [ids[0]]
    assert coco["annotations"][0]["area"] == 42 and coco["annotations"][0]["attributes"]["reader"] == "local"
    with pytest.raises(MedreviewError, match="COCO exports are JSON only"):
        write_export(store, REVIEWER, "coco", tmp_path / "boxes.csv", "csv")
    assert not (tmp_path / "boxes.csv").exists()


@pytest.mark.parametrize(
    "kind, file_format, message",
    [("everything", "csv", "unknown export 'everything'"), ("labels", "xlsx", "unsupported export format 'xlsx'")],
)
def test_unknown_kind_or_format_is_refused(project, tmp_path, kind, file_format, message):
    store, _ = project
    with pytest.raises(MedreviewError, match=message):
        write_export(store, REVIEWER, kind, tmp_path / "out", file_format)
    assert query(store, LOCAL_ACTOR, action="export").empty


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@"])
def test_csv_cells_starting_a_formula_are_neutralised(project, tmp_path, prefix):
    store, ids = project
    comment = f'{prefix}HYPERLINK("http://evil")'
    save_read(store, LOCAL_ACTOR, ids[2], "normal", comment=comment)
    write_export(store, REVIEWER, "reads", tmp_path / "reads.csv", "csv")
    [row] = [row for row in read_csv(tmp_path / "reads.csv") if row["image_id"] == str(ids[2])]
    assert row["comment"] == "'" + comment
    # Ordinary text is left as it is.
    assert {row["comment"] for row in read_csv(tmp_path / "reads.csv") if row["image_id"] != str(ids[2])} == {""}


def test_a_file_name_starting_a_formula_is_neutralised(store, tmp_path):
    set_setting(store, LOCAL_ACTOR, "deidentify", False)  # names as uploaded
    [result] = ingest_files(store, LOCAL_ACTOR, [InputFile("=cmd.png", png_bytes(950))])
    save_read(store, LOCAL_ACTOR, result.image_id, "normal")
    write_export(store, REVIEWER, "labels", tmp_path / "labels.csv", "csv")
    [row] = read_csv(tmp_path / "labels.csv")
    assert row["display_name"] == "'=cmd.png"


def test_json_exports_keep_the_text_as_written(project, tmp_path):
    store, ids = project
    save_read(store, LOCAL_ACTOR, ids[2], "normal", comment="=1+1")
    write_export(store, REVIEWER, "reads", tmp_path / "reads.json", "json")
    rows = json.loads((tmp_path / "reads.json").read_text())["rows"]
    assert [row["comment"] for row in rows if row["image_id"] == ids[2]] == ["=1+1"]


def test_exports_are_for_reviewers_and_up_and_audited(project, tmp_path):
    store, _ = project
    with pytest.raises(PermissionDeniedError, match="may not export data"):
        write_export(store, ANNOTATOR, "labels", tmp_path / "labels.csv", "csv")
    with pytest.raises(PermissionDeniedError):
        export_data(store, ANNOTATOR, "reads")
    assert not (tmp_path / "labels.csv").exists()
    assert query(store, LOCAL_ACTOR, action="export").empty
    write_export(store, REVIEWER, "labels", tmp_path / "labels.csv", "csv")
    write_export(store, LOCAL_ACTOR, "coco", tmp_path / "boxes.json", "json")
    events = query(store, LOCAL_ACTOR, action="export").iloc[::-1]
    assert [(row.actor, row.object_id, json.loads(row.details)) for row in events.itertuples()] == [
        ("rev", "labels", {"format": "csv", "rows": 2, "original_names": False}),
        ("local", "coco", {"format": "json", "rows": 1, "original_names": False}),
    ]


def test_an_unwritable_path_is_a_plain_error(project, tmp_path):
    store, _ = project
    with pytest.raises(MedreviewError, match="cannot write"):
        write_export(store, REVIEWER, "labels", tmp_path / "no such folder" / "labels.csv", "csv")
    assert query(store, LOCAL_ACTOR, action="export").empty


@pytest.fixture
def exported_reads(project, tmp_path) -> dict:
    store, _ = project
    path = tmp_path / "reads.json"
    write_export(store, LOCAL_ACTOR, "reads", path, "json")
    return json.loads(path.read_text())


@pytest.fixture
def second_store(tmp_path) -> Store:
    """An empty store that received the same uploads."""
    opened = Store.open(make_settings(tmp_path / "second"))
    ingest_files(opened, LOCAL_ACTOR, [InputFile(f"img{n}.png", png_bytes(900 + n)) for n in range(3)])
    yield opened
    opened.close()


def test_a_bad_row_part_way_is_named_and_nothing_is_imported(exported_reads, second_store, tmp_path):
    document = exported_reads
    document["rows"][0].update(reader="newreader", label="new class")
    document["rows"][1]["status"] = "deleted"
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    with pytest.raises(MedreviewError, match=r"^row 2: unknown review state 'deleted'$"):
        import_labels(second_store, LOCAL_ACTOR, path)
    # Row 1 was fine, but the import is all or nothing: no read, reader or class from it.
    assert reads_table(second_store, LOCAL_ACTOR).empty
    assert "new class" not in label_classes(second_store, include_retired=True)
    with second_store.db.read() as session:
        assert session.scalar(select(func.count(User.id)).where(User.username == "newreader")) == 0
        assert session.scalar(select(func.count(Annotation.id))) == 0
    assert query(second_store, LOCAL_ACTOR, action="label.import").empty


def test_importing_is_for_admins_only(exported_reads, second_store, tmp_path):
    path = tmp_path / "reads.json"
    with pytest.raises(PermissionDeniedError, match="may not import labels"):
        import_labels(second_store, REVIEWER, path)
    assert reads_table(second_store, LOCAL_ACTOR).empty


@pytest.mark.parametrize(
    "content, message",
    [
        pytest.param("not json at all", "cannot read", id="not-json"),
        pytest.param(
            json.dumps({"format": "medreview-labels", "kind": "labels", "rows": []}),
            "not a medreview reads export",
            id="labels-export",
        ),
        pytest.param(json.dumps([1, 2, 3]), "not a medreview reads export", id="a-list"),
    ],
)
def test_a_file_that_is_not_a_reads_export_is_refused(second_store, tmp_path, content, message):
    path = tmp_path / "other.json"
    path.write_text(content)
    with pytest.raises(MedreviewError, match=message):
        import_labels(second_store, LOCAL_ACTOR, path)
    assert reads_table(second_store, LOCAL_ACTOR).empty


def test_rows_for_images_not_in_this_store_are_counted_not_imported(exported_reads, tmp_path):
    other = Store.open(make_settings(tmp_path / "other"))
    ingest_files(other, LOCAL_ACTOR, [InputFile("img0.png", png_bytes(900))])  # only the first image
    path = tmp_path / "reads.json"
    counts = import_labels(other, LOCAL_ACTOR, path)
    assert counts == {"reads": 1, "final_labels": 0, "images_missing": 1}
    assert reads_table(other, LOCAL_ACTOR)["label"].tolist() == ["normal"]
    other.close()
