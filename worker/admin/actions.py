"""Operator actions on submissions: requeue (optionally with payload edits) and cancel.

Every change is a compare-and-set on the row's status (and attempt count), so an operator never
overrides a worker that got there first, and every change is recorded as an ``AuditEvent`` and logged
as one JSON line. Neither the audit trail nor the log holds candidate data: edited candidate fields are
named, their values are not. A change into a final status (a cancel) records the job board's outcome event
in the same transaction, as a worker's final attempt does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from worker.admin.edits import Edit, apply_edits
from worker.admin.queries import ParkedFilter, parked_ids
from worker.db.models import AuditEvent, Submission
from worker.db.submissions import find_by_reference, provider_idempotency_key, requeued
from worker.errors import InvalidSubmission
from worker.privacy import email_key
from worker.schemas import SubmissionIn
from worker.states import CANCELLABLE_STATUSES, CLAIMABLE_STATUSES, FINAL_STATUSES, Reason, Status, values
from worker.webhooks.events import record_outcomes

__all__ = [
    "CANCELLABLE",
    "ActionResult",
    "Progress",
    "Result",
    "cancel",
    "compare_and_set",
    "record_audit",
    "requeue",
    "requeue_matching",
    "resume_held",
]

log = logging.getLogger("applyq.admin")

#: Statuses an operator may cancel; ``in_flight`` is refused: a worker holds the lease.
CANCELLABLE = values(CANCELLABLE_STATUSES)


class Result(StrEnum):
    """What an admin action did to one submission."""

    REQUEUED = "requeued"
    CANCELLED = "cancelled"
    #: ``--dry-run``: would have been requeued
    WOULD_REQUEUE = "would_requeue"
    #: not in a status that allows the action (or changed meanwhile); nothing was changed
    REFUSED = "refused"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class ActionResult:
    """One submission's result, with the status it had and a reason when refused."""

    submission_id: str
    result: Result
    status: str | None = None
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        """The stable JSON form printed by ``--json``."""
        return {"id": self.submission_id, "result": self.result.value, "status": self.status, "message": self.message}


#: Called with each result as it happens (drives a progress bar).
Progress = Callable[[ActionResult], None]


@dataclass(frozen=True, slots=True)
class _Seen:
    """The row as the operator's command saw it: the compare-and-set expects these values."""

    id: str
    status: str
    attempt_count: int
    provider: str
    integration_id: str | None
    code: str | None

    @classmethod
    def of(cls, row: Submission) -> _Seen:
        return cls(row.id, row.status, row.attempt_count, row.provider, row.integration_id, row.outcome_code)


@dataclass(frozen=True, slots=True)
class _Planned:
    row: _Seen
    values: dict[str, Any]
    changes: dict[str, Any]


def requeue(
    session: Session,
    ids: Iterable[str],
    *,
    actor: str,
    now: datetime,
    edits: Sequence[Edit] = (),
    note: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> list[ActionResult]:
    """Put parked submissions back in the queue with a fresh retry window; edits are validated first, for all."""
    plans: dict[str, _Planned | ActionResult] = {}
    for key in ids:
        plan = _plan_requeue(session, key, edits, now)
        plans.setdefault(plan.row.id if isinstance(plan, _Planned) else plan.submission_id, plan)
    results = []
    for plan in plans.values():
        if isinstance(plan, _Planned):
            plan_result = _dry(plan) if dry_run else _apply(session, plan, "requeue", Result.REQUEUED, actor, note, now)
        else:
            plan_result = plan
        results.append(plan_result)
        if progress is not None:
            progress(plan_result)
    return results


def requeue_matching(
    session: Session,
    filters: ParkedFilter,
    *,
    actor: str,
    now: datetime,
    note: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    on_selected: Callable[[int], None] | None = None,
) -> list[ActionResult]:
    """Requeue every parked submission matching the filters; ``on_selected(n)`` is told the count first."""
    ids = parked_ids(session, filters)
    session.rollback()
    if on_selected is not None:
        on_selected(len(ids))
    return requeue(session, ids, actor=actor, now=now, note=note, dry_run=dry_run, progress=progress)


def resume_held(session: Session, provider: str, *, actor: str, now: datetime) -> list[str]:
    """Make every waiting submission of ``provider`` due now; their ids.

    A held key's submissions were never parked: the ones that met the error wait as ``retry_scheduled``
    (reason ``configuration``), the others were deferred by traffic control, both until the next probe.
    Once the operator fixed the key they need not wait for it; any other wait (a rate, a cooldown) is simply
    imposed again by traffic control when they come due.
    """
    resumed = session.scalars(
        sa.update(Submission)
        .where(
            Submission.provider == provider,
            Submission.status.in_(values(CLAIMABLE_STATUSES)),
            Submission.next_attempt_at > now,
        )
        .values(next_attempt_at=now, published_at=None, updated_at=now)
        .returning(Submission.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(resumed)
    session.commit()
    log.info("held submissions resumed", extra={"provider": provider, "actor": actor, "count": len(ids)})
    return ids


def _plan_requeue(session: Session, key: str, edits: Sequence[Edit], now: datetime) -> _Planned | ActionResult:
    row = find_by_reference(session, key)
    if row is None:
        return ActionResult(key, Result.NOT_FOUND, message="no submission with this id or idempotency key")
    if row.status != Status.PARKED.value:
        return ActionResult(row.id, Result.REFUSED, row.status, f"is {row.status}, not parked")
    values = requeued(now)
    changes: dict[str, Any] = {"status": [row.status, Status.QUEUED.value], "window_attempt_base": row.attempt_count}
    if edits:
        try:
            item, changed = apply_edits(row.payload, edits)
        except InvalidSubmission as exc:
            raise InvalidSubmission(f"{row.id}: " + str(exc).replace("\n", f"\n{row.id}: ")) from exc
        values.update(payload=item.payload(), job_id=item.job_id, integration_id=item.integration_id)
        values["email_key"] = email_key(item.candidate.email)  # purge finds the edited address, not the old one
        values["provider_idempotency_key"] = provider_idempotency_key(item.idempotency_key, item.payload_hash())
        changes.update(_edit_changes(row, item, changed))
    return _Planned(_Seen.of(row), values, changes)


def _edit_changes(row: Submission, item: SubmissionIn, changed: list[str]) -> dict[str, Any]:
    """Field names always; old and new values only of ``job_id`` and ``integration_id`` (never candidate data)."""
    recorded: dict[str, Any] = {"fields": changed}
    for name in ("job_id", "integration_id"):
        if name in changed:
            recorded[name] = [getattr(row, name), getattr(item, name)]
    return recorded


def _dry(plan: _Planned) -> ActionResult:
    return ActionResult(plan.row.id, Result.WOULD_REQUEUE, plan.row.status)


def _apply(
    session: Session, plan: _Planned, action: str, done: Result, actor: str, note: str | None, now: datetime
) -> ActionResult:
    row = plan.row
    expected = {"status": row.status, "attempt_count": row.attempt_count}
    if not compare_and_set(session, row.id, expected, {**plan.values, "updated_at": now}):
        session.rollback()
        return ActionResult(row.id, Result.REFUSED, row.status, "changed meanwhile (a worker or another operator)")
    record_audit(session, row.id, actor=actor, action=action, note=note, changes=plan.changes, now=now)
    if plan.values["status"] in FINAL_STATUSES:
        record_outcomes(session, [row.id], now)
    session.commit()
    _log(action, row, actor, plan.changes)
    return ActionResult(row.id, done, row.status)


def compare_and_set(session: Session, submission_id: str, expected: dict[str, Any], values: dict[str, Any]) -> bool:
    """``UPDATE … WHERE`` every expected column still has its value; True if the row was changed."""
    conditions = [getattr(Submission, name) == value for name, value in expected.items()]
    result = session.execute(
        sa.update(Submission)
        .where(Submission.id == submission_id, *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def record_audit(
    session: Session,
    submission_id: str,
    *,
    actor: str,
    action: str,
    note: str | None,
    changes: dict[str, Any] | None,
    now: datetime,
) -> None:
    """Add one audit event (flushed with the caller's transaction)."""
    session.add(AuditEvent(submission_id=submission_id, at=now, actor=actor, action=action, note=note, changes=changes))


def cancel(
    session: Session,
    ids: Iterable[str],
    *,
    actor: str,
    reason: str,
    now: datetime,
    progress: Progress | None = None,
) -> list[ActionResult]:
    """Withdraw queued, scheduled or parked submissions; one in flight is refused (a worker holds it)."""
    results = []
    for key in ids:
        result = _cancel_one(session, key, actor, reason, now)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def _cancel_one(session: Session, key: str, actor: str, reason: str, now: datetime) -> ActionResult:
    row = find_by_reference(session, key)
    if row is None:
        session.rollback()
        return ActionResult(key, Result.NOT_FOUND, message="no submission with this id or idempotency key")
    if row.status not in CANCELLABLE:
        session.rollback()
        hint = "a worker is delivering it; try again in a moment" if row.status == Status.IN_FLIGHT else "final"
        return ActionResult(row.id, Result.REFUSED, row.status, f"is {row.status} ({hint})")
    values = {
        "status": Status.CANCELLED.value,
        "next_attempt_at": None,
        "published_at": None,
        "finished_at": now,
        "outcome_reason": Reason.CANCELLED.value,
        "remediation": None,
    }
    changes = {"status": [row.status, Status.CANCELLED.value]}
    return _apply(session, _Planned(_Seen.of(row), values, changes), "cancel", Result.CANCELLED, actor, reason, now)


def _log(action: str, row: _Seen, actor: str, changes: dict[str, Any]) -> None:
    """One structured line per admin action: ids, statuses and field names, never values or notes."""
    before, after = changes.get("status", [row.status, row.status])
    log.info(
        "admin %s",
        action,
        extra={
            "action": action,
            "actor": actor,
            "submission_id": row.id,
            "provider": row.provider,
            "integration_id": row.integration_id,
            "code": row.code,
            "from_status": before,
            "to_status": after,
            "fields": changes.get("fields", []),
        },
    )
