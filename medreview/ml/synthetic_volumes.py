"""Generated CT-like volumes with a small lesion in a few slices: the data of the case model's
functional test (tests/ml/test_case_model.py) and benchmark (bench/case_model.py).

Real labelled CT volumes are not available here. These volumes test that the case-level model
(:class:`~medreview.ml.configs.AttentionMILConfig`) does what it is built for, finding a case's few
abnormal slices among many normal ones and saying which they are; they are **not clinical evidence**
of anything.

Each case is a stack of ``slices`` square slices, (K, S, S) float32 in [0, 1]:

- a body: an ellipse of soft tissue (:data:`TISSUE`) on air (:data:`AIR`) whose size drifts slowly
  along the stack, as a trunk does;
- anatomy: three to five ellipsoids (organs, vessels) of random brightness (:data:`ORGAN_BRIGHTNESS`)
  and size, each spanning many slices, placed anywhere inside the body, cut where their section gets
  small (:data:`MIN_ORGAN_SECTION`);
- Gaussian noise (:data:`NOISE`);
- positives only: a small round lesion (radius :data:`LESION_RADIUS` px at 32 px, brightness
  :data:`LESION_BRIGHTNESS`) in 2-4 consecutive slices somewhere inside the body. Negatives have none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticCases", "lesion_volumes"]

AIR, TISSUE = 0.05, 0.3
ORGAN_BRIGHTNESS = (0.4, 0.65)
ORGAN_RADIUS = (4.0, 7.0)  # pixels at 32 px: larger than any lesion
LESION_BRIGHTNESS = (0.85, 0.95)
LESION_RADIUS = (2.0, 2.8)  # pixels at 32 px
# Organs start and end abruptly: an ellipsoid's tip would be a small disc like the lesion, only
# darker, and 120 training cases did not teach the small CNN that difference (held-out AUC 0.92 with
# the three top-scored negatives' attention on such tips). Real CT is harder: a vessel seen end-on
# is a small bright disc; this data tests the machinery, not that.
MIN_ORGAN_SECTION = 0.6
NOISE = 0.04  # standard deviation of the Gaussian noise added everywhere


@dataclass(frozen=True)
class SyntheticCases:
    """``volumes``: one (K, S, S) float32 array in [0, 1] per case; ``labels`` (N,) int64 (1: lesion);
    ``lesion_slices``: per case the slice indices that hold the lesion (empty for negatives);
    ``lesion_centres``: per case the lesion's centre (row, column) in pixels (None for negatives);
    ``patient_keys`` and ``case_keys``: one distinct patient per case."""

    volumes: list[np.ndarray]
    labels: np.ndarray
    lesion_slices: list[tuple[int, ...]]
    lesion_centres: list[tuple[float, float] | None]
    patient_keys: list[str]
    case_keys: list[str]


def lesion_volumes(
    count: int, slices: int = 24, size: int = 32, seed: int = 0, positive_fraction: float = 0.5
) -> SyntheticCases:
    """``count`` cases, ``round(positive_fraction * count)`` of them positive, in a seeded random order."""
    if count < 2 or slices < 4 or size < 16:
        raise ValueError("Generate at least 2 cases of at least 4 slices of at least 16 px.")
    generator = np.random.default_rng(seed)
    positives = round(positive_fraction * count)
    labels = np.zeros(count, dtype=np.int64)
    labels[generator.permutation(count)[:positives]] = 1
    # (K, S, S) grids: every slice is drawn at once.
    along, rows, columns = np.mgrid[0:slices, 0:size, 0:size].astype(np.float32)
    scale = size / 32.0
    volumes, lesion_slices, lesion_centres = [], [], []
    for label in labels:
        centre = size / 2 + generator.normal(0, 1.0 * scale, size=2)
        # The trunk's half axes drift slowly along the stack: (K, 1, 1).
        drift = 1.0 + generator.uniform(-0.15, 0.15) * (np.arange(slices) / slices - 0.5)[:, None, None]
        half_rows, half_columns = generator.uniform(10, 13) * scale * drift, generator.uniform(12, 15) * scale * drift
        inside = ((rows - centre[0]) / half_rows) ** 2 + ((columns - centre[1]) / half_columns) ** 2 <= 1.0
        volume = np.where(inside, TISSUE, AIR).astype(np.float32)  # (K, S, S)
        for _ in range(int(generator.integers(3, 6))):
            organ_centre = centre + generator.uniform(-0.55, 0.55, size=2) * half_rows.mean() * np.array([1, 1.2])
            radius = generator.uniform(*ORGAN_RADIUS) * scale
            slice_centre, half_extent = generator.uniform(0, slices), generator.uniform(slices / 4, slices)
            # An ellipsoid, cut where its section falls below MIN_ORGAN_SECTION of its radius (0 outside).
            section = radius * np.sqrt(np.clip(1.0 - ((along - slice_centre) / half_extent) ** 2, 0.0, 1.0))
            section = np.where(section >= MIN_ORGAN_SECTION * radius, section, 0.0)
            disc = (rows - organ_centre[0]) ** 2 + (columns - organ_centre[1]) ** 2 <= section**2
            volume = np.where(disc & inside, generator.uniform(*ORGAN_BRIGHTNESS), volume)
        lesion: tuple[int, ...] = ()
        lesion_centre = None
        if label == 1:
            length = int(generator.integers(2, 5))  # 2-4 consecutive slices
            first = int(generator.integers(0, slices - length + 1))
            lesion = tuple(range(first, first + length))
            lesion_centre = centre + generator.uniform(-0.5, 0.5, size=2) * np.array(
                [half_rows.min(), half_columns.min()]
            )
            radius = generator.uniform(*LESION_RADIUS) * scale
            disc = (rows - lesion_centre[0]) ** 2 + (columns - lesion_centre[1]) ** 2 <= radius**2
            disc &= (along >= first) & (along < first + length)
            volume = np.where(disc, generator.uniform(*LESION_BRIGHTNESS), volume)
        volume = volume + generator.normal(0.0, NOISE, size=volume.shape).astype(np.float32)
        volumes.append(np.clip(volume, 0.0, 1.0).astype(np.float32))
        lesion_slices.append(lesion)
        lesion_centres.append(None if lesion_centre is None else (float(lesion_centre[0]), float(lesion_centre[1])))
    keys = [f"synthetic-{seed}-{index:05d}" for index in range(count)]
    return SyntheticCases(volumes, labels, lesion_slices, lesion_centres, keys, keys)
