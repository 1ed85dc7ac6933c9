"""Read-only questions operators ask: what is parked, and one submission's whole story (the numbers: ``stats.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from worker.db.models import AuditEvent, Submission
from worker.db.submissions import find_by_reference
from worker.states import Status

__all__ = ["ParkedFilter", "audit_events", "parked", "parked_ids", "submission_with_history"]


@dataclass(frozen=True, slots=True)
class ParkedFilter:
    """Which parked submissions: every given criterion must match."""

    provider: str | None = None
    code: str | None = None
    integration_id: str | None = None
    #: the router's reason, e.g. ``retries_exhausted`` or ``permission_missing``
    reason: str | None = None
    #: parked (last changed) at or after this time
    since: datetime | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions, starting with ``status = parked``."""
        conditions = [Submission.status == Status.PARKED.value]
        for column, value in (
            (Submission.provider, self.provider),
            (Submission.outcome_code, self.code),
            (Submission.integration_id, self.integration_id),
            (Submission.outcome_reason, self.reason),
        ):
            if value is not None:
                conditions.append(column == value)
        if self.since is not None:
            conditions.append(Submission.updated_at >= self.since)
        return conditions


def parked(session: Session, filters: ParkedFilter, *, limit: int = 1000) -> list[Submission]:
    """Parked submissions, oldest first (the longest wait first), with their attempts loaded."""
    query = (
        sa.select(Submission)
        .where(*filters.where())
        .options(selectinload(Submission.attempts))
        .order_by(Submission.updated_at, Submission.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def parked_ids(session: Session, filters: ParkedFilter) -> list[str]:
    """The ids of every parked submission matching the filters, oldest first."""
    query = sa.select(Submission.id).where(*filters.where()).order_by(Submission.updated_at, Submission.id)
    return list(session.scalars(query))


def submission_with_history(session: Session, id_or_key: str) -> tuple[Submission, list[AuditEvent]] | None:
    """A submission (attempts loaded) and its audit trail, oldest first; None if not found."""
    row = find_by_reference(session, id_or_key)
    if row is None:
        return None
    return row, audit_events(session, row.id)


def audit_events(session: Session, submission_id: str) -> list[AuditEvent]:
    """Every operator action on one submission, oldest first."""
    query = sa.select(AuditEvent).where(AuditEvent.submission_id == submission_id).order_by(AuditEvent.id)
    return list(session.scalars(query))
