"""attempt kind: a send, or a lookup after an unknown outcome

Revision ID: 0004_attempt_kind
Revises: 0003_webhooks
Create Date: 2026-11-30 23:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_attempt_kind"
down_revision: str | None = "0003_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision: every earlier attempt was a send."""
    with op.batch_alter_table("applyq_attempt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="send", nullable=False))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("applyq_attempt", schema=None) as batch_op:
        batch_op.drop_column("kind")
