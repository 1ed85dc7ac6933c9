"""stats without the history: ended submissions tallied per code and integration too, an index on finished_at

Revision ID: 0008_stats_tallies
Revises: 0007_history_rollups
Create Date: 2026-12-01 07:00:00

``applyq stats`` counts submissions per status, provider, code and integration. The ended ones (nearly all of
a long history) were tallied per provider and status only, so stats grouped every submission on each run;
the ended tally now also keys on the outcome code and the integration (a new key column, ``""`` where there
is none), and stats reads it (``worker/admin/stats.py``). Its timings (attempts per submission, time to the
final state) are over the latest submissions to reach a final state: ``ix_applyq_submission_finished``,
partial so that enqueueing (``finished_at`` empty) does not write it.

On PostgreSQL the tallies are locked first, then writes to ``applyq_submission`` wait until this commits
(the trigger is replaced and the ended tally recounted, about a second per million submissions, and the
index built, about as long).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_stats_tallies"
down_revision: str | None = "0007_history_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The ended statuses (``worker.states.ENDED_STATUSES``), frozen as of this revision.
_ENDED = "('cancelled', 'succeeded', 'terminal')"
_FINISHED = sa.text("finished_at IS NOT NULL")
#: the columns an ended submission is counted by, before (0007) and after this revision
_KEYS_0007 = {"code": "''"}
_KEYS = {"code": "coalesce({row}.outcome_code, '')", "integration": "coalesce({row}.integration_id, '')"}
_WATCHED_0007 = ("status", "provider")
_WATCHED = ("status", "provider", "outcome_code", "integration_id")


def _delta(row: str, n: int, keys: dict[str, str]) -> str:
    """The trigger's statement appending ``row`` (``NEW`` or ``OLD``) to the ended tally with ``n``."""
    columns = ", ".join(keys)
    values = ", ".join(expression.format(row=row) for expression in keys.values())
    return (f"INSERT INTO applyq_tally_delta (kind, provider, label, {columns}, n) "
            f"SELECT 'ended', {row}.provider, {row}.status, {values}, {n} WHERE {row}.status IN {_ENDED}")  # fmt: skip


def _moves(watched: Sequence[str], distinct: str) -> str:
    changed = " OR ".join(f"OLD.{column} {distinct} NEW.{column}" for column in watched)
    return f"({changed}) AND (OLD.status IN {_ENDED} OR NEW.status IN {_ENDED})"


def _postgres(keys: dict[str, str], watched: Sequence[str]) -> list[str]:
    return [
        f"""CREATE OR REPLACE FUNCTION applyq_tally_ended() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP <> 'INSERT' THEN {_delta("OLD", -1, keys)}; END IF;
          IF TG_OP <> 'DELETE' THEN {_delta("NEW", 1, keys)}; END IF;
          RETURN NULL;
        END $$""",
        "DROP TRIGGER applyq_tally_ended_update ON applyq_submission",
        f"""CREATE TRIGGER applyq_tally_ended_update AFTER UPDATE OF {", ".join(watched)} ON applyq_submission
        FOR EACH ROW WHEN ({_moves(watched, "IS DISTINCT FROM")}) EXECUTE FUNCTION applyq_tally_ended()""",
    ]


def _sqlite(keys: dict[str, str], watched: Sequence[str]) -> list[str]:
    return [
        "DROP TRIGGER applyq_tally_ended_insert",
        "DROP TRIGGER applyq_tally_ended_update",
        "DROP TRIGGER applyq_tally_ended_delete",
        f"""CREATE TRIGGER applyq_tally_ended_insert AFTER INSERT ON applyq_submission
        WHEN NEW.status IN {_ENDED} BEGIN {_delta("NEW", 1, keys)}; END""",
        f"""CREATE TRIGGER applyq_tally_ended_update AFTER UPDATE OF {", ".join(watched)} ON applyq_submission
        WHEN {_moves(watched, "IS NOT")} BEGIN {_delta("OLD", -1, keys)}; {_delta("NEW", 1, keys)}; END""",
        f"""CREATE TRIGGER applyq_tally_ended_delete AFTER DELETE ON applyq_submission
        WHEN OLD.status IN {_ENDED} BEGIN {_delta("OLD", -1, keys)}; END""",
    ]


def _recount(keys: dict[str, str]) -> list[str]:
    """The ended tally counted again from the submissions, by ``keys``: its deltas were of the old shape."""
    columns = ", ".join(keys)
    values = [expression.format(row="s") for expression in keys.values()]
    grouped = ", ".join(["s.provider", "s.status", *(v for v in values if "s." in v)])  # PostgreSQL: no constant
    return [
        "DELETE FROM applyq_tally_delta WHERE kind = 'ended'",
        "DELETE FROM applyq_tally WHERE kind = 'ended'",
        f"INSERT INTO applyq_tally (kind, provider, label, {columns}, n) "
        f"SELECT 'ended', s.provider, s.status, {', '.join(values)}, count(*) FROM applyq_submission s "
        f"WHERE s.status IN {_ENDED} GROUP BY {grouped}",
    ]


def _lock() -> None:
    """On PostgreSQL: the tallies first, as a trigger writing a delta takes them after the submission."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE applyq_tally_delta, applyq_tally IN ACCESS EXCLUSIVE MODE")
        op.execute("LOCK TABLE applyq_submission IN SHARE ROW EXCLUSIVE MODE")


def _triggers(keys: dict[str, str], watched: Sequence[str]) -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _postgres(keys, watched) if postgres else _sqlite(keys, watched):
        op.execute(statement)


def _integration_column() -> sa.Column[str]:
    return sa.Column("integration", sa.String(length=200), server_default="", nullable=False)


def upgrade() -> None:
    """Apply this revision."""
    _lock()
    with op.batch_alter_table("applyq_tally_delta", schema=None) as batch_op:
        batch_op.add_column(_integration_column())
    with op.batch_alter_table("applyq_tally", schema=None) as batch_op:
        batch_op.add_column(_integration_column())
        batch_op.drop_constraint("pk_applyq_tally", type_="primary")
        batch_op.create_primary_key("pk_applyq_tally", ["kind", "provider", "label", "code", "integration"])
    _triggers(_KEYS, _WATCHED)
    for statement in _recount(_KEYS):
        op.execute(statement)
    # not in a batch: on SQLite a batch that rebuilt the table would drop its triggers
    op.create_index("ix_applyq_submission_finished", "applyq_submission", ["finished_at"], unique=False,
                    postgresql_where=_FINISHED, sqlite_where=_FINISHED)  # fmt: skip


def downgrade() -> None:
    """Revert this revision."""
    _lock()
    op.drop_index("ix_applyq_submission_finished", "applyq_submission", postgresql_where=_FINISHED,
                  sqlite_where=_FINISHED)  # fmt: skip
    _triggers(_KEYS_0007, _WATCHED_0007)
    for statement in _recount(_KEYS_0007)[:2]:
        op.execute(statement)
    with op.batch_alter_table("applyq_tally", schema=None) as batch_op:
        batch_op.drop_constraint("pk_applyq_tally", type_="primary")
        batch_op.drop_column("integration")
        batch_op.create_primary_key("pk_applyq_tally", ["kind", "provider", "label", "code"])
    # not in a batch: on SQLite rebuilding the table would break the triggers that write it
    op.execute("ALTER TABLE applyq_tally_delta DROP COLUMN integration")
    op.execute(_recount(_KEYS_0007)[2])
