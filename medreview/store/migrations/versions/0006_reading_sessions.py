"""Reading at speed: sign-in tokens that survive a page reload (stored hashed, with expiry and
revocation), the seconds each read's image was on screen, and the indexes the worklist's counts
and "next image" query use.

Revision ID: 0006_reading_sessions
Revises: 0005_model_preprocessing
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_reading_sessions"
down_revision = "0005_model_preprocessing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_login_tokens_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_login_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_login_tokens_token_hash"),
    )
    op.create_index("ix_login_tokens_user_id", "login_tokens", ["user_id"])
    with op.batch_alter_table("annotations") as batch_op:
        batch_op.add_column(sa.Column("seconds_on_case", sa.Float(), nullable=True))
        batch_op.create_index("ix_annotations_reader_status", ["reader_id", "status"])
    with op.batch_alter_table("series") as batch_op:
        batch_op.create_index("ix_series_modality", ["modality"])


def downgrade() -> None:
    with op.batch_alter_table("series") as batch_op:
        batch_op.drop_index("ix_series_modality")
    with op.batch_alter_table("annotations") as batch_op:
        batch_op.drop_index("ix_annotations_reader_status")
        batch_op.drop_column("seconds_on_case")
    op.drop_index("ix_login_tokens_user_id", table_name="login_tokens")
    op.drop_table("login_tokens")
