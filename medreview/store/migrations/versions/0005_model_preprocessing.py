"""Each model version records its preprocessing recipe (window policy, input size, resize method,
channel handling), so prediction and explanation apply what the model was trained on. Existing
versions keep NULL: they were trained before recipes were recorded (percentile stretch for PNG/JPEG).

Revision ID: 0005_model_preprocessing
Revises: 0004_blind_reads
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_model_preprocessing"
down_revision = "0004_blind_reads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.add_column(sa.Column("preprocessing", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch_op:
        batch_op.drop_column("preprocessing")
