"""submissions and attempts

Revision ID: 1d9cad631f34
Revises:
Create Date: 2026-11-22 02:15:49.488606
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import worker.db.models

revision: str = "1d9cad631f34"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "applyq_submission",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("provider_idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("integration_id", sa.String(length=200), nullable=True),
        sa.Column("job_id", sa.String(length=200), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", worker.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("published_at", worker.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.String(length=36), nullable=True),
        sa.Column("lease_expires_at", worker.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome_code", sa.String(length=100), nullable=True),
        sa.Column("outcome_title", sa.Text(), nullable=True),
        sa.Column("outcome_message", sa.Text(), nullable=True),
        sa.Column("outcome_reason", sa.String(length=64), nullable=True),
        sa.Column("remediation", sa.Text(), nullable=True),
        sa.Column("provider_application_id", sa.String(length=200), nullable=True),
        sa.Column("remote_id", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at",
            worker.db.models.UTCDateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            worker.db.models.UTCDateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("finished_at", worker.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applyq_submission")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_applyq_submission_idempotency_key")),
    )
    with op.batch_alter_table("applyq_submission", schema=None) as batch_op:
        batch_op.create_index("ix_applyq_submission_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_applyq_submission_provider_status", ["provider", "status"], unique=False)

    op.create_table(
        "applyq_attempt",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", worker.db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", worker.db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_title", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("log_url", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("delay_s", sa.Float(), nullable=True),
        sa.Column("unknown_outcome", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["applyq_submission.id"],
            name=op.f("fk_applyq_attempt_submission_id_applyq_submission"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applyq_attempt")),
        sa.UniqueConstraint("submission_id", "number", name=op.f("uq_applyq_attempt_submission_id")),
    )
    with op.batch_alter_table("applyq_attempt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_applyq_attempt_submission_id"), ["submission_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("applyq_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applyq_attempt_submission_id"))

    op.drop_table("applyq_attempt")
    with op.batch_alter_table("applyq_submission", schema=None) as batch_op:
        batch_op.drop_index("ix_applyq_submission_provider_status")
        batch_op.drop_index("ix_applyq_submission_due")

    op.drop_table("applyq_submission")
