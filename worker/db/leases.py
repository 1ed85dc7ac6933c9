"""The attempt's hot path in the database: peek, claim (a lease), defer, finish, and what is due.

The claim is a compare-and-set on the submission row, so two workers (or a duplicate message) can
never run the same submission at once; the finishing write is guarded by the lease token.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from worker.db.engine import is_postgres
from worker.db.models import Attempt, Submission, UTCDateTime
from worker.providers.base import Accepted, Answer, ErrorKind
from worker.routing.policy import Verdict
from worker.states import CLAIMABLE_STATUSES, Decision, Provider, Reason, Status, values

__all__ = [
    "LOOKUP",
    "SEND",
    "Claim",
    "Due",
    "Finished",
    "claim",
    "defer",
    "due_submission_ids",
    "finish",
    "mark_published",
    "peek_due",
]

_CLAIMABLE = values(CLAIMABLE_STATUSES)
#: An attempt's kind: the create request, or the read that asks whether an earlier one created the application.
SEND, LOOKUP = "send", "lookup"

# The attempt's hot path (peek, claim, finish) runs Core statements built once, with bind parameters:
# building and cache-keying an ORM statement on every call cost more CPU than PostgreSQL spent running it.
_S = cast(sa.Table, Submission.__table__)
_A = cast(sa.Table, Attempt.__table__)
_NOW = sa.bindparam("now", type_=UTCDateTime())
_CLAIMABLE_NOW = sa.or_(
    sa.and_(_S.c.status.in_(_CLAIMABLE), _S.c.next_attempt_at <= _NOW),
    sa.and_(_S.c.status == Status.IN_FLIGHT.value, _S.c.lease_expires_at < _NOW),
)
_SIDS: sa.BindParameter[str] = sa.bindparam("sids", expanding=True)
_PEEK = sa.select(_S.c.id, _S.c.provider, _S.c.integration_id).where(_S.c.id.in_(_SIDS), _CLAIMABLE_NOW)
#: rows are locked in id order, so concurrent grouped claims never deadlock. No SKIP LOCKED: a row the
#: dispatcher holds while it publishes must be waited for, or its message would find nothing to claim and the
#: submission would sit until it is published again
_LOCK_CLAIMABLE = sa.select(_S.c.id).where(_S.c.id.in_(_SIDS), _CLAIMABLE_NOW).order_by(_S.c.id).with_for_update()
_CLAIM = (
    sa.update(_S)
    .where(_S.c.id.in_(_LOCK_CLAIMABLE), _CLAIMABLE_NOW)
    .values(
        status=Status.IN_FLIGHT.value,
        lease_token=sa.bindparam("token"),
        # each provider's lease outlasts its own timeout (Kombo's creates take up to 300 s, Celper's 30)
        lease_expires_at=sa.case(
            {p.value: sa.bindparam(f"expires_{p.value}", type_=UTCDateTime()) for p in Provider},
            value=_S.c.provider,
            else_=sa.bindparam("expires", type_=UTCDateTime()),
        ),
        attempt_count=_S.c.attempt_count + 1,
        updated_at=_NOW,
    )
    .returning(
        _S.c.id,
        _S.c.attempt_count,
        _S.c.window_attempt_base,
        _S.c.window_started_at,
        _S.c.integration_id,
        _S.c.provider_idempotency_key,
        _S.c.payload,
    )
)
#: one statement for many rows (SQLAlchemy's "insertmanyvalues"), ids in the parameters' order
_OPEN_ATTEMPTS = sa.insert(_A).returning(_A.c.submission_id, _A.c.id, sort_by_parameter_order=True)
#: executemany: the SET clauses come from the parameters' keys (the same keys in every row)
_RECORD_ATTEMPT = sa.update(_A).where(_A.c.id == sa.bindparam("attempt_id"))
_STILL_LEASED = sa.select(_S.c.id, _S.c.lease_token).where(_S.c.id.in_(_SIDS)).order_by(_S.c.id).with_for_update()
_MOVE_ON = sa.update(_S).where(_S.c.id == sa.bindparam("sid"), _S.c.lease_token == sa.bindparam("token"))


@dataclass(frozen=True, slots=True)
class Claim:
    """A leased submission, ready for one attempt."""

    submission_id: str
    lease_token: str
    attempt_id: int
    #: the attempt's number in the submission's history (1, 2, ...)
    attempt_number: int
    #: the attempt's number within the current retry window (limits and backoff count this)
    window_attempt: int
    window_started_at: datetime
    integration_id: str | None
    had_unknown_outcome: bool
    #: a send since the last lookup that found nothing may have created the application: look before sending
    needs_lookup: bool
    provider_idempotency_key: str
    #: the submission as stored (``SubmissionIn`` fields)
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Due:
    """Who a due submission will call: enough to ask the limiter before claiming it."""

    provider: str
    integration_id: str | None


def peek_due(session: Session, submission_ids: Sequence[str], now: datetime) -> dict[str, Due]:
    """Those of the submissions that could be claimed now, with their provider and integration (no lock).

    On PostgreSQL a fresh ``session`` reads outside a transaction: a lone SELECT needs no BEGIN and ROLLBACK.
    """
    if not session.in_transaction() and is_postgres(session):
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    rows = session.execute(_PEEK, {"sids": list(submission_ids), "now": now})
    return {row.id: Due(row.provider, row.integration_id) for row in rows}


def defer(session: Session, submission_id: str, now: datetime, until: datetime) -> bool:
    """Hold a due submission back until ``until`` without an attempt (the limiter said wait)."""
    result = session.execute(
        sa.update(Submission)
        .where(Submission.id == submission_id, Submission.status.in_(_CLAIMABLE), Submission.next_attempt_at <= now)
        .values(next_attempt_at=until, published_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def claim(
    session: Session, submission_ids: Sequence[str], now: datetime, lease_s: float | Mapping[Provider, float]
) -> dict[str, Claim]:
    """Lease those of the submissions that are due and free and open an attempt for each, in one transaction.

    ``lease_s`` is one lease for all, or one per provider. The others (not due, leased elsewhere, final) are
    left out of the answer.
    """
    token = str(uuid.uuid4())
    leases = lease_s if isinstance(lease_s, Mapping) else dict.fromkeys(Provider, lease_s)
    expires = {f"expires_{p.value}": now + timedelta(seconds=s) for p, s in leases.items()}
    longest = now + timedelta(seconds=max(leases.values()))
    params = {"sids": list(submission_ids), "now": now, "token": token, "expires": longest, **expires}
    rows = session.execute(_CLAIM, params).all()
    if not rows:
        session.rollback()
        return {}
    history = {row.id: _recover_lost_attempts(session, row.id, now) for row in rows if row.attempt_count > 1}
    opened = session.execute(
        _OPEN_ATTEMPTS, [{"submission_id": r.id, "number": r.attempt_count, "started_at": now} for r in rows]
    )
    attempt_ids: dict[str, int] = {row.submission_id: row.id for row in opened}
    session.commit()
    return {row.id: _claim(row, token, int(attempt_ids[row.id]), history.get(row.id, _FRESH)) for row in rows}


def _claim(row: sa.Row[Any], token: str, attempt_id: int, history: _History) -> Claim:
    return Claim(
        submission_id=row.id,
        lease_token=token,
        attempt_id=attempt_id,
        attempt_number=row.attempt_count,
        window_attempt=row.attempt_count - row.window_attempt_base,
        window_started_at=row.window_started_at,
        integration_id=row.integration_id,
        had_unknown_outcome=history.had_unknown_outcome,
        needs_lookup=history.needs_lookup,
        provider_idempotency_key=row.provider_idempotency_key,
        payload=row.payload,
    )


@dataclass(frozen=True, slots=True)
class _History:
    """What the earlier attempts say about a submission's next one."""

    #: an earlier send may have reached the provider without a trustworthy answer
    had_unknown_outcome: bool = False
    #: such a send came after the last lookup that found nothing
    needs_lookup: bool = False


_FRESH = _History()


def _recover_lost_attempts(session: Session, submission_id: str, now: datetime) -> _History:
    """Close the attempts a lost worker left open, then read what the history says about the next attempt."""
    _close_lost_attempts(session, submission_id, now)
    return _history(session, submission_id)


def _history(session: Session, submission_id: str) -> _History:
    rows = session.execute(
        sa.select(Attempt.kind, Attempt.unknown_outcome, Attempt.error_kind)
        .where(Attempt.submission_id == submission_id)
        .order_by(Attempt.number)
    )
    unknown = pending = False
    for kind, unknown_outcome, error_kind in rows:
        if kind == SEND and unknown_outcome:
            unknown = pending = True
        elif kind == LOOKUP and error_kind == ErrorKind.NOT_FOUND.value:
            pending = False
    return _History(unknown, pending)


def _close_lost_attempts(session: Session, submission_id: str, now: datetime) -> None:
    """An attempt still open when its lease expired belonged to a lost worker: outcome unknown."""
    session.execute(
        sa.update(Attempt)
        .where(Attempt.submission_id == submission_id, Attempt.decision.is_(None))
        .values(
            finished_at=now,
            decision=Decision.RETRY.value,
            reason=Reason.WORKER_LOST.value,
            error_kind="worker_lost",
            error_message="the worker stopped before recording an answer; the lease expired",
            unknown_outcome=True,
        )
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True, slots=True)
class Finished:
    """One attempt's answer and what the router made of it, ready to be recorded."""

    lease: Claim
    answer: Answer
    verdict: Verdict
    latency_ms: float
    #: when the answer came
    at: datetime
    #: ``SEND`` or ``LOOKUP``
    kind: str = SEND


def finish(session: Session, done: Sequence[Finished]) -> list[bool]:
    """Record the attempts and move their submissions on; False where the lease was lost. The caller commits.

    The submissions still leased by these attempts are locked first (in id order), so the rest are
    plain many-row statements: one for the attempts, one per kind of answer for the submissions. The
    caller adds what belongs in the same transaction (the job board's outcome events) and commits.
    """
    leased = session.execute(_STILL_LEASED, {"sids": [d.lease.submission_id for d in done]})
    tokens = {row.id: row.lease_token for row in leased}
    kept = [tokens.get(d.lease.submission_id) == d.lease.lease_token for d in done]
    moving = [d for d, k in zip(done, kept, strict=True) if k]
    for accepted in (True, False):  # executemany wants the same columns in every row
        _execute_many(session, _RECORD_ATTEMPT, [_attempt_columns(d) for d in done if _accepted(d) is accepted])
        _execute_many(session, _MOVE_ON, [_submission_columns(d) for d in moving if _accepted(d) is accepted])
    return kept


def _accepted(done: Finished) -> bool:
    return isinstance(done.answer, Accepted)


def _execute_many(session: Session, statement: sa.Executable, rows: list[dict[str, object]]) -> None:
    if rows:
        session.execute(statement, rows)


def _attempt_columns(done: Finished) -> dict[str, object]:
    verdict = done.verdict
    return {
        "attempt_id": done.lease.attempt_id,
        "kind": done.kind,
        "finished_at": done.at,
        "latency_ms": done.latency_ms,
        "decision": verdict.decision.value,
        "reason": verdict.reason,
        "delay_s": verdict.delay_s,
        "unknown_outcome": verdict.unknown_outcome,
        **_answer_columns(done.answer),
    }


def _answer_columns(answer: Answer) -> dict[str, object]:
    if isinstance(answer, Accepted):
        return {"http_status": answer.http_status, "request_id": answer.request_id}
    return {
        "http_status": answer.http_status,
        "error_kind": answer.kind.value,
        "error_code": answer.label,
        "error_title": answer.title,
        "error_message": answer.message,
        "log_url": answer.log_url,
        "request_id": answer.request_id,
        "details": answer.details,
    }


def _submission_columns(done: Finished) -> dict[str, object]:
    answer, verdict, now = done.answer, done.verdict, done.at
    final = verdict.status is not Status.RETRY_SCHEDULED
    values: dict[str, object] = {
        "sid": done.lease.submission_id,
        "token": done.lease.lease_token,
        "status": verdict.status.value,
        "lease_token": None,
        "lease_expires_at": None,
        "published_at": None,
        "next_attempt_at": verdict.next_attempt_at,
        "outcome_reason": verdict.reason,
        "remediation": verdict.remediation or None,
        "updated_at": now,
        "finished_at": now if final else None,
    }
    if isinstance(answer, Accepted):
        values.update(
            provider_application_id=answer.application_id,
            remote_id=answer.remote_id,
            outcome_code=None,
            outcome_title=None,
            outcome_message=None,
        )
    else:
        values.update(outcome_code=answer.label, outcome_title=answer.title, outcome_message=answer.message)
    return values


def due_submission_ids(
    session: Session, now: datetime, *, republish_after_s: float, limit: int, skip_locked: bool
) -> list[str]:
    """Submissions that are due (or whose lease expired) and not published recently; rows are locked."""
    stale = now - timedelta(seconds=republish_after_s)
    query = (
        sa.select(Submission.id)
        .where(_CLAIMABLE_NOW, sa.or_(Submission.published_at.is_(None), Submission.published_at < stale))
        .order_by(Submission.next_attempt_at)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query, {"now": now}))


def mark_published(session: Session, ids: Sequence[str], now: datetime) -> None:
    """Remember when these submissions were handed to the broker."""
    session.execute(
        sa.update(Submission)
        .where(Submission.id.in_(ids))
        .values(published_at=now)
        .execution_options(synchronize_session=False)
    )
