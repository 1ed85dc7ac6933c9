"""Attempts of a batch of submissions: claim, ask the limiter, call the providers, decide, record.

This is what the Celery task runs; it takes everything it needs as arguments, so tests call it directly.
Each due submission of a message takes its turn in the process's pool of ``worker_concurrency`` threads;
the turns' claims and recordings are grouped into shared transactions (``worker/runtime/coalesce.py``).

The worker reads no wall clock of its own: what is due, leases and deferrals are the database's time
(``worker/db/clock.py``), limits and cooldowns Redis's (``worker/traffic/limiter.py``), and the router's "now"
is the claim's database time carried on by the monotonic clock (``Claim.now``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, as_completed, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from worker.config import Settings
from worker.db.leases import LOOKUP, SEND, Claim, Finished, claim, finish, release, renew
from worker.privacy import candidate_values, scrub
from worker.providers import Accepted, Adapter, Answer, Delivery
from worker.routing.policy import AttemptContext, decide, decide_lookup
from worker.runtime.coalesce import Coalescer
from worker.runtime.fairpool import FairPool
from worker.schemas import SubmissionIn
from worker.states import FINAL_STATUSES, Decision, Provider
from worker.traffic.limiter import Gate, Hints, Signal, Wait
from worker.traffic.signals import Traffic, hints_for, signal_for
from worker.traffic.slots import SlotWaits
from worker.webhooks.events import OutcomeRow, add_outcome_events

__all__ = ["Outcome", "Runtime", "Turn", "process_batch", "process_submission", "send", "take_turn"]

log = logging.getLogger("applyq.pipeline")

#: turns of one limit key waiting in their threads for its slots, beyond which the key gets no more threads:
#: enough that a slot this process frees is handed straight to a waiter, few enough that the threads beyond
#: the provider's concurrency serve other keys instead of queueing for this one
WAITING_PER_KEY = 4


@dataclass
class Runtime:
    """The collaborators one worker process shares between its threads."""

    settings: Settings
    sessions: sessionmaker[Session]
    adapters: dict[Provider, Adapter]
    rand: Callable[[], float] = field(default=random.random)
    #: called whenever a message is consumed, for ``applyq health``
    heartbeat: Callable[[], None] = lambda: None
    #: shared rate/concurrency limits, cooldowns and circuit breakers (unlimited by default)
    traffic: Traffic = field(default_factory=Traffic)
    sleep: Callable[[float], None] = time.sleep
    #: the turns' threads (``worker_concurrency`` of them, shared round-robin across limit keys, none to a
    #: key with enough turns waiting for its slots already) and their grouped claims and recordings
    pool: FairPool = field(init=False)
    #: turns waiting in their thread for a concurrency slot of their limit key
    slots: SlotWaits = field(init=False)
    claims: Coalescer[str, Claim | None] = field(init=False)
    records: Coalescer[Finished, bool] = field(init=False)
    #: each provider's lease: its timeout plus the margin
    leases: dict[Provider, float] = field(init=False)
    #: a claim's lease: the provider's plus the wait in the worker before the call (``claim_ahead_s``)
    claim_leases: dict[Provider, float] = field(init=False)

    def __post_init__(self) -> None:
        self.leases = {provider: self.settings.lease_for(provider) for provider in Provider}
        self.claim_leases = {p: s + self.settings.claim_ahead_s for p, s in self.leases.items()}
        self.pool = FairPool(self.settings.worker_concurrency, "applyq-attempt", ready=self._has_room)
        self.slots = SlotWaits(left=self.pool.nudge)
        self.claims = Coalescer(self.claim_each, "claim")
        self.records = Coalescer(self.finish_all, "record")

    def _has_room(self, key: str) -> bool:
        """Whether another turn of ``key`` may take a thread: fewer than ``WAITING_PER_KEY`` wait for its slots."""
        return self.slots.waiting(key) < WAITING_PER_KEY

    def claim_each(self, submission_ids: Sequence[str]) -> list[Claim | None]:
        """One claim for all; a lease goes to the first asker only (duplicate messages ask twice)."""
        with self.sessions() as session:
            leases = claim(session, submission_ids, self.claim_leases)
        return [leases.pop(sid, None) for sid in submission_ids]

    def finish_all(self, done: Sequence[Finished]) -> list[bool]:
        """Record every answer and the job board's outcome events in one transaction; False where the lease was lost."""
        with self.sessions() as session:
            kept, at, keys = finish(session, done)
            finals = [
                _outcome_row(d, keys[d.lease.submission_id])
                for d, k in zip(done, kept, strict=True)
                if k and d.verdict.status in FINAL_STATUSES
            ]
            add_outcome_events(session, finals, at)
            session.commit()
            return kept


def _outcome_row(done: Finished, idempotency_key: str) -> OutcomeRow:
    """The final state just recorded (``finish``'s columns), as its outcome event reads it."""
    answer = done.answer
    return OutcomeRow(
        id=done.lease.submission_id,
        idempotency_key=idempotency_key,
        status=done.verdict.status.value,
        outcome_reason=done.verdict.reason,
        outcome_code=None if isinstance(answer, Accepted) else answer.label,
        remote_id=answer.remote_id if isinstance(answer, Accepted) else None,
        payload=done.lease.payload,
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one submission's turn did, as Flower shows it: the decision and the code, never candidate data."""

    decision: str
    code: str | None = None
    status: str | None = None

    def as_result(self) -> dict[str, Any]:
        """A small JSON-ready dict for the Celery result."""
        return {"decision": self.decision, "code": self.code, "status": self.status}


_SKIPPED = Outcome("skipped")


def process_submission(runtime: Runtime, submission_id: str) -> Outcome:
    """``process_batch`` of one."""
    return process_batch(runtime, [submission_id])[0]


def process_batch(runtime: Runtime, submission_ids: Sequence[str]) -> list[Outcome]:
    """Run one attempt of each submission that is due, free and within its provider's limits.

    The batch's due submissions are claimed together, here in the message's thread, before their turns
    queue for the pool, so a turn's thread and its provider's concurrency slot are held for the call, not
    for a database round trip. A stale or duplicate id does nothing. A turn its integration's limits hold
    back waits in its thread when a slot is near (a concurrency slot, a rate slot within
    ``max_inline_wait_s``); when it is not, the claim is given back (``release``: no attempt was made) and
    the submission is due again once the wait is over, so a long wait never occupies a worker. The turns
    share the threads round-robin across limit keys. A pool thread does the limiter and the call and nothing
    else: each request is made ready here before its turn queues, and each answer is judged and handed to
    the group commit here once the pool thread has it, so the pool's threads go to the next call at once
    (with one integration at Kombo's 30 in flight, the 32 default threads left two for everything else).
    The batch returns (the message is acknowledged) once every answer is recorded. The outcomes follow the
    ids' order; an unexpected error is raised once the batch's other turns are over.
    """
    runtime.heartbeat()
    claims = {sid: runtime.claims.enqueue(sid) for sid in dict.fromkeys(submission_ids)}  # a repeated id: one turn
    leases = {sid: lease for sid, claimed in claims.items() if (lease := claimed.result()) is not None}
    errors: list[BaseException] = []
    sends: dict[Future[_Answered | Outcome], tuple[str, Claim, _Call]] = {}
    for sid, lease in leases.items():
        try:
            call = _Call.prepare(runtime, lease)
        except Exception as unreadable:  # a payload an older version stored that no longer reads: the lease runs out
            errors.append(unreadable)
            continue
        key = runtime.traffic.key(lease.provider, lease.integration_id)
        sends[runtime.pool.submit(key, send, runtime, lease, key, call)] = (sid, lease, call)
    turns: dict[str, Turn] = {}
    for sent in as_completed(sends):
        sid, lease, call = sends[sent]
        if (failed := sent.exception()) is not None:
            errors.append(failed)
        else:
            turns[sid] = _conclude(runtime, lease, call, sent.result())
    errors += _settle(list(turns.values()))
    if errors:
        raise errors[0]
    return [turns[sid].outcome if sid in turns else _SKIPPED for sid in submission_ids]


def _settle(turns: list[Turn]) -> list[BaseException]:
    """Wait for the turns' recordings (the message is acknowledged once every answer is stored); log each."""
    wait([turn.recorded for turn in turns if turn.recorded is not None])
    errors = []
    for turn in turns:
        if turn.recorded is None or turn.sent is None:
            continue
        if (error := turn.recorded.exception()) is not None:
            errors.append(error)
        else:
            _log(turn.sent.delivery, turn.sent.done, turn.recorded.result())
    return errors


@dataclass(frozen=True, slots=True)
class _Sent:
    """A claimed submission's answer and the verdict on it, not yet recorded."""

    delivery: Delivery
    done: Finished


@dataclass(frozen=True, slots=True)
class Turn:
    """What a turn hands back to its batch: the outcome, and the recording of its answer when there was one.

    The thread is free once the answer is handed to the group commit (``runtime.records``); the batch, hence
    the message's acknowledgement, waits for the recording.
    """

    outcome: Outcome
    #: False where the lease was lost before the answer was stored
    recorded: Future[bool] | None = None
    sent: _Sent | None = None


def take_turn(runtime: Runtime, lease: Claim, key: str) -> Turn:
    """One claimed submission's whole turn in the caller's thread (``key``: its limit key): the steps
    ``process_batch`` spreads over the message's thread and a pool thread, for a caller holding a claim."""
    call = _Call.prepare(runtime, lease)
    return _conclude(runtime, lease, call, send(runtime, lease, key, call))


def send(runtime: Runtime, lease: Claim, key: str, call: _Call) -> _Answered | Outcome:
    """A pool thread's part of a turn: the limiter's slot, the call, the slot given back; the answer.

    Between the limiter's slot and its release runs the call and nothing else: the request was made ready
    before the slot is asked for, and the router decides after it is given back. Under load every step in a
    thread may wait for the interpreter lock, and each such wait inside the slot keeps the provider's
    concurrency slot from the next request. A turn the limits hold back is deferred (its outcome).
    """
    hold_key = runtime.traffic.hold_key(lease.provider)
    spec = runtime.traffic.spec(key)
    limiter = runtime.traffic.limiter
    try:
        gate = _pass_gate(runtime, lease, key, hold_key)
    except BaseException:  # the limiter failed (Redis): nothing was sent, the dispatcher publishes it again
        _release(runtime, lease, runtime.settings.republish_after_s)
        raise
    if not gate.go:
        return _defer(runtime, lease, key, gate)
    answered = None
    try:
        if _still_leased(runtime, lease):
            answered = call.run()
    finally:
        signal, hints = (answered.signal, answered.hints) if answered is not None else (Signal.NOT_SENT, Hints())

        # the slot is a request in flight at the provider: it frees with the answer, before the recording, and
        # goes straight to the turn of this process waiting longest for one (its gate asked in the same trip)
        def release(waiting: str | None) -> Gate | None:
            if waiting is None:
                limiter.observe(key, spec, gate, signal, hints, hold_key)
                return None
            return limiter.observe_then_gate(key, spec, gate, signal, hints, hold_key, waiting)

        runtime.slots.hand_over(key, release)
    return _SKIPPED if answered is None else answered


def _conclude(runtime: Runtime, lease: Claim, call: _Call, sent: _Answered | Outcome) -> Turn:
    """What the router makes of the answer, handed to the group commit (a deferral or a skip: as it is)."""
    if isinstance(sent, Outcome):
        return Turn(sent)
    turn = _record(runtime, _judge(runtime, lease, call, sent))
    if sent.signal is Signal.MISCONFIGURED:
        extra = {"submission_id": lease.submission_id, "limit_key": runtime.traffic.hold_key(lease.provider),
                 "code": turn.outcome.code}  # fmt: skip
        log.warning("provider key held: the provider refused applyq's configuration", extra=extra)
    return turn


def _pass_gate(runtime: Runtime, lease: Claim, key: str, hold_key: str) -> Gate:
    """Ask the limiter for a slot, waiting in the thread for one that is near; the last answer."""
    spec = runtime.traffic.spec(key)
    limiter = runtime.traffic.limiter

    def ask() -> Gate:
        return limiter.gate(key, spec, lease.submission_id, hold_key)

    gate = ask()
    if gate.verdict in (Wait.CONCURRENCY, Wait.PACING):  # a slot frees when a request in flight is answered
        gate = runtime.slots.acquire(key, ask, gate, runtime.settings.max_slot_wait_s, lease.submission_id)
    if gate.verdict is Wait.RESERVED and gate.wait_s <= runtime.settings.max_inline_wait_s:
        runtime.sleep(gate.wait_s)  # a slot this close is cheaper to wait for here than via the database
        gate = ask()
    return gate


def _still_leased(runtime: Runtime, lease: Claim) -> bool:
    """Whether the lease still covers the call and its recording; renewed once the claim has waited long.

    A claim waits in the worker (for a thread, a slot, the rate) up to ``claim_ahead_s``, which its lease
    covers on top of the provider's; one that waited longer is renewed before anything is sent. False if
    the lease was lost meanwhile (the worker that took it over treats the open attempt as unknown and looks
    before it sends, so the application is never sent twice).
    """
    if lease.held_s() <= runtime.settings.claim_ahead_s:
        return True
    with runtime.sessions() as session:
        return renew(session, lease, runtime.leases[lease.provider])


@dataclass(frozen=True, slots=True)
class _Answered:
    """The provider's answer to a call, how long it took, the ATS behind the integration, and what the answer
    tells the limiter."""

    answer: Answer
    latency_ms: float
    ats: str | None
    signal: Signal
    hints: Hints


@dataclass(frozen=True, slots=True)
class _Call:
    """One claimed submission's request: a lookup or the application itself.

    After a send whose outcome is unknown (a timeout, a lost worker, an ambiguous 5xx), the next attempt asks
    the provider whether the application exists instead of sending it again: found is success, not found
    sends at once. A provider that cannot be asked relies on its idempotency key (Celper) or duplicate check.
    """

    delivery: Delivery
    adapter: Adapter
    looking: bool

    @classmethod
    def prepare(cls, runtime: Runtime, lease: Claim) -> _Call:
        submission = SubmissionIn.from_stored(lease.payload)
        adapter = runtime.adapters[submission.provider]
        delivery = Delivery(lease.submission_id, lease.provider_idempotency_key, submission)
        return cls(delivery, adapter, lease.needs_lookup and adapter.can_look_up)

    def run(self) -> _Answered:
        started = time.perf_counter()
        answer = self.adapter.look_up(self.delivery) if self.looking else self.adapter.deliver(self.delivery)[0]
        latency_ms = (time.perf_counter() - started) * 1000
        submission = self.delivery.submission
        ats = self.adapter.ats(submission.integration_id)
        return _Answered(answer, latency_ms, ats, signal_for(submission.provider, ats, answer), hints_for(answer))


def _judge(runtime: Runtime, lease: Claim, call: _Call, answered: _Answered) -> _Sent:
    """What the router makes of the answer, ready to be recorded."""
    provider = call.delivery.submission.provider
    context = _context(lease, provider, answered.ats, lease.now(), runtime.rand())
    verdict = (decide_lookup if call.looking else decide)(answered.answer, context, runtime.settings)
    kind = LOOKUP if call.looking else SEND
    return _Sent(call.delivery, Finished(lease, answered.answer, verdict, answered.latency_ms, kind))


def _record(runtime: Runtime, sent: _Sent) -> Turn:
    """Hand the answer to the group commit (its log line follows the recording, in ``_settle``)."""
    answer, verdict = sent.done.answer, sent.done.verdict
    code = None if isinstance(answer, Accepted) else answer.label
    outcome = Outcome(verdict.decision.value, code, verdict.status.value)
    return Turn(outcome, runtime.records.enqueue(sent.done), sent)


def _context(lease: Claim, provider: Provider, ats: str | None, now: datetime, rand: float) -> AttemptContext:
    return AttemptContext(
        provider=provider,
        ats=ats,
        attempt=lease.window_attempt,
        window_started_at=lease.window_started_at,
        now=now,
        had_unknown_outcome=lease.had_unknown_outcome,
        rand=rand,
    )


def _defer(runtime: Runtime, lease: Claim, key: str, gate: Gate) -> Outcome:
    """Give the claim back until the limiter's wait is over (plus a little jitter): no attempt was made.

    The wait is a duration (Redis's clock said how long), so the database's clock says when it is over.
    """
    # a cooldown's waiters get fresh reservations when they return, so a small spread is enough
    jitter = 0.0 if gate.verdict is Wait.RESERVED else runtime.rand() * min(0.2, gate.wait_s)
    if _release(runtime, lease, gate.wait_s + jitter):  # one line per deferral: each costs a write and a message
        extra = {"submission_id": lease.submission_id, "limit_key": key, "wait": gate.verdict.value}
        log.info("submission deferred", extra={**extra, "delay_s": round(gate.wait_s, 3)})
    return Outcome("deferred", gate.verdict.value)


def _release(runtime: Runtime, lease: Claim, wait_s: float) -> bool:
    with runtime.sessions() as session:
        return release(session, lease, wait_s)


_LEVELS = {
    Decision.SUCCESS: logging.INFO,
    Decision.RETRY: logging.INFO,
    Decision.PARK: logging.WARNING,
    Decision.TERMINAL: logging.ERROR,
}


def _log(delivery: Delivery, done: Finished, kept: bool) -> None:
    """One structured line per state change: ids, codes and the provider's scrubbed message; no candidate data."""
    answer, verdict = done.answer, done.verdict
    extra: dict[str, Any] = {
        "submission_id": delivery.submission_id,
        "provider": delivery.submission.provider.value,
        "integration_id": delivery.submission.integration_id,
        "attempt": done.lease.attempt_number,
        "kind": done.kind,
        "decision": verdict.decision.value,
        "status": verdict.status.value,
        "reason": verdict.reason,
        "delay_s": verdict.delay_s,
    }
    if isinstance(answer, Accepted):
        extra.update(remote_id=answer.remote_id, warnings=list(answer.warnings))
    else:
        extra.update(code=answer.label, http_status=answer.http_status, log_url=answer.log_url)
        extra["provider_message"] = scrub(answer.message, candidate_values(delivery.submission.payload()))
    if not kept:
        log.warning("lease lost before the answer was recorded", extra=extra)
        return
    log.log(_LEVELS[verdict.decision], "submission %s", verdict.status.value, extra=extra)
