"""Every file of the real DICOM test corpora is either shown correctly or refused with a reason.

The corpora are pydicom's own test files (``pydicom/data/test_files``) and the ``pydicom-data``
package (``data_store/data``): real files from scanners, PACS and toolkits covering uncompressed
little/big endian, deflate, RLE, JPEG baseline / extended 12-bit / lossless, JPEG-LS lossless and
near-lossless, JPEG 2000 lossless and lossy, multi-frame, palette colour, RGB and YBR, signed and
16-bit data. Every file in both folders is walked, not a chosen few, so a file added by a pydicom
upgrade is tested the day it arrives.

For each file exactly one of these holds:

- it is listed in ``EXPECTED_REFUSALS`` and ``read_dicom`` refuses it with the listed reason;
- it is not listed, and ``read_dicom`` + ``decode_dicom`` + ``render_frame`` give a correct picture.

Together with ``test_every_expected_refusal_names_a_corpus_file`` this makes the set of refused files
equal to the list, so a regression in either direction (a good file refused, a broken one let in)
fails and names the file. Where the corpus holds a compressed file and its uncompressed twin, the
decoded values are compared: exactly for lossless coding, within a tolerance for lossy coding.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from pathlib import Path

import numpy as np
import pydicom.data
import pytest

from medreview.config import IngestLimits
from medreview.errors import IngestError
from medreview.imaging.decoding import DecodedImage, Window, decode_dicom
from medreview.imaging.display import auto_window, render_frame
from medreview.ingest.dicom import read_dicom
from tests.helpers import missing

LIMITS = IngestLimits()


def _pydicom_test_files() -> Path | None:
    folder = Path(pydicom.data.__file__).parent / "test_files"
    return folder if folder.is_dir() else None


def _pydicom_data_files() -> Path | None:
    # pydicom-data installs a top-level package named ``data_store``; its files lie in data_store/data.
    spec = importlib.util.find_spec("data_store")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "data"
    return folder if folder.is_dir() else None


CORPORA: dict[str, Path | None] = {"pydicom": _pydicom_test_files(), "pydicom-data": _pydicom_data_files()}


def _corpus_files() -> dict[str, Path]:
    """Every file of every installed corpus, keyed "corpus/relative/path"."""
    files: dict[str, Path] = {}
    for corpus, folder in CORPORA.items():
        if folder is None:
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[f"{corpus}/{path.relative_to(folder).as_posix()}"] = path
    return files


CORPUS_FILES = _corpus_files()

_NOT_A_DICOM_FILE = "not a DICOM file"
_NO_IMAGE = "no image in this DICOM object"
_TINY_ALPHA_SERIES = "pydicom/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/"

# Files that must be refused, with a piece of the reason the user must see. A key ending in "/" stands
# for every file under that folder.
EXPECTED_REFUSALS: dict[str, str] = {
    # Not DICOM at all: documentation, ICC colour profile, JSON / text dumps, a gzip archive.
    "pydicom/README.txt": _NOT_A_DICOM_FILE,
    "pydicom/crayons.icc": _NOT_A_DICOM_FILE,
    "pydicom/test1.json": _NOT_A_DICOM_FILE,
    "pydicom/test_PN.json": _NOT_A_DICOM_FILE,
    "pydicom/rtplan.dump": _NOT_A_DICOM_FILE,
    "pydicom/rtstruct.dump": _NOT_A_DICOM_FILE,
    "pydicom/zipMR.gz": _NOT_A_DICOM_FILE,
    "pydicom/dicomdirtests/README.txt": _NOT_A_DICOM_FILE,
    "pydicom/dicomdirtests/TINY_ALPHA/README": _NOT_A_DICOM_FILE,
    # CT_small.dcm with its file meta header cut out badly: a stray byte before the first element
    # shifts every tag, so nothing in it reads as DICOM (pydicom itself finds one nonsense element).
    "pydicom/no_meta.dcm": _NOT_A_DICOM_FILE,
    # Objects without pixels: structured reports, RT plans / structure sets, an ECG waveform.
    "pydicom/test-SR.dcm": _NO_IMAGE,
    "pydicom/reportsi.dcm": _NO_IMAGE,
    "pydicom/reportsi_with_empty_number_tags.dcm": _NO_IMAGE,
    "pydicom/rtplan.dcm": _NO_IMAGE,
    "pydicom/rtplan_truncated.dcm": _NO_IMAGE,
    "pydicom/rtstruct.dcm": _NO_IMAGE,
    "pydicom/ExplVR_BigEndNoMeta.dcm": _NO_IMAGE,  # an RT plan
    "pydicom/ExplVR_LitEndNoMeta.dcm": _NO_IMAGE,  # an RT plan
    "pydicom/waveform_ecg.dcm": _NO_IMAGE,
    # DICOMDIR indexes: they list the images of a CD but hold none.
    "pydicom/dicomdirtests/DICOMDIR": _NO_IMAGE,
    "pydicom/dicomdirtests/DICOMDIR-bigEnd": _NO_IMAGE,
    "pydicom/dicomdirtests/DICOMDIR-empty.dcm": _NO_IMAGE,
    "pydicom/dicomdirtests/DICOMDIR-implicit": _NO_IMAGE,
    "pydicom/dicomdirtests/DICOMDIR-nooffset": _NO_IMAGE,
    "pydicom/dicomdirtests/DICOMDIR-nopatient": _NO_IMAGE,
    "pydicom/dicomdirtests/DICOMDIR-reordered": _NO_IMAGE,
    "pydicom/dicomdirtests/TINY_ALPHA/DICOMDIR": _NO_IMAGE,
    # 50 header-only stubs (CT/MR image classes, no pixel data) that exist to be indexed by that DICOMDIR.
    _TINY_ALPHA_SERIES: _NO_IMAGE,
    # Fragments that exist to test pydicom's parser: a few header elements and no pixels.
    "pydicom/UN_sequence.dcm": _NO_IMAGE,
    "pydicom/empty_charset_LEI.dcm": _NO_IMAGE,
    "pydicom/no_meta_group_length.dcm": _NO_IMAGE,
    "pydicom/priv_SQ.dcm": _NO_IMAGE,
    # Pixel data but no image header at all (no Rows, Columns, bits): there is nothing to size it by.
    "pydicom/meta_missing_tsyntax.dcm": "has no Rows",
    "pydicom/nested_priv_SQ.dcm": "has no Rows",
    # Genuinely broken images.
    "pydicom/JPEG-lossy.dcm": "cannot decode pixel data (JPEG Extended",  # SOS parameters invalid; see JPGExtended.dcm
    # 4 codestream bytes overwritten, among them the image width in the JPEG 2000 SIZ header: refused
    # from that header, before the decoder is asked to allocate 3.7 billion columns.
    "pydicom/JPEG2000-embedded-sequence-delimiter.dcm": "compressed frame 1 says it is 3722445056 x 1024 pixels",
    "pydicom/MR_truncated.dcm": "truncated DICOM: pixel data ends early",
    "pydicom/badVR.dcm": "invalid NumberOfFrames ('1A')",
    "pydicom-data/emri_small_jpeg_2k_lossless_too_short.dcm": "truncated or damaged DICOM",
}


def _expected_refusal(key: str) -> str | None:
    if key in EXPECTED_REFUSALS:
        return EXPECTED_REFUSALS[key]
    for prefix, reason in EXPECTED_REFUSALS.items():
        if prefix.endswith("/") and key.startswith(prefix):
            return reason
    return None


def _corpus_params() -> list[object]:
    params: list[object] = []
    for corpus, folder in CORPORA.items():
        if folder is None:
            params.append(
                pytest.param(
                    f"{corpus}/",
                    marks=pytest.mark.skipif(
                        os.environ.get("CI") != "true", reason=f"the {corpus} corpus is not installed in this venv"
                    ),
                )
            )
    params.extend(sorted(CORPUS_FILES))
    return params


# --- every file: displayed or refused --------------------------------------------------------


def _window_bounds(window: Window) -> tuple[float, float]:
    """Values at or below the first bound show black, above the second white (PS3.3 C.11.2.1.2.1)."""
    return window.center - 0.5 - (window.width - 1) / 2, window.center - 0.5 + (window.width - 1) / 2


def _check_frame_is_shown(image: DecodedImage, frame_index: int, shape: tuple[int, ...]) -> None:
    frame = image.frames[frame_index]
    shown = render_frame(image, frame_index)
    assert shown.dtype == np.uint8
    assert shown.shape == shape
    if frame.min() == frame.max():
        return  # a constant source may show as a constant picture
    if image.is_color:
        assert shown.min() < shown.max(), "a varying colour image is shown as one flat colour"
        return
    # Greyscale: with an automatic window the structure must always be visible...
    automatic = render_frame(image, frame_index, window=auto_window(frame))
    assert automatic.min() < automatic.max(), "a varying image is flat even under the automatic window"
    # ...and the file's own window may show a flat picture only when every pixel lies on one side of it.
    if shown.min() == shown.max():
        assert image.default_window is not None and image.voi_lut is None, "flat picture without a file window"
        low, high = _window_bounds(image.default_window)
        assert (frame <= low).all() or (frame > high).all(), "the file's window flattens an image it spans"


@pytest.mark.parametrize("key", _corpus_params())
def test_corpus_file_is_displayed_or_refused_with_its_reason(key: str) -> None:
    data = CORPUS_FILES[key].read_bytes()
    expected_reason = _expected_refusal(key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the header quirks these files exist for
        if expected_reason is not None:
            with pytest.raises(IngestError) as refusal:
                read_dicom(data, LIMITS)
            assert expected_reason in str(refusal.value)
            return
        info = read_dicom(data, LIMITS)
        image = decode_dicom(data)
    assert image.frame_count == info.number_of_frames
    shape = (info.rows, info.columns, 3) if image.is_color else (info.rows, info.columns)
    assert image.frames.shape[1:] == shape
    if image.is_color:
        assert image.frames.dtype == np.uint8
    else:
        assert image.frames.dtype == np.float32
        assert np.isfinite(image.frames).all()
    for frame_index in sorted({0, image.frame_count // 2, image.frame_count - 1}):
        _check_frame_is_shown(image, frame_index, shape)


def test_every_expected_refusal_names_a_corpus_file() -> None:
    """A stale entry would hide a regression: each listed name must still match a file of the corpus."""
    installed = [corpus for corpus, folder in CORPORA.items() if folder is not None]
    if not installed:
        missing("neither pydicom's test files nor pydicom-data is installed")
    stale = [
        name
        for name in EXPECTED_REFUSALS
        if name.split("/", 1)[0] in installed
        and not any(key == name or (name.endswith("/") and key.startswith(name)) for key in CORPUS_FILES)
    ]
    assert stale == []


def test_the_corpus_is_walked_whole() -> None:
    """Guards the walk itself: a broken glob would make the parametrized test pass on nothing."""
    if CORPORA["pydicom"] is None:
        missing("pydicom's test_files folder is not installed")
    assert "pydicom/CT_small.dcm" in CORPUS_FILES
    assert "pydicom/dicomdirtests/77654033/CR1/6154" in CORPUS_FILES  # files without a suffix, in sub-folders
    assert len([key for key in CORPUS_FILES if key.startswith("pydicom/")]) >= 80


# --- compressed files against their uncompressed twins ---------------------------------------


# (file, its reference). Lossless coding, a change of byte order / VR encoding, or a reference that is
# the decompressed copy of the very same lossless stream: the decoded values must be identical.
IDENTICAL_TWINS: list[tuple[str, str]] = [
    *(
        (f"pydicom/MR_small{suffix}.dcm", "pydicom/MR_small.dcm")
        for suffix in ("_RLE", "_bigendian", "_expb", "_implicit", "_jp2klossless", "_jpeg_ls_lossless", "_padded")
    ),
    *(
        (f"pydicom-data/emri_small{suffix}.dcm", "pydicom-data/emri_small.dcm")
        for suffix in ("_RLE", "_big_endian", "_jpeg_2k_lossless", "_jpeg_ls_lossless")
    ),
    # JPEG 2000 reversible ("R") against the uncompressed original ("UNCR").
    *(
        (f"pydicom-data/{name}_J2KR.dcm", f"pydicom-data/{name}_UNCR.dcm")
        for name in ("693", "MR2", "RG1", "RG3", "US1")
    ),
    ("pydicom/JPEG2000.dcm", "pydicom-data/JPEG2000_UNC.dcm"),
    # RGB: RLE, 16 and 32 bits allocated, big endian, planar configuration.
    *(
        (name, "pydicom-data/SC_rgb.dcm")
        for name in (
            "pydicom/SC_rgb_rle.dcm",
            "pydicom/SC_rgb_rle_16bit.dcm",
            "pydicom/SC_rgb_rle_32bit.dcm",
            "pydicom/SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless, RGB
            "pydicom/SC_rgb_gdcm_KY.dcm",  # JPEG lossless, RGB
            "pydicom-data/SC_rgb_16bit.dcm",
            "pydicom-data/SC_rgb_32bit.dcm",
            "pydicom-data/SC_rgb_expb.dcm",
            "pydicom-data/SC_rgb_expb_16bit.dcm",
            "pydicom-data/SC_rgb_expb_32bit.dcm",
            "pydicom-data/SC_rgb_gdcm2k_uncompressed.dcm",
        )
    ),
    *(
        (name, "pydicom-data/SC_rgb_2frame.dcm")
        for name in (
            "pydicom/SC_rgb_rle_2frame.dcm",
            "pydicom/SC_rgb_rle_16bit_2frame.dcm",
            "pydicom/SC_rgb_rle_32bit_2frame.dcm",
            "pydicom-data/SC_rgb_16bit_2frame.dcm",
            "pydicom-data/SC_rgb_32bit_2frame.dcm",
            "pydicom-data/SC_rgb_expb_2frame.dcm",
            "pydicom-data/SC_rgb_expb_16bit_2frame.dcm",
            "pydicom-data/SC_rgb_expb_32bit_2frame.dcm",
        )
    ),
    ("pydicom/SC_rgb_small_odd_big_endian.dcm", "pydicom/SC_rgb_small_odd.dcm"),
    ("pydicom-data/color-pl.dcm", "pydicom-data/color-px.dcm"),  # planar vs interleaved colour
    # YBR_FULL and uncompressed YBR_FULL_422 (two samples a pixel) against the RGB they were made from.
    ("pydicom-data/SC_ybr_full_uncompressed.dcm", "pydicom-data/SC_rgb_dcmtk_ebcyn2_dcmd.dcm"),
    ("pydicom/SC_ybr_full_422_uncompressed.dcm", "pydicom-data/SC_rgb_dcmtk_ebcyn2_dcmd.dcm"),
    # Palette colour: big endian (8-bit entries in 16-bit words, segmented tables) and RLE.
    ("pydicom-data/OBXXXX1A_expb.dcm", "pydicom-data/OBXXXX1A.dcm"),
    ("pydicom-data/OBXXXX1A_rle.dcm", "pydicom-data/OBXXXX1A.dcm"),
    ("pydicom-data/OBXXXX1A_expb_2frame.dcm", "pydicom-data/OBXXXX1A_2frame.dcm"),
    ("pydicom-data/OBXXXX1A_rle_2frame.dcm", "pydicom-data/OBXXXX1A_2frame.dcm"),
    ("pydicom-data/gdcm-US-ALOKA-16_big.dcm", "pydicom-data/gdcm-US-ALOKA-16.dcm"),
    # Segmentations and RT dose grids: big endian and RLE, single and multi-frame.
    ("pydicom-data/liver_expb.dcm", "pydicom-data/liver.dcm"),
    ("pydicom/liver_expb_1frame.dcm", "pydicom/liver_1frame.dcm"),
    ("pydicom/rtdose_expb.dcm", "pydicom/rtdose.dcm"),
    ("pydicom/rtdose_rle.dcm", "pydicom/rtdose.dcm"),
    ("pydicom/rtdose_expb_1frame.dcm", "pydicom/rtdose_1frame.dcm"),
    ("pydicom/rtdose_rle_1frame.dcm", "pydicom/rtdose_1frame.dcm"),
]

# (lossy file, its reference, largest difference of any value, largest mean difference). Where the
# corpus holds the same lossy stream decompressed by another toolkit ("UNCI", "_dcmd"), only decoder
# rounding may differ; against the lossless original, the loss of the coding itself shows.
LOSSY_TWINS: list[tuple[str, str, float, float]] = [
    # JPEG 2000 irreversible ("I") against its decompressed copy ("UNCI").
    ("pydicom/693_J2KI.dcm", "pydicom-data/693_UNCI.dcm", 1, 0.01),
    *(
        (f"pydicom-data/{name}_J2KI.dcm", f"pydicom-data/{name}_UNCI.dcm", 1, 0.01)
        for name in ("MR2", "RG1", "RG3", "US1")
    ),
    # JPEG baseline from dcmtk (RGB, YBR full, 4:2:2, 4:2:0, spectral / successive) against dcmtk's decode.
    ("pydicom/SC_rgb_dcmtk_+eb+cr.dcm", "pydicom-data/SC_rgb_dcmtk_ebcr_dcmd.dcm", 2, 0.05),
    ("pydicom/SC_rgb_dcmtk_+eb+cy+n1.dcm", "pydicom-data/SC_rgb_dcmtk_ebcyn1_dcmd.dcm", 2, 0.2),
    ("pydicom/SC_rgb_dcmtk_+eb+cy+n2.dcm", "pydicom-data/SC_rgb_dcmtk_ebcyn2_dcmd.dcm", 2, 0.2),
    ("pydicom/SC_rgb_dcmtk_+eb+cy+np.dcm", "pydicom-data/SC_rgb_dcmtk_ebcynp_dcmd.dcm", 2, 0.2),
    ("pydicom/SC_rgb_dcmtk_+eb+cy+s2.dcm", "pydicom-data/SC_rgb_dcmtk_ebcys2_dcmd.dcm", 2, 0.2),
    ("pydicom/SC_rgb_dcmtk_+eb+cy+s4.dcm", "pydicom-data/SC_rgb_dcmtk_ebcys4_dcmd.dcm", 2, 0.2),
    ("pydicom/SC_rgb_jpeg.dcm", "pydicom/SC_rgb_jpeg_dcmd.dcm", 2, 0.05),
    ("pydicom/SC_jpeg_no_color_transform.dcm", "pydicom/SC_rgb_jpeg_dcmd.dcm", 2, 0.05),  # RGB without APP14
    ("pydicom/SC_jpeg_no_color_transform_2.dcm", "pydicom/SC_rgb_jpeg_app14_dcmd.dcm", 2, 0.05),  # with APP14
    # Lossy coding against the lossless original: JPEG-LS near-lossless bounds every error by NEAR (3);
    # JPEG with chroma subsampling smears the sharp colour edges of this test card (large max, small mean).
    ("pydicom/SC_rgb_jls_lossy_line.dcm", "pydicom-data/SC_rgb.dcm", 3, 1.0),
    ("pydicom/SC_rgb_jls_lossy_sample.dcm", "pydicom-data/SC_rgb.dcm", 3, 1.0),
    ("pydicom/SC_rgb_jpeg_dcmtk.dcm", "pydicom-data/SC_rgb.dcm", 8, 1.0),
    ("pydicom/SC_rgb_jpeg_lossy_gdcm.dcm", "pydicom-data/SC_rgb.dcm", 80, 3.0),
    ("pydicom/SC_rgb_small_odd_jpeg.dcm", "pydicom/SC_rgb_small_odd.dcm", 6, 3.0),
    # 12-bit JPEG extended (NM, values up to ~4000) against the JPEG lossless coding of the same image.
    ("pydicom/JPGExtended.dcm", "pydicom-data/JPEG-LL.dcm", 40, 3.0),
]


def _corpus_file(key: str) -> Path:
    path = CORPUS_FILES.get(key)
    if path is None:
        corpus = key.split("/", 1)[0]
        if CORPORA.get(corpus) is None:
            missing(f"the {corpus} corpus is not installed in this venv")
        pytest.fail(f"{key} is missing from the {corpus} corpus: update this table")
    return path


@functools.lru_cache(maxsize=4)
def _decoded(key: str) -> DecodedImage:
    """References are shared by many twins: decode each once (a few MB each)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return decode_dicom(_corpus_file(key).read_bytes())


@pytest.mark.parametrize(("name", "reference"), IDENTICAL_TWINS, ids=[name for name, _ in IDENTICAL_TWINS])
def test_lossless_file_decodes_to_the_values_of_its_twin(name: str, reference: str) -> None:
    _corpus_file(reference)
    decoded, expected = _decoded(name), _decoded(reference)
    assert decoded.is_color == expected.is_color
    assert decoded.frames.shape == expected.frames.shape
    assert np.array_equal(decoded.frames, expected.frames)


@pytest.mark.parametrize(
    ("name", "reference", "max_difference", "mean_difference"), LOSSY_TWINS, ids=[row[0] for row in LOSSY_TWINS]
)
def test_lossy_file_decodes_close_to_its_twin(
    name: str, reference: str, max_difference: float, mean_difference: float
) -> None:
    _corpus_file(reference)
    decoded, expected = _decoded(name), _decoded(reference)
    assert decoded.is_color == expected.is_color
    assert decoded.frames.shape == expected.frames.shape
    difference = np.abs(decoded.frames.astype(np.float64) - expected.frames.astype(np.float64))
    assert difference.max() <= max_difference
    assert difference.mean() <= mean_difference
