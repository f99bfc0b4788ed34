"""An index on the predictions' (scope, case_id, model_version_id): the Review queue joins each read
to the active version's call on its case (issue 18's filters by reader/model agreement), and
without it SQLite searched every prediction of the version for each read (the version's index
alone), quadratic in the size of a project. An index only: no row changes.

Revision ID: 0011_prediction_case_index
Revises: 0010_reader_studies
"""

from alembic import op

revision = "0011_prediction_case_index"
down_revision = "0010_reader_studies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_predictions_scope_case_model", "predictions", ["scope", "case_id", "model_version_id"])


def downgrade() -> None:
    op.drop_index("ix_predictions_scope_case_model", table_name="predictions")
