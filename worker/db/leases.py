"""The attempt's hot path in the database: claim (a lease), release, finish, and what is due.

The claim is a compare-and-set on the submission row, so two workers (or a duplicate message) can
never run the same submission at once; the finishing write, and the release of a claim whose request was
never sent, are guarded by the lease token.

No statement here binds a time: whether a lease has expired or a submission is due, and when a lease
expires or a retry falls due, is the database's clock, evaluated in the statement (``worker/db/clock.py``),
so a worker whose own clock is off can neither take a lease still running nor move anyone's due time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from worker.db.clock import db_after, db_now
from worker.db.engine import is_postgres
from worker.db.models import Attempt, Submission
from worker.providers.base import Accepted, Answer, ErrorKind
from worker.routing.policy import Verdict
from worker.states import CLAIMABLE_STATUSES, Decision, Provider, Reason, Status, values

__all__ = [
    "LOOKUP",
    "SEND",
    "Claim",
    "Finished",
    "Recorded",
    "claim",
    "due_submission_ids",
    "finish",
    "mark_published",
    "release",
    "renew",
]

_CLAIMABLE = values(CLAIMABLE_STATUSES)
#: An attempt's kind: the create request, or the read that asks whether an earlier one created the application.
SEND, LOOKUP = "send", "lookup"

# The attempt's hot path (claim, finish) runs Core statements built once, with bind parameters:
# building and cache-keying an ORM statement on every call cost more CPU than PostgreSQL spent running it.
_S = cast(sa.Table, Submission.__table__)
_A = cast(sa.Table, Attempt.__table__)
_NOW = db_now()
_CLAIMABLE_NOW = sa.or_(
    sa.and_(_S.c.status.in_(_CLAIMABLE), _S.c.next_attempt_at <= _NOW),
    sa.and_(_S.c.status == Status.IN_FLIGHT.value, _S.c.lease_expires_at < _NOW),
)
_SIDS: sa.BindParameter[str] = sa.bindparam("sids", expanding=True)
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
        lease_expires_at=db_after(
            sa.case(
                {p.value: sa.bindparam(f"lease_{p.value}", type_=sa.Float()) for p in Provider},
                value=_S.c.provider,
                else_=sa.bindparam("lease", type_=sa.Float()),
            )
        ),
        attempt_count=_S.c.attempt_count + 1,
        updated_at=_NOW,
    )
    .returning(
        _S.c.id,
        _S.c.attempt_count,
        _S.c.window_attempt_base,
        _S.c.window_started_at,
        _S.c.provider,
        _S.c.integration_id,
        _S.c.provider_idempotency_key,
        _S.c.payload,
        _NOW.label("claimed_at"),
    )
)
#: one statement for many rows (SQLAlchemy's "insertmanyvalues"), ids in the parameters' order
_OPEN_ATTEMPTS = sa.insert(_A).returning(_A.c.submission_id, _A.c.id, sort_by_parameter_order=True)
#: PostgreSQL: the claim and the attempts it opens in one statement (data-modifying CTEs), so a claim is one
#: round trip in autocommit instead of four (BEGIN, UPDATE, INSERT, COMMIT); under load each round trip also
#: waits for the GIL
_CLAIMED = _CLAIM.cte("claimed")
_OPENED = (
    sa.insert(_A)
    .from_select(
        ["submission_id", "number", "started_at"],
        sa.select(_CLAIMED.c.id, _CLAIMED.c.attempt_count, _CLAIMED.c.claimed_at),
    )
    .returning(_A.c.submission_id, _A.c.id)
    .cte("opened")
)
_CLAIM_AND_OPEN = sa.select(_CLAIMED, _OPENED.c.id.label("attempt_id")).join_from(
    _CLAIMED, _OPENED, _OPENED.c.submission_id == _CLAIMED.c.id
)
#: the submission row, still leased by this token: what every write of a lease holder is guarded by
_LEASED_BY = sa.and_(_S.c.id == sa.bindparam("sid"), _S.c.lease_token == sa.bindparam("token"))
#: executemany: the SET clauses come from the parameters' keys (the same keys in every row) and the times
_RECORD_ATTEMPT = sa.update(_A).where(_A.c.id == sa.bindparam("attempt_id")).values(finished_at=_NOW)
#: ... and the database's time, which dates the job board's outcome events recorded in the same transaction
_STILL_LEASED = (
    sa.select(_S.c.id, _S.c.lease_token, _S.c.idempotency_key, _NOW.label("now"))
    .where(_S.c.id.in_(_SIDS))
    .order_by(_S.c.id)
    .with_for_update()
)
_MOVE_ON = (
    sa.update(_S)
    .where(_LEASED_BY)
    .values(
        # a retry's delay counts from when the database records the answer, never from a worker's clock
        next_attempt_at=db_after(sa.bindparam("delay", type_=sa.Float())),
        updated_at=_NOW,
        finished_at=sa.case((sa.bindparam("final", type_=sa.Boolean()), _NOW), else_=sa.null()),
    )
)

#: a claim given back before its request was sent: the submission is as before the claim (the status it had:
#: ``queued`` while no attempt of the current retry window was made, else ``retry_scheduled``), due after the wait
_RELEASE = (
    sa.update(_S)
    .where(_LEASED_BY)
    .values(
        status=sa.case(
            (_S.c.attempt_count - 1 <= _S.c.window_attempt_base, Status.QUEUED.value),
            else_=Status.RETRY_SCHEDULED.value,
        ),
        attempt_count=_S.c.attempt_count - 1,
        lease_token=None,
        lease_expires_at=None,
        next_attempt_at=db_after(sa.bindparam("wait", type_=sa.Float())),
        published_at=None,
        updated_at=_NOW,
    )
)
#: ... and the attempt it opened, which never happened (no decision: no count was kept of it)
_DROP_ATTEMPT = sa.delete(_A).where(_A.c.id == sa.bindparam("attempt_id"), _A.c.decision.is_(None))
#: a claim that waited long in the worker, extended before its call: by its token alone (one that expired and
#: was not taken over is still this worker's; one taken over has another token)
_RENEW = (
    sa.update(_S)
    .where(_LEASED_BY)
    .values(lease_expires_at=db_after(sa.bindparam("lease", type_=sa.Float())), updated_at=_NOW)
)


@dataclass(frozen=True, slots=True)
class Claim:
    """A leased submission, ready for one attempt."""

    submission_id: str
    lease_token: str
    provider: Provider
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
    #: the database's time when the lease was taken
    claimed_at: datetime
    #: this process's monotonic clock (``time.monotonic``) just before the claim was sent
    claimed_mono: float

    def now(self) -> datetime:
        """The database's time now, as the claim read it and this process's monotonic clock carried it on.

        For the decisions made in Python (the router's age limit, an outcome event's time); never earlier
        than the database's own clock, and no other clock of this host comes into it.
        """
        return self.claimed_at + timedelta(seconds=self.held_s())

    def held_s(self) -> float:
        """Seconds since the claim was sent (a little more than the lease has run: the safe side)."""
        return time.monotonic() - self.claimed_mono


def claim(
    session: Session, submission_ids: Sequence[str], lease_s: float | Mapping[Provider, float]
) -> dict[str, Claim]:
    """Lease those of the submissions that are due and free and open an attempt for each, in one transaction.

    ``lease_s`` is one lease for all, or one per provider, in seconds of the database's clock. The others
    (not due, leased elsewhere, final) are left out of the answer.
    """
    token = str(uuid.uuid4())
    leases = lease_s if isinstance(lease_s, Mapping) else dict.fromkeys(Provider, lease_s)
    params: dict[str, object] = {f"lease_{p.value}": s for p, s in leases.items()}
    params.update(sids=list(submission_ids), token=token, lease=max(leases.values()))
    mono = time.monotonic()
    opened = _claim_and_open(session, params)
    if not opened:
        return {}
    # a retry's earlier attempts: one a lost worker left open is closed, and they say whether to look first
    history = {r.id: _recover_lost_attempts(session, r.id, a) for r, a in opened if r.attempt_count > 1}
    session.commit()
    return {row.id: _claim(row, token, attempt, history.get(row.id, _FRESH), mono) for row, attempt in opened}


def release(session: Session, lease: Claim, wait_s: float) -> bool:
    """Give back a claim whose request was never sent; the submission is due again after ``wait_s`` seconds.

    The attempt the claim opened is removed and the attempt count restored: holding a claim back (the
    provider's limits said wait) is not an attempt. False, and nothing changed, if the lease was lost: the
    worker that took it over found the attempt open and treats its outcome as unknown, which costs a lookup,
    never a second application.
    """
    result = session.execute(_RELEASE, {"sid": lease.submission_id, "token": lease.lease_token, "wait": wait_s})
    released = bool(result.rowcount == 1)  # type: ignore[attr-defined]
    if released:
        session.execute(_DROP_ATTEMPT, {"attempt_id": lease.attempt_id})
    session.commit()
    return released


def renew(session: Session, lease: Claim, lease_s: float) -> bool:
    """Extend a held lease to ``lease_s`` seconds from now (the database's clock); False if it was lost."""
    result = session.execute(_RENEW, {"sid": lease.submission_id, "token": lease.lease_token, "lease": lease_s})
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _claim_and_open(session: Session, params: dict[str, object]) -> list[tuple[sa.Row[Any], int]]:
    """Lease the claimable submissions and open an attempt for each: each leased row with its attempt's id."""
    if is_postgres(session):
        if not session.in_transaction():  # one atomic statement: no BEGIN, no COMMIT
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return [(row, int(row.attempt_id)) for row in session.execute(_CLAIM_AND_OPEN, params)]
    rows = session.execute(_CLAIM, params).all()
    if not rows:
        session.rollback()
        return []
    opened = session.execute(
        _OPEN_ATTEMPTS,
        [{"submission_id": r.id, "number": r.attempt_count, "started_at": r.claimed_at} for r in rows],
    )
    ids = {row.submission_id: int(row.id) for row in opened}
    return [(row, ids[row.id]) for row in rows]


def _claim(row: sa.Row[Any], token: str, attempt_id: int, history: _History, mono: float) -> Claim:
    return Claim(
        submission_id=row.id,
        lease_token=token,
        provider=Provider(row.provider),
        attempt_id=attempt_id,
        attempt_number=row.attempt_count,
        window_attempt=row.attempt_count - row.window_attempt_base,
        window_started_at=row.window_started_at,
        integration_id=row.integration_id,
        had_unknown_outcome=history.had_unknown_outcome,
        needs_lookup=history.needs_lookup,
        provider_idempotency_key=row.provider_idempotency_key,
        payload=row.payload,
        claimed_at=row.claimed_at,
        claimed_mono=mono,
    )


@dataclass(frozen=True, slots=True)
class _History:
    """What the earlier attempts say about a submission's next one."""

    #: an earlier send may have reached the provider without a trustworthy answer
    had_unknown_outcome: bool = False
    #: such a send came after the last lookup that found nothing
    needs_lookup: bool = False


_FRESH = _History()


def _recover_lost_attempts(session: Session, submission_id: str, opened: int) -> _History:
    """Close the attempts a lost worker left open, then read what the history says about the next attempt.

    ``opened`` is the attempt this claim just opened: neither lost nor history.
    """
    _close_lost_attempts(session, submission_id, opened)
    return _history(session, submission_id, opened)


def _history(session: Session, submission_id: str, opened: int) -> _History:
    rows = session.execute(
        sa.select(Attempt.kind, Attempt.unknown_outcome, Attempt.error_kind)
        .where(Attempt.submission_id == submission_id, Attempt.id != opened)
        .order_by(Attempt.number)
    )
    unknown = pending = False
    for kind, unknown_outcome, error_kind in rows:
        if kind == SEND and unknown_outcome:
            unknown = pending = True
        elif kind == LOOKUP and error_kind == ErrorKind.NOT_FOUND.value:
            pending = False
    return _History(unknown, pending)


def _close_lost_attempts(session: Session, submission_id: str, opened: int) -> None:
    """An attempt still open when its lease expired belonged to a lost worker: outcome unknown."""
    session.execute(
        sa.update(Attempt)
        .where(Attempt.submission_id == submission_id, Attempt.decision.is_(None), Attempt.id != opened)
        .values(
            finished_at=_NOW,
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
    #: ``SEND`` or ``LOOKUP``
    kind: str = SEND


class Recorded(NamedTuple):
    """What ``finish`` did: per attempt, whether its lease was still held; and the database's time it recorded."""

    kept: list[bool]
    at: datetime
    #: the job board's idempotency key of each submission still leased (outcome events carry it)
    keys: dict[str, str]


def finish(session: Session, done: Sequence[Finished]) -> Recorded:
    """Record the attempts and move their submissions on; False where the lease was lost. The caller commits.

    The submissions still leased by these attempts are locked first (in id order), so the rest are
    plain many-row statements: one for the attempts, one per kind of answer for the submissions. The
    caller adds what belongs in the same transaction (the job board's outcome events, dated ``at``) and commits.
    """
    leased = session.execute(_STILL_LEASED, {"sids": [d.lease.submission_id for d in done]}).all()
    tokens = {row.id: row.lease_token for row in leased}
    keys = {row.id: row.idempotency_key for row in leased}
    kept = [tokens.get(d.lease.submission_id) == d.lease.lease_token for d in done]
    moving = [d for d, k in zip(done, kept, strict=True) if k]
    for accepted in (True, False):  # executemany wants the same columns in every row
        _execute_many(session, _RECORD_ATTEMPT, [_attempt_columns(d) for d in done if _accepted(d) is accepted])
        _execute_many(session, _MOVE_ON, [_submission_columns(d) for d in moving if _accepted(d) is accepted])
    # no row left (all purged): nothing was recorded, so the time dates nothing
    return Recorded(kept, leased[0].now if leased else datetime.now(UTC), keys)


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
        "latency_ms": done.latency_ms,
        "decision": verdict.decision.value,
        "reason": verdict.reason,
        "delay_s": verdict.delay_s,
        "unknown_outcome": verdict.unknown_outcome,
        **_answer_columns(done.answer),
    }


def _answer_columns(answer: Answer) -> dict[str, object]:
    if isinstance(answer, Accepted):
        # the provider's warnings, and applyq's own (what Kombo's pre-flight made it leave out)
        details = {"warnings": list(answer.warnings)} if answer.warnings else None
        return {"http_status": answer.http_status, "request_id": answer.request_id, "details": details}
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
    answer, verdict = done.answer, done.verdict
    retry = verdict.status is Status.RETRY_SCHEDULED
    values: dict[str, object] = {
        "sid": done.lease.submission_id,
        "token": done.lease.lease_token,
        "status": verdict.status.value,
        "lease_token": None,
        "lease_expires_at": None,
        "published_at": None,
        "delay": (verdict.delay_s or 0.0) if retry else None,
        "final": not retry,
        "outcome_reason": verdict.reason,
        "remediation": verdict.remediation or None,
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


def due_submission_ids(session: Session, *, republish_after_s: float, limit: int, skip_locked: bool) -> list[str]:
    """Submissions that are due (or whose lease expired) and not published recently; rows are locked."""
    stale = db_after(sa.literal(-republish_after_s, sa.Float()))
    query = (
        sa.select(Submission.id)
        .where(_CLAIMABLE_NOW, sa.or_(Submission.published_at.is_(None), Submission.published_at < stale))
        .order_by(Submission.next_attempt_at)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def mark_published(session: Session, ids: Sequence[str]) -> None:
    """Remember when these submissions were handed to the broker (the database's time)."""
    session.execute(
        sa.update(Submission)
        .where(Submission.id.in_(ids))
        .values(published_at=_NOW)
        .execution_options(synchronize_session=False)
    )
