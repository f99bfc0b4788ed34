"""Frozen evaluation sets and trust in a model's inputs: evaluation sets (their images, with the
labels they had when frozen), each model version's figures on each set, the domain a version was
trained on and why it is or is not active, and a flag on each prediction of an image outside that
domain. Existing versions keep NULL (no domain recorded: nothing is flagged); existing predictions
are not flagged.

Revision ID: 0007_evaluation_sets
Revises: 0006_reading_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_evaluation_sets"
down_revision = "0006_reading_sessions"
branch_labels = None
depends_on = None

ONE_DEFAULT = "uq_evaluation_sets_one_default"


def upgrade() -> None:
    op.create_table(
        "evaluation_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evaluation_sets"),
        sa.UniqueConstraint("name", name="uq_evaluation_sets_name"),
    )
    op.create_index(
        ONE_DEFAULT,
        "evaluation_sets",
        ["is_default"],
        unique=True,
        sqlite_where=sa.text("is_default"),
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "evaluation_set_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("evaluation_set_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_set_id"],
            ["evaluation_sets.id"],
            name="fk_evaluation_set_images_evaluation_set_id_evaluation_sets",
        ),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_evaluation_set_images_image_id_images"),
        sa.PrimaryKeyConstraint("id", name="pk_evaluation_set_images"),
        sa.UniqueConstraint("evaluation_set_id", "image_id", name="uq_evaluation_set_images_set_image"),
    )
    op.create_index("ix_evaluation_set_images_evaluation_set_id", "evaluation_set_images", ["evaluation_set_id"])
    op.create_index("ix_evaluation_set_images_image_id", "evaluation_set_images", ["image_id"])
    op.create_table(
        "model_evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("evaluation_set_id", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"], name="fk_model_evaluations_model_version_id_model_versions"
        ),
        sa.ForeignKeyConstraint(
            ["evaluation_set_id"], ["evaluation_sets.id"], name="fk_model_evaluations_evaluation_set_id_evaluation_sets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_evaluations"),
        sa.UniqueConstraint("model_version_id", "evaluation_set_id", name="uq_model_evaluations_version_set"),
    )
    op.create_index("ix_model_evaluations_model_version_id", "model_evaluations", ["model_version_id"])
    op.create_index("ix_model_evaluations_evaluation_set_id", "model_evaluations", ["evaluation_set_id"])
    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.add_column(sa.Column("domain", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("activation_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("predictions") as batch_op:
        batch_op.add_column(sa.Column("out_of_distribution", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("out_of_distribution_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch_op:
        batch_op.drop_column("out_of_distribution_reason")
        batch_op.drop_column("out_of_distribution")
    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.drop_column("activation_reason")
        batch_op.drop_column("domain")
    op.drop_index("ix_model_evaluations_evaluation_set_id", table_name="model_evaluations")
    op.drop_index("ix_model_evaluations_model_version_id", table_name="model_evaluations")
    op.drop_table("model_evaluations")
    op.drop_index("ix_evaluation_set_images_image_id", table_name="evaluation_set_images")
    op.drop_index("ix_evaluation_set_images_evaluation_set_id", table_name="evaluation_set_images")
    op.drop_table("evaluation_set_images")
    op.drop_index(ONE_DEFAULT, table_name="evaluation_sets")
    op.drop_table("evaluation_sets")
