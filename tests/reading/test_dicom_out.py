"""DICOM out (medreview.reading.dicomout): reads, final labels and predictions as TID 1500 SR,
evaluation sets as KOS, class codes, stable UIDs, and import of medreview's own SR.
(The send to a real PACS and the round trip through it: tests/test_pacs_send.py.)"""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest
from sqlalchemy import delete, select

from medreview.errors import MedreviewError
from medreview.ingest import InputFile, ingest_files
from medreview.reading.dicomout.codes import PRIVATE_SCHEME, private_code_value
from medreview.reading.dicomout.documents import (
    CLASS,
    NO_DICOM,
    OUTSIDE_TRAINING_DATA,
    PROBABILITY,
    kos_objects,
    sr_objects,
    zip_objects,
)
from medreview.reading.dicomout.parse import content_tree_text
from medreview.reading.evaluation_sets import create_evaluation_set
from medreview.reading.exchange import import_labels
from medreview.reading.reads import LOCAL_ACTOR, reads_table, save_read
from medreview.store import Store
from medreview.store.models import Annotation, Image, Series, Study
from medreview.team.settings import set_setting
from tests.helpers import add_model_version, add_predictions, dicom_bytes, png_bytes

BOX = {"label": "pneumonia", "x": 4.0, "y": 5.0, "width": 6.0, "height": 7.0, "frame": 0}


@pytest.fixture
def labelled(store: Store) -> dict:
    """Two DICOM studies (one CT image each) and a PNG; the first read with a box, a model's
    predictions (the second image outside its training data)."""
    results = ingest_files(
        store,
        LOCAL_ACTOR,
        [
            InputFile("a.dcm", dicom_bytes("P1")),
            InputFile("b.dcm", dicom_bytes("P2")),
            InputFile("c.png", png_bytes(3)),
        ],
    )
    ids = [result.image_id for result in results]
    save_read(store, LOCAL_ACTOR, ids[0], "pneumonia", boxes=[BOX])
    save_read(store, LOCAL_ACTOR, ids[1], "normal")
    save_read(store, LOCAL_ACTOR, ids[2], "normal")
    model_id = add_model_version(store, active=True)
    add_predictions(
        store,
        model_id,
        {ids[0]: {"pneumonia": 0.83, "normal": 0.17}, ids[1]: {"normal": 0.6, "pneumonia": 0.4}},
        outside={ids[1]: "MR: the model saw CT only"},
    )
    return {"ids": ids, "model_id": model_id}


def _uids(store: Store, image_id: int) -> tuple[str, str, str]:
    with store.db.read() as session:
        row = session.execute(
            select(Study.study_uid, Series.series_uid, Image.sop_instance_uid)
            .join(Series, Series.study_id == Study.id)
            .join(Image, Image.series_id == Series.id)
            .where(Image.id == image_id)
        ).one()
    return tuple(row)


def _by_case(objects, results, source: str, image_id: int):
    uid = next(r.sop_instance_uid for r in results if r.source == source and r.case == f"image {image_id}")
    return next(o.dataset for o in objects if o.sop_instance_uid == uid)


def test_a_read_becomes_an_sr_in_the_images_study_with_its_class_box_and_pseudonymous_reader(store, labelled):
    ids = labelled["ids"]
    objects, results = sr_objects(store, LOCAL_ACTOR, ["reads"])

    # The PNG upload has no DICOM identity: a clear per-case result, no SR, no traceback.
    assert [(r.case, r.status, r.reason) for r in results if r.status == "skipped"] == [
        (f"image {ids[2]}", "skipped", NO_DICOM)
    ]
    dataset = _by_case(objects, results, "read", ids[0])
    study_uid, series_uid, sop_uid = _uids(store, ids[0])
    assert dataset.StudyInstanceUID == study_uid
    assert dataset.SeriesInstanceUID != series_uid  # medreview's own series in that study
    assert dataset.Modality == "SR"
    report = hd.sr.Comprehensive3DSR.from_dataset(dataset).content
    group = report.get_image_measurement_groups()[0]
    assert [source.referenced_sop_instance_uid for source in group.source_images] == [sop_uid]
    (evaluation,) = group.get_qualitative_evaluations(CLASS)
    assert (evaluation.value.scheme_designator, evaluation.value.value, evaluation.value.meaning) == (
        PRIVATE_SCHEME,
        private_code_value("pneumonia"),
        "pneumonia",
    )
    (box,) = report.get_planar_roi_measurement_groups()
    assert box.finding_type.meaning == "pneumonia"
    assert box.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    np.testing.assert_array_equal(box.roi.value, [[4, 5], [10, 5], [10, 12], [4, 12], [4, 5]])
    # De-identification is on: the reader is a pseudonym, never the user name.
    observer = report.get_observer_contexts()[0].observer_identifying_attributes
    assert str(observer.name).startswith("reader-") and "local" not in str(observer.name)


def test_private_codes_are_stable_and_an_admins_snomed_code_is_used(store, labelled):
    assert private_code_value("pneumonia") == private_code_value("pneumonia") != private_code_value("normal")
    set_setting(store, LOCAL_ACTOR, "class_codes", {"pneumonia": "SCT:233604007"})
    objects, results = sr_objects(store, LOCAL_ACTOR, ["reads"])
    report = hd.sr.Comprehensive3DSR.from_dataset(_by_case(objects, results, "read", labelled["ids"][0])).content
    (evaluation,) = report.get_image_measurement_groups()[0].get_qualitative_evaluations(CLASS)
    assert (evaluation.value.scheme_designator, evaluation.value.value) == ("SCT", "233604007")
    with pytest.raises(MedreviewError, match="SCHEME:VALUE"):
        set_setting(store, LOCAL_ACTOR, "class_codes", {"pneumonia": "233604007 pneumonia"})


def test_sop_instance_uids_are_stable_until_the_read_changes(store, labelled):
    first = {r.case: r.sop_instance_uid for r in sr_objects(store, LOCAL_ACTOR, ["reads"])[1] if r.status == "written"}
    again = {r.case: r.sop_instance_uid for r in sr_objects(store, LOCAL_ACTOR, ["reads"])[1] if r.status == "written"}
    assert first == again
    save_read(store, LOCAL_ACTOR, labelled["ids"][1], "pneumonia")
    changed = {
        r.case: r.sop_instance_uid for r in sr_objects(store, LOCAL_ACTOR, ["reads"])[1] if r.status == "written"
    }
    image = f"image {labelled['ids'][1]}"
    assert changed[image] != first[image]
    assert {case: uid for case, uid in changed.items() if case != image} == {
        case: uid for case, uid in first.items() if case != image
    }


def test_a_prediction_carries_probability_algorithm_and_the_outside_flag(store, labelled):
    ids = labelled["ids"]
    objects, results = sr_objects(store, LOCAL_ACTOR, ["predictions"])

    inside = hd.sr.Comprehensive3DSR.from_dataset(_by_case(objects, results, "prediction", ids[0])).content
    group = inside.get_image_measurement_groups()[0]
    (probability,) = group.get_measurements(PROBABILITY)
    assert probability.value == pytest.approx(0.83)
    assert probability.unit.value == "{probability}"
    tree = content_tree_text(_by_case(objects, results, "prediction", ids[0]))
    assert "HAS CONCEPT MOD TEXT Algorithm Name (DCM 111001) = medreview small_cnn" in tree
    assert f"HAS CONCEPT MOD TEXT Algorithm Version (DCM 111003) = model version {labelled['model_id']}" in tree
    (flag,) = group.get_qualitative_evaluations(OUTSIDE_TRAINING_DATA)
    assert flag.value.meaning == "No"
    assert group.get_qualitative_evaluations(CLASS)[0].value.meaning == "pneumonia"
    observer = inside.get_observer_contexts()[0]
    assert observer.observer_type.meaning == "Device"

    outside = hd.sr.Comprehensive3DSR.from_dataset(_by_case(objects, results, "prediction", ids[1])).content
    group = outside.get_image_measurement_groups()[0]
    assert group.get_qualitative_evaluations(OUTSIDE_TRAINING_DATA)[0].value.meaning == "Yes"
    # Outside the training data there is no confident call: no class, no probability.
    assert group.get_qualitative_evaluations(CLASS) == [] and group.get_measurements(PROBABILITY) == []


def test_import_labels_of_medreviews_own_sr_recreates_the_reads(store, labelled):
    before = reads_table(store, LOCAL_ACTOR).set_index("image_id")
    objects, _ = sr_objects(store, LOCAL_ACTOR, ["reads"])
    archive = zip_objects(store, LOCAL_ACTOR, objects)
    with store.db.write() as session:
        session.execute(delete(Annotation))

    counts = import_labels(store, LOCAL_ACTOR, archive)

    assert counts["reads"] == 2  # the two DICOM reads (the PNG's read had no SR)
    after = reads_table(store, LOCAL_ACTOR).set_index("image_id")
    for image_id in labelled["ids"][:2]:
        assert after.loc[image_id, "reader"] == "local"  # the pseudonym mapped back under this store's key
        assert after.loc[image_id, "label"] == before.loc[image_id, "label"]
        assert after.loc[image_id, "boxes"] == before.loc[image_id, "boxes"]


def test_an_evaluation_set_gives_one_kos_per_study(store, labelled):
    ids = labelled["ids"]
    create_evaluation_set(store, LOCAL_ACTOR, "held out", ids)

    objects, results = kos_objects(store, LOCAL_ACTOR, "held out")

    assert sorted(r.status for r in results) == ["skipped", "written", "written"]
    assert {str(o.dataset.StudyInstanceUID) for o in objects} == {_uids(store, ids[0])[0], _uids(store, ids[1])[0]}
    for dicom_object in objects:
        assert dicom_object.dataset.Modality == "KO"
        evidence = dicom_object.dataset.CurrentRequestedProcedureEvidenceSequence[0]
        referenced = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert referenced in {_uids(store, image_id)[2] for image_id in ids[:2]}
