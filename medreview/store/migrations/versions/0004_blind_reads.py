"""Blinded reading keeps the first blind read: annotations get the class of the reader's first
read in blinded mode and a flag for a change made after unblinding.

Revision ID: 0004_blind_reads
Revises: 0003_display_names
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_blind_reads"
down_revision = "0003_display_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("annotations") as batch_op:
        batch_op.add_column(sa.Column("blind_label_class_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("changed_after_unblinding", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_foreign_key(
            "fk_annotations_blind_label_class_id_label_classes", "label_classes", ["blind_label_class_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("annotations") as batch_op:
        batch_op.drop_constraint("fk_annotations_blind_label_class_id_label_classes", type_="foreignkey")
        batch_op.drop_column("changed_after_unblinding")
        batch_op.drop_column("blind_label_class_id")
