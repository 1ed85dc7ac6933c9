"""email key and client scope: purge by a normalised address; idempotency keys per API token

Revision ID: 0005_email_key_scope
Revises: 0004_attempt_kind
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from worker.privacy import email_key

revision: str = "0005_email_key_scope"
down_revision: str | None = "0004_attempt_kind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rows read and updated per round trip while the keys of existing submissions are computed.
_BATCH = 500
_SUBMISSION = sa.table(
    "applyq_submission", sa.column("id", sa.String), sa.column("payload", sa.JSON), sa.column("email_key", sa.String)
)
_SET_KEY = _SUBMISSION.update().where(_SUBMISSION.c.id == sa.bindparam("sid")).values(email_key=sa.bindparam("key"))


def upgrade() -> None:
    """Apply this revision; existing keys join the default scope (the CLI's and the Python API's)."""
    with op.batch_alter_table("applyq_submission", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_key", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("client_scope", sa.String(length=64), server_default="default", nullable=False))
        batch_op.create_index("ix_applyq_submission_email_key", ["email_key"], unique=False)
        batch_op.drop_constraint("uq_applyq_submission_idempotency_key", type_="unique")
        batch_op.create_unique_constraint("uq_applyq_submission_scope_key", ["client_scope", "idempotency_key"])
    if not op.get_context().as_sql:  # offline (--sql) output has no rows to read; run `applyq migrate` instead
        _fill_email_keys(op.get_bind())


def _fill_email_keys(connection: sa.Connection) -> None:
    """Compute the key of every stored address in Python (the same function as at enqueue), a batch at a time.

    Python, not SQL: neither SQLite nor PostgreSQL can apply IDNA, and SQLite's ``lower()`` folds ASCII only.
    """
    after = ""
    while True:
        query = sa.select(_SUBMISSION.c.id, _SUBMISSION.c.payload).where(_SUBMISSION.c.id > after)
        rows = connection.execute(query.order_by(_SUBMISSION.c.id).limit(_BATCH)).all()
        if not rows:
            return
        keys = [{"sid": sid, "key": key} for sid, payload in rows if (key := _key_of(payload)) is not None]
        if keys:
            connection.execute(_SET_KEY, keys)
        after = rows[-1].id


def _key_of(payload: object) -> str | None:
    candidate = payload.get("candidate") if isinstance(payload, dict) else None
    email = candidate.get("email") if isinstance(candidate, dict) else None
    return email_key(email) if isinstance(email, str) else None


def downgrade() -> None:
    """Revert this revision (fails if two scopes now share a key)."""
    with op.batch_alter_table("applyq_submission", schema=None) as batch_op:
        batch_op.drop_constraint("uq_applyq_submission_scope_key", type_="unique")
        batch_op.create_unique_constraint("uq_applyq_submission_idempotency_key", ["idempotency_key"])
        batch_op.drop_index("ix_applyq_submission_email_key")
        batch_op.drop_column("client_scope")
        batch_op.drop_column("email_key")
