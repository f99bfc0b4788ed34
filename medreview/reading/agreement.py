"""Inter-reader agreement: Cohen's kappa per reader pair and Fleiss' kappa across readers.

Pure functions over a pandas DataFrame of reads (one row per image and reader); the caller builds
the frame from the store. Every figure comes with the number of images behind it, and a figure that
is undefined (too few images, no variation) is NaN/None with a plain-words ``reason`` instead of an
exception. The kappas themselves come from well-kept libraries: ``sklearn.metrics.cohen_kappa_score``
and ``statsmodels.stats.inter_rater.fleiss_kappa``; this module only selects the images and builds
their inputs.

Reads come in one of three forms:

- single-choice: columns ``image_id``, ``reader``, ``label`` (a class name). Rows whose ``label`` is
  missing (a read that only carries multi-label classes or boxes) are ignored.
- multi-label: columns ``image_id``, ``reader``, ``labels`` (a list of class names; a box given as a
  mapping with a ``"label"`` key counts as its class being present; a missing list counts as empty).
- binary (long): columns ``image_id``, ``reader``, ``class``, ``present`` (bool), as returned by
  :func:`multilabel_to_binary_reads`.

:func:`cohen_kappa_pairs` and :func:`fleiss_kappa_overall` need the single-choice form. The
``*_per_class`` functions accept any form: single-choice reads are binarised as ``label == class``,
multi-label reads are converted with :func:`multilabel_to_binary_reads`, binary reads are used as
they are. A frame holding more than one form (e.g. both ``label`` and ``labels``) is refused, so that
the choice of which labels are compared is always the caller's.

Bad reads (missing columns, two reads by one reader of one image, a class outside ``classes``) raise
:class:`~medreview.errors.MedreviewError` with a message for the user.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from medreview.errors import MedreviewError

__all__ = [
    "REASON_FEWER_THAN_2_IMAGES",
    "REASON_FEWER_THAN_2_SHARED_IMAGES",
    "REASON_NO_SINGLE_CHOICE_LABELS",
    "REASON_NO_VARIATION_ALL_READERS",
    "REASON_NO_VARIATION_BOTH_READERS",
    "agreement_summary",
    "cohen_kappa_pairs",
    "cohen_kappa_per_class",
    "fleiss_kappa_overall",
    "fleiss_kappa_per_class",
    "multilabel_to_binary_reads",
]

# Reasons shown next to an undefined kappa; "" means the kappa is defined.
REASON_FEWER_THAN_2_SHARED_IMAGES = "fewer than 2 shared images"
REASON_NO_VARIATION_BOTH_READERS = "no variation: both readers used one class"
REASON_FEWER_THAN_2_IMAGES = "fewer than 2 images with the same number of readers"
REASON_NO_VARIATION_ALL_READERS = "no variation: all readers used one class"
REASON_NO_SINGLE_CHOICE_LABELS = "no single-choice labels: the reads are multi-label"

PAIR_COLUMNS = ["reader_a", "reader_b", "kappa", "n_images", "observed_agreement", "reason"]
PAIR_PER_CLASS_COLUMNS = ["class", "reader_a", "reader_b", "kappa", "n_images", "observed_agreement", "reason"]
FLEISS_PER_CLASS_COLUMNS = ["class", "kappa", "n_images", "n_readers_per_image", "reason"]

ReadForm = Literal["single", "multi", "binary"]


# --- input checks ---------------------------------------------------------------------------------


def _class_list(classes: Sequence[str]) -> list[str]:
    class_list = list(classes)
    if not class_list:
        raise MedreviewError("agreement needs at least one label class")
    if len(set(class_list)) != len(class_list):
        raise MedreviewError("the label classes contain a duplicate name")
    return class_list


def _require_columns(reads: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [column for column in columns if column not in reads.columns]
    if missing:
        raise MedreviewError(f"the reads lack the column(s) {', '.join(missing)}")


def _refuse_duplicate_reads(reads: pd.DataFrame, keys: Sequence[str]) -> None:
    duplicated = reads.duplicated(subset=list(keys), keep=False)
    if duplicated.any():
        first = reads.loc[duplicated].iloc[0]
        where = ", ".join(f"{key} {first[key]!r}" for key in keys)
        raise MedreviewError(f"a reader has more than one read of an image ({where}); agreement needs one per reader")


def _refuse_unknown_classes(names: pd.Series | set[Any], class_list: list[str]) -> None:
    known = set(class_list)
    unknown = sorted(str(name) for name in names if name not in known)
    if unknown:
        raise MedreviewError(
            f"reads use class(es) not in the schema: {', '.join(unknown)} "
            "(include retired classes when computing agreement)"
        )


def _read_form(reads: pd.DataFrame) -> ReadForm:
    forms: list[ReadForm] = []
    if "label" in reads.columns:
        forms.append("single")
    if "labels" in reads.columns:
        forms.append("multi")
    if "class" in reads.columns or "present" in reads.columns:
        forms.append("binary")
    if len(forms) != 1:
        raise MedreviewError(
            "the reads must have exactly one of: a 'label' column (single-choice), a 'labels' column "
            "(multi-label), or 'class' and 'present' columns (binary)"
        )
    return forms[0]


def _single_choice_reads(reads: pd.DataFrame, class_list: list[str]) -> pd.DataFrame:
    """Columns image_id, reader, label; rows without a label dropped, one row per (image, reader)."""
    _require_columns(reads, ["image_id", "reader", "label"])
    labelled = reads.loc[reads["label"].notna(), ["image_id", "reader", "label"]]
    _refuse_duplicate_reads(labelled, ["image_id", "reader"])
    _refuse_unknown_classes(set(labelled["label"].unique()), class_list)
    return labelled.reset_index(drop=True)


def _binary_reads(reads: pd.DataFrame, class_list: list[str]) -> pd.DataFrame:
    """Any read form -> columns image_id, reader, class, present (bool)."""
    form = _read_form(reads)
    if form == "multi":
        return multilabel_to_binary_reads(reads, class_list)
    if form == "single":
        single = _single_choice_reads(reads, class_list)
        return pd.DataFrame(
            {
                "image_id": np.repeat(single["image_id"].to_numpy(), len(class_list)),
                "reader": np.repeat(single["reader"].to_numpy(), len(class_list)),
                "class": np.tile(np.array(class_list, dtype=object), len(single)),
                "present": (
                    np.repeat(single["label"].to_numpy(), len(class_list))
                    == np.tile(np.array(class_list, dtype=object), len(single))
                ),
            }
        )
    _require_columns(reads, ["image_id", "reader", "class", "present"])
    binary = reads.loc[:, ["image_id", "reader", "class", "present"]]
    if binary["present"].isna().any():
        raise MedreviewError("the 'present' column of the reads has missing values")
    _refuse_duplicate_reads(binary, ["image_id", "reader", "class"])
    _refuse_unknown_classes(set(binary["class"].unique()), class_list)
    return binary.assign(present=binary["present"].astype(bool)).reset_index(drop=True)


def _multilabel_names(value: Any) -> set[str]:
    """Class names of one multi-label read: a list of names and/or box mappings with a "label"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return set()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray | set | frozenset):
        raise MedreviewError(f"a multi-label read must be a list of class names, not {value!r}")
    names: set[str] = set()
    for entry in value:
        if isinstance(entry, Mapping):
            if "label" not in entry:
                raise MedreviewError(f"a box in a multi-label read has no 'label': {dict(entry)!r}")
            names.add(entry["label"])
        else:
            names.add(entry)
    return names


# --- Cohen's kappa ----------------------------------------------------------------------------------


def _cohen(codes_a: np.ndarray, codes_b: np.ndarray, n_categories: int) -> tuple[float, float, str]:
    """(kappa, observed agreement, reason) of two aligned (n_images,) int vectors of category codes
    (0 .. n_categories - 1); kappa NaN when undefined."""
    n_images = len(codes_a)
    observed = float(np.mean(codes_a == codes_b)) if n_images else float("nan")
    if n_images < 2:
        return float("nan"), observed, REASON_FEWER_THAN_2_SHARED_IMAGES
    if len(np.union1d(codes_a, codes_b)) == 1:
        # Both readers gave every image the same one class: expected agreement is 1 and
        # kappa = (p_o - p_e) / (1 - p_e) divides by zero (sklearn would return NaN with a warning).
        return float("nan"), observed, REASON_NO_VARIATION_BOTH_READERS
    # Imported here: scikit-learn and statsmodels take 1.4 s to import, which the Label and Review
    # pages (they import the review services) would pay on opening, agreement shown or not.
    from sklearn import exceptions as sklearn_exceptions
    from sklearn import metrics as sklearn_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn_exceptions.UndefinedMetricWarning)
        kappa = float(sklearn_metrics.cohen_kappa_score(codes_a, codes_b, labels=np.arange(n_categories)))
    return kappa, observed, ("" if np.isfinite(kappa) else "undefined")


def _pair_rows(
    long_reads: pd.DataFrame, value_column: str, categories: list[Any], readers: list[Hashable]
) -> list[dict[str, Any]]:
    """One row per pair of ``readers`` (reader_a < reader_b) over the images both read."""
    # Category codes, not the values: sklearn compares ints far faster than Python objects
    # (class names, or bools for the per-class figures), which counts at tens of thousands of reads.
    codes = pd.Categorical(long_reads[value_column], categories=categories).codes
    # (n_images, n_readers) float: the code of the reader's value for the image, NaN where not read.
    by_image = (
        long_reads.assign(code=codes).pivot(index="image_id", columns="reader", values="code").reindex(columns=readers)
    )
    rows = []
    for reader_a, reader_b in itertools.combinations(readers, 2):
        shared = by_image[[reader_a, reader_b]].dropna().to_numpy(dtype=np.int64)  # (n_shared, 2)
        kappa, observed, reason = _cohen(shared[:, 0], shared[:, 1], len(categories))
        rows.append(
            {
                "reader_a": reader_a,
                "reader_b": reader_b,
                "kappa": kappa,
                "n_images": len(shared),
                "observed_agreement": observed,
                "reason": reason,
            }
        )
    return rows


def cohen_kappa_pairs(reads: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Cohen's kappa of every reader pair over the images both read (single-choice reads).

    Returns one row per pair with ``reader_a < reader_b`` (every pair of readers in ``reads``,
    including pairs that share no image) and columns
    ``reader_a, reader_b, kappa, n_images, observed_agreement, reason``. ``n_images`` counts the
    images both readers labelled; an image read by one of them only contributes nothing. ``kappa``
    (``sklearn.metrics.cohen_kappa_score`` with ``labels=classes``) is NaN with a ``reason`` when it
    is undefined (fewer than 2 shared images, or both readers used one and the same class);
    otherwise ``reason`` is "".
    """
    class_list = _class_list(classes)
    single = _single_choice_reads(reads, class_list)
    readers = sorted(single["reader"].unique())
    rows = _pair_rows(single, "label", class_list, readers)
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def cohen_kappa_per_class(reads: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Cohen's kappa per class and reader pair on binarised reads (class present / absent).

    ``reads`` may be single-choice (binarised as ``label == class``), multi-label (a ``labels``
    list) or binary (``class`` and ``present`` columns); see the module docstring. Returns columns
    ``class, reader_a, reader_b, kappa, n_images, observed_agreement, reason``, classes in the order
    given and, within a class, pairs as in :func:`cohen_kappa_pairs`.
    """
    class_list = _class_list(classes)
    binary = _binary_reads(reads, class_list)
    readers = sorted(binary["reader"].unique())
    rows = []
    for class_name in class_list:
        class_reads = binary.loc[binary["class"] == class_name]
        class_rows = _pair_rows(class_reads, "present", [False, True], readers)
        rows.extend({"class": class_name, **row} for row in class_rows)
    return pd.DataFrame(rows, columns=PAIR_PER_CLASS_COLUMNS)


# --- Fleiss' kappa ----------------------------------------------------------------------------------


def _check_min_readers(min_readers: int) -> None:
    if min_readers < 2:
        raise ValueError(f"min_readers must be at least 2 (agreement needs two readers), got {min_readers}")


def _fleiss_images(long_reads: pd.DataFrame, min_readers: int) -> tuple[pd.Index, int | None, int]:
    """(images used, readers per image k, images left out) for Fleiss' kappa.

    Fleiss' kappa needs the same number of readers for every image (not the same readers). Among
    the images read by at least ``min_readers`` readers, k is the most common number of readers
    (ties: the larger k, more readers per image); only images with exactly k readers are used.
    """
    readers_per_image = long_reads.groupby("image_id")["reader"].nunique()
    eligible = readers_per_image[readers_per_image >= min_readers]
    if eligible.empty:
        return pd.Index([]), None, 0
    images_per_count = eligible.value_counts()
    most_images = images_per_count.max()
    readers_per_image_used = int(max(count for count, n in images_per_count.items() if n == most_images))
    used = eligible.index[eligible == readers_per_image_used]
    return used, readers_per_image_used, len(eligible) - len(used)


def _fleiss(counts: np.ndarray) -> tuple[float, str]:
    """(kappa, reason) of a (n_images, n_categories) int table of how many readers chose each category."""
    if counts.shape[0] < 2:
        return float("nan"), REASON_FEWER_THAN_2_IMAGES
    category_totals = counts.sum(axis=0)
    if (category_totals == category_totals.sum()).any():
        # Every read is the same category: chance agreement is 1 and kappa divides by zero.
        return float("nan"), REASON_NO_VARIATION_ALL_READERS
    from statsmodels.stats import inter_rater  # imported here, as scikit-learn in _cohen

    kappa = float(inter_rater.fleiss_kappa(counts, method="fleiss"))
    return kappa, ("" if np.isfinite(kappa) else "undefined")


def _no_images_reason(min_readers: int) -> str:
    return f"no image read by at least {min_readers} readers"


def fleiss_kappa_overall(reads: pd.DataFrame, classes: Sequence[str], min_readers: int = 2) -> dict[str, Any]:
    """Fleiss' kappa across readers over the images read by several readers (single-choice reads).

    Fleiss' kappa needs the same number of readers per image, so it is computed over the images
    with exactly k readers, k being the most common number of readers among the images read by at
    least ``min_readers`` readers (ties: the larger k). Images with another number of readers are
    left out and counted in ``n_images_excluded``.

    Returns ``{"kappa": float | None, "n_images": int, "n_readers_per_image": k (int, "" when no
    image qualifies), "n_images_excluded": int, "reason": str}``; ``kappa`` is None with a
    ``reason`` when undefined (no image with enough readers, fewer than 2 images, every read the
    same class), otherwise ``reason`` is "". The value is
    ``statsmodels.stats.inter_rater.fleiss_kappa`` of the image x class count table.
    """
    _check_min_readers(min_readers)
    class_list = _class_list(classes)
    single = _single_choice_reads(reads, class_list)
    images, readers_per_image, n_excluded = _fleiss_images(single, min_readers)
    if readers_per_image is None:
        return {
            "kappa": None,
            "n_images": 0,
            "n_readers_per_image": "",
            "n_images_excluded": 0,
            "reason": _no_images_reason(min_readers),
        }
    used = single.loc[single["image_id"].isin(images)]
    # (n_images, n_classes) int: how many readers gave each class to each image; rows sum to k.
    counts = (
        used.groupby(["image_id", "label"]).size().unstack(fill_value=0).reindex(columns=class_list, fill_value=0)
    ).to_numpy(dtype=np.int64)
    kappa, reason = _fleiss(counts)
    return {
        "kappa": kappa if not reason else None,
        "n_images": len(images),
        "n_readers_per_image": readers_per_image,
        "n_images_excluded": n_excluded,
        "reason": reason,
    }


def fleiss_kappa_per_class(reads: pd.DataFrame, classes: Sequence[str], min_readers: int = 2) -> pd.DataFrame:
    """Fleiss' kappa per class on binarised reads (class present / absent).

    ``reads`` may be in any form (see the module docstring and :func:`cohen_kappa_per_class`). The
    images are chosen per class as in :func:`fleiss_kappa_overall`. Returns columns
    ``class, kappa, n_images, n_readers_per_image, reason``: ``kappa`` NaN with a ``reason`` when
    undefined, ``n_readers_per_image`` (nullable Int64) NA when no image qualifies.
    """
    _check_min_readers(min_readers)
    class_list = _class_list(classes)
    binary = _binary_reads(reads, class_list)
    rows = []
    for class_name in class_list:
        class_reads = binary.loc[binary["class"] == class_name]
        images, readers_per_image, _ = _fleiss_images(class_reads, min_readers)
        if readers_per_image is None:
            rows.append(
                {
                    "class": class_name,
                    "kappa": float("nan"),
                    "n_images": 0,
                    "n_readers_per_image": pd.NA,
                    "reason": _no_images_reason(min_readers),
                }
            )
            continue
        # (n_images,) int: how many of the k readers marked the class present.
        n_present = class_reads.loc[class_reads["image_id"].isin(images)].groupby("image_id")["present"].sum()
        present = n_present.to_numpy(dtype=np.int64)
        counts = np.column_stack([present, readers_per_image - present])  # (n_images, 2): present, absent
        kappa, reason = _fleiss(counts)
        rows.append(
            {
                "class": class_name,
                "kappa": kappa,
                "n_images": len(images),
                "n_readers_per_image": readers_per_image,
                "reason": reason,
            }
        )
    frame = pd.DataFrame(rows, columns=FLEISS_PER_CLASS_COLUMNS)
    return frame.astype({"kappa": float, "n_images": int, "n_readers_per_image": "Int64"})


# --- multi-label reads and the summary --------------------------------------------------------------


def multilabel_to_binary_reads(reads: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Multi-label reads -> one row per (image, reader, class) with ``present`` (bool).

    ``reads`` has columns ``image_id``, ``reader``, ``labels`` (a list of class names; a box, a
    mapping with a ``"label"`` key, marks its class present; a missing list means nothing marked).
    Every read yields one row per class in ``classes``, so a class the reader did not mark is
    ``present=False``. Returns columns ``image_id, reader, class, present``; the result is
    accepted by the ``*_per_class`` functions.
    """
    class_list = _class_list(classes)
    _require_columns(reads, ["image_id", "reader", "labels"])
    _refuse_duplicate_reads(reads, ["image_id", "reader"])
    marked_per_read = [_multilabel_names(value) for value in reads["labels"]]
    _refuse_unknown_classes(set().union(*marked_per_read), class_list)
    rows = [
        {"image_id": image_id, "reader": reader, "class": class_name, "present": class_name in marked}
        for image_id, reader, marked in zip(reads["image_id"], reads["reader"], marked_per_read, strict=True)
        for class_name in class_list
    ]
    frame = pd.DataFrame(rows, columns=["image_id", "reader", "class", "present"])
    return frame.astype({"present": bool})


def agreement_summary(
    reads: pd.DataFrame,
    classes: Sequence[str],
    item_scopes: Mapping[Any, str] | None = None,
    class_scopes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every agreement figure for one set of reads.

    ``item_scopes`` (item -> "study", "series" or "image") and ``class_scopes`` (class -> its scope):
    when both are given, a class's own figures count only the items of its scope (a study class's
    kappa counts studies, never the images read with image classes, which would all read "absent").

    Returns ``{"pairs", "pairs_per_class", "fleiss", "fleiss_per_class",
    "images_with_multiple_readers"}`` from :func:`cohen_kappa_pairs`,
    :func:`cohen_kappa_per_class`, :func:`fleiss_kappa_overall` and :func:`fleiss_kappa_per_class`
    (``min_readers=2``). Multi-label or binary reads have no single-choice label: ``pairs`` is then
    empty and ``fleiss`` carries a reason, while the per-class figures are computed.
    ``images_with_multiple_readers`` counts the images read by at least two readers.
    """
    class_list = _class_list(classes)
    binary = _binary_reads(reads, class_list)
    readers_per_image = binary.groupby("image_id")["reader"].nunique()
    if item_scopes is not None and class_scopes is not None:
        own_scope = binary["image_id"].map(item_scopes) == binary["class"].map(class_scopes)
        binary = binary.loc[own_scope].reset_index(drop=True)
    if _read_form(reads) == "single":
        pairs = cohen_kappa_pairs(reads, class_list)
        fleiss = fleiss_kappa_overall(reads, class_list)
    else:
        pairs = pd.DataFrame(columns=PAIR_COLUMNS)
        fleiss = {
            "kappa": None,
            "n_images": 0,
            "n_readers_per_image": "",
            "n_images_excluded": 0,
            "reason": REASON_NO_SINGLE_CHOICE_LABELS,
        }
    return {
        "pairs": pairs,
        "pairs_per_class": cohen_kappa_per_class(binary, class_list),
        "fleiss": fleiss,
        "fleiss_per_class": fleiss_kappa_per_class(binary, class_list),
        "images_with_multiple_readers": int((readers_per_image >= 2).sum()),
    }
