"""The domain a model version was trained on, and whether an image lies outside it.

A classifier gives every input a class and a probability: a chest X-ray model shown an NM bone scan
still calls it "normal 100%". So each version records what its training images were
(:func:`describe_domain`, stored as ``ModelVersion.domain``), and prediction compares every image
with that record (:func:`outside_domain`): an image outside it is flagged "outside the training data"
with the reason, and the pages and exports show the flag instead of a confident class.

The checks read the store's metadata, not the pixels, so they are cheap and exact:

- **modality** (``Series.modality``; "OT" for PNG/JPEG uploads): one the version never saw;
- **greyscale or colour**: a colour image for a version trained on greyscale ones, or the reverse.
  Colour images reach the network as RGB whatever their photometric interpretation (RGB, YBR_*,
  PALETTE COLOR), so among colour images the interpretation makes no difference and is not checked;
- **photometric interpretation** of a greyscale image: MONOCHROME1 for a version trained on
  MONOCHROME2 only (or the reverse). Preprocessing inverts MONOCHROME1, but it comes from other
  acquisition chains (CR plates, some vendors' processing) the version has not seen;
- **size**: rows or columns more than :data:`SIZE_FACTOR` times outside the range of the training
  images (a 512 px crop for a version trained on 2000-3000 px films).

Versions trained before the domain was recorded (migration 0007) have none, and flag nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from medreview.errors import TrainingError
from medreview.store import Store
from medreview.store.models import Image, Series

__all__ = [
    "OUTSIDE_TRAINING_DATA",
    "SIZE_FACTOR",
    "ImageFacts",
    "describe_domain",
    "domain_facts",
    "domain_summary",
    "outside_domain",
]

# What the pages and exports say instead of a class for a flagged image.
OUTSIDE_TRAINING_DATA = "outside the training data"
# An image whose rows or columns lie more than this factor outside the training range is flagged.
SIZE_FACTOR = 2.0
_GREYSCALE = ("MONOCHROME1", "MONOCHROME2")
_QUERY_CHUNK = 500


@dataclass(frozen=True)
class ImageFacts:
    """What the domain check knows of one image (from the store, not the pixels)."""

    modality: str
    photometric_interpretation: str
    rows: int
    columns: int

    @property
    def is_colour(self) -> bool:
        return self.photometric_interpretation not in _GREYSCALE


def describe_domain(images: Sequence[ImageFacts]) -> dict[str, Any]:
    """The domain of a set of training images, as JSON:

    ``modalities``, ``photometric_interpretations`` (sorted lists), ``colour`` (the kinds seen:
    "greyscale" and/or "colour"), ``rows`` and ``columns`` (``[smallest, largest]`` in pixels),
    ``size_factor`` (:data:`SIZE_FACTOR`, the allowance either side of those ranges) and ``images``.
    """
    if not images:
        raise TrainingError("A model's training domain needs at least one image.")
    return {
        "modalities": sorted({image.modality for image in images}),
        "photometric_interpretations": sorted({image.photometric_interpretation for image in images}),
        "colour": sorted({"colour" if image.is_colour else "greyscale" for image in images}),
        "rows": [min(image.rows for image in images), max(image.rows for image in images)],
        "columns": [min(image.columns for image in images), max(image.columns for image in images)],
        "size_factor": SIZE_FACTOR,
        "images": len(images),
    }


def outside_domain(domain: Mapping[str, Any] | None, image: ImageFacts) -> str | None:
    """Why ``image`` lies outside ``domain`` (:func:`describe_domain`), in words, every reason joined
    by "; "; ``None`` when it lies inside, or when the version recorded no domain."""
    if not domain:
        return None
    reasons = []
    if image.modality not in domain["modalities"]:
        reasons.append(f"modality {image.modality}, trained on {_listed(domain['modalities'])}")
    kind = "colour" if image.is_colour else "greyscale"
    photometric = [value for value in domain["photometric_interpretations"] if value in _GREYSCALE]
    if kind not in domain["colour"]:
        reasons.append(f"a {kind} image, trained on {' and '.join(domain['colour'])} images")
    elif not image.is_colour and image.photometric_interpretation not in photometric:
        reasons.append(
            f"photometric interpretation {image.photometric_interpretation}, trained on {_listed(photometric)}"
        )
    factor = float(domain.get("size_factor", SIZE_FACTOR))
    (rows_low, rows_high), (columns_low, columns_high) = domain["rows"], domain["columns"]
    if not (
        rows_low / factor <= image.rows <= rows_high * factor
        and columns_low / factor <= image.columns <= columns_high * factor
    ):
        reasons.append(
            f"{image.columns} x {image.rows} px, trained on {_span(columns_low, columns_high)} x "
            f"{_span(rows_low, rows_high)} px (a factor {factor:g} either way is allowed)"
        )
    return "; ".join(reasons) or None


def domain_summary(domain: Mapping[str, Any] | None) -> str:
    """The domain in a few words for a table: "CR, DX · greyscale (MONOCHROME2) · 1024-3000 x 1024-2500 px"."""
    if not domain:
        return "not recorded"
    kinds = " and ".join(domain["colour"])
    photometric = [value for value in domain["photometric_interpretations"] if value in _GREYSCALE]
    if photometric and "greyscale" in domain["colour"]:
        kinds += f" ({', '.join(photometric)})"
    size = f"{_span(*domain['columns'])} x {_span(*domain['rows'])} px"
    return f"{', '.join(domain['modalities'])} · {kinds} · {size}"


def domain_facts(store: Store, image_ids: Iterable[int]) -> dict[int, ImageFacts]:
    """Image id -> :class:`ImageFacts`, for the ids that exist."""
    wanted = sorted({int(image_id) for image_id in image_ids})
    facts: dict[int, ImageFacts] = {}
    with store.db.read() as session:
        for start in range(0, len(wanted), _QUERY_CHUNK):
            rows = session.execute(
                select(Image.id, Series.modality, Image.photometric_interpretation, Image.rows, Image.columns)
                .join(Series, Series.id == Image.series_id)
                .where(Image.id.in_(wanted[start : start + _QUERY_CHUNK]))
            )
            for image_id, modality, photometric, rows_, columns in rows:
                facts[image_id] = ImageFacts(modality, photometric, int(rows_), int(columns))
    return facts


def _listed(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


def _span(low: int, high: int) -> str:
    return f"{low}" if low == high else f"{low}-{high}"
