"""audit trail, heartbeats, retry windows

Revision ID: 0002_audit_heartbeat
Revises: 1d9cad631f34
Create Date: 2026-11-22 02:24:31.701080
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import worker.db.models

revision: str = "0002_audit_heartbeat"
down_revision: str | None = "1d9cad631f34"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "applyq_heartbeat",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("beat_at", worker.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", worker.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_applyq_heartbeat")),
    )
    op.create_table(
        "applyq_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("submission_id", sa.String(length=36), nullable=True),
        sa.Column("at", worker.db.models.UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "changes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["applyq_submission.id"],
            name=op.f("fk_applyq_audit_submission_id_applyq_submission"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applyq_audit")),
    )
    with op.batch_alter_table("applyq_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_applyq_audit_submission_id"), ["submission_id"], unique=False)

    with op.batch_alter_table("applyq_submission", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "window_started_at",
                worker.db.models.UTCDateTime(timezone=True),
                server_default=sa.func.now(),
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("window_attempt_base", sa.Integer(), server_default="0", nullable=False))
    op.execute("UPDATE applyq_submission SET window_started_at = created_at")


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("applyq_submission", schema=None) as batch_op:
        batch_op.drop_column("window_attempt_base")
        batch_op.drop_column("window_started_at")

    with op.batch_alter_table("applyq_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applyq_audit_submission_id"))

    op.drop_table("applyq_audit")
    op.drop_table("applyq_heartbeat")
