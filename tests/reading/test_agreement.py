"""Inter-reader agreement: kappas checked against textbook worked examples and hand computations."""

from __future__ import annotations

import math
import warnings

import pandas as pd
import pytest

from medreview.errors import MedreviewError
from medreview.reading.agreement import (
    REASON_FEWER_THAN_2_IMAGES,
    REASON_FEWER_THAN_2_SHARED_IMAGES,
    REASON_NO_SINGLE_CHOICE_LABELS,
    REASON_NO_VARIATION_ALL_READERS,
    REASON_NO_VARIATION_BOTH_READERS,
    agreement_summary,
    cohen_kappa_pairs,
    cohen_kappa_per_class,
    fleiss_kappa_overall,
    fleiss_kappa_per_class,
    multilabel_to_binary_reads,
)


def single_choice_reads(labels_by_image: dict[str, dict[str, str]]) -> pd.DataFrame:
    """{image_id: {reader: label}} -> reads frame with columns image_id, reader, label."""
    rows = [
        {"image_id": image_id, "reader": reader, "label": label}
        for image_id, labels in labels_by_image.items()
        for reader, label in labels.items()
    ]
    return pd.DataFrame(rows, columns=["image_id", "reader", "label"])


# Hand-computed example used by several tests: readers r1, r2, classes normal / pneumonia / effusion.
#   image  r1         r2
#   i1     normal     normal
#   i2     pneumonia  pneumonia
#   i3     pneumonia  effusion
#   i4     effusion   effusion
#   i5     normal     -          (read by r1 only: contributes nothing)
CLASSES = ["normal", "pneumonia", "effusion"]
HAND_EXAMPLE = {
    "i1": {"r1": "normal", "r2": "normal"},
    "i2": {"r1": "pneumonia", "r2": "pneumonia"},
    "i3": {"r1": "pneumonia", "r2": "effusion"},
    "i4": {"r1": "effusion", "r2": "effusion"},
    "i5": {"r1": "normal"},
}


def row_for_class(frame: pd.DataFrame, class_name: str) -> pd.Series:
    rows = frame.loc[frame["class"] == class_name]
    assert len(rows) == 1
    return rows.iloc[0]


# --- Cohen's kappa ----------------------------------------------------------------------------------


def test_cohen_kappa_matches_wikipedia_worked_example() -> None:
    # Source: Wikipedia, "Cohen's kappa", section "Examples" / "Simple example": 50 grant proposals,
    # both readers "yes" 20, A yes / B no 5, A no / B yes 10, both "no" 15.
    # p_o = (20 + 15) / 50 = 0.7; p_yes = 0.5 * 0.6 = 0.3, p_no = 0.5 * 0.4 = 0.2, p_e = 0.5;
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    cells = [("yes", "yes", 20), ("yes", "no", 5), ("no", "yes", 10), ("no", "no", 15)]
    labels_by_image: dict[str, dict[str, str]] = {}
    for label_a, label_b, count in cells:
        for _ in range(count):
            labels_by_image[f"proposal{len(labels_by_image):02d}"] = {"A": label_a, "B": label_b}

    pairs = cohen_kappa_pairs(single_choice_reads(labels_by_image), ["yes", "no"])

    assert len(pairs) == 1
    pair = pairs.iloc[0]
    assert (pair["reader_a"], pair["reader_b"]) == ("A", "B")
    assert pair["kappa"] == pytest.approx(0.4)
    assert pair["observed_agreement"] == pytest.approx(0.7)
    assert pair["n_images"] == 50
    assert pair["reason"] == ""


def test_cohen_kappa_counts_only_images_both_readers_read() -> None:
    # Over the 4 shared images (i5 is r1's alone): r1 = N P P E, r2 = N P E E.
    # p_o = 3/4; p_e = N 1/4*1/4 + P 2/4*1/4 + E 1/4*2/4 = 5/16; kappa = (12/16 - 5/16) / (11/16) = 7/11.
    pairs = cohen_kappa_pairs(single_choice_reads(HAND_EXAMPLE), CLASSES)

    pair = pairs.iloc[0]
    assert pair["n_images"] == 4
    assert pair["observed_agreement"] == pytest.approx(0.75)
    assert pair["kappa"] == pytest.approx(7 / 11)


def test_three_readers_give_three_pairs_in_sorted_order() -> None:
    labels_by_image = {
        "i1": {"carol": "normal", "alice": "normal", "bob": "pneumonia"},
        "i2": {"carol": "pneumonia", "alice": "pneumonia", "bob": "pneumonia"},
        "i3": {"alice": "normal", "bob": "normal"},
    }

    pairs = cohen_kappa_pairs(single_choice_reads(labels_by_image), CLASSES)

    assert list(zip(pairs["reader_a"], pairs["reader_b"], strict=True)) == [
        ("alice", "bob"),
        ("alice", "carol"),
        ("bob", "carol"),
    ]
    assert list(pairs["n_images"]) == [3, 2, 2]
    # alice and carol agree on both shared images, each using two classes: kappa 1.
    assert pairs.iloc[1]["kappa"] == pytest.approx(1.0)


def test_undefined_cohen_kappa_gives_a_reason_instead_of_raising() -> None:
    labels_by_image = {
        # r1 and r2 share two images, both "normal": expected agreement 1, kappa undefined.
        "i1": {"r1": "normal", "r2": "normal", "r3": "pneumonia"},
        "i2": {"r1": "normal", "r2": "normal"},
        # r4 shares no image with anyone but r3, and only one with r3.
        "i3": {"r3": "effusion", "r4": "effusion"},
    }

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no UndefinedMetricWarning or division warning leaks out
        pairs = cohen_kappa_pairs(single_choice_reads(labels_by_image), CLASSES)

    by_pair = {(row.reader_a, row.reader_b): row for row in pairs.itertuples()}
    assert math.isnan(by_pair["r1", "r2"].kappa)
    assert by_pair["r1", "r2"].reason == REASON_NO_VARIATION_BOTH_READERS
    assert by_pair["r1", "r2"].n_images == 2
    assert by_pair["r1", "r2"].observed_agreement == pytest.approx(1.0)
    assert by_pair["r1", "r3"].reason == REASON_FEWER_THAN_2_SHARED_IMAGES
    assert by_pair["r1", "r3"].n_images == 1
    assert math.isnan(by_pair["r1", "r3"].kappa)
    assert by_pair["r1", "r4"].n_images == 0
    assert by_pair["r1", "r4"].reason == REASON_FEWER_THAN_2_SHARED_IMAGES


def test_readers_using_different_single_classes_have_kappa_zero_not_undefined() -> None:
    # r1 always "normal", r2 always "pneumonia": p_o = 0, p_e = 0, kappa = 0 (defined).
    labels_by_image = {f"i{index}": {"r1": "normal", "r2": "pneumonia"} for index in range(3)}

    pair = cohen_kappa_pairs(single_choice_reads(labels_by_image), CLASSES).iloc[0]

    assert pair["kappa"] == pytest.approx(0.0)
    assert pair["reason"] == ""


def test_reads_without_a_single_choice_label_are_ignored() -> None:
    reads = single_choice_reads(HAND_EXAMPLE)
    reads.loc[len(reads)] = {"image_id": "i5", "reader": "r2", "label": None}

    pair = cohen_kappa_pairs(reads, CLASSES).iloc[0]

    assert pair["n_images"] == 4


def test_cohen_kappa_per_class_binarises_each_class() -> None:
    # Shared images i1..i4, binarised "label == class":
    #   normal:    r1 T F F F, r2 T F F F -> p_o 1, p_e (1/4)^2 + (3/4)^2 = 10/16, kappa 1.
    #   pneumonia: r1 F T T F, r2 F T F F -> p_o 3/4, p_e 2/4*1/4 + 2/4*3/4 = 1/2, kappa 1/2.
    #   effusion:  r1 F F F T, r2 F F T T -> p_o 3/4, p_e 1/4*2/4 + 3/4*2/4 = 1/2, kappa 1/2.
    per_class = cohen_kappa_per_class(single_choice_reads(HAND_EXAMPLE), CLASSES)

    assert list(per_class["class"]) == CLASSES
    assert list(per_class.columns[:6]) == ["class", "reader_a", "reader_b", "kappa", "n_images", "observed_agreement"]
    assert row_for_class(per_class, "normal")["kappa"] == pytest.approx(1.0)
    assert row_for_class(per_class, "pneumonia")["kappa"] == pytest.approx(0.5)
    assert row_for_class(per_class, "pneumonia")["observed_agreement"] == pytest.approx(0.75)
    assert row_for_class(per_class, "effusion")["kappa"] == pytest.approx(0.5)
    assert set(per_class["n_images"]) == {4}


def test_per_class_kappa_of_a_class_nobody_used_is_undefined() -> None:
    labels_by_image = {"i1": {"r1": "normal", "r2": "pneumonia"}, "i2": {"r1": "pneumonia", "r2": "pneumonia"}}

    per_class = cohen_kappa_per_class(single_choice_reads(labels_by_image), CLASSES)

    effusion = row_for_class(per_class, "effusion")
    assert math.isnan(effusion["kappa"])
    assert effusion["reason"] == REASON_NO_VARIATION_BOTH_READERS


# --- Fleiss' kappa ----------------------------------------------------------------------------------

# Source: Wikipedia, "Fleiss' kappa", "Worked example": 10 subjects, 14 raters, 5 categories; each row
# gives how many of the 14 raters put the subject in each category. P-bar = 0.378, P-bar_e = 0.213,
# kappa = (0.378 - 0.213) / (1 - 0.213) = 0.210.
WIKIPEDIA_FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]
WIKIPEDIA_FLEISS_CATEGORIES = ["1", "2", "3", "4", "5"]


def wikipedia_fleiss_reads() -> pd.DataFrame:
    """14 pseudo-readers per subject, assigned so the per-subject category counts match the table."""
    labels_by_image = {}
    for subject, counts in enumerate(WIKIPEDIA_FLEISS_TABLE, start=1):
        labels = [
            category for category, count in zip(WIKIPEDIA_FLEISS_CATEGORIES, counts, strict=True) for _ in range(count)
        ]
        assert len(labels) == 14
        labels_by_image[f"subject{subject:02d}"] = {f"rater{index:02d}": label for index, label in enumerate(labels)}
    return single_choice_reads(labels_by_image)


def test_fleiss_kappa_matches_wikipedia_worked_example() -> None:
    fleiss = fleiss_kappa_overall(wikipedia_fleiss_reads(), WIKIPEDIA_FLEISS_CATEGORIES)

    assert round(fleiss["kappa"], 3) == 0.210
    assert fleiss["n_images"] == 10
    assert fleiss["n_readers_per_image"] == 14
    assert fleiss["n_images_excluded"] == 0
    assert fleiss["reason"] == ""


def test_fleiss_kappa_per_class_binarises_and_skips_single_reads() -> None:
    # Images with 2 readers: i1..i4 (i5 has one reader and is left out). "pneumonia" present counts
    # per image: 0, 2, 1, 0 -> table (present, absent) = (0,2) (2,0) (1,1) (0,2).
    # P_i = (sum n_ij^2 - 2) / 2 = 1, 1, 0, 1 -> P-bar = 3/4; p_present = 3/8, p_absent = 5/8,
    # P_e = 9/64 + 25/64 = 17/32; kappa = (3/4 - 17/32) / (1 - 17/32) = 7/15.
    per_class = fleiss_kappa_per_class(single_choice_reads(HAND_EXAMPLE), CLASSES)

    pneumonia = row_for_class(per_class, "pneumonia")
    assert pneumonia["kappa"] == pytest.approx(7 / 15)
    assert pneumonia["n_images"] == 4
    assert pneumonia["n_readers_per_image"] == 2
    assert list(per_class["class"]) == CLASSES


def test_fleiss_kappa_uses_images_with_the_most_common_number_of_readers() -> None:
    labels_by_image = {
        "i1": {"r1": "normal", "r2": "normal", "r3": "normal"},
        "i2": {"r1": "pneumonia", "r2": "pneumonia", "r3": "normal"},
        "i3": {"r1": "effusion", "r2": "effusion", "r3": "effusion"},
        "i4": {"r1": "normal", "r2": "pneumonia"},  # 2 readers: not the most common count, left out
        "i5": {"r1": "normal"},  # 1 reader: below min_readers
    }

    fleiss = fleiss_kappa_overall(single_choice_reads(labels_by_image), CLASSES)

    assert fleiss["n_readers_per_image"] == 3
    assert fleiss["n_images"] == 3
    assert fleiss["n_images_excluded"] == 1
    assert fleiss["kappa"] is not None


def test_min_readers_raises_the_bar_for_fleiss() -> None:
    labels_by_image = {
        "i1": {"r1": "normal", "r2": "normal"},
        "i2": {"r1": "pneumonia", "r2": "normal"},
        "i3": {"r1": "pneumonia", "r2": "pneumonia"},
    }

    fleiss = fleiss_kappa_overall(single_choice_reads(labels_by_image), CLASSES, min_readers=3)

    assert fleiss["kappa"] is None
    assert fleiss["n_images"] == 0
    assert fleiss["reason"] == "no image read by at least 3 readers"
    with pytest.raises(ValueError, match="min_readers"):
        fleiss_kappa_overall(single_choice_reads(labels_by_image), CLASSES, min_readers=1)


def test_undefined_fleiss_kappa_gives_a_reason_instead_of_raising() -> None:
    all_normal = {f"i{index}": {"r1": "normal", "r2": "normal", "r3": "normal"} for index in range(3)}
    one_image = {"i1": {"r1": "normal", "r2": "pneumonia"}, "i2": {"r1": "normal"}}

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # statsmodels' divide-by-zero warning must not be reached
        no_variation = fleiss_kappa_overall(single_choice_reads(all_normal), CLASSES)
        too_few = fleiss_kappa_overall(single_choice_reads(one_image), CLASSES)
        per_class = fleiss_kappa_per_class(single_choice_reads(all_normal), CLASSES)

    assert no_variation["kappa"] is None
    assert no_variation["reason"] == REASON_NO_VARIATION_ALL_READERS
    assert no_variation["n_images"] == 3
    assert too_few["kappa"] is None
    assert too_few["reason"] == REASON_FEWER_THAN_2_IMAGES
    assert too_few["n_images"] == 1
    assert set(per_class["reason"]) == {REASON_NO_VARIATION_ALL_READERS}
    assert per_class["kappa"].isna().all()


# --- multi-label reads ------------------------------------------------------------------------------


def test_multilabel_reads_become_one_binary_row_per_class() -> None:
    reads = pd.DataFrame(
        {
            "image_id": ["i1", "i1"],
            "reader": ["r1", "r2"],
            # r2 marks effusion with a box: a box counts as its class present.
            "labels": [
                ["pneumonia", "effusion"],
                [{"label": "effusion", "x": 1.0, "y": 2.0, "width": 3.0, "height": 4.0}],
            ],
        }
    )

    binary = multilabel_to_binary_reads(reads, CLASSES)

    assert list(binary.columns) == ["image_id", "reader", "class", "present"]
    assert len(binary) == 2 * len(CLASSES)
    present = dict(zip(zip(binary["reader"], binary["class"], strict=True), binary["present"], strict=True))
    assert present == {
        ("r1", "normal"): False,
        ("r1", "pneumonia"): True,
        ("r1", "effusion"): True,
        ("r2", "normal"): False,
        ("r2", "pneumonia"): False,
        ("r2", "effusion"): True,
    }


def test_per_class_functions_accept_multilabel_and_binary_reads() -> None:
    # The hand example as one-element label lists gives the same per-class figures as single-choice.
    multilabel = single_choice_reads(HAND_EXAMPLE).rename(columns={"label": "labels"})
    multilabel["labels"] = [[label] for label in multilabel["labels"]]
    expected_cohen = cohen_kappa_per_class(single_choice_reads(HAND_EXAMPLE), CLASSES)
    expected_fleiss = fleiss_kappa_per_class(single_choice_reads(HAND_EXAMPLE), CLASSES)

    for reads in (multilabel, multilabel_to_binary_reads(multilabel, CLASSES)):
        pd.testing.assert_frame_equal(cohen_kappa_per_class(reads, CLASSES), expected_cohen)
        pd.testing.assert_frame_equal(fleiss_kappa_per_class(reads, CLASSES), expected_fleiss)


def test_multilabel_per_class_kappa_by_hand() -> None:
    # Three images, both readers. "effusion" marked: r1 T T F, r2 T F F.
    # p_o = 2/3; p_e = (2/3)(1/3) + (1/3)(2/3) = 4/9; kappa = (2/3 - 4/9) / (5/9) = 2/5.
    reads = pd.DataFrame(
        {
            "image_id": ["i1", "i1", "i2", "i2", "i3", "i3"],
            "reader": ["r1", "r2"] * 3,
            "labels": [["pneumonia", "effusion"], ["effusion"], ["effusion"], ["pneumonia"], [], None],
        }
    )

    per_class = cohen_kappa_per_class(reads, CLASSES)

    assert row_for_class(per_class, "effusion")["kappa"] == pytest.approx(0.4)
    assert row_for_class(per_class, "effusion")["n_images"] == 3


# --- bad input and the summary ----------------------------------------------------------------------


def test_bad_reads_raise_medreview_error() -> None:
    duplicate = single_choice_reads(HAND_EXAMPLE)
    duplicate.loc[len(duplicate)] = {"image_id": "i1", "reader": "r1", "label": "pneumonia"}
    with pytest.raises(MedreviewError, match="more than one read"):
        cohen_kappa_pairs(duplicate, CLASSES)
    with pytest.raises(MedreviewError, match="not in the schema: fracture"):
        cohen_kappa_pairs(single_choice_reads({"i1": {"r1": "fracture", "r2": "normal"}}), CLASSES)
    with pytest.raises(MedreviewError, match="lack the column"):
        cohen_kappa_pairs(pd.DataFrame({"image_id": ["i1"], "reader": ["r1"]}), CLASSES)
    with pytest.raises(MedreviewError, match="exactly one of"):
        cohen_kappa_per_class(single_choice_reads(HAND_EXAMPLE).assign(labels=[[]] * 9), CLASSES)
    with pytest.raises(MedreviewError, match="at least one label class"):
        fleiss_kappa_overall(single_choice_reads(HAND_EXAMPLE), [])


def test_agreement_summary_of_single_choice_reads() -> None:
    summary = agreement_summary(single_choice_reads(HAND_EXAMPLE), CLASSES)

    assert set(summary) == {"pairs", "pairs_per_class", "fleiss", "fleiss_per_class", "images_with_multiple_readers"}
    assert summary["images_with_multiple_readers"] == 4
    assert summary["pairs"].iloc[0]["kappa"] == pytest.approx(7 / 11)
    assert len(summary["pairs_per_class"]) == len(CLASSES)
    assert summary["fleiss"]["n_images"] == 4
    assert row_for_class(summary["fleiss_per_class"], "pneumonia")["kappa"] == pytest.approx(7 / 15)


def test_agreement_summary_of_multilabel_reads_has_per_class_figures_only() -> None:
    multilabel = single_choice_reads(HAND_EXAMPLE).rename(columns={"label": "labels"})
    multilabel["labels"] = [[label] for label in multilabel["labels"]]

    summary = agreement_summary(multilabel, CLASSES)

    assert summary["pairs"].empty
    assert summary["fleiss"]["kappa"] is None
    assert summary["fleiss"]["reason"] == REASON_NO_SINGLE_CHOICE_LABELS
    assert row_for_class(summary["pairs_per_class"], "pneumonia")["kappa"] == pytest.approx(0.5)
    assert summary["images_with_multiple_readers"] == 4
