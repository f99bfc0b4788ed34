"""Reader studies and gold-standard checks: studies on frozen evaluation sets (their readers, and
each reader's rating of each case in each arm, with the seconds it took) and the evaluation-set
cases mixed into readers' worklists as gold. New tables only: nothing existing changes.

Revision ID: 0010_reader_studies
Revises: 0009_case_scope
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_reader_studies"
down_revision = "0009_case_scope"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reader_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("evaluation_set_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("positive_class", sa.String(length=64), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column("design", sa.String(length=16), nullable=False),
        sa.Column("washout_days", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("scale", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_set_id"], ["evaluation_sets.id"], name="fk_reader_studies_evaluation_set_id_evaluation_sets"
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"], ["model_versions.id"], name="fk_reader_studies_model_version_id_model_versions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reader_studies"),
        sa.UniqueConstraint("name", name="uq_reader_studies_name"),
    )
    op.create_index("ix_reader_studies_evaluation_set_id", "reader_studies", ["evaluation_set_id"])
    op.create_table(
        "reader_study_readers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["reader_studies.id"], name="fk_reader_study_readers_study_id_reader_studies"
        ),
        sa.ForeignKeyConstraint(["reader_id"], ["users.id"], name="fk_reader_study_readers_reader_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_reader_study_readers"),
        sa.UniqueConstraint("study_id", "reader_id", name="uq_reader_study_readers_study_reader"),
    )
    op.create_index("ix_reader_study_readers_study_id", "reader_study_readers", ["study_id"])
    op.create_index("ix_reader_study_readers_reader_id", "reader_study_readers", ["reader_id"])
    op.create_table(
        "reader_study_ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("reading_order", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("active_seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"], ["reader_studies.id"], name="fk_reader_study_ratings_study_id_reader_studies"
        ),
        sa.ForeignKeyConstraint(["reader_id"], ["users.id"], name="fk_reader_study_ratings_reader_id_users"),
        sa.ForeignKeyConstraint(
            ["member_id"], ["evaluation_set_images.id"], name="fk_reader_study_ratings_member_id_evaluation_set_images"
        ),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_reader_study_ratings_image_id_images"),
        sa.PrimaryKeyConstraint("id", name="pk_reader_study_ratings"),
        sa.UniqueConstraint("study_id", "reader_id", "arm", "member_id", name="uq_reader_study_ratings_study_reader"),
    )
    op.create_index("ix_reader_study_ratings_study_id", "reader_study_ratings", ["study_id"])
    op.create_index("ix_reader_study_ratings_reader_id", "reader_study_ratings", ["reader_id"])
    op.create_table(
        "gold_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reader_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("evaluation_set_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("assigned_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["reader_id"], ["users.id"], name="fk_gold_cases_reader_id_users"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], name="fk_gold_cases_image_id_images"),
        sa.ForeignKeyConstraint(
            ["evaluation_set_id"], ["evaluation_sets.id"], name="fk_gold_cases_evaluation_set_id_evaluation_sets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gold_cases"),
        sa.UniqueConstraint("reader_id", "image_id", name="uq_gold_cases_reader_image"),
    )
    op.create_index("ix_gold_cases_reader_id", "gold_cases", ["reader_id"])
    op.create_index("ix_gold_cases_image_id", "gold_cases", ["image_id"])


def downgrade() -> None:
    for table in ("gold_cases", "reader_study_ratings", "reader_study_readers", "reader_studies"):
        op.drop_table(table)
