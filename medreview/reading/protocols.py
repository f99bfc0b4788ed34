"""Hanging protocols: rules that fill a grid of viewports from a study (and the patient's prior).

A protocol is plain JSON, stored as the project setting ``hanging_protocols`` and edited by admins
on Settings::

    {"name": "MR brain", "modality": ["MR"], "layout": "2x2",
     "viewports": [{"description": "T1", "orientation": "axial"}, ...]}

The study matches a protocol when it holds a series of one of the protocol's modalities; each
viewport then takes the series whose facts (:class:`SeriesFacts`) meet all of its criteria:
``modality``, ``description`` (a case-insensitive regular expression), ``orientation``,
``laterality`` and ``view_position``; ``preset`` names the window it opens with, ``mirror`` flips it
left to right, ``prior`` takes the series from the patient's most recent earlier study instead.
Protocols are tried in order; the first that fills at least one viewport of the current study
hangs it. A study no protocol matches opens 1x1 with its first series: never an error.

Why the description criterion also sees the MR weighting: de-identification replaces the free-text
Series Description with words built from coded values ("brain axial 5 mm", see
:func:`medreview.ingest.deid.series_description`), so a rule on "T1" or "FLAIR" would never match a
de-identified MR study. The weighting is read from the acquisition physics that de-identification
keeps (repetition, echo and inversion times, Image Type, the diffusion b-value) and matched by the
same regular expression (:func:`mr_weighting`).

Facts come from the store (modality, description, series number, images in reading order) and the
first image's header, read without pixel data. A projection series (mammography, radiographs) whose
images are different views is split into one entry per view (laterality, view position), as OHIF
splits display sets, so "R CC" and "L MLO" of a one-series mammogram hang in their own viewports.

:func:`hang` is pure: ``hang(protocols, study, priors) -> Hanging``; :func:`study_facts` and
:func:`hanging_for_study` do the reading.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from sqlalchemy import select

from medreview.errors import MedreviewError, NotFoundError
from medreview.imaging.display import WINDOW_PRESETS
from medreview.imaging.geometry import image_plane
from medreview.store import Store
from medreview.store.models import Image, Series, Study

__all__ = [
    "DEFAULT_PROTOCOLS",
    "LAYOUTS",
    "Hanging",
    "ProtocolError",
    "SeriesFacts",
    "StudyFacts",
    "Viewport",
    "hang",
    "hanging_for_study",
    "mr_weighting",
    "parse_protocols",
    "patient_studies",
    "protocols_text",
    "series_facts",
    "study_facts",
    "validate_protocols",
]

log = logging.getLogger(__name__)

# Layout name -> (rows, columns); viewports fill it row by row.
LAYOUTS: dict[str, tuple[int, int]] = {"1x1": (1, 1), "1x2": (1, 2), "1x3": (1, 3), "2x2": (2, 2)}
ORIENTATIONS = ("axial", "coronal", "sagittal", "oblique")
LATERALITIES = ("R", "L", "B", "U")
# Projection imaging: a series may hold several views, each its own entry in the facts.
PROJECTION_MODALITIES = frozenset({"MG", "CR", "DX", "RG", "IO", "PX"})
# More images than this in a projection series: not a set of views; only the first header is read.
_MAX_VIEWS_READ = 16

_PROTOCOL_FIELDS = frozenset({"name", "modality", "layout", "viewports"})
_VIEWPORT_FIELDS = frozenset(
    {"modality", "description", "orientation", "laterality", "view_position", "preset", "mirror", "prior"}
)
_PRESET_NAMES = frozenset(name for presets in WINDOW_PRESETS.values() for name in presets)

# Series descriptions (or MR weightings) of the MR brain protocol. FLAIR is a T2 (or T1) sequence by
# name too, so T1 and T2 exclude it; ADC maps are not the diffusion trace.
_T1 = r"^(?!.*(flair|dark.?fluid)).*(t1|mprage|spgr|bravo)"
_T2 = r"^(?!.*(flair|dark.?fluid|t2\s*\*)).*t2"
_FLAIR = r"flair|dark.?fluid"
_DWI = r"^(?!.*adc).*(dwi|diffusion|trace|b.?1000)"

DEFAULT_PROTOCOLS: list[dict[str, Any]] = [
    {
        "name": "CT: soft tissue, lung, bone",
        "modality": ["CT"],
        "layout": "1x3",
        "viewports": [
            {"modality": "CT", "orientation": "axial", "preset": "mediastinum"},
            {"modality": "CT", "orientation": "axial", "preset": "lung"},
            {"modality": "CT", "orientation": "axial", "preset": "bone"},
        ],
    },
    {
        "name": "MR brain: T1, T2, FLAIR, DWI",
        "modality": ["MR"],
        "layout": "2x2",
        "viewports": [
            {"modality": "MR", "description": _T1},
            {"modality": "MR", "description": _T2},
            {"modality": "MR", "description": _FLAIR},
            {"modality": "MR", "description": _DWI},
        ],
    },
    {
        "name": "Chest film: current and prior",
        "modality": ["CR", "DX"],
        "layout": "1x2",
        "viewports": [
            {"modality": ["CR", "DX"]},
            {"modality": ["CR", "DX"], "prior": True},
        ],
    },
    {
        "name": "Mammography: 4 views",
        "modality": ["MG"],
        "layout": "2x2",
        "viewports": [
            {"modality": "MG", "laterality": "R", "view_position": "CC"},
            {"modality": "MG", "laterality": "L", "view_position": "CC", "mirror": True},
            {"modality": "MG", "laterality": "R", "view_position": "MLO"},
            {"modality": "MG", "laterality": "L", "view_position": "MLO", "mirror": True},
        ],
    },
]


class ProtocolError(MedreviewError):
    """A hanging protocol is malformed; the message names the protocol, the viewport and the field."""


# --- facts --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesFacts:
    """What the protocols match on, for one series (or one view of a projection series).

    ``image_ids``: the images this entry covers in reading order (the whole series, or one view's
    images). Header facts are "" when the header does not say (or the image is a PNG/JPEG):
    ``orientation`` one of :data:`ORIENTATIONS`; ``laterality`` "R", "L", "B" or "U";
    ``view_position`` upper case ("CC", "MLO", "PA"); ``weighting`` for MR "T1", "T2", "PD",
    "FLAIR", "DWI" or "ADC" (:func:`mr_weighting`).
    """

    series_id: int
    image_ids: tuple[int, ...]
    modality: str
    description: str = ""
    series_number: int | None = None
    orientation: str = ""
    laterality: str = ""
    view_position: str = ""
    weighting: str = ""


@dataclass(frozen=True)
class StudyFacts:
    """One study: ``study_date`` "YYYYMMDD" (shifted per patient when dates are kept) or None."""

    study_id: int
    patient_id: int
    study_date: str | None
    series: tuple[SeriesFacts, ...]

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset(facts.modality for facts in self.series)


@dataclass(frozen=True)
class Viewport:
    """One cell of the grid, row by row. ``series_id`` None: nothing matched (``reason`` says why).

    ``preset``: the window to open with as the viewer names it ("Lung", the title of a
    :data:`~medreview.imaging.display.WINDOW_PRESETS` key), None: the image's own window.
    ``prior``: the cell shows the prior study (``study_id``/``study_date`` are that study's).
    """

    series_id: int | None
    image_ids: tuple[int, ...]
    study_id: int | None
    study_date: str | None
    preset: str | None
    mirror: bool
    prior: bool
    reason: str

    @property
    def prior_label(self) -> str | None:
        """What a prior viewport's corner says, "Prior · 2023-06-10"; None for the study itself."""
        if not self.prior:
            return None
        return f"Prior · {_date_words(self.study_date)}" if self.study_date else "Prior"


@dataclass(frozen=True)
class Hanging:
    """How a study opens: ``layout`` a :data:`LAYOUTS` key, ``viewports`` row by row (as many as the
    protocol names, at most rows x columns), the protocol's ``name`` (None: no protocol matched,
    the 1x1 fallback) and ``reason`` in words a reader can follow."""

    layout: str
    viewports: tuple[Viewport, ...]
    protocol: str | None
    reason: str

    @property
    def rows(self) -> int:
        return LAYOUTS[self.layout][0]

    @property
    def columns(self) -> int:
        return LAYOUTS[self.layout][1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists for tuples), e.g. for the viewer component."""
        return asdict(self) | {
            "viewports": [asdict(viewport) | {"image_ids": list(viewport.image_ids)} for viewport in self.viewports]
        }


def mr_weighting(dataset: Dataset) -> str:
    """An MR series' contrast from its acquisition physics (times in ms): "DWI" or "ADC" from Image
    Type or a b-value; "FLAIR" from an inversion time of 1500 ms or more; "T1" (short TE with short
    TR, or an inversion-prepared gradient echo like MPRAGE), "T2" (long TR and TE), "PD" (long TR,
    short TE); "" when the header does not say. Conventional 1.5/3 T ranges; an unusual sequence
    may read wrong, which is why a rule can still match the description instead."""
    image_type = {str(value).strip().upper() for value in _as_list(dataset.get("ImageType"))}
    if "ADC" in image_type:
        return "ADC"
    b_value = _number(dataset.get("DiffusionBValue"))
    if image_type & {"DIFFUSION", "TRACEW", "DWI"} or (b_value is not None and b_value > 0):
        return "DWI"
    repetition = _number(dataset.get("RepetitionTime"))
    echo = _number(dataset.get("EchoTime"))
    inversion = _number(dataset.get("InversionTime"))
    if inversion is not None and inversion >= 1500:
        return "FLAIR"
    if echo is None or repetition is None:
        return ""
    if echo < 30 and (repetition < 1000 or (inversion is not None and 300 <= inversion < 1500)):
        return "T1"
    if repetition >= 1500 and echo >= 60:
        return "T2"
    if repetition >= 1500 and echo < 30:
        return "PD"
    return ""


def series_facts(store: Store, study_id: int) -> list[SeriesFacts]:
    """The facts of each series of a study, by SeriesNumber (unnumbered last, then by id); a
    projection series of several views gives one entry per view. Raises NotFoundError for an
    unknown study; an unreadable header leaves that entry with the store's facts only."""
    with store.db.read() as session:
        if session.get(Study, study_id) is None:
            raise NotFoundError(f"study {study_id} does not exist")
        series_rows = session.execute(
            select(Series.id, Series.modality, Series.description, Series.series_number)
            .where(Series.study_id == study_id)
            .order_by(Series.series_number.is_(None), Series.series_number, Series.id)
        ).all()
        image_rows = session.execute(
            select(
                Image.id, Image.series_id, Image.sha256, Image.media_type, Image.instance_number, Image.slice_location
            )
            .join(Series, Series.id == Image.series_id)
            .where(Series.study_id == study_id)
        ).all()
    images_by_series: dict[int, list[Any]] = {}
    for row in image_rows:
        images_by_series.setdefault(row.series_id, []).append(row)
    facts: list[SeriesFacts] = []
    for series in series_rows:
        images = _reading_order(images_by_series.get(series.id, []))
        if not images:
            continue  # an empty series has nothing to hang
        base = SeriesFacts(
            series_id=series.id,
            image_ids=tuple(image.id for image in images),
            modality=(series.modality or "").upper(),
            description=series.description or "",
            series_number=series.series_number,
        )
        if base.modality in PROJECTION_MODALITIES and len(images) <= _MAX_VIEWS_READ:
            facts.extend(_views(store, base, images))
        else:
            facts.append(_with_header(base, _header(store, images[0])))
    return facts


def study_facts(store: Store, study_id: int) -> StudyFacts:
    """:func:`series_facts` with the study's patient and date. Raises NotFoundError."""
    with store.db.read() as session:
        study = session.get(Study, study_id)
        if study is None:
            raise NotFoundError(f"study {study_id} does not exist")
        patient_id, study_date = study.patient_id, study.study_date
    return StudyFacts(study_id, patient_id, study_date, tuple(series_facts(store, study_id)))


def patient_studies(store: Store, study_id: int) -> list[StudyFacts]:
    """The facts of every other study of ``study_id``'s patient that is dated earlier, oldest first
    (the candidates :func:`hang` takes a prior from). Undated studies are never priors: without a
    date nothing says which came first."""
    with store.db.read() as session:
        study = session.get(Study, study_id)
        if study is None:
            raise NotFoundError(f"study {study_id} does not exist")
        if study.study_date is None:
            return []
        earlier = session.scalars(
            select(Study.id)
            .where(Study.patient_id == study.patient_id, Study.id != study_id, Study.study_date < study.study_date)
            .order_by(Study.study_date, Study.id)
        ).all()
    return [study_facts(store, earlier_id) for earlier_id in earlier]


def hanging_for_study(store: Store, study_id: int, protocols: Sequence[dict[str, Any]]) -> Hanging:
    """How ``study_id`` opens under ``protocols`` (the project's: ``get_setting(store,
    "hanging_protocols")``), with the patient's earlier studies as prior candidates.

    The earlier studies' headers are read only when the protocol that hangs the study has a prior
    viewport (which protocol hangs it never depends on the priors). Protocols that do not validate
    (rules saved by an older version, say) open the study 1x1 with the reason, never an error.
    Raises NotFoundError for an unknown study."""
    study = study_facts(store, study_id)
    try:
        hanging = hang(protocols, study)
    except ProtocolError as error:
        log.warning("hanging protocols: the project's rules do not validate: %s", error)
        fallback = _fallback(study)
        return Hanging("1x1", fallback.viewports, None, f"the project's hanging protocols are not valid ({error})")
    if any(viewport.prior for viewport in hanging.viewports):
        hanging = hang(protocols, study, patient_studies(store, study_id))
    return hanging


# --- matching -----------------------------------------------------------------------------------------


def hang(protocols: Sequence[dict[str, Any]], study: StudyFacts, priors: Sequence[StudyFacts] = ()) -> Hanging:
    """The first protocol (in order) that matches ``study`` and fills at least one of its current
    viewports; else 1x1 with the study's first series. ``priors``: the patient's studies (any order;
    only those dated before ``study`` count); a prior viewport takes the most recent one holding a
    matching series. Protocols are validated first (:func:`validate_protocols`); a protocol list that
    does not validate raises :class:`ProtocolError`."""
    validate_protocols(protocols)
    earlier = _earlier_studies(study, priors)
    for protocol in protocols:
        modalities = _upper_list(protocol["modality"])
        if not study.modalities & set(modalities):
            continue
        viewports = tuple(_fill(spec, study, earlier) for spec in protocol["viewports"])
        filled = [viewport for viewport in viewports if viewport.series_id is not None and not viewport.prior]
        if not filled:
            continue
        reason = (
            f"'{protocol['name']}': the study has {'/'.join(sorted(study.modalities & set(modalities)))} series; "
            f"{len(filled)} of {sum(not viewport.prior for viewport in viewports)} viewports of the study filled"
        )
        return Hanging(protocol["layout"], viewports, protocol["name"], reason)
    return _fallback(study)


def _fallback(study: StudyFacts) -> Hanging:
    if not study.series:
        viewport = Viewport(None, (), study.study_id, study.study_date, None, False, False, "the study has no images")
        return Hanging("1x1", (viewport,), None, "no protocol matched: the study has no images")
    first = study.series[0]
    viewport = Viewport(
        first.series_id,
        first.image_ids,
        study.study_id,
        study.study_date,
        None,
        False,
        False,
        f"the study's first series ({_series_words(first)})",
    )
    modalities = "/".join(sorted(study.modalities)) or "no"
    return Hanging("1x1", (viewport,), None, f"no protocol matched this {modalities} study: its first series, 1x1")


def _earlier_studies(study: StudyFacts, priors: Iterable[StudyFacts]) -> list[StudyFacts]:
    """Studies dated before ``study``, most recent first; none when ``study`` has no date."""
    if study.study_date is None:
        return []
    earlier = [
        prior
        for prior in priors
        if prior.study_id != study.study_id and prior.study_date is not None and prior.study_date < study.study_date
    ]
    return sorted(earlier, key=lambda prior: (prior.study_date, prior.study_id), reverse=True)


def _fill(spec: dict[str, Any], study: StudyFacts, earlier: list[StudyFacts]) -> Viewport:
    preset = spec.get("preset")
    shown_preset = preset.lower().title() if preset else None
    mirror = bool(spec.get("mirror", False))
    criteria = _criteria_words(spec)
    if spec.get("prior", False):
        if not earlier:
            reason = "no prior: the patient has no earlier dated study"
            return Viewport(None, (), None, None, shown_preset, mirror, True, reason)
        for prior in earlier:
            found = _best(spec, prior)
            if found is not None:
                facts, why = found
                reason = f"prior of {_date_words(prior.study_date)}: {_series_words(facts)} ({why})"
                return Viewport(
                    facts.series_id,
                    facts.image_ids,
                    prior.study_id,
                    prior.study_date,
                    shown_preset,
                    mirror,
                    True,
                    reason,
                )
        reason = f"no prior: no earlier study of this patient has a series with {criteria}"
        return Viewport(None, (), None, None, shown_preset, mirror, True, reason)
    found = _best(spec, study)
    if found is None:
        reason = f"no series with {criteria}"
        return Viewport(None, (), study.study_id, study.study_date, shown_preset, mirror, False, reason)
    facts, why = found
    reason = f"{_series_words(facts)} ({why})"
    return Viewport(
        facts.series_id, facts.image_ids, study.study_id, study.study_date, shown_preset, mirror, False, reason
    )


def _best(spec: dict[str, Any], study: StudyFacts) -> tuple[SeriesFacts, str] | None:
    """The matching series with the most images (a thin-slice reconstruction over its thick one, a
    stack over its localizer), ties by series order; with the reasons it matched."""
    best: tuple[SeriesFacts, str] | None = None
    for facts in study.series:
        why = _match(spec, facts)
        if why is not None and (best is None or len(facts.image_ids) > len(best[0].image_ids)):
            best = (facts, why)
    return best


def _match(spec: dict[str, Any], facts: SeriesFacts) -> str | None:
    """Why ``facts`` meets every criterion of ``spec`` ("modality CT, axial"), or None."""
    reasons: list[str] = []
    if "modality" in spec:
        if facts.modality not in _upper_list(spec["modality"]):
            return None
        reasons.append(f"modality {facts.modality}")
    if "description" in spec:
        pattern = re.compile(spec["description"], re.IGNORECASE)
        if facts.description and pattern.search(facts.description):
            reasons.append(f"description '{facts.description}' matches /{spec['description']}/")
        elif facts.weighting and pattern.search(facts.weighting):
            reasons.append(f"MR weighting {facts.weighting} matches /{spec['description']}/")
        else:
            return None
    for key, value, words in (
        ("orientation", facts.orientation, "{}"),
        ("laterality", facts.laterality, "laterality {}"),
        ("view_position", facts.view_position, "view {}"),
    ):
        if key in spec:
            wanted = [item.lower() for item in _as_strings(spec[key])]
            if value.lower() not in wanted:
                return None
            reasons.append(words.format(value))
    return ", ".join(reasons) or "any series"


def _criteria_words(spec: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("modality", "modality"),
        ("description", "description"),
        ("orientation", "orientation"),
        ("laterality", "laterality"),
        ("view_position", "view"),
    ):
        if key in spec:
            value = spec[key]
            shown = f"/{value}/" if key == "description" else "/".join(_as_strings(value))
            parts.append(f"{label} {shown}")
    return ", ".join(parts) or "any series"


def _series_words(facts: SeriesFacts) -> str:
    number = f"series {facts.series_number}" if facts.series_number is not None else f"series #{facts.series_id}"
    details = [facts.modality]
    if facts.description:
        details.append(f"'{facts.description}'")
    details.extend(value for value in (facts.laterality, facts.view_position) if value)
    return f"{number} ({' '.join(details)}, {len(facts.image_ids)} image{'s' if len(facts.image_ids) != 1 else ''})"


def _date_words(study_date: str | None) -> str:
    if study_date and len(study_date) == 8:
        return f"{study_date[:4]}-{study_date[4:6]}-{study_date[6:]}"
    return "an undated study"


# --- validation ---------------------------------------------------------------------------------------


def validate_protocols(value: object) -> list[dict[str, Any]]:
    """Check a protocol list as an admin wrote it; return it (a deep copy) or raise
    :class:`ProtocolError` naming the protocol, viewport and field: an unknown field, a missing or
    mistyped one, a bad regular expression, an unknown layout, orientation, laterality or window
    preset, more viewports than the layout has, two protocols of the same name."""
    if not isinstance(value, list):
        raise ProtocolError("hanging protocols are a list of protocols ([{...}, ...])")
    names: set[str] = set()
    for index, protocol in enumerate(value, start=1):
        where = f"protocol {index}"
        if not isinstance(protocol, dict):
            raise ProtocolError(f"{where} is not an object ({{'name': ..., 'layout': ..., 'viewports': [...]}})")
        name = protocol.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ProtocolError(f"{where}: 'name' is required (a non-empty text)")
        where = f"protocol '{name}'"
        if name in names:
            raise ProtocolError(f"{where}: two protocols have this name")
        names.add(name)
        unknown = sorted(set(protocol) - _PROTOCOL_FIELDS)
        if unknown:
            raise ProtocolError(
                f"{where}: unknown field '{unknown[0]}' (fields: {', '.join(sorted(_PROTOCOL_FIELDS))})"
            )
        _check_strings(protocol.get("modality"), f"{where}: 'modality'", required=True)
        layout = protocol.get("layout")
        if layout not in LAYOUTS:
            raise ProtocolError(f"{where}: 'layout' is {layout!r}; it is one of {', '.join(LAYOUTS)}")
        viewports = protocol.get("viewports")
        if not isinstance(viewports, list) or not viewports:
            raise ProtocolError(f"{where}: 'viewports' is required (a list of at least one viewport)")
        rows, columns = LAYOUTS[layout]
        if len(viewports) > rows * columns:
            raise ProtocolError(
                f"{where}: {len(viewports)} viewports do not fit layout {layout} ({rows * columns} viewports)"
            )
        for position, spec in enumerate(viewports, start=1):
            _check_viewport(spec, f"{where} viewport {position}")
        if all(spec.get("prior", False) for spec in viewports):
            raise ProtocolError(f"{where}: every viewport shows the prior; at least one shows the study itself")
    return copy.deepcopy(value)


def parse_protocols(text: str) -> list[dict[str, Any]]:
    """Protocols from the JSON an admin typed: :func:`validate_protocols` of it, or a
    :class:`ProtocolError` that says where the JSON is broken (line and column)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProtocolError(
            f"the protocols are not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
            + (" (a backslash in a regular expression is written \\\\ in JSON)" if "escape" in error.msg else "")
        ) from None
    return validate_protocols(value)


def protocols_text(protocols: Sequence[dict[str, Any]]) -> str:
    """Protocols as JSON for an editor: one protocol field, or one viewport, per line."""
    blocks = []
    for protocol in protocols:
        lines = [f"    {json.dumps(key)}: {json.dumps(value)}" for key, value in protocol.items() if key != "viewports"]
        viewports = ",\n".join(f"      {json.dumps(spec)}" for spec in protocol.get("viewports", []))
        lines.append(f'    "viewports": [\n{viewports}\n    ]')
        blocks.append("  {\n" + ",\n".join(lines) + "\n  }")
    return "[\n" + ",\n".join(blocks) + "\n]"


def _check_viewport(spec: object, where: str) -> None:
    if not isinstance(spec, dict):
        raise ProtocolError(f"{where} is not an object ({{'modality': 'CT', ...}})")
    unknown = sorted(set(spec) - _VIEWPORT_FIELDS)
    if unknown:
        raise ProtocolError(f"{where}: unknown field '{unknown[0]}' (fields: {', '.join(sorted(_VIEWPORT_FIELDS))})")
    if "modality" in spec:
        _check_strings(spec["modality"], f"{where}: 'modality'")
    if "description" in spec:
        pattern = spec["description"]
        if not isinstance(pattern, str) or not pattern:
            raise ProtocolError(f"{where}: 'description' is a regular expression (a non-empty text)")
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as error:
            raise ProtocolError(f"{where}: 'description' is not a valid regular expression ({error})") from None
    for key, allowed in (("orientation", ORIENTATIONS), ("laterality", LATERALITIES)):
        if key in spec:
            _check_strings(spec[key], f"{where}: '{key}'")
            for item in _as_strings(spec[key]):
                if item.lower() not in [choice.lower() for choice in allowed]:
                    raise ProtocolError(f"{where}: '{key}' is {item!r}; it is one of {', '.join(allowed)}")
    if "view_position" in spec:
        _check_strings(spec["view_position"], f"{where}: 'view_position'")
    if "preset" in spec:
        preset = spec["preset"]
        if not isinstance(preset, str) or preset.lower() not in _PRESET_NAMES:
            raise ProtocolError(f"{where}: 'preset' is {preset!r}; it is one of {', '.join(sorted(_PRESET_NAMES))}")
    for key in ("mirror", "prior"):
        if key in spec and not isinstance(spec[key], bool):
            raise ProtocolError(f"{where}: '{key}' is true or false")


def _check_strings(value: object, where: str, required: bool = False) -> None:
    """A non-empty text, or a non-empty list of them."""
    if value is None and not required:
        return
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item.strip() for item in items):
        raise ProtocolError(f'{where} is a text or a list of texts (e.g. "CT" or ["CR", "DX"])')


# --- header reading -----------------------------------------------------------------------------------


def _reading_order(images: list[Any]) -> list[Any]:
    """As :func:`medreview.reading.browse.series_slices`: by slice location when all have one, else by
    InstanceNumber (unnumbered last), then id."""

    def instance_key(row: Any) -> tuple[bool, int, int]:
        return (row.instance_number is None, row.instance_number or 0, row.id)

    if images and all(row.slice_location is not None for row in images):
        return sorted(images, key=lambda row: (row.slice_location, *instance_key(row)))
    return sorted(images, key=instance_key)


def _header(store: Store, image: Any) -> Dataset | None:
    """The stored file's header without pixel data; None for a PNG/JPEG or a file that cannot be read
    (the series still hangs on the store's facts; the failure is logged by image id)."""
    if image.media_type != "dicom":
        return None
    path = store.blobs.path_for(image.sha256)
    try:
        try:
            return pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            # A legacy object without file meta that ingest accepted (see browse._read_header).
            return pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as error:  # pydicom raises many types for damaged files
        log.warning("hanging protocols: cannot read the header of image %s: %s", image.id, type(error).__name__)
        return None


def _with_header(base: SeriesFacts, dataset: Dataset | None) -> SeriesFacts:
    if dataset is None:
        return base
    laterality = str(dataset.get("ImageLaterality") or dataset.get("Laterality") or "").strip().upper()
    return SeriesFacts(
        series_id=base.series_id,
        image_ids=base.image_ids,
        modality=base.modality,
        description=base.description,
        series_number=base.series_number,
        orientation=_plane(dataset),
        laterality=laterality if laterality in LATERALITIES else "",
        view_position=str(dataset.get("ViewPosition") or "").strip().upper(),
        weighting=mr_weighting(dataset) if base.modality == "MR" else "",
    )


def _views(store: Store, base: SeriesFacts, images: list[Any]) -> list[SeriesFacts]:
    """A projection series split by (laterality, view position), in the order each view first appears."""
    groups: dict[tuple[str, str], tuple[SeriesFacts, list[int]]] = {}
    for image in images:
        facts = _with_header(base, _header(store, image))
        key = (facts.laterality, facts.view_position)
        if key not in groups:
            groups[key] = (facts, [])
        groups[key][1].append(image.id)
    return [SeriesFacts(**{**asdict(facts), "image_ids": tuple(image_ids)}) for facts, image_ids in groups.values()]


def _plane(dataset: Dataset) -> str:
    """The image's plane (medreview.imaging.geometry.image_plane) from Image Orientation (Patient),
    at the top level or in an enhanced object's shared Plane Orientation; "" without."""
    orientation = dataset.get("ImageOrientationPatient")
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if orientation is None and shared:
        plane = shared[0].get("PlaneOrientationSequence")
        orientation = plane[0].get("ImageOrientationPatient") if plane else None
    return image_plane(orientation)


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        return [value]
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError:
        return [value]


def _as_strings(value: object) -> list[str]:
    return [str(item) for item in (value if isinstance(value, list) else [value])]


def _upper_list(value: object) -> list[str]:
    return [item.strip().upper() for item in _as_strings(value)]


def _number(value: object) -> float | None:
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None  # type: ignore[index, arg-type]
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
