"""The de-identification key and the original-to-pseudonym map.

The project secret (32 random bytes) lives in ``<data dir>/secrets/deid.key`` with mode 0600,
outside the database: pseudonyms and remapped UIDs are HMACs under it, so the same patient or
UID maps the same way across uploads, processes and machines sharing the data dir, and the
database alone does not reveal who is who. The map of originals to pseudonyms is written to its
own table at import and read only here, by admins.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from medreview.errors import IngestError
from medreview.store import Store
from medreview.store.blobs import atomic_file
from medreview.store.db import insert_missing
from medreview.store.models import PseudonymEntry, utcnow

if TYPE_CHECKING:
    from medreview.ingest.deid import DeidResult
    from medreview.team.roles import Actor

__all__ = ["file_name_row", "project_secret", "pseudonym_rows", "pseudonym_table", "record_pseudonyms"]

_UID_KINDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def project_secret(store: Store) -> bytes:
    path = store.settings.data_dir / "secrets" / "deid.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Exclusive: when two processes race exactly one key wins (the other's is dropped), and
        # nobody can ever read a half-written one. The temporary file is 0600 from the start.
        with contextlib.suppress(FileExistsError), atomic_file(path, exclusive=True) as temporary:
            temporary.write_bytes(secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) != 32:
        # A half-written key (crash between create and write) must not silently weaken pseudonyms.
        raise IngestError(f"the de-identification key {path} is damaged ({len(key)} bytes); restore it from backup")
    return key


def record_pseudonyms(session: Session, rows: list[dict[str, object]]) -> None:
    """Add map rows (from :func:`pseudonym_rows` and :func:`file_name_row`, for a whole chunk of
    files at once: one statement) inside the caller's write session; rows already there stay."""
    unique = {(row["kind"], row["original"], row["pseudonym"]): row for row in rows}
    if unique:
        insert_missing(
            session, PseudonymEntry, list(unique.values()), conflict_columns=["kind", "original", "pseudonym"]
        )


def pseudonym_rows(result: DeidResult, originals: dict[str, str]) -> list[dict[str, object]]:
    """Map rows of one de-identified file. ``originals`` names the file's original
    StudyInstanceUID / SeriesInstanceUID / SOPInstanceUID."""
    entries = {
        ("patient_id", result.original_patient_id): result.pseudonym_patient_id,
        ("patient_name", result.original_patient_name): result.pseudonym_patient_id,
    }
    for kind in _UID_KINDS:
        original = originals.get(kind, "")
        if original and original in result.uid_map:
            entries[(kind, original)] = result.uid_map[original]
    return [
        {"kind": kind, "original": original, "pseudonym": pseudonym, "created_at": utcnow()}
        for (kind, original), pseudonym in entries.items()
        if original
    ]


_ORIGINAL_LENGTH = PseudonymEntry.__table__.c.original.type.length


def file_name_row(original: str, display_name: str) -> dict[str, object]:
    """The map row of an upload's name (an identifier: "Doe_Jane.zip/Doe_Jane_MRN445566/IMG1.dcm")
    and the display name the store shows instead; over-long names keep their end."""
    if len(original) > _ORIGINAL_LENGTH:
        original = "..." + original[-(_ORIGINAL_LENGTH - 3) :]
    return {"kind": "file_name", "original": original, "pseudonym": display_name, "created_at": utcnow()}


def pseudonym_table(store: Store, actor: Actor, search: str = "") -> pd.DataFrame:
    """The map, for admins only (re-identification is an admin's decision, and audited)."""
    from medreview.team.audit import record_now
    from medreview.team.roles import require

    require(actor, "admin", "see the pseudonym map")
    query = select(PseudonymEntry.kind, PseudonymEntry.original, PseudonymEntry.pseudonym, PseudonymEntry.created_at)
    if search:
        pattern = f"%{search}%"
        query = query.where(PseudonymEntry.original.like(pattern) | PseudonymEntry.pseudonym.like(pattern))
    with store.db.read() as session:
        rows = session.execute(query.order_by(PseudonymEntry.id).limit(5000)).mappings().all()
    # The search text is usually a patient's name or ID: log that a search happened, not what it was.
    record_now(store, actor.username, "pseudonyms.view", searched=bool(search), rows=len(rows))
    return pd.DataFrame(rows, columns=["kind", "original", "pseudonym", "created_at"])
