import pytest

from medreview.errors import TrainingError
from medreview.ml.training.resolution import default_resolution


def test_small_images_train_at_their_own_size():
    assert default_resolution([(28, 28)] * 100) == 28
    assert default_resolution([(20, 24)] * 3) == 20


def test_large_films_are_capped():
    assert default_resolution([(1500, 1800)] * 10) == 128
    assert default_resolution([(1500, 1800)] * 10, cap=224) == 224


def test_a_high_percentile_of_short_sides_decides_rounded_down_to_a_multiple_of_8():
    # The 90th percentile (an actual image's short side) is 100 -> 96; one huge film in five does not
    # pull it up.
    shapes = [(100, 120), (100, 140), (3000, 3000), (90, 100), (110, 100)]
    assert default_resolution(shapes) == 96
    # Just above the floor: rounding down stops at the floor, it never goes below it.
    assert default_resolution([(30, 30)]) == 28


def test_no_images_is_a_plain_error():
    with pytest.raises(TrainingError):
        default_resolution([])
