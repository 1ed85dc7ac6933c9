"""History that scales (SQLite): the tallies the triggers keep, and what ``prune`` removes and keeps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW
from tests.unit.admin.helpers import make
from worker.db.engine import _connect_args, create_engine, create_session_factory
from worker.db.models import Attempt, AuditEvent, Submission, TallyDelta, WebhookEvent
from worker.db.retention import Housekeeper, prune, would_prune
from worker.db.submissions import requeued
from worker.db.tally import ATTEMPT, ENDED, Count, counts, fold

DAY_S = 24 * 3600.0


@pytest.fixture
def later(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions whose database clock reads 30 days after ``NOW`` (when the rows of ``make`` were written)."""
    engine = create_engine(sqlite_url, clock=lambda: NOW + timedelta(days=30))
    yield create_session_factory(engine)
    engine.dispose()


def tallies(sessions: sessionmaker[Session], kind: str) -> list[Count]:
    with sessions() as session:
        return list(counts(session, kind))


def test_attempts_are_counted_once_when_their_decision_is_recorded(sessions: sessionmaker[Session]) -> None:
    # Given an attempt opened without a decision, as a claim opens it
    sid = make(sessions, "in_flight", attempts=0, code=None, reason=None)
    with sessions() as session:
        session.add(Attempt(submission_id=sid, number=1, started_at=NOW))
        session.commit()
        assert list(counts(session, ATTEMPT)) == []
        # When the worker records its answer, and later something else about it changes
        session.execute(sa.update(Attempt).values(decision="retry", error_code="PLATFORM.RATE_LIMIT_EXCEEDED"))
        session.execute(sa.update(Attempt).values(error_message="scrubbed"))
        session.commit()
    # Then it counts once, under its provider, decision and code
    assert tallies(sessions, ATTEMPT) == [Count("kombo", "retry", "PLATFORM.RATE_LIMIT_EXCEEDED", 1)]


def test_ended_submissions_are_counted_while_ended_and_folding_keeps_every_count(
    sessions: sessionmaker[Session],
) -> None:
    done = [make(sessions, "succeeded", code=None, reason="created") for _ in range(3)]
    make(sessions, "terminal", attempts=2, code="REMOTE.REJECTED", reason="rejected")
    make(sessions, "parked")  # parked is a backlog, read live: not tallied
    assert tallies(sessions, ENDED) == [
        Count("kombo", "succeeded", "", 3),
        Count("kombo", "terminal", "REMOTE.REJECTED", 1),
    ]
    with sessions() as session:
        fold(session)
        session.commit()
        assert session.scalar(sa.select(sa.func.count()).select_from(TallyDelta)) == 0
        # an operator requeues a succeeded one: it leaves the count
        session.execute(sa.update(Submission).where(Submission.id == done[0]).values(requeued(NOW)))
        session.commit()
    assert tallies(sessions, ENDED) == [
        Count("kombo", "succeeded", "", 2),
        Count("kombo", "terminal", "REMOTE.REJECTED", 1),
    ]
    assert sum(c.n for c in tallies(sessions, ATTEMPT)) == 6  # 3 + 2 + 1: the helper records one park each


def test_prune_removes_old_history_and_keeps_the_rest_and_the_counts(
    sessions: sessionmaker[Session], later: sessionmaker[Session]
) -> None:
    # Given ended submissions 30 days old, one with an unknown outcome, a parked one, and a recent one
    old = make(sessions, "succeeded", attempts=3, code=None, reason="created")
    unknown = make(sessions, "terminal", attempts=2, code="X", reason="rejected")
    parked = make(sessions, "parked", attempts=2)
    with sessions() as session:
        session.execute(sa.update(Attempt).where(Attempt.submission_id == unknown, Attempt.number == 1)
                        .values(unknown_outcome=True))  # fmt: skip
        for action in ("requeue", "purge"):
            session.add(AuditEvent(submission_id=old, at=NOW, actor="ops", action=action))
        for status in ("delivered", "pending"):
            session.add(WebhookEvent(submission_id=old, payload={}, status=status, next_attempt_at=NOW))
        session.commit()
    with later() as session:
        recent = make(later, "succeeded", created=NOW + timedelta(days=29), code=None, reason="created")
        before = list(counts(session, ATTEMPT))
        # When the history older than a week is pruned (a dry run first)
        assert would_prune(session, 7 * DAY_S).as_json() == {
            "submissions": 2, "attempts": 4, "audit_rows": 1, "webhook_events": 1,
        }  # fmt: skip
    report = prune(later, 7 * DAY_S)
    # Then the old ended submissions lose their attempts, except the one the next claim would read
    assert report.as_json() == {"submissions": 2, "attempts": 4, "audit_rows": 1, "webhook_events": 1}
    with later() as session:
        kept = session.execute(sa.select(Attempt.submission_id, sa.func.count()).group_by(Attempt.submission_id))
        assert dict(kept.all()) == {unknown: 1, parked: 2, recent: 1}
        assert session.scalars(sa.select(AuditEvent.action)).all() == ["purge"]
        assert session.scalars(sa.select(WebhookEvent.status)).all() == ["pending"]
        assert session.get_one(Submission, old).history_pruned_at == NOW + timedelta(days=30)
        # and every count stays
        assert list(counts(session, ATTEMPT)) == before
    # A second run finds nothing left to do
    assert prune(later, 7 * DAY_S).as_json() == {"submissions": 0, "attempts": 0, "audit_rows": 0, "webhook_events": 0}


def test_the_dispatchers_housekeeper_folds_and_prunes_only_when_configured(
    sessions: sessionmaker[Session], later: sessionmaker[Session]
) -> None:
    make(sessions, "succeeded", attempts=2, code=None, reason="created")
    Housekeeper(later, prune_older_than_s=None)()
    with later() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(TallyDelta)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(Attempt)) == 2
    Housekeeper(later, prune_older_than_s=DAY_S)()
    with later() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Attempt)) == 0


def test_behind_a_transaction_pooler_psycopg_prepares_no_statement() -> None:
    assert _connect_args("transaction") == {"prepare_threshold": None}
    assert _connect_args("none") == {}
