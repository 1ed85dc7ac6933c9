"""The Python enqueue API, for a web app that shares applyq's database.

    applyq = Applyq.from_settings(Settings())            # once, at start-up
    with Session(engine) as session, session.begin():    # the job board's own transaction
        session.add(application)
        applyq.enqueue(submission, session=session)      # stored with it; published after the commit

``enqueue`` validates, stores and schedules one submission, idempotently on its ``idempotency_key``. Given
the caller's ``session`` it joins the caller's transaction: the submission commits or rolls back with the
caller's rows, and is handed to the broker only after the outermost transaction commits (nothing is
published on a rollback, nor for a rolled-back SAVEPOINT). Without a session it uses its own transaction.
Either way the database is the source of truth: a publish that fails or never happens (the process died
right after the commit) is made up by the dispatcher.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from worker.clock import utcnow
from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory
from worker.db.models import Submission
from worker.db.submissions import add_submissions, find_submission
from worker.errors import SubmissionNotFound
from worker.intake.enqueue import enqueue as enqueue_items
from worker.intake.enqueue import publish_new, validate_all
from worker.runtime.dispatcher import Publisher
from worker.schemas import SubmissionIn
from worker.states import DEFAULT_SCOPE, Provider, Status
from worker.webhooks.outcomes import public_message

__all__ = ["Applyq", "Enqueued", "SubmissionOut", "publish_after_commit"]

log = logging.getLogger("applyq.api")


class SubmissionOut(BaseModel):
    """A submission as the job board sees it: where it is and what to tell the candidate; no candidate data."""

    model_config = ConfigDict(frozen=True)

    id: str
    idempotency_key: str
    status: Status
    provider: Provider
    job_id: str
    reason: str | None = Field(description="machine-readable outcome, e.g. created, job_closed, already_applied")
    code: str | None = Field(description="the provider's error code, e.g. ATS.JOB_CLOSED")
    message: str = Field(description="what the job board may tell the candidate")
    remote_id: str | None = Field(description="the application's id in the employer's ATS")
    metadata: dict[str, Any] = Field(description="the job board's own ids, as submitted")
    attempt_count: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Submission) -> SubmissionOut:
        """The view of a stored submission."""
        return cls(
            id=row.id,
            idempotency_key=row.idempotency_key,
            status=Status(row.status),
            provider=Provider(row.provider),
            job_id=row.job_id,
            reason=row.outcome_reason,
            code=row.outcome_code,
            message=public_message(row.status, row.outcome_reason),
            remote_id=row.remote_id,
            metadata=dict(row.payload.get("metadata") or {}),
            attempt_count=row.attempt_count,
            created_at=row.created_at,
            updated_at=row.updated_at,
            finished_at=row.finished_at,
        )


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What ``enqueue`` did: the submission, and whether this call created it (False for a replay)."""

    submission: SubmissionOut
    created: bool


class Applyq:
    """The enqueue API: ``enqueue`` and ``get_submission`` over applyq's database and broker."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        publisher: Publisher,
        *,
        clock: Callable[[], datetime] = utcnow,
        engine: sa.Engine | None = None,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._clock = clock
        self._engine = engine

    @property
    def sessions(self) -> sessionmaker[Session]:
        """applyq's own session factory (for a transaction that ``enqueue`` then joins)."""
        return self._sessions

    @classmethod
    def from_settings(cls, settings: Settings, *, pool_size: int = 5) -> Applyq:
        """Connect to the database and broker that ``settings`` name (the engine is applyq's own)."""
        # local: a job board that passes its own publisher never imports Celery
        from worker.runtime.broker import resolve_broker_url
        from worker.runtime.tasks import CeleryPublisher, create_celery

        engine = create_engine(settings.database_url, pool_size=pool_size, pooler=settings.database_pooler)
        publisher = CeleryPublisher(create_celery(settings, resolve_broker_url(settings)))
        return cls(create_session_factory(engine), publisher, engine=engine)

    def enqueue(
        self,
        submission: SubmissionIn | Mapping[str, Any],
        *,
        session: Session | None = None,
        scope: str = DEFAULT_SCOPE,
    ) -> Enqueued:
        """Validate, store and schedule one submission; in ``session``'s transaction if one is given.

        The idempotency key is unique within ``scope``: the default one (shared with the CLI), or the
        scope of the API token a request came with (the HTTP API passes it).
        Raises ``InvalidSubmission`` (nothing stored) or ``IdempotencyConflict`` (the key belongs to a
        different payload; nothing stored, the caller's transaction is left usable).
        """
        item = submission if isinstance(submission, SubmissionIn) else validate_all([submission], label="")[0]
        if session is None:
            stored = enqueue_items(self._sessions, self._publisher, [item], self._clock(), scope=scope)[0]
        else:
            stored = add_submissions(session, [item], self._clock(), scope=scope)[0]
            if stored.created:
                publish_after_commit(
                    session, [stored.submission.id], partial(publish_new, self._sessions, self._publisher)
                )
        return Enqueued(SubmissionOut.from_row(stored.submission), stored.created)

    def get_submission(
        self, id_or_key: str, *, session: Session | None = None, scope: str = DEFAULT_SCOPE
    ) -> SubmissionOut:
        """The submission with this id, or with this idempotency key in ``scope``; raises ``SubmissionNotFound``."""
        if session is not None:
            row = find_submission(session, id_or_key, scope=scope)
            if row is None:
                raise SubmissionNotFound(f"no submission with id or idempotency key {id_or_key!r}")
            return SubmissionOut.from_row(row)
        with self._sessions() as own:
            return self.get_submission(id_or_key, session=own, scope=scope)

    def close(self) -> None:
        """Release the database connections this object opened."""
        if self._engine is not None:
            self._engine.dispose()


# --- publishing after the caller's commit ---------------------------------------------------------------

_PENDING = "applyq.publish_after_commit"


@dataclass(frozen=True, slots=True)
class _Pending:
    transaction: SessionTransaction
    ids: Sequence[str]
    publish: Callable[[Sequence[str]], None]


def publish_after_commit(session: Session, ids: Sequence[str], publish: Callable[[Sequence[str]], None]) -> None:
    """Call ``publish(ids)`` once ``session``'s outermost transaction commits; forget them if it rolls back.

    The ids belong to the innermost transaction open now: rolling back that SAVEPOINT (or any transaction
    around it) drops them; a commit of the outermost transaction publishes whatever is left.
    """
    pending: list[_Pending] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", _after_soft_rollback)
        event.listen(session, "after_transaction_end", _after_transaction_end)
    current = session.get_nested_transaction() or session.get_transaction()
    if current is None:
        raise RuntimeError("publish_after_commit needs a session inside a transaction")
    pending.append(_Pending(current, list(ids), publish))


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a SAVEPOINT was released; the outer transaction can still roll back
        return
    entries: list[_Pending] = session.info.get(_PENDING, [])
    due, entries[:] = list(entries), []
    for entry in due:
        try:
            entry.publish(entry.ids)
        except Exception:  # the commit stands; the dispatcher publishes what is due
            log.exception("publish after commit failed; the dispatcher will publish", extra={"count": len(entry.ids)})


def _after_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    entries: list[_Pending] = session.info.get(_PENDING, [])
    entries[:] = [e for e in entries if not _within(e.transaction, previous_transaction)]


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction ended (committed and published, or discarded)
        session.info.get(_PENDING, []).clear()


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False
