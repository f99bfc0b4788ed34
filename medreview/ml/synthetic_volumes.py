"""Generated CT-like volumes with a small lesion in a few slices: the data of the case model's
functional test (tests/ml/test_case_model.py) and benchmark (bench/case_model.py).

Real labelled CT volumes are not available here. These volumes test that the case-level model
(:class:`~medreview.ml.configs.AttentionMILConfig`) does what it is built for, finding a case's few
abnormal slices among many normal ones and saying which they are; they are **not clinical evidence**
of anything.

Each case is a stack of ``slices`` square slices, (K, S, S) float32 in [0, 1]:

- a body: an ellipse of soft tissue (about 0.35) on air (about 0.05) whose size drifts slowly along
  the stack, as a trunk does;
- anatomy: three to five ellipsoids (organs, vessels, bone) of random brightness (0.45-0.9) and size,
  each spanning many slices, placed anywhere inside the body, so brightness alone does not tell a
  positive case;
- Gaussian noise (standard deviation 0.04);
- positives only: a small round lesion (radius 1.6-2.4 px at 32 px, brightness +0.3 to +0.4 over the
  tissue) in 2-4 consecutive slices somewhere inside the body. Negatives have none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticCases", "lesion_volumes"]


@dataclass(frozen=True)
class SyntheticCases:
    """``volumes``: one (K, S, S) float32 array in [0, 1] per case; ``labels`` (N,) int64 (1: lesion);
    ``lesion_slices``: per case the slice indices that hold the lesion (empty for negatives);
    ``patient_keys`` and ``case_keys``: one distinct patient per case."""

    volumes: list[np.ndarray]
    labels: np.ndarray
    lesion_slices: list[tuple[int, ...]]
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
    rows, columns = np.mgrid[0:size, 0:size].astype(np.float32)
    scale = size / 32.0
    volumes, lesion_slices = [], []
    for label in labels:
        volume = np.empty((slices, size, size), dtype=np.float32)
        centre = size / 2 + generator.normal(0, 1.0 * scale, size=2)
        half_axes = np.array([generator.uniform(10, 13), generator.uniform(12, 15)]) * scale
        drift = generator.uniform(-0.15, 0.15)
        organs = []
        for _ in range(int(generator.integers(3, 6))):
            organs.append(
                {
                    "centre": centre + generator.uniform(-0.55, 0.55, size=2) * half_axes,
                    "radius": generator.uniform(2.5, 5.5) * scale,
                    "brightness": generator.uniform(0.45, 0.9),
                    "slice_centre": generator.uniform(0, slices),
                    "slice_half_extent": generator.uniform(slices / 4, slices),
                }
            )
        lesion = None
        if label == 1:
            length = int(generator.integers(2, 5))  # 2-4 consecutive slices
            first = int(generator.integers(0, slices - length + 1))
            lesion = {
                "slices": tuple(range(first, first + length)),
                "centre": centre + generator.uniform(-0.5, 0.5, size=2) * half_axes,
                "radius": generator.uniform(1.6, 2.4) * scale,
                "contrast": generator.uniform(0.3, 0.4),
            }
        for index in range(slices):
            axes = half_axes * (1.0 + drift * (index / slices - 0.5))
            inside = ((rows - centre[0]) / axes[0]) ** 2 + ((columns - centre[1]) / axes[1]) ** 2 <= 1.0
            image = np.where(inside, 0.35, 0.05).astype(np.float32)  # (S, S) tissue on air
            for organ in organs:
                along = (index - organ["slice_centre"]) / organ["slice_half_extent"]
                if abs(along) >= 1.0:
                    continue
                radius = organ["radius"] * np.sqrt(1.0 - along**2)  # an ellipsoid's section
                disc = (rows - organ["centre"][0]) ** 2 + (columns - organ["centre"][1]) ** 2 <= radius**2
                image = np.where(disc & inside, organ["brightness"], image)
            if lesion is not None and index in lesion["slices"]:
                disc = (rows - lesion["centre"][0]) ** 2 + (columns - lesion["centre"][1]) ** 2 <= lesion["radius"] ** 2
                image = np.where(disc, image + lesion["contrast"], image)
            image = image + generator.normal(0.0, 0.04, size=image.shape).astype(np.float32)
            volume[index] = np.clip(image, 0.0, 1.0)
        volumes.append(volume)
        lesion_slices.append(lesion["slices"] if lesion is not None else ())
    keys = [f"synthetic-{seed}-{index:05d}" for index in range(count)]
    return SyntheticCases(volumes, labels, lesion_slices, keys, keys)
