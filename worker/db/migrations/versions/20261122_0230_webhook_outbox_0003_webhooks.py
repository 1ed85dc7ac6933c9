"""webhook outbox

Revision ID: 0003_webhooks
Revises: 0002_audit_heartbeat
Create Date: 2026-11-22 02:30:17.057225
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import worker.db.models

revision: str = "0003_webhooks"
down_revision: str | None = "0002_audit_heartbeat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "applyq_webhook_event",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", worker.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("last_http_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", worker.db.models.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("delivered_at", worker.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["applyq_submission.id"],
            name=op.f("fk_applyq_webhook_event_submission_id_applyq_submission"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applyq_webhook_event")),
    )
    with op.batch_alter_table("applyq_webhook_event", schema=None) as batch_op:
        batch_op.create_index("ix_applyq_webhook_event_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_applyq_webhook_event_submission_id"), ["submission_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("applyq_webhook_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applyq_webhook_event_submission_id"))
        batch_op.drop_index("ix_applyq_webhook_event_due")

    op.drop_table("applyq_webhook_event")
