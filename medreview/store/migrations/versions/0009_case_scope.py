"""Cases: a label class has a scope (study, series or image), and reads, assignments, final labels,
evaluation-set members and predictions belong to one case at that scope: a ``scope`` and a
``case_id`` (the study, series or image id) beside the ``image_id`` they keep (a study's or
series' key image). Everything stored before is about images: existing classes and rows become
image-scoped, with ``case_id`` their image. The uniqueness rules move from the image to the case.

Revision ID: 0009_case_scope
Revises: 0008_sign_in_safety
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_case_scope"
down_revision = "0008_sign_in_safety"
branch_labels = None
depends_on = None

# table -> (its unique constraint on the image, its columns), (the one on the case, its columns)
UNIQUE_RULES = {
    "annotations": (
        ("uq_annotations_image_reader", ["image_id", "reader_id"]),
        ("uq_annotations_scope_case_reader", ["scope", "case_id", "reader_id"]),
    ),
    "assignments": (
        ("uq_assignments_image_reader", ["image_id", "reader_id"]),
        ("uq_assignments_scope_case_reader", ["scope", "case_id", "reader_id"]),
    ),
    "final_labels": (
        ("uq_final_labels_image_id", ["image_id"]),
        ("uq_final_labels_scope_case", ["scope", "case_id"]),
    ),
    "evaluation_set_images": (
        ("uq_evaluation_set_images_set_image", ["evaluation_set_id", "image_id"]),
        ("uq_evaluation_set_images_set_scope_case", ["evaluation_set_id", "scope", "case_id"]),
    ),
    # A prediction stays unique per (image, model version): a case model predicts at the key image.
    "predictions": (None, None),
}


def _scope_column() -> sa.Column:
    return sa.Column("scope", sa.String(length=8), nullable=False, server_default="image")


def upgrade() -> None:
    with op.batch_alter_table("label_classes") as batch_op:
        batch_op.add_column(_scope_column())
    for table, (image_rule, case_rule) in UNIQUE_RULES.items():
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(_scope_column())
            batch_op.add_column(sa.Column("case_id", sa.Integer(), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET case_id = image_id"))
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("case_id", existing_type=sa.Integer(), nullable=False)
            if image_rule is not None:
                batch_op.drop_constraint(image_rule[0], type_="unique")
                batch_op.create_unique_constraint(case_rule[0], case_rule[1])
    # The final label of an image was found by its unique constraint; it keeps an index.
    op.create_index("ix_final_labels_image_id", "final_labels", ["image_id"])


def downgrade() -> None:
    op.drop_index("ix_final_labels_image_id", table_name="final_labels")
    for table, (image_rule, case_rule) in UNIQUE_RULES.items():
        # Case rows (study or series) have no image-level meaning: they go.
        op.execute(sa.text(f"DELETE FROM {table} WHERE scope <> 'image'"))
        with op.batch_alter_table(table) as batch_op:
            if image_rule is not None:
                batch_op.drop_constraint(case_rule[0], type_="unique")
                batch_op.create_unique_constraint(image_rule[0], image_rule[1])
            batch_op.drop_column("case_id")
            batch_op.drop_column("scope")
    with op.batch_alter_table("label_classes") as batch_op:
        batch_op.drop_column("scope")
