"""Tests of medreview.ml.training; also holds the synthetic data the training and Grad-CAM tests share."""

from __future__ import annotations

import numpy as np

SQUARE_SIDE = 8


def bright_square_images(count: int, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A learnable toy task: class 1 images hold a bright square, class 0 only noise.

    Returns images (N, size, size) float32 in [0, 1], labels (N,) int64 alternating 0/1, and the
    square's top-left corners (N, 2) int64 (row, column), meaningful for class 1 only.
    """
    generator = np.random.default_rng(seed)
    images = generator.uniform(0.0, 0.3, size=(count, size, size)).astype(np.float32)
    labels = np.arange(count, dtype=np.int64) % 2
    corners = generator.integers(0, size - SQUARE_SIDE + 1, size=(count, 2))
    for image, label, (row, column) in zip(images, labels, corners, strict=True):
        if label == 1:
            image[row : row + SQUARE_SIDE, column : column + SQUARE_SIDE] = 1.0
    return images, labels, corners
