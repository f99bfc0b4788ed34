"""File names are identifiers: images get a display name, the upload's name lives in the
pseudonym map.

``images.original_filename`` becomes ``images.display_name``. With de-identification on (the
setting, default on), every existing image's upload name moves to the admin-only pseudonym map
(kind ``file_name``) and its display name is derived from de-identified facts, as new uploads get
(see medreview.ingest.service.display_name; frozen here as it was when this migration was written).
The map's originals grow to 1024 characters (full paths), and a file name may map to several
images, so its unique key becomes (kind, original, pseudonym).

Revision ID: 0003_display_names
Revises: 0002_one_active_model
"""

import datetime as dt
import json

import sqlalchemy as sa
from alembic import op

revision = "0003_display_names"
down_revision = "0002_one_active_model"
branch_labels = None
depends_on = None


def _display_name(media_type: str, modality: str | None, series_number, instance_number, sha256: str) -> str:
    if media_type == "dicom":
        return f"{modality or 'OT'}-s{series_number or 0}-i{instance_number or 0}-{sha256[:8]}.dcm"
    extension = "jpg" if media_type == "jpeg" else media_type
    return f"image-{sha256[:12]}.{extension}"


def upgrade() -> None:
    # A plain rename (SQLite >= 3.25 and PostgreSQL): no copy of the images table.
    op.execute("ALTER TABLE images RENAME COLUMN original_filename TO display_name")
    with op.batch_alter_table("pseudonym_map") as batch_op:
        batch_op.alter_column("original", type_=sa.String(1024), existing_type=sa.String(256))
        batch_op.drop_constraint("uq_pseudonym_map_kind_original", type_="unique")
        batch_op.create_unique_constraint("uq_pseudonym_map_kind_original_pseudonym", ["kind", "original", "pseudonym"])

    connection = op.get_bind()
    setting = connection.execute(sa.text("SELECT value FROM settings WHERE key = 'deidentify'")).scalar()
    deidentify = True if setting is None else bool(json.loads(setting) if isinstance(setting, str) else setting)
    if not deidentify:
        return
    rows = connection.execute(
        sa.text(
            "SELECT images.id, images.display_name, images.media_type, images.instance_number, images.sha256, "
            "series.modality, series.series_number FROM images JOIN series ON series.id = images.series_id"
        )
    ).all()
    now = dt.datetime.now(dt.UTC)
    for image_id, name, media_type, instance_number, sha256, modality, series_number in rows:
        display = _display_name(media_type, modality, series_number, instance_number, sha256)
        if display == name:
            continue
        connection.execute(
            sa.text(
                "INSERT INTO pseudonym_map (kind, original, pseudonym, created_at) "
                "VALUES ('file_name', :original, :pseudonym, :now)"
            ),
            {"original": name, "pseudonym": display, "now": now},
        )
        connection.execute(
            sa.text("UPDATE images SET display_name = :display WHERE id = :id"), {"display": display, "id": image_id}
        )


def downgrade() -> None:
    # Display names stay: putting identifying names back is a decision for a person, not a downgrade.
    with op.batch_alter_table("pseudonym_map") as batch_op:
        batch_op.drop_constraint("uq_pseudonym_map_kind_original_pseudonym", type_="unique")
        batch_op.create_unique_constraint("uq_pseudonym_map_kind_original", ["kind", "original"])
        batch_op.alter_column("original", type_=sa.String(256), existing_type=sa.String(1024))
    op.execute("ALTER TABLE images RENAME COLUMN display_name TO original_filename")
