"""What the admin commands do, as plain functions over settings (the CLI only parses and prints)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from worker import admin, purge
from worker.admin import ActionResult, Progress
from worker.admin_input import Edit
from worker.admin_queries import ParkedFilter, parked, parked_ids, stats, submission_with_history
from worker.admin_views import parked_json, show_json
from worker.config import Settings
from worker.db import create_engine, create_session_factory

__all__ = [
    "bulk_requeue",
    "cancel_submissions",
    "list_parked",
    "purge_email",
    "purge_older_than",
    "requeue_submissions",
    "show_submission",
    "submission_stats",
]


def _sessions(settings: Settings) -> sessionmaker[Session]:
    return create_session_factory(create_engine(settings.database_url, pool_size=1))


def list_parked(settings: Settings, filters: ParkedFilter, *, limit: int) -> list[dict[str, Any]]:
    """Parked submissions matching the filters, oldest first."""
    with _sessions(settings)() as session:
        return [parked_json(row) for row in parked(session, filters, limit=limit)]


def show_submission(settings: Settings, id_or_key: str) -> dict[str, Any] | None:
    """One submission with payload, attempts and audit trail; None if not found."""
    with _sessions(settings)() as session:
        found = submission_with_history(session, id_or_key)
        return None if found is None else show_json(*found)


def requeue_submissions(
    settings: Settings,
    ids: Sequence[str],
    *,
    actor: str,
    now: datetime,
    edits: Sequence[Edit] = (),
    note: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> list[ActionResult]:
    """Requeue the given parked submissions (validating any edits for all of them first)."""
    with _sessions(settings)() as session:
        return admin.requeue(
            session, ids, actor=actor, now=now, edits=edits, note=note, dry_run=dry_run, progress=progress
        )


def bulk_requeue(
    settings: Settings,
    filters: ParkedFilter,
    *,
    actor: str,
    now: datetime,
    note: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    on_selected: Callable[[int], None] | None = None,
) -> list[ActionResult]:
    """Requeue every parked submission matching the filters; ``on_selected(n)`` is told the count first."""
    with _sessions(settings)() as session:
        ids = parked_ids(session, filters)
        session.rollback()
        if on_selected is not None:
            on_selected(len(ids))
        return admin.requeue(session, ids, actor=actor, now=now, note=note, dry_run=dry_run, progress=progress)


def cancel_submissions(
    settings: Settings, ids: Sequence[str], *, actor: str, reason: str, now: datetime
) -> list[ActionResult]:
    """Cancel the given submissions (queued, scheduled or parked)."""
    with _sessions(settings)() as session:
        return admin.cancel(session, ids, actor=actor, reason=reason, now=now)


def submission_stats(settings: Settings, *, since: datetime | None) -> dict[str, Any]:
    """The numbers ``applyq stats`` prints."""
    with _sessions(settings)() as session:
        return stats(session, since=since)


def purge_older_than(
    settings: Settings, age: timedelta, *, actor: str, now: datetime, dry_run: bool
) -> purge.PurgeReport:
    """Remove candidate data of submissions settled for longer than ``age``."""
    with _sessions(settings)() as session:
        which = purge.older_than(age, now)
        note = f"retention: unchanged for more than {age.days} days"
        return purge.purge(session, which, actor=actor, note=note, now=now, dry_run=dry_run)


def purge_email(settings: Settings, email: str, *, actor: str, now: datetime, dry_run: bool) -> purge.PurgeReport:
    """Remove candidate data of every submission of (or quoting) this email address."""
    with _sessions(settings)() as session:
        which = purge.emails_matching(email)
        note = "data-protection request (by email address)"
        return purge.purge(session, which, actor=actor, note=note, now=now, dry_run=dry_run)
