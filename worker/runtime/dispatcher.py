"""The dispatcher: the database decides what is due; the broker only carries "work on id X now".

It publishes every submission that is due (or whose lease expired) and was not published in the last
``republish_after_s``. That recovers failed publishes, a flushed or restarted Redis and lost retries
with no operator action, and keeps long delays out of the broker. Several dispatchers may run: on
PostgreSQL they split the rows with ``FOR UPDATE SKIP LOCKED``; on SQLite ``BEGIN IMMEDIATE``
serialises them. A duplicate message is harmless: the claim is a compare-and-set. What is due and what
was published recently is the database's time (``worker/db/clock.py``), never the dispatcher's host's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from worker.config import Settings
from worker.db.leases import due_submission_ids, mark_published

__all__ = ["Publisher", "dispatch_once", "run_dispatcher"]

log = logging.getLogger("applyq.dispatcher")


class Publisher(Protocol):
    """Hands submission ids to the broker."""

    def publish(self, submission_ids: Sequence[str]) -> None:
        """Send one ``applyq.submit`` message per id; raise if the broker refused."""


def dispatch_once(
    sessions: sessionmaker[Session],
    publisher: Publisher,
    settings: Settings,
    *,
    skip_locked: bool,
) -> int:
    """Publish one batch of due submissions; return how many were published."""
    with sessions() as session:
        ids = due_submission_ids(
            session,
            republish_after_s=settings.republish_after_s,
            limit=settings.dispatch_batch_size,
            skip_locked=skip_locked,
        )
        if not ids:
            session.rollback()
            return 0
        publisher.publish(ids)
        mark_published(session, ids)
        session.commit()
    return len(ids)


def run_dispatcher(
    sessions: sessionmaker[Session],
    publisher: Publisher,
    settings: Settings,
    stop: threading.Event,
    *,
    skip_locked: bool,
    heartbeat: Callable[[], None] = lambda: None,
) -> None:
    """Loop until ``stop`` is set; a full batch is followed at once by the next one."""
    while not stop.is_set():
        try:
            count = dispatch_once(sessions, publisher, settings, skip_locked=skip_locked)
            heartbeat()
        except Exception:
            log.exception("dispatch failed; will try again")
            count = 0
        if count:
            log.debug("published %d due submissions", count)
        if count < settings.dispatch_batch_size:
            stop.wait(settings.dispatch_interval_s)
