"""``applyq stats`` on real PostgreSQL: the tallied counts agree with the rows, and migration 0008 recounts.

Directly on PostgreSQL, never through the suite's PgBouncer: these are about PostgreSQL's own triggers, tallies
and migrations, run in this process; no applyq process is started whose connection a pooler would carry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.scale import fill
from tests.conftest import require_service
from tests.e2e.conftest import PG_ADMIN_URL, fresh_database
from worker.admin.stats import stats
from worker.clock import utcnow
from worker.db.engine import alembic_config, create_engine, create_session_factory, migrate
from worker.db.tally import fold
from worker.local.processes import create_database, drop_database

pytestmark = pytest.mark.e2e

COUNTS = ("total", "by_status", "by_provider", "by_code", "by_integration")
#: before every row the benchmark's fill writes (it spreads them over the year before yesterday)
LONG_AGO = timedelta(days=400)
#: three ended submissions as a database at revision 0007 holds them (its tally keyed them by status only)
ROWS_0007 = """
INSERT INTO applyq_submission (id, idempotency_key, payload_hash, provider_idempotency_key, provider, integration_id,
    job_id, payload, status, attempt_count, window_attempt_base, outcome_code, created_at, updated_at, finished_at)
VALUES ('a', 'a', 'h', 'p', 'kombo', 'g:1', 'j', '{}', 'succeeded', 1, 0, NULL, now(), now(), now()),
       ('b', 'b', 'h', 'p', 'kombo', 'g:2', 'j', '{}', 'terminal', 2, 0, 'REMOTE.REJECTED', now(), now(), now()),
       ('c', 'c', 'h', 'p', 'celper', NULL, 'j', '{}', 'terminal', 1, 0, 'X', now(), now(), now())
"""

#: the first submission in a status
FIRST = "WHERE id = (SELECT min(id) FROM applyq_submission WHERE status = '{}')"


@contextlib.contextmanager
def opened(url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(url, pool_size=2)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


def counts_both_ways(sessions: sessionmaker[Session]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The counts from the tallies, and the same counted from every row (``since`` before them all)."""
    with sessions() as session:
        tallied, from_rows = stats(session), stats(session, since=utcnow() - LONG_AGO)
    return {k: tallied[k] for k in COUNTS}, {k: from_rows[k] for k in COUNTS}


def test_the_tallied_counts_agree_with_the_rows_and_the_timings_are_of_the_latest() -> None:
    with fresh_database() as url, opened(url) as sessions:
        fill(url, 300, parked=5)
        tallied, from_rows = counts_both_ways(sessions)
        assert tallied == from_rows
        assert tallied["by_code"]["REMOTE.REJECTED"]["terminal"] == 6  # every 50th of 300
        assert len(tallied["by_integration"]) == 300  # the fill spreads them over 500 integrations
        # requeued, moved to another integration, purged: the tallies follow, through a fold too
        with sessions() as session:
            terminal, cancelled = FIRST.format("terminal"), FIRST.format("cancelled")
            session.execute(sa.text(f"UPDATE applyq_submission SET status = 'queued', finished_at = NULL {terminal}"))
            fold(session)
            session.execute(sa.text(f"UPDATE applyq_submission SET integration_id = 'g:moved' {terminal}"))
            session.execute(sa.text(f"DELETE FROM applyq_submission {cancelled}"))
            session.commit()
        tallied, from_rows = counts_both_ways(sessions)
        assert tallied == from_rows
        assert tallied["by_integration"]["g:moved"] == {"terminal": 1, "total": 1}
        with sessions() as session:
            latest = stats(session, latest=100)
    # the fill's submissions take 3 s and 2 attempts each; the latest 100 are the newest rows
    assert latest["latest_final"]["count"] == 100
    assert latest["attempts"] == {"mean": 2.0, "p50": 2.0, "p95": 2.0, "max": 2.0}
    assert latest["time_to_final_s"]["all"] == {"count": 100, "p50": 3.0, "p95": 3.0}


def test_migration_0008_recounts_what_0007_tallied_by_status_only() -> None:
    try:
        url = create_database(PG_ADMIN_URL, "applyq_e2e")
    except sa.exc.OperationalError as exc:
        require_service("PostgreSQL", str(exc).splitlines()[0])
    try:
        migrate(url, "0007_history_rollups")
        with opened(url) as sessions:
            with sessions() as session:
                session.execute(sa.text(ROWS_0007))
                session.commit()
            migrate(url)
            tallied, from_rows = counts_both_ways(sessions)
            assert tallied == from_rows
            assert tallied["by_code"] == {
                "REMOTE.REJECTED": {"terminal": 1, "total": 1},
                "X": {"terminal": 1, "total": 1},
            }
            # and back and forth again
            command.downgrade(alembic_config(url), "0007_history_rollups")
            command.upgrade(alembic_config(url), "head")
            assert counts_both_ways(sessions)[0] == from_rows
    finally:
        drop_database(PG_ADMIN_URL, url)
