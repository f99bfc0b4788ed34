"""Alembic environment: run on the connection :func:`medreview.store.schema.upgrade` passes in.

Batch mode everywhere, so the same migration alters SQLite tables (copy-and-move) and PostgreSQL
ones (ALTER TABLE).
"""

from alembic import context

from medreview.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
