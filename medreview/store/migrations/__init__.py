"""Alembic migrations of the store's schema (see :mod:`medreview.store.schema`)."""
