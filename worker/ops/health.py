"""Liveness: heartbeats of dispatchers and consuming workers, and the ``applyq health`` verdict.

A Celery worker can stay connected to Redis yet consume nothing (celery#4453, #10302), so liveness is
judged on what matters: is work that is due being claimed, and is some dispatcher still running. Beats and
due times are the database's time, so the verdict is too: the host running ``applyq health`` may be off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from worker.db.clock import read_db_now
from worker.db.models import Heartbeat, Submission
from worker.states import CLAIMABLE_STATUSES, values

__all__ = ["HealthReport", "check_health"]

_DUE = values(CLAIMABLE_STATUSES)


@dataclass(frozen=True)
class HealthReport:
    """The verdict and the facts it rests on."""

    ok: bool
    problems: list[str]
    facts: dict[str, Any] = field(default_factory=dict)


def check_health(
    session: Session, *, max_idle_s: float, max_dispatcher_silence_s: float, grace_s: float = 30.0
) -> HealthReport:
    """Unhealthy if due work waits while no worker consumed for ``max_idle_s``, or no dispatcher beats."""
    now = read_db_now(session)
    last_dispatch = _last_beat(session, "dispatcher")
    last_consumed = _last_beat(session, "worker")
    overdue_since = now - timedelta(seconds=grace_s)
    overdue = session.scalar(
        sa.select(sa.func.count())
        .select_from(Submission)
        .where(Submission.status.in_(_DUE), Submission.next_attempt_at < overdue_since)
    )
    problems = []
    if last_dispatch is None or (now - last_dispatch).total_seconds() > max_dispatcher_silence_s:
        problems.append(f"no dispatcher heartbeat in the last {max_dispatcher_silence_s:g} s")
    idle = last_consumed is None or (now - last_consumed).total_seconds() > max_idle_s
    if overdue and idle:
        problems.append(f"{overdue} submissions are overdue and no worker consumed anything in {max_idle_s:g} s")
    facts = {
        "last_dispatcher_beat": last_dispatch.isoformat() if last_dispatch else None,
        "last_worker_consumed": last_consumed.isoformat() if last_consumed else None,
        "overdue": overdue,
    }
    return HealthReport(not problems, problems, facts)


def _last_beat(session: Session, kind: str) -> datetime | None:
    return session.scalar(sa.select(sa.func.max(Heartbeat.beat_at)).where(Heartbeat.kind == kind))
