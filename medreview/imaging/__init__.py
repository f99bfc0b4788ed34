"""Pixels for display and training: decode to modality values, window for display, overlays
and box geometry. Pure functions on arrays; no store, no I/O beyond reading one file."""
