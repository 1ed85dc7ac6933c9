"""Vendor events in the database: each stored once per (provider, event id), and the writes their rules make.

The writes are set-based (one ``UPDATE … RETURNING`` per kind, then one audit row per submission), in the
caller's transaction: the event, what it changed and the audit trail commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from worker.db.models import AuditEvent, Submission, VendorEvent
from worker.db.submissions import requeued as requeue_values
from worker.states import CANCELLABLE_STATUSES, Provider, Reason, Status

__all__ = ["Audit", "end_integration", "mark_processed", "requeue_resolved", "store_event"]

_V = cast(sa.Table, VendorEvent.__table__)


@dataclass(frozen=True, slots=True)
class Audit:
    """Who changed the submissions and why: the vendor (``vendor:kombo``) and its event."""

    actor: str
    event_type: str
    event_id: str

    @property
    def note(self) -> str:
        """The audit note ``applyq show`` prints: the event that made the change."""
        return f"{self.event_type} event {self.event_id}"

    def changes(self, before: str, after: str) -> dict[str, Any]:
        """The audit row's changes: the status, and the event by type and id."""
        return {"status": [before, after], "event_type": self.event_type, "event_id": self.event_id}


def store_event(session: Session, row: dict[str, Any]) -> int | None:
    """``INSERT … ON CONFLICT (provider, event_id) DO NOTHING``: the new row's id, or None for a redelivery.

    A concurrent delivery of the same event waits for the first one's transaction, then inserts nothing.
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(_V).on_conflict_do_nothing(index_elements=["provider", "event_id"]).returning(_V.c.id)
    return session.execute(statement, row).scalar()


def mark_processed(session: Session, row_id: int, result: str, now: datetime) -> None:
    """Record what the rules did with a stored event."""
    session.execute(sa.update(VendorEvent).where(VendorEvent.id == row_id).values(processed_at=now, result=result))


def requeue_resolved(
    session: Session, provider: Provider, integration_id: str, reasons: Collection[Reason], audit: Audit, now: datetime
) -> tuple[list[str], list[str]]:
    """The integration's parked submissions with one of ``reasons`` → queued (a new retry window); those waiting
    (``retry_scheduled``) with one of them → due now. Their ids: (requeued, made due)."""
    reason_values = sorted(r.value for r in reasons)
    mine = [*_of_integration(provider, integration_id), Submission.outcome_reason.in_(reason_values)]
    requeued = _update(
        session,
        [*mine, Submission.status == Status.PARKED.value],
        {**requeue_values(now), "updated_at": now},
    )
    _audit(session, requeued, audit, "requeue", (Status.PARKED, Status.QUEUED), now)
    due = _update(
        session,
        [*mine, Submission.status == Status.RETRY_SCHEDULED.value, Submission.next_attempt_at > now],
        {"next_attempt_at": now, "published_at": None, "updated_at": now},
    )
    _audit(session, due, audit, "resume", (Status.RETRY_SCHEDULED, Status.RETRY_SCHEDULED), now)
    return requeued, due


def end_integration(
    session: Session, provider: Provider, integration_id: str, reason: Reason, audit: Audit, now: datetime
) -> list[str]:
    """The integration's queued, waiting and parked submissions → ``terminal`` with ``reason``; their ids.

    One in flight is left to its worker: its answer (the integration is unknown to the vendor) decides it.
    """
    ended: list[str] = []
    for status in sorted(CANCELLABLE_STATUSES):
        ids = _update(
            session,
            [*_of_integration(provider, integration_id), Submission.status == status.value],
            {
                "status": Status.TERMINAL.value,
                "outcome_reason": reason.value,
                "outcome_code": audit.event_type,
                "outcome_title": None,
                "outcome_message": None,
                "remediation": f"The vendor deleted the integration ({audit.note}): nothing can deliver to it. "
                "Once the customer connects their ATS again, the job board submits anew.",
                "next_attempt_at": None,
                "published_at": None,
                "finished_at": now,
                "updated_at": now,
            },
        )
        _audit(session, ids, audit, "end", (status, Status.TERMINAL), now)
        ended += ids
    return ended


def _of_integration(provider: Provider, integration_id: str) -> list[sa.ColumnElement[bool]]:
    """The provider's submissions for one integration (StackOne: also under an older ``ats:`` prefix, which
    ``providers.stackone.account_id`` strips when it builds the request)."""
    column = Submission.integration_id
    same = column == integration_id
    if provider is Provider.STACKONE:
        same = sa.or_(same, column.endswith(f":{integration_id}", autoescape=True))
    return [Submission.provider == provider.value, same]


def _update(session: Session, where: Sequence[sa.ColumnElement[bool]], new: dict[str, Any]) -> list[str]:
    statement = (
        sa.update(Submission)
        .where(*where)
        .values(**new)
        .returning(Submission.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(statement))


def _audit(
    session: Session, ids: Sequence[str], audit: Audit, action: str, change: tuple[Status, Status], now: datetime
) -> None:
    if ids:
        rows = [
            {"submission_id": sid, "at": now, "actor": audit.actor, "action": action, "note": audit.note,
             "changes": audit.changes(change[0].value, change[1].value)}
            for sid in ids
        ]  # fmt: skip
        session.execute(sa.insert(AuditEvent), rows)
