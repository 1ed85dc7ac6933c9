"""history that scales: tallies kept by triggers, the listing and prune indexes, history_pruned_at

Revision ID: 0007_history_rollups
Revises: 0006_vendor_events
Create Date: 2026-12-10 09:00:00

Metrics read ``applyq_tally`` (counts kept as the rows change) instead of grouping every attempt on each
scrape, and ``applyq prune`` may delete attempts without changing what was counted. Triggers append a delta
row per counted change (``worker/db/tally.py`` folds them in): appends never wait for one another, where
concurrent updates of one shared counter row would (and, taken in different orders, deadlock). The tallies
start from what the database already holds. On PostgreSQL the two indexes are built while writes to
``applyq_submission`` wait (seconds per million rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import worker.db.models

revision: str = "0007_history_rollups"
down_revision: str | None = "0006_vendor_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The ended statuses (``worker.states.ENDED_STATUSES``), frozen as of this revision.
_ENDED = "('cancelled', 'succeeded', 'terminal')"
_PRUNABLE = sa.text(f"status IN {_ENDED} AND history_pruned_at IS NULL")
_DELTA = "INSERT INTO applyq_tally_delta (kind, provider, label, code, n)"
#: an attempt is counted once, when its decision is recorded (or inserted with one)
_ATTEMPT = f"{_DELTA} SELECT 'attempt', s.provider, NEW.decision, coalesce(NEW.error_code, ''), 1 " \
    "FROM applyq_submission s WHERE s.id = NEW.submission_id"  # fmt: skip
#: a submission is counted while its status is an ended one
_ENTERS = f"{_DELTA} SELECT 'ended', NEW.provider, NEW.status, '', 1 WHERE NEW.status IN {_ENDED}"
_LEAVES = f"{_DELTA} SELECT 'ended', OLD.provider, OLD.status, '', -1 WHERE OLD.status IN {_ENDED}"
_MOVES = f"(OLD.status IS DISTINCT FROM NEW.status OR OLD.provider IS DISTINCT FROM NEW.provider) " \
    f"AND (OLD.status IN {_ENDED} OR NEW.status IN {_ENDED})"  # fmt: skip

_POSTGRES = [
    f"""CREATE FUNCTION applyq_tally_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN {_ATTEMPT}; RETURN NULL; END $$""",
    f"""CREATE FUNCTION applyq_tally_ended() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'INSERT' THEN {_LEAVES}; END IF;
      IF TG_OP <> 'DELETE' THEN {_ENTERS}; END IF;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER applyq_tally_attempt_insert AFTER INSERT ON applyq_attempt FOR EACH ROW
    WHEN (NEW.decision IS NOT NULL) EXECUTE FUNCTION applyq_tally_attempt()""",
    """CREATE TRIGGER applyq_tally_attempt_update AFTER UPDATE OF decision ON applyq_attempt FOR EACH ROW
    WHEN (OLD.decision IS NULL AND NEW.decision IS NOT NULL) EXECUTE FUNCTION applyq_tally_attempt()""",
    f"""CREATE TRIGGER applyq_tally_ended_insert AFTER INSERT ON applyq_submission FOR EACH ROW
    WHEN (NEW.status IN {_ENDED}) EXECUTE FUNCTION applyq_tally_ended()""",
    f"""CREATE TRIGGER applyq_tally_ended_update AFTER UPDATE OF status, provider ON applyq_submission FOR EACH ROW
    WHEN ({_MOVES}) EXECUTE FUNCTION applyq_tally_ended()""",
    f"""CREATE TRIGGER applyq_tally_ended_delete AFTER DELETE ON applyq_submission FOR EACH ROW
    WHEN (OLD.status IN {_ENDED}) EXECUTE FUNCTION applyq_tally_ended()""",
]
_SQLITE = [
    f"""CREATE TRIGGER applyq_tally_attempt_insert AFTER INSERT ON applyq_attempt
    WHEN NEW.decision IS NOT NULL BEGIN {_ATTEMPT}; END""",
    f"""CREATE TRIGGER applyq_tally_attempt_update AFTER UPDATE OF decision ON applyq_attempt
    WHEN OLD.decision IS NULL AND NEW.decision IS NOT NULL BEGIN {_ATTEMPT}; END""",
    f"""CREATE TRIGGER applyq_tally_ended_insert AFTER INSERT ON applyq_submission
    WHEN NEW.status IN {_ENDED} BEGIN {_ENTERS}; END""",
    f"""CREATE TRIGGER applyq_tally_ended_update AFTER UPDATE OF status, provider ON applyq_submission
    WHEN {_MOVES.replace("IS DISTINCT FROM", "IS NOT")} BEGIN {_LEAVES}; {_ENTERS}; END""",
    f"""CREATE TRIGGER applyq_tally_ended_delete AFTER DELETE ON applyq_submission
    WHEN OLD.status IN {_ENDED} BEGIN {_LEAVES}; END""",
]
#: what the database held before the triggers existed
_BACKFILL = [
    "INSERT INTO applyq_tally (kind, provider, label, code, n) "
    "SELECT 'attempt', s.provider, a.decision, coalesce(a.error_code, ''), count(*) FROM applyq_attempt a "
    "JOIN applyq_submission s ON s.id = a.submission_id WHERE a.decision IS NOT NULL "
    "GROUP BY s.provider, a.decision, coalesce(a.error_code, '')",
    "INSERT INTO applyq_tally (kind, provider, label, code, n) "
    f"SELECT 'ended', provider, status, '', count(*) FROM applyq_submission WHERE status IN {_ENDED} "
    "GROUP BY provider, status",
]
_TRIGGERS = ["applyq_tally_attempt_insert", "applyq_tally_attempt_update"]
_TRIGGERS_ON_SUBMISSION = ["applyq_tally_ended_insert", "applyq_tally_ended_update", "applyq_tally_ended_delete"]


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "applyq_tally",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "provider", "label", "code", name=op.f("pk_applyq_tally")),
    )
    op.create_table(
        "applyq_tally_delta",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applyq_tally_delta")),
    )
    with op.batch_alter_table("applyq_submission", schema=None) as batch_op:
        batch_op.add_column(sa.Column("history_pruned_at", worker.db.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_applyq_submission_created", ["created_at", "id"], unique=False)
        batch_op.create_index(
            "ix_applyq_submission_prunable", ["updated_at"], postgresql_where=_PRUNABLE, sqlite_where=_PRUNABLE
        )
    # triggers first: on PostgreSQL creating them makes writers wait until this migration commits, so the
    # backfill below sees every row counted before them and the triggers every row after
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES if postgres else _SQLITE:
        op.execute(statement)
    for statement in _BACKFILL:
        op.execute(statement)


def downgrade() -> None:
    """Revert this revision."""
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER {name}" + (" ON applyq_attempt" if postgres else ""))
    for name in _TRIGGERS_ON_SUBMISSION:
        op.execute(f"DROP TRIGGER {name}" + (" ON applyq_submission" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION applyq_tally_attempt()")
        op.execute("DROP FUNCTION applyq_tally_ended()")
    with op.batch_alter_table("applyq_submission", schema=None) as batch_op:
        batch_op.drop_index("ix_applyq_submission_prunable", postgresql_where=_PRUNABLE, sqlite_where=_PRUNABLE)
        batch_op.drop_index("ix_applyq_submission_created")
        batch_op.drop_column("history_pruned_at")
    op.drop_table("applyq_tally_delta")
    op.drop_table("applyq_tally")
