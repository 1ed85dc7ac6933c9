"""Liveness beats: each worker and dispatcher process records when it last did its job (applyq health reads them)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from worker.db.models import Heartbeat

__all__ = ["Heartbeater", "process_name"]


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
