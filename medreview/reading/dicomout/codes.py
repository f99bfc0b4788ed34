"""The coded concept of each label class in medreview's DICOM objects.

A class is written as the coded value of a qualitative evaluation (and a group's finding type). Its code is the
one the admin gave in the project setting ``class_codes`` (class name -> ``"SCHEME:VALUE"``, e.g.
``{"pneumonia": "SCT:233604007"}`` for SNOMED CT, ``"RADLEX:RID5350"`` for RadLex), else a code of
medreview's private coding scheme :data:`PRIVATE_SCHEME`: ``"C"`` followed by the first 12 hex
digits (upper case) of the SHA-256 of the class name, so the same name has the same code in every
run, store and machine (:func:`private_code_value`). The code meaning is the class name.

This module imports nothing heavy: the settings service checks ``class_codes`` with it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from medreview.errors import MedreviewError

__all__ = ["PRIVATE_SCHEME", "check_class_codes", "class_code_parts", "private_code_value"]

# A private coding scheme designator starts with "99" (PS3.16 8.2).
PRIVATE_SCHEME = "99MEDREVIEW"
# Scheme designator (SH: up to 16 characters), then a code value (a SNOMED CT id has up to 18
# digits: longer than SH, so highdicom writes it as a Long Code Value).
_CODE_PATTERN = re.compile(r"(?P<scheme>[A-Z][A-Z0-9_-]{0,15}):(?P<value>[A-Za-z0-9._-]{1,64})")


def private_code_value(class_name: str) -> str:
    """The class's code value in :data:`PRIVATE_SCHEME`: stable, 13 characters."""
    return "C" + hashlib.sha256(class_name.encode("utf-8")).hexdigest()[:12].upper()


def class_code_parts(class_name: str, class_codes: dict[str, str]) -> tuple[str, str]:
    """(scheme designator, code value) of a class: the admin's code, else the private one."""
    given = class_codes.get(class_name)
    if given:
        scheme, value = given.split(":", 1)
        return scheme, value
    return PRIVATE_SCHEME, private_code_value(class_name)


def check_class_codes(value: Any) -> dict[str, str]:
    """The setting ``class_codes`` checked: class name -> "SCHEME:VALUE"; a clear error otherwise."""
    if not isinstance(value, dict):
        raise MedreviewError("class codes are a mapping of class name to a code such as SCT:233604007")
    checked: dict[str, str] = {}
    for name, code in value.items():
        if not isinstance(name, str) or not isinstance(code, str):
            raise MedreviewError("class codes are a mapping of class name to a code such as SCT:233604007")
        code = code.strip()
        if not code:
            continue
        if not _CODE_PATTERN.fullmatch(code):
            raise MedreviewError(
                f"the code of class '{name}' is '{code}': write SCHEME:VALUE, e.g. SCT:233604007 or RADLEX:RID5350"
            )
        checked[name] = code
    return checked
