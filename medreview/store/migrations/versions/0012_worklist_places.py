"""A place on the worklist for an assignment: ``assignments.list_place``, a number that stands where
the image id stands in the worklist's order (NULL: the image id). Gold-standard cases mixed into a
reader's worklist get a place among the reader's ordinary cases, so they no longer sit together at
the top of the list (evaluation-set images are usually the oldest, smallest ids). An index on
(reader_id, list_place) tells at once whether a reader's list has any placed case (a list without
one keeps its order and its queries). Existing rows keep NULL: their order does not change.

Revision ID: 0012_worklist_places
Revises: 0011_prediction_case_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_worklist_places"
down_revision = "0011_prediction_case_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assignments") as batch_op:
        batch_op.add_column(sa.Column("list_place", sa.Float(), nullable=True))
    op.create_index("ix_assignments_reader_place", "assignments", ["reader_id", "list_place"])


def downgrade() -> None:
    op.drop_index("ix_assignments_reader_place", table_name="assignments")
    with op.batch_alter_table("assignments") as batch_op:
        batch_op.drop_column("list_place")
