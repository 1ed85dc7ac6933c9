"""Liveness: heartbeats of dispatchers and consuming workers, and the ``applyq health`` verdict.

A Celery worker can stay connected to Redis yet consume nothing (celery#4453, #10302), so liveness is
judged on what matters: is work that is due being claimed, and is some dispatcher still running.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from worker.models import Heartbeat, Submission
from worker.states import Status

__all__ = ["HealthReport", "Heartbeater", "check_health", "process_name"]

_DUE = (Status.QUEUED.value, Status.RETRY_SCHEDULED.value)


def process_name(kind: str) -> str:
    """A heartbeat name unique to this process, e.g. ``dispatcher@host:1234``."""
    return f"{kind}@{socket.gethostname()}:{os.getpid()}"


class Heartbeater:
    """Records "alive" for one process at most every ``every_s`` seconds; never raises."""

    def __init__(
        self, sessions: sessionmaker[Session], kind: str, clock: Callable[[], datetime], every_s: float = 2.0
    ) -> None:
        self._sessions = sessions
        self._kind = kind
        self._name = process_name(kind)
        self._clock = clock
        self._every = timedelta(seconds=every_s)
        self._started = clock()
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def beat(self) -> None:
        """Write the heartbeat unless one was written less than ``every_s`` ago."""
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last < self._every:
                return
            self._last = now
        try:
            with self._sessions() as session:
                _upsert(session, self._name, self._kind, now, self._started)
                session.commit()
        except SQLAlchemyError:
            with self._lock:
                self._last = None  # try again on the next call


def _upsert(session: Session, name: str, kind: str, now: datetime, started: datetime) -> None:
    updated = session.execute(sa.update(Heartbeat).where(Heartbeat.name == name).values(beat_at=now))
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(Heartbeat(name=name, kind=kind, beat_at=now, started_at=started))
        except IntegrityError:
            pass


@dataclass(frozen=True)
class HealthReport:
    """The verdict and the facts it rests on."""

    ok: bool
    problems: list[str]
    facts: dict[str, Any] = field(default_factory=dict)


def check_health(
    session: Session, now: datetime, *, max_idle_s: float, max_dispatcher_silence_s: float, grace_s: float = 30.0
) -> HealthReport:
    """Unhealthy if due work waits while no worker consumed for ``max_idle_s``, or no dispatcher beats."""
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
