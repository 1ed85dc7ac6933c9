"""SQLAlchemy 2 models: submissions and their attempt history.

Schema changes go through Alembic: ``alembic revision --autogenerate -m "..."`` then ``applyq migrate``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from worker.states import DEFAULT_SCOPE, ENDED_STATUSES, Status, values

__all__ = [
    "Attempt",
    "AuditEvent",
    "Base",
    "Heartbeat",
    "Submission",
    "Tally",
    "TallyDelta",
    "UTCDateTime",
    "VendorEvent",
    "WebhookEvent",
]

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware timestamp that reads back as UTC on PostgreSQL and SQLite alike."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention (needed for SQLite batch migrations)."""

    metadata = sa.MetaData(naming_convention=_NAMING)


#: Ended submissions whose attempts ``applyq prune`` has not removed yet (a partial index's condition).
_PRUNABLE = sa.text(
    "status IN ({}) AND history_pruned_at IS NULL".format(", ".join(f"'{s}'" for s in sorted(values(ENDED_STATUSES))))
)

#: Submissions in a final state (``finished_at`` is set on reaching one, cleared by a requeue).
_FINISHED = sa.text("finished_at IS NOT NULL")


class Submission(Base):
    """One application to deliver, its current state and its final outcome."""

    __tablename__ = "applyq_submission"
    __table_args__ = (
        sa.Index("ix_applyq_submission_due", "status", "next_attempt_at"),
        sa.Index("ix_applyq_submission_provider_status", "provider", "status"),
        sa.UniqueConstraint("client_scope", "idempotency_key", name="uq_applyq_submission_scope_key"),
        # `applyq list`: newest first, without sorting the whole history
        sa.Index("ix_applyq_submission_created", "created_at", "id"),
        # `applyq prune`: ended submissions whose attempts are still kept, oldest first (partial: pruned ones leave it)
        sa.Index(
            "ix_applyq_submission_prunable",
            "updated_at",
            postgresql_where=_PRUNABLE,
            sqlite_where=_PRUNABLE,
        ),
        # `applyq stats`: the latest to reach a final state (partial: an enqueue, not finished, skips it)
        sa.Index("ix_applyq_submission_finished", "finished_at", postgresql_where=_FINISHED, sqlite_where=_FINISHED),
    )

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=_new_id)
    #: Whose key space ``idempotency_key`` is in: an API token's scope, or ``DEFAULT_SCOPE`` (CLI, Python API).
    client_scope: Mapped[str] = mapped_column(sa.String(64), default=DEFAULT_SCOPE, server_default=DEFAULT_SCOPE)
    idempotency_key: Mapped[str] = mapped_column(sa.String(255))
    payload_hash: Mapped[str] = mapped_column(sa.String(64))
    #: Sent as ``Idempotency-Key`` where the provider supports one; fixed for the submission's life.
    provider_idempotency_key: Mapped[str] = mapped_column(sa.String(64))
    provider: Mapped[str] = mapped_column(sa.String(16))
    integration_id: Mapped[str | None] = mapped_column(sa.String(200))
    job_id: Mapped[str] = mapped_column(sa.String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(_JSON)
    #: ``worker.privacy.email_key`` of the candidate's email: what ``applyq purge --email`` matches on.
    email_key: Mapped[str | None] = mapped_column(sa.String(320), index=True)

    status: Mapped[str] = mapped_column(sa.String(20), default=Status.QUEUED.value)
    attempt_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: The attempt and age limits count from here; ``applyq requeue`` starts a new window.
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=sa.func.now())
    #: ``attempt_count`` when the current window started.
    window_attempt_base: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(sa.String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    outcome_code: Mapped[str | None] = mapped_column(sa.String(100))
    outcome_title: Mapped[str | None] = mapped_column(sa.Text)
    outcome_message: Mapped[str | None] = mapped_column(sa.Text)
    outcome_reason: Mapped[str | None] = mapped_column(sa.String(64))
    remediation: Mapped[str | None] = mapped_column(sa.Text)
    provider_application_id: Mapped[str | None] = mapped_column(sa.String(200))
    remote_id: Mapped[str | None] = mapped_column(sa.String(200))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=sa.func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=sa.func.now())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When ``applyq prune`` removed its attempts, audit rows and delivered webhook events (``None``: kept).
    history_pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="submission", order_by="Attempt.number", cascade="all, delete-orphan"
    )


class Attempt(Base):
    """One call to the provider and what the router made of its answer."""

    __tablename__ = "applyq_attempt"
    __table_args__ = (sa.UniqueConstraint("submission_id", "number"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    submission_id: Mapped[str] = mapped_column(sa.ForeignKey("applyq_submission.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(sa.Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    latency_ms: Mapped[float | None] = mapped_column(sa.Float)
    #: ``send`` (the create request) or ``lookup`` (asking whether an earlier send created the application)
    kind: Mapped[str] = mapped_column(sa.String(16), default="send", server_default="send")

    http_status: Mapped[int | None] = mapped_column(sa.Integer)
    error_kind: Mapped[str | None] = mapped_column(sa.String(32))
    error_code: Mapped[str | None] = mapped_column(sa.String(100))
    error_title: Mapped[str | None] = mapped_column(sa.Text)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    log_url: Mapped[str | None] = mapped_column(sa.Text)
    request_id: Mapped[str | None] = mapped_column(sa.String(200))
    details: Mapped[dict[str, Any] | None] = mapped_column(_JSON)

    #: ``None`` while the attempt is running.
    decision: Mapped[str | None] = mapped_column(sa.String(16))
    reason: Mapped[str | None] = mapped_column(sa.String(64))
    delay_s: Mapped[float | None] = mapped_column(sa.Float)
    #: The request may have reached the provider although no trustworthy answer came back.
    unknown_outcome: Mapped[bool] = mapped_column(sa.Boolean, default=False)

    submission: Mapped[Submission] = relationship(back_populates="attempts")


class AuditEvent(Base):
    """An operator action on a submission: who, when, what changed (field names, never old PII values)."""

    __tablename__ = "applyq_audit"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    submission_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("applyq_submission.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=sa.func.now())
    actor: Mapped[str] = mapped_column(sa.String(200))
    #: requeue, cancel, edit, purge, ...
    action: Mapped[str] = mapped_column(sa.String(32))
    note: Mapped[str | None] = mapped_column(sa.Text)
    changes: Mapped[dict[str, Any] | None] = mapped_column(_JSON)

    submission: Mapped[Submission | None] = relationship()


class Heartbeat(Base):
    """The last sign of life of a long-running process (dispatcher, worker), for ``applyq health``."""

    __tablename__ = "applyq_heartbeat"

    #: e.g. ``dispatcher@host:pid`` or ``worker@host``
    name: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookEvent(Base):
    """An outcome event for the job board, recorded with the final state change and delivered from here."""

    __tablename__ = "applyq_webhook_event"
    __table_args__ = (sa.Index("ix_applyq_webhook_event_due", "status", "next_attempt_at"),)

    #: The event id receivers deduplicate on; the same on every delivery attempt.
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=_new_id)
    submission_id: Mapped[str] = mapped_column(sa.ForeignKey("applyq_submission.id", ondelete="CASCADE"), index=True)
    #: The JSON body sent, fixed when the event is recorded.
    payload: Mapped[dict[str, Any]] = mapped_column(_JSON)
    #: pending, delivered, expired
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    attempt_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    #: When the next delivery is due; while one runs, when its lease expires.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(sa.String(36))
    last_http_status: Mapped[int | None] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=sa.func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class VendorEvent(Base):
    """A provider's own webhook (Kombo, StackOne), stored once per event id before it is acknowledged."""

    __tablename__ = "applyq_vendor_event"
    __table_args__ = (sa.UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(sa.String(16))
    #: The vendor's event id: a redelivery of the same event finds this row and changes nothing.
    event_id: Mapped[str] = mapped_column(sa.String(200))
    event_type: Mapped[str] = mapped_column(sa.String(100))
    #: Kombo's integration id or StackOne's account id, as submissions carry it.
    integration_id: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    #: The verified body, as the vendor sent it (integration metadata, never candidate data).
    payload: Mapped[dict[str, Any]] = mapped_column(_JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=sa.func.now())
    #: ``None`` until the resume rules have run on it.
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: What the rules did, e.g. ``requeued 20`` or ``auto-resume off``.
    result: Mapped[str | None] = mapped_column(sa.Text)


class Tally(Base):
    """Counts that outlive the rows they count: attempts per outcome, ended submissions per status, code, integration.

    Database triggers (migrations 0007, 0008) append one ``TallyDelta`` per counted change, in the transaction that
    makes it; ``worker/db/tally.py`` folds the deltas in here. A metrics scrape reads this table and the
    few deltas not yet folded, never the attempts, and so does ``applyq stats`` for the ended submissions;
    ``applyq prune`` leaves it alone: the anonymous aggregates stay when the history goes.
    """

    __tablename__ = "applyq_tally"

    #: ``attempt`` (label: the decision, code: the provider's error code) or ``ended`` (label: the status,
    #: code: the outcome code, integration: the integration id)
    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    #: ``""`` where there is none (a success, a submission ended without a code)
    code: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    #: ``""`` where there is none (attempts are not counted per integration)
    integration: Mapped[str] = mapped_column(sa.String(200), primary_key=True, server_default="")
    n: Mapped[int] = mapped_column(sa.BigInteger)


class TallyDelta(Base):
    """One counted change, appended by a trigger: inserts never wait for each other, unlike a shared counter row."""

    __tablename__ = "applyq_tally_delta"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    provider: Mapped[str] = mapped_column(sa.String(16))
    label: Mapped[str] = mapped_column(sa.String(64))
    code: Mapped[str] = mapped_column(sa.String(100))
    integration: Mapped[str] = mapped_column(sa.String(200), server_default="")
    #: +1, or -1 when a submission leaves an ended status (requeued, deleted)
    n: Mapped[int] = mapped_column(sa.Integer)
