"""The windowing maths both sides share: the server's display pipeline gives, for every case in
windowing_cases.json, the numbers the browser viewer's TypeScript gives for the same case
(ui/viewer/test/windowing.test.ts, run by tests/ui/test_viewer_bundle.py). A reader must see in the
browser exactly what the server would render, and what a model was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medreview.imaging.decoding import DecodedImage, VoiLut, Window
from medreview.imaging.display import render_frame

CASES = json.loads((Path(__file__).with_name("windowing_cases.json")).read_text())["cases"]


def shown(case: dict) -> list[int]:
    lut = case["voiLut"]
    image = DecodedImage(
        frames=np.asarray(case["values"], dtype=np.float32).reshape(1, 1, -1),
        is_color=False,
        photometric_interpretation="MONOCHROME1" if case["monochrome1"] else "MONOCHROME2",
        modality="CT",
        default_window=None,
        voi_lut=None if lut is None else VoiLut(lut["firstMapped"], np.asarray(lut["table"]), lut["outputMax"]),
    )
    window = None if case["window"] is None else Window(case["window"]["center"], case["window"]["width"])
    return render_frame(image, 0, window, use_voi_lut=True)[0].tolist()


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_the_server_shows_each_case_as_the_browser_must(case):
    assert shown(case) == case["expected"]


def test_the_cases_pin_the_dicom_definitions():
    by_name = {case["name"]: case for case in CASES}
    identity = by_name["8-bit identity window (as stored)"]
    assert identity["expected"] == [int(value) for value in identity["values"]]  # PS3.3 C.11.2.1.2.1
    assert by_name["rounding half to even"]["expected"][0] == 128  # 127.5 rounds to the even 128
    lung = by_name["CT lung window"]
    assert lung["expected"][lung["values"].index(-600.0)] == 128  # the centre is mid-grey
    inverted = by_name["CT bone window, MONOCHROME1"]
    assert lung["expected"][0] == 0 and inverted["expected"][0] == 255  # air: black; inverted, white
    threshold = by_name["width 1 is a threshold at center - 0.5"]
    assert threshold["expected"] == [0, 0, 255, 255, 255]
