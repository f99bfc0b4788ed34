"""Safer sign-in: passwords an admin set must be changed at the next sign-in, the back-off after
failed sign-ins (per client and account name, and per client), and where a login session was last
resumed from (a resume is audited once, not at every page load). Existing accounts keep the
passwords they have (no forced change); no login session has been resumed yet.

Revision ID: 0008_sign_in_safety
Revises: 0007_evaluation_sets
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_sign_in_safety"
down_revision = "0007_evaluation_sets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("login_tokens") as batch_op:
        batch_op.add_column(sa.Column("resumed_from", sa.String(length=64), nullable=True))
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sign_in_failures"),
        sa.UniqueConstraint("client", "account", name="uq_sign_in_failures_client_account"),
    )
    op.create_index("ix_sign_in_failures_last_failure_at", "sign_in_failures", ["last_failure_at"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_failures_last_failure_at", table_name="sign_in_failures")
    op.drop_table("sign_in_failures")
    with op.batch_alter_table("login_tokens") as batch_op:
        batch_op.drop_column("resumed_from")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("must_change_password")
