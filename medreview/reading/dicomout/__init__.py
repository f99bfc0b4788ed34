"""DICOM out: reads, final labels and predictions as Comprehensive 3D SR (TID 1500 measurement
reports), evaluation sets as Key Object Selection documents, and sending them to a PACS (STOW-RS).

- :mod:`.codes`: the coded concept of each label class (the admin's SNOMED CT / RadLex code, else
  medreview's private scheme ``99MEDREVIEW``); imports nothing heavy, so the settings can check codes;
- :mod:`.documents`: what a report says and the DICOM objects (highdicom), with stable UIDs;
- :mod:`.parse`: medreview's own SR read back into reads (``import-labels``);
- :mod:`.send`: STOW-RS through ``dicomweb-client``, one result per object.

The package's ``__init__`` imports nothing: ``highdicom`` is loaded only by what writes or reads DICOM.
"""
