"""Ingest: DICOM, PNG/JPEG and zip archives into the store. One entry: :func:`ingest_files`."""

from medreview.ingest.service import IngestResult, InputFile, ingest_files, ingest_paths

__all__ = ["IngestResult", "InputFile", "ingest_files", "ingest_paths"]
