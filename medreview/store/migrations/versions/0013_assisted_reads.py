"""Model-assisted reading (issue 18 item 4): what a reader saw of the model when they read.

On ``annotations``: ``assist_mode`` (the project's mode when the read was first saved: unaided,
aided_after or aided), ``model_version_id`` (the version whose call the reader was shown, as a
suggestion before the first save or after it), ``model_suggestion`` (the class the model suggested
before the first save; NULL when none was shown), ``suggestion_accepted`` (the first save named the
suggested class: true, accepted unchanged; false, overridden; NULL without a suggestion) and
``changed_after_model`` (the class changed after the model's call was on screen). Existing reads
keep NULLs and false: nothing of the model was recorded for them.

Revision ID: 0013_assisted_reads
Revises: 0012_worklist_places
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_assisted_reads"
down_revision = "0012_worklist_places"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("annotations") as batch_op:
        batch_op.add_column(sa.Column("assist_mode", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("model_version_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("model_suggestion", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("suggestion_accepted", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("changed_after_model", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_foreign_key(
            "fk_annotations_model_version_id_model_versions", "model_versions", ["model_version_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("annotations") as batch_op:
        batch_op.drop_constraint("fk_annotations_model_version_id_model_versions", type_="foreignkey")
        batch_op.drop_column("changed_after_model")
        batch_op.drop_column("suggestion_accepted")
        batch_op.drop_column("model_suggestion")
        batch_op.drop_column("model_version_id")
        batch_op.drop_column("assist_mode")
