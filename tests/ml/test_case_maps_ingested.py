"""The maps of a case prediction's slices on studies stored through the real ingest path (issue 17
item 7a): CT slices stored as Hounsfield units without a window, prepared with the case model's slice
recipe, trained on and explained.

Before the case recipe had its own window policy, each such slice was stretched to its own percentile
window: a lesion darkened the rest of its slice instead of standing out, the model learnt the darkening
(held-out AUC 1.0 after one epoch) and Grad-CAM of the lesion class was all zeros on every positive
study's top slices (12 of 12 on 24 stored studies).
"""

import numpy as np
import pytest

from medreview.ml.cases import case_volumes, top_slice_maps
from medreview.ml.configs import get_case_config
from medreview.ml.synthetic_volumes import lesion_volumes
from medreview.ml.training.cases import CaseFitConfig, train_case_model
from tests.ml.case_store import CLASSES, case_store

pytestmark = pytest.mark.slow  # trains a model

STUDIES, SLICES, SIZE = 12, 5, 32


def test_lesion_slice_maps_of_a_stored_study_are_not_empty_and_peak_on_the_lesion(store):
    stored = case_store(store, studies=STUDIES, slices=SLICES, seed=0, read=False)
    generated = lesion_volumes(STUDIES, slices=SLICES, size=SIZE, seed=0)  # case_store's volumes, as drawn
    config = CaseFitConfig(input_size=SIZE, epochs=1, batch_size=4)
    case_config = config.case_config()
    volumes, _ = case_volumes(store, "study", stored.study_ids, case_config, case_config.preprocessing(SIZE))
    # One fixed window over the case: a voxel's value does not depend on the rest of its slice.
    for volume, drawn in zip(volumes, generated.volumes, strict=True):
        assert np.corrcoef(volume.ravel(), drawn.ravel())[0, 1] > 0.99
    result = train_case_model(
        volumes,
        [CLASSES.index(label) for label in stored.labels],
        generated.patient_keys,
        list(CLASSES),
        config,
        case_keys=generated.case_keys,
    )
    lesion_class = CLASSES.index("lesion")
    checked = 0
    for volume, lesion_slices, centre in zip(volumes, stored.lesion_slices, generated.lesion_centres, strict=True):
        if not lesion_slices:
            continue
        maps = top_slice_maps(result.model, case_config, volume, lesion_slices, lesion_class)  # (k, h, w)
        cell = SIZE / maps.shape[1]
        for slice_map in maps:
            assert slice_map.max() > 0, "an empty map on a lesion slice"
            row, column = np.unravel_index(np.argmax(slice_map), slice_map.shape)
            # The peak cell holds the lesion's centre or touches its cell (a lesion is 2-3 px across).
            assert abs((row + 0.5) * cell - centre[0]) <= 1.5 * cell
            assert abs((column + 0.5) * cell - centre[1]) <= 1.5 * cell
            checked += 1
    assert checked >= STUDIES // 2 * 2  # every positive study's 2-4 lesion slices


def test_case_models_read_ct_through_one_hounsfield_window():
    """A case model's slice recipe records the fixed-window policy, so its versions prepare alike later."""
    case_config = get_case_config("attention_mil", "small_cnn", None)
    assert case_config.recipe(32)["window_policy"] == "hounsfield-or-file"
