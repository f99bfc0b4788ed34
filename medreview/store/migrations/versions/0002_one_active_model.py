"""At most one active model version, enforced by the database: a partial unique index.

Two promotions at the same moment could leave two versions active; the index makes the second
fail instead. Before it is created, any extra active versions are demoted (the newest stays).

Revision ID: 0002_one_active_model
Revises: 0001_first_release
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_one_active_model"
down_revision = "0001_first_release"
branch_labels = None
depends_on = None

INDEX = "uq_model_versions_one_active"


def upgrade() -> None:
    op.execute(
        "UPDATE model_versions SET is_active = false WHERE is_active "
        "AND id <> (SELECT max(id) FROM model_versions WHERE is_active)"
    )
    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.create_index(
            INDEX,
            ["is_active"],
            unique=True,
            sqlite_where=sa.text("is_active"),
            postgresql_where=sa.text("is_active"),
        )


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.drop_index(INDEX)
