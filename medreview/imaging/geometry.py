"""Patient geometry from DICOM attributes, shared by de-identification (series described by their
geometry) and hanging protocols (series matched by orientation)."""

from __future__ import annotations

import math

from pydicom.multival import MultiValue

__all__ = ["image_plane"]

# A plane's normal within about 26 degrees of an axis (cosine 0.9) names the plane; further off it is oblique.
_PLANE_COSINE = 0.9


def _numbers(value: object) -> list[float | None]:
    if value is None or value == "":
        return []
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    numbers: list[float | None] = []
    for item in values:
        try:
            number = float(item)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = None
        numbers.append(number if number is not None and number == number else None)  # NaN: none
    return numbers


def image_plane(orientation: object) -> str:
    """ "axial", "coronal", "sagittal" or "oblique" from an Image Orientation (Patient) value: the
    plane whose normal is the row direction x the column direction; "" without a valid orientation
    (not six numbers, or not two unit vectors at right angles)."""
    values = _numbers(orientation)
    if len(values) != 6 or any(value is None for value in values):
        return ""
    row, column = values[:3], values[3:]
    normal = [
        row[1] * column[2] - row[2] * column[1],  # type: ignore[operator]
        row[2] * column[0] - row[0] * column[2],  # type: ignore[operator]
        row[0] * column[1] - row[1] * column[0],  # type: ignore[operator]
    ]
    length = math.sqrt(sum(component * component for component in normal))
    if not 0.5 < length < 1.5:
        return ""
    x, y, z = (abs(component) / length for component in normal)
    if z >= _PLANE_COSINE:
        return "axial"
    if y >= _PLANE_COSINE:
        return "coronal"
    if x >= _PLANE_COSINE:
        return "sagittal"
    return "oblique"
