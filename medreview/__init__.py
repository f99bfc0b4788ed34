"""medreview: label imaging studies, train a CNN on them, review its predictions with Grad-CAM."""

__version__ = "0.1.0"
