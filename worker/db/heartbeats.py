"""Liveness beats: each worker and dispatcher process records when it last did its job (applyq health reads them).

A beat is dated by the database's clock (``worker/db/clock.py``), as ``applyq health`` judges it, so a process
whose own clock runs ahead never looks alive after it stopped; this process's monotonic clock only spaces the
beats out.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from worker.db.clock import db_now
from worker.db.models import Heartbeat

__all__ = ["Heartbeater", "process_name"]


def process_name(kind: str) -> str:
    """A heartbeat name unique to this process, e.g. ``dispatcher@host:1234``."""
    return f"{kind}@{socket.gethostname()}:{os.getpid()}"


class Heartbeater:
    """Records "alive" for one process at most every ``every_s`` seconds; never raises."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        kind: str,
        every_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._kind = kind
        self._name = process_name(kind)
        self._monotonic = monotonic
        self._every = every_s
        self._last: float | None = None
        self._lock = threading.Lock()

    def beat(self) -> None:
        """Write the heartbeat unless one was written less than ``every_s`` ago."""
        now = self._monotonic()
        with self._lock:
            if self._last is not None and now - self._last < self._every:
                return
            self._last = now
        try:
            with self._sessions() as session:
                _upsert(session, self._name, self._kind)
                session.commit()
        except SQLAlchemyError:
            with self._lock:
                self._last = None  # try again on the next call


def _upsert(session: Session, name: str, kind: str) -> None:
    now = db_now()
    updated = session.execute(sa.update(Heartbeat).where(Heartbeat.name == name).values(beat_at=now))
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.execute(sa.insert(Heartbeat).values(name=name, kind=kind, beat_at=now, started_at=now))
        except IntegrityError:
            pass
