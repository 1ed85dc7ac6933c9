"""Data protection: remove candidate data and keep the anonymous history.

Removed: the payload's ``candidate`` (name, email, phone, CV), the provider's messages that may quote
it (``outcome_title``/``outcome_message``, each attempt's ``error_title``/``error_message``/``details``),
the payload fingerprint (``payload_hash``) and the operators' free-text audit notes. Kept: ids, the job
board's key and metadata, provider, integration, job, statuses, codes, reasons, decisions, timings,
``log_url``/``request_id`` and who did what when.

A retention purge (by age) covers submissions that ended (succeeded, terminal, cancelled): work that could
still be delivered is not old, merely waiting. Parked ones join only when asked (``include_parked``). A
data-protection request (by email) covers every submission of the candidate. A submission that could still
be delivered (queued, scheduled or parked) is cancelled in the same compare-and-set, since it cannot be
delivered without its candidate, and the job board hears of it through an outcome event; one in flight is
skipped (a worker holds it): run the purge again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import QueryableAttribute, Session

from worker.admin.actions import CANCELLABLE, compare_and_set, record_audit
from worker.db.models import Attempt, AuditEvent, Submission
from worker.privacy import email_key, email_spellings
from worker.schemas import CANDIDATE_FIELDS
from worker.states import ENDED_STATUSES, Reason, Status, values
from worker.webhooks.events import record_outcomes

__all__ = ["PURGED", "PurgeReport", "emails_matching", "older_than", "purge", "purge_email", "purge_older_than"]

log = logging.getLogger("applyq.admin")

#: ``payload_hash`` of a purged submission: a replay of its key is refused as a conflict, never re-delivered.
PURGED = "purged"


@dataclass(slots=True)
class PurgeReport:
    """What a purge did (or, with ``dry_run``, would do)."""

    #: which submissions the purge covers, in words (printed with the counts)
    scope: str = ""
    purged: list[str] = field(default_factory=list)
    #: ids that were also cancelled because they could still have been delivered
    cancelled: list[str] = field(default_factory=list)
    #: in flight, or changed while the purge ran: run the purge again
    skipped: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """Counts and ids, for ``--json``."""
        return {"scope": self.scope, "purged": self.purged, "cancelled": self.cancelled, "skipped": self.skipped}


def older_than(age: timedelta, now: datetime, *, include_parked: bool = False) -> sa.ColumnElement[bool]:
    """Ended submissions (succeeded, terminal, cancelled), and parked ones if asked, with no change for ``age``."""
    statuses = ENDED_STATUSES | {Status.PARKED} if include_parked else ENDED_STATUSES
    return sa.and_(Submission.status.in_(values(statuses)), Submission.updated_at < now - age)


def emails_matching(email: str) -> sa.ColumnElement[bool]:
    """The candidate's address is this one, or a stored provider message quotes it.

    The candidate's address by its stored ``email_key`` (any casing, Unicode or IDNA domain, the same on
    SQLite and PostgreSQL); messages by each spelling of the address, case-insensitively (``lower()`` is
    Unicode-aware on both: ``worker/db/engine.py`` gives SQLite one).
    """
    spellings = email_spellings(email)

    def quotes(column: sa.ColumnElement[Any] | QueryableAttribute[Any]) -> sa.ColumnElement[bool]:
        return sa.or_(*(sa.func.lower(column).contains(s, autoescape=True) for s in sorted(spellings)))

    quoted_in_attempts = sa.select(Attempt.submission_id).where(
        sa.or_(quotes(Attempt.error_message), quotes(Attempt.error_title), quotes(sa.cast(Attempt.details, sa.Text)))
    )
    return sa.or_(
        Submission.email_key == email_key(email),
        quotes(Submission.outcome_message),
        quotes(Submission.outcome_title),
        Submission.id.in_(quoted_in_attempts),
    )


def purge(
    session: Session,
    which: sa.ColumnElement[bool],
    *,
    actor: str,
    note: str,
    now: datetime,
    dry_run: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    scope: str = "",
) -> PurgeReport:
    """Purge every not yet purged submission matching ``which`` (``scope`` in words), each in its own transaction."""
    query = sa.select(Submission.id, Submission.status, Submission.attempt_count).where(
        which, Submission.payload_hash != PURGED
    )
    targets = list(session.execute(query.order_by(Submission.created_at, Submission.id)))
    session.rollback()
    report = PurgeReport(scope)
    for submission_id, status, attempt_count in targets:
        if status == Status.IN_FLIGHT.value:
            report.skipped.append(submission_id)
        elif dry_run or _purge_one(session, submission_id, status, attempt_count, actor, note, now):
            report.purged.append(submission_id)
            if status in CANCELLABLE:
                report.cancelled.append(submission_id)
        else:
            report.skipped.append(submission_id)
        progress(submission_id)
    return report


def _purge_one(
    session: Session, submission_id: str, status: str, attempt_count: int, actor: str, note: str, now: datetime
) -> bool:
    payload = session.scalar(sa.select(Submission.payload).where(Submission.id == submission_id)) or {}
    values: dict[str, Any] = {
        "payload": {**payload, **dict.fromkeys(CANDIDATE_FIELDS), "purged_at": now.isoformat()},
        "payload_hash": PURGED,
        "email_key": None,
        "outcome_title": None,
        "outcome_message": None,
        "updated_at": now,
    }
    if status in CANCELLABLE:
        values.update(status=Status.CANCELLED.value, next_attempt_at=None, published_at=None, finished_at=now)
        values.update(outcome_reason=Reason.PURGED.value, remediation=None)
    if not compare_and_set(session, submission_id, {"status": status, "attempt_count": attempt_count}, values):
        session.rollback()
        return False
    _scrub_history(session, submission_id)
    removed = [f"payload.{name}" for name in CANDIDATE_FIELDS if payload.get(name) is not None]
    changes = {"removed": [*removed, "payload_hash", "provider messages", "audit notes"]}
    if status in CANCELLABLE:
        changes["status"] = [status, Status.CANCELLED.value]
        record_outcomes(session, [submission_id], now)
    record_audit(session, submission_id, actor=actor, action="purge", note=note, changes=changes, now=now)
    session.commit()
    log.info(
        "admin purge",
        extra={"action": "purge", "actor": actor, "submission_id": submission_id, "from_status": status},
    )
    return True


def _scrub_history(session: Session, submission_id: str) -> None:
    """Provider messages in the attempts, and operators' notes (free text may quote the candidate)."""
    session.execute(
        sa.update(Attempt)
        .where(Attempt.submission_id == submission_id)
        .values(error_title=None, error_message=None, details=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sa.update(AuditEvent)
        .where(AuditEvent.submission_id == submission_id)
        .values(note=None)
        .execution_options(synchronize_session=False)
    )


def purge_older_than(
    session: Session, age: timedelta, *, actor: str, now: datetime, dry_run: bool, include_parked: bool = False
) -> PurgeReport:
    """Remove candidate data of submissions ended (or, if asked, parked) longer than ``age`` ago (retention)."""
    since = f"unchanged since {now - age:%Y-%m-%d %H:%M:%S} UTC"
    ended = "succeeded, terminal or cancelled" + (", or parked (cancelled by the purge)" if include_parked else "")
    which = older_than(age, now, include_parked=include_parked)
    scope = f"{ended}, {since}"
    return purge(session, which, actor=actor, note=f"retention: {since}", now=now, dry_run=dry_run, scope=scope)


def purge_email(session: Session, email: str, *, actor: str, now: datetime, dry_run: bool) -> PurgeReport:
    """Remove candidate data of every submission of (or quoting) this email address (a data-protection request)."""
    note = "data-protection request (by email address)"
    scope = f"every submission of {email_key(email)} or quoting it (queued, scheduled or parked ones are cancelled)"
    return purge(session, emails_matching(email), actor=actor, note=note, now=now, dry_run=dry_run, scope=scope)
