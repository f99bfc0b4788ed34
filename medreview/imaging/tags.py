"""DICOM tags the imaging, ingest and browse code all name."""

# (7FE0,0008) Float Pixel Data, (7FE0,0009) Double Float Pixel Data, (7FE0,0010) Pixel Data; in the
# order a decoder looks for them.
PIXEL_DATA_TAGS: tuple[int, ...] = (0x7FE00008, 0x7FE00009, 0x7FE00010)
