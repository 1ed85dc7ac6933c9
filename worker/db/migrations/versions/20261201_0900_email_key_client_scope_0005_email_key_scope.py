"""email key and client scope: purge by a normalised address; idempotency keys per API token

Revision ID: 0005_email_key_scope
Revises: 0004_attempt_kind
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_email_key_scope"
down_revision: str | None = "0004_attempt_kind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision; existing keys join the default scope (the CLI's and the Python API's)."""
    with op.batch_alter_table("applyq_submission", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_key", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("client_scope", sa.String(length=64), server_default="default", nullable=False))
        batch_op.create_index("ix_applyq_submission_email_key", ["email_key"], unique=False)
        batch_op.drop_constraint("uq_applyq_submission_idempotency_key", type_="unique")
        batch_op.create_unique_constraint("uq_applyq_submission_scope_key", ["client_scope", "idempotency_key"])


def downgrade() -> None:
    """Revert this revision (fails if two scopes now share a key)."""
    with op.batch_alter_table("applyq_submission", schema=None) as batch_op:
        batch_op.drop_constraint("uq_applyq_submission_scope_key", type_="unique")
        batch_op.create_unique_constraint("uq_applyq_submission_idempotency_key", ["idempotency_key"])
        batch_op.drop_index("ix_applyq_submission_email_key")
        batch_op.drop_column("client_scope")
        batch_op.drop_column("email_key")
