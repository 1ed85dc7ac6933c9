"""Read-only questions operators ask: what is parked, one submission's whole story, and the numbers."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from worker.db.models import AuditEvent, Submission
from worker.db.submissions import find_by_reference
from worker.states import FINAL_STATUSES, Status, values

__all__ = ["ParkedFilter", "audit_events", "parked", "parked_ids", "percentile", "stats", "submission_with_history"]


@dataclass(frozen=True, slots=True)
class ParkedFilter:
    """Which parked submissions: every given criterion must match."""

    provider: str | None = None
    code: str | None = None
    integration_id: str | None = None
    #: the router's reason, e.g. ``retries_exhausted`` or ``permission_missing``
    reason: str | None = None
    #: parked (last changed) at or after this time
    since: datetime | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions, starting with ``status = parked``."""
        conditions = [Submission.status == Status.PARKED.value]
        for column, value in (
            (Submission.provider, self.provider),
            (Submission.outcome_code, self.code),
            (Submission.integration_id, self.integration_id),
            (Submission.outcome_reason, self.reason),
        ):
            if value is not None:
                conditions.append(column == value)
        if self.since is not None:
            conditions.append(Submission.updated_at >= self.since)
        return conditions


def parked(session: Session, filters: ParkedFilter, *, limit: int = 1000) -> list[Submission]:
    """Parked submissions, oldest first (the longest wait first), with their attempts loaded."""
    query = (
        sa.select(Submission)
        .where(*filters.where())
        .options(selectinload(Submission.attempts))
        .order_by(Submission.updated_at, Submission.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def parked_ids(session: Session, filters: ParkedFilter) -> list[str]:
    """The ids of every parked submission matching the filters, oldest first."""
    query = sa.select(Submission.id).where(*filters.where()).order_by(Submission.updated_at, Submission.id)
    return list(session.scalars(query))


def submission_with_history(session: Session, id_or_key: str) -> tuple[Submission, list[AuditEvent]] | None:
    """A submission (attempts loaded) and its audit trail, oldest first; None if not found."""
    row = find_by_reference(session, id_or_key)
    if row is None:
        return None
    return row, audit_events(session, row.id)


def audit_events(session: Session, submission_id: str) -> list[AuditEvent]:
    """Every operator action on one submission, oldest first."""
    query = sa.select(AuditEvent).where(AuditEvent.submission_id == submission_id).order_by(AuditEvent.id)
    return list(session.scalars(query))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (``q`` in 0..100) of the values; None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def stats(session: Session, *, since: datetime | None = None) -> dict[str, Any]:
    """Counts per status, provider, code and integration; attempts per submission; time to final state."""
    created = [Submission.created_at >= since] if since is not None else []
    counts = _counts(session, created)
    return {
        "since": since.isoformat() if since else None,
        "total": sum(counts["status"].values()),
        "by_status": dict(counts["status"]),
        "by_provider": _nested(counts["provider"]),
        "by_code": _nested(counts["code"]),
        "by_integration": _nested(counts["integration"]),
        "attempts": _attempts(session, created),
        "time_to_final_s": _time_to_final(session, created),
    }


def _counts(session: Session, where: list[sa.ColumnElement[bool]]) -> dict[str, Counter[Any]]:
    columns = (Submission.status, Submission.provider, Submission.outcome_code, Submission.integration_id)
    query = sa.select(*columns, sa.func.count()).where(*where).group_by(*columns)
    counts: dict[str, Counter[Any]] = defaultdict(Counter)
    for status, provider, code, integration, n in session.execute(query):
        counts["status"][status] += n
        counts["provider"][(provider, status)] += n
        if code is not None:
            counts["code"][(code, status)] += n
        counts["integration"][(integration or "-", status)] += n
    return counts


def _nested(counter: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """``{(key, status): n}`` as ``{key: {status: n, "total": n}}``, the biggest key first."""
    nested: dict[str, dict[str, int]] = defaultdict(dict)
    for (key, status), n in counter.items():
        nested[key][status] = n
    for statuses in nested.values():
        statuses["total"] = sum(statuses.values())
    return dict(sorted(nested.items(), key=lambda item: (-item[1]["total"], item[0])))


def _attempts(session: Session, where: list[sa.ColumnElement[bool]]) -> dict[str, float | None]:
    values = [float(n) for n in session.scalars(sa.select(Submission.attempt_count).where(*where))]
    return {
        "mean": round(sum(values) / len(values), 2) if values else None,
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
    }


def _time_to_final(session: Session, where: list[sa.ColumnElement[bool]]) -> dict[str, dict[str, Any]]:
    """Seconds from creation to the final state, per final status and overall."""
    final = list(values(FINAL_STATUSES))
    query = sa.select(Submission.status, Submission.created_at, Submission.finished_at).where(
        Submission.status.in_(final), Submission.finished_at.is_not(None), *where
    )
    by_status: dict[str, list[float]] = defaultdict(list)
    for status, created_at, finished_at in session.execute(query):
        if finished_at is not None:
            by_status[status].append((finished_at - created_at).total_seconds())
    everything = [v for values in by_status.values() for v in values]
    groups = {"all": everything, **{s: by_status.get(s, []) for s in sorted(final)}}
    return {name: _summary(values) for name, values in groups.items()}


def _summary(values: Sequence[float]) -> dict[str, Any]:
    p50, p95 = percentile(values, 50), percentile(values, 95)
    return {
        "count": len(values),
        "p50": round(p50, 3) if p50 is not None else None,
        "p95": round(p95, 3) if p95 is not None else None,
    }
