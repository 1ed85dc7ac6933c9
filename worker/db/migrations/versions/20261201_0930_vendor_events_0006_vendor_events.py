"""vendor events: Kombo and StackOne webhooks, stored before they are acknowledged

Revision ID: 0006_vendor_events
Revises: 0005_email_key_scope
Create Date: 2026-12-01 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import worker.db.models

revision: str = "0006_vendor_events"
down_revision: str | None = "0005_email_key_scope"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "applyq_vendor_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("integration_id", sa.String(length=200), nullable=True),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "received_at", worker.db.models.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("processed_at", worker.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applyq_vendor_event")),
        sa.UniqueConstraint("provider", "event_id", name=op.f("uq_applyq_vendor_event_provider")),
    )
    with op.batch_alter_table("applyq_vendor_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_applyq_vendor_event_integration_id"), ["integration_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("applyq_vendor_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applyq_vendor_event_integration_id"))

    op.drop_table("applyq_vendor_event")
