"""Accepting one verified vendor event: store it once, then do what the resume rules say, in one transaction.

The event row, the submissions it requeues or ends, their audit rows (actor ``vendor:<provider>``, the event
named in the note) and the outcome events of ended submissions commit together, so the vendor is answered
200 only once all of it is stored, and a redelivery (same event id) finds the row and changes nothing. The
rules are data in ``worker/routing/resume.py``; ``APPLYQ_AUTO_RESUME=false`` stores events without acting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from worker.db.vendor_events import Audit, end_integration, mark_processed, requeue_resolved, store_event
from worker.routing.resume import plan
from worker.states import Provider, Reason
from worker.webhooks.events import record_outcomes

__all__ = ["Accepted", "VendorEventIn", "accept"]

log = logging.getLogger("applyq.vendor_events")


@dataclass(frozen=True, slots=True)
class VendorEventIn:
    """A verified vendor event, as applyq reads it."""

    provider: Provider
    event_id: str
    event_type: str
    #: Kombo's integration id or StackOne's account id (as submissions carry it), if the event names one.
    integration_id: str | None
    #: The event's own time, where the vendor gives one (what staleness is judged by).
    occurred_at: datetime | None
    body: Mapping[str, Any]

    @property
    def actor(self) -> str:
        """Who the audit trail says acted: the vendor."""
        return f"vendor:{self.provider.value}"


@dataclass(frozen=True, slots=True)
class Accepted:
    """What accepting an event did: nothing for a redelivery; else the submissions it changed, by id."""

    duplicate: bool = False
    result: str = ""
    requeued: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The 200 answer's body: counts, never ids (the vendor has no use for them)."""
        return {
            "duplicate": self.duplicate,
            "result": self.result,
            "requeued": len(self.requeued),
            "resumed": len(self.resumed),
            "ended": len(self.ended),
        }


def accept(session: Session, event: VendorEventIn, *, auto_resume: bool, now: datetime) -> Accepted:
    """Store the event (flush, no commit) and act on it; ``duplicate`` if it was stored before."""
    row_id = store_event(session, {
        "provider": event.provider.value,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "integration_id": event.integration_id,
        "payload": dict(event.body),
        "received_at": now,
    })  # fmt: skip
    if row_id is None:
        accepted = Accepted(duplicate=True, result="already received")
    else:
        accepted = _act(session, event, now) if auto_resume else Accepted(result="auto-resume off (stored only)")
        mark_processed(session, row_id, accepted.result, now)
    _log(event, accepted)
    return accepted


def _act(session: Session, event: VendorEventIn, now: datetime) -> Accepted:
    steps = plan(event.provider, event.event_type, event.body)
    if steps.empty:
        return Accepted(result="no rule acts on this event")
    if event.integration_id is None:
        return Accepted(result="the event names no integration")
    audit = Audit(event.actor, event.event_type, event.event_id)
    ended: list[str] = []
    if steps.end:
        ended = end_integration(session, event.provider, event.integration_id, Reason.INTEGRATION_DELETED, audit, now)
        if ended:
            record_outcomes(session, ended, now)
    requeued: list[str] = []
    resumed: list[str] = []
    if steps.requeue:
        requeued, resumed = requeue_resolved(session, event.provider, event.integration_id, steps.requeue, audit, now)
    result = f"requeued {len(requeued)}, made due {len(resumed)}, ended {len(ended)}"
    return Accepted(result=result, requeued=requeued, resumed=resumed, ended=ended)


def _log(event: VendorEventIn, accepted: Accepted) -> None:
    """One line per event: ids, type and counts (integration metadata, never candidate data)."""
    log.info(
        "vendor event %s",
        event.event_type,
        extra={
            "provider": event.provider.value,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "integration_id": event.integration_id,
            **accepted.as_json(),
        },
    )
