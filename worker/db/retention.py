"""Retention: the history of long-ended submissions goes; the submissions and the anonymous tallies stay.

``applyq prune --older-than 90d`` (or the dispatcher, with ``APPLYQ_PRUNE_OLDER_THAN_S``) takes the
submissions that ended (succeeded, terminal, cancelled) and have not changed for that long, and removes

* their attempts, except the few the next attempt would read if an operator requeued one (an unknown
  outcome, a lookup: ``worker/db/leases.py`` decides from them whether to look before sending again);
* their audit rows older than the cut-off, except purges (the record that candidate data was erased);
* every outcome webhook event delivered (or expired) before the cut-off, whoever it was for.

Kept: the submission row itself (status, codes, timings, ``attempt_count``: what ``applyq stats`` reads,
and the idempotency key that makes a replayed enqueue find it), parked and still-running submissions and
their whole history, pending webhook events, and the tallies behind the metrics (``worker/db/tally.py``).
Each pruned submission is marked ``history_pruned_at``, so a later run starts where this one stopped.
Candidate data is ``applyq purge``'s concern, not this one's. Times are the database's (``worker/db/clock.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from worker.db.clock import db_after, db_now
from worker.db.engine import is_postgres
from worker.db.models import Attempt, AuditEvent, Submission, WebhookEvent
from worker.db.tally import fold
from worker.states import ENDED_STATUSES, values

__all__ = ["Housekeeper", "PruneReport", "prune", "prune_batch", "would_prune"]

log = logging.getLogger("applyq.retention")

#: Submissions per transaction: short transactions, and a dispatcher pass is never held up for long.
BATCH = 500
#: ``WebhookEvent.status`` of events that will never be sent again (``worker/webhooks/events.py``).
_SETTLED_EVENTS = ("delivered", "expired")
#: the attempts a requeued submission's next claim reads (``worker/db/leases.py``: ``_history``)
_READ_BY_NEXT_CLAIM = sa.or_(Attempt.kind == "lookup", Attempt.unknown_outcome.is_(True))


@dataclass
class PruneReport:
    """What was removed (or, for ``would_prune``, would be)."""

    submissions: int = 0
    attempts: int = 0
    audit_rows: int = 0
    webhook_events: int = 0

    def add(self, other: PruneReport) -> None:
        """Sum of two batches."""
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_json(self) -> dict[str, int]:
        """The counts, for ``--json``."""
        return asdict(self)


def _cutoff(older_than_s: float) -> db_after:
    return db_after(sa.literal(-older_than_s, sa.Float()))


def _prunable(older_than_s: float) -> list[sa.ColumnElement[bool]]:
    """The conditions of ``ix_applyq_submission_prunable``, and the age."""
    return [
        Submission.status.in_(values(ENDED_STATUSES)),
        Submission.history_pruned_at.is_(None),
        Submission.updated_at < _cutoff(older_than_s),
    ]


def _old_events(older_than_s: float) -> list[sa.ColumnElement[bool]]:
    # a delivered event's next_attempt_at is its last lease's expiry: delivered a lease (seconds) before it
    return [WebhookEvent.status.in_(_SETTLED_EVENTS), WebhookEvent.next_attempt_at < _cutoff(older_than_s)]


def prune_batch(session: Session, older_than_s: float, *, limit: int = BATCH) -> PruneReport:
    """Prune up to ``limit`` submissions and ``limit`` webhook events in one transaction, and commit it.

    The submissions are marked first, with the conditions checked again in the same statement: one an
    operator requeued meanwhile is left out, and the rows stay locked until the commit.
    """
    oldest = sa.select(Submission.id).where(*_prunable(older_than_s)).order_by(Submission.updated_at).limit(limit)
    if is_postgres(session):
        oldest = oldest.with_for_update(skip_locked=True)
    marked = list(
        session.scalars(
            sa.update(Submission)
            .where(Submission.id.in_(oldest.scalar_subquery()), *_prunable(older_than_s))
            .values(history_pruned_at=db_now())
            .returning(Submission.id)
        )
    )
    report = PruneReport(submissions=len(marked))
    if marked:
        report.attempts = _delete(session, Attempt, *_attempts_of(marked))
        report.audit_rows = _delete(session, AuditEvent, *_audit_of(marked, older_than_s))
    events = sa.select(WebhookEvent.id).where(*_old_events(older_than_s)).limit(limit).scalar_subquery()
    report.webhook_events = _delete(session, WebhookEvent, WebhookEvent.id.in_(events))
    session.commit()
    return report


_Which = list[str] | sa.ScalarSelect[str]


def _attempts_of(which: _Which) -> list[sa.ColumnElement[bool]]:
    return [Attempt.submission_id.in_(which), sa.not_(_READ_BY_NEXT_CLAIM)]


def _audit_of(which: _Which, older_than_s: float) -> list[sa.ColumnElement[bool]]:
    return [AuditEvent.submission_id.in_(which), AuditEvent.at < _cutoff(older_than_s), AuditEvent.action != "purge"]


def _delete(session: Session, model: type[object], *where: sa.ColumnElement[bool]) -> int:
    statement = sa.delete(model).where(*where).execution_options(synchronize_session=False)
    return int(cast(sa.CursorResult[object], session.execute(statement)).rowcount)


def prune(
    sessions: sessionmaker[Session], older_than_s: float, *, progress: Callable[[PruneReport], None] = lambda _: None
) -> PruneReport:
    """Prune batch after batch until nothing is left; ``progress`` hears the running total after each."""
    total = PruneReport()
    while True:
        with sessions() as session:
            batch = prune_batch(session, older_than_s)
        total.add(batch)
        progress(total)
        if batch.submissions < BATCH and batch.webhook_events < BATCH:
            return total


def would_prune(session: Session, older_than_s: float) -> PruneReport:
    """What ``prune`` would remove now (``--dry-run``)."""
    which = sa.select(Submission.id).where(*_prunable(older_than_s)).scalar_subquery()

    def count(model: type[object], *where: sa.ColumnElement[bool]) -> int:
        return int(session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0)

    report = PruneReport(
        submissions=count(Submission, *_prunable(older_than_s)),
        attempts=count(Attempt, *_attempts_of(which)),
        audit_rows=count(AuditEvent, *_audit_of(which, older_than_s)),
        webhook_events=count(WebhookEvent, *_old_events(older_than_s)),
    )
    session.rollback()
    return report


class Housekeeper:
    """The dispatcher's chores between passes: fold the tallies every few seconds and, if configured, prune.

    Called on every dispatcher pass; does one small step at a time (a fold, one prune batch) and never raises,
    so publishing is never held up for long nor stopped by a chore.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        prune_older_than_s: float | None,
        fold_every_s: float = 5.0,
        prune_every_s: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._older_than_s = prune_older_than_s
        self._every = {"fold": fold_every_s, "prune": prune_every_s}
        self._due = {"fold": 0.0, "prune": 0.0}
        self._monotonic = monotonic
        self._lock = threading.Lock()

    def __call__(self) -> None:
        """Run whichever chore is due."""
        with self._lock:
            try:
                self._chores()
            except Exception:
                log.exception("housekeeping failed; will try again")

    def _chores(self) -> None:
        now = self._monotonic()
        if now >= self._due["fold"]:
            self._due["fold"] = now + self._every["fold"]
            with self._sessions() as session:
                fold(session)
                session.commit()
        if self._older_than_s is not None and now >= self._due["prune"]:
            with self._sessions() as session:
                batch = prune_batch(session, self._older_than_s)
            if batch.submissions or batch.webhook_events:
                log.info("pruned history", extra={"pruned": batch.as_json()})
            more = batch.submissions == BATCH or batch.webhook_events == BATCH
            self._due["prune"] = now if more else now + self._every["prune"]
