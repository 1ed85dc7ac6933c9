"""The job board's own tables (in the database it shares with applyq), on their own declarative base."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from worker import UTCDateTime

__all__ = ["Application", "Base", "ReceivedEvent"]


class Base(DeclarativeBase):
    """The job board's metadata; ``create_all`` at start-up is enough for an example."""


class Application(Base):
    """A candidate's application as the job board keeps it; ``status``/``message`` come from applyq."""

    __tablename__ = "jobboard_application"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(sa.String(200))
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str] = mapped_column(sa.String(320))
    submission_id: Mapped[str | None] = mapped_column(sa.String(36))
    status: Mapped[str] = mapped_column(sa.String(20), default="sending")
    message: Mapped[str] = mapped_column(sa.Text)
    #: ``time`` of the last outcome event applied, so an older event that arrives late changes nothing
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReceivedEvent(Base):
    """Webhook event ids already handled: deliveries are at least once, so duplicates are expected."""

    __tablename__ = "jobboard_received_event"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
