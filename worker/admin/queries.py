"""Read-only questions operators ask: what is parked, one submission's whole story, and the numbers."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, selectinload

from worker.db.models import AuditEvent, Submission
from worker.db.submissions import find_by_reference
from worker.states import FINAL_STATUSES, Status, values

__all__ = ["ParkedFilter", "audit_events", "parked", "parked_ids", "stats", "submission_with_history"]


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
    n = Submission.attempt_count
    mean, top = session.execute(sa.select(sa.func.avg(n), sa.func.max(n)).where(*where)).one()
    ranks = _nearest_ranks(session, sa.select(sa.literal("attempts").label("grp"), n.label("v")).where(*where))
    p50, p95 = (ranks.get(("all", q)) for q in _PERCENTILES)
    return {
        "mean": round(float(mean), 2) if mean is not None else None,
        "p50": float(p50) if p50 is not None else None,
        "p95": float(p95) if p95 is not None else None,
        "max": float(top) if top is not None else None,
    }


def _time_to_final(session: Session, where: list[sa.ColumnElement[bool]]) -> dict[str, dict[str, Any]]:
    """Seconds from creation to the final state, per final status and overall."""
    final = sorted(values(FINAL_STATUSES))
    ended = [Submission.status.in_(final), Submission.finished_at.is_not(None), *where]
    seconds = _seconds_between(session, Submission.created_at, Submission.finished_at)
    ranks = _nearest_ranks(session, sa.select(Submission.status.label("grp"), seconds.label("v")).where(*ended))
    counts = dict(
        session.execute(sa.select(Submission.status, sa.func.count()).where(*ended).group_by(Submission.status)).all()
    )
    counts["all"] = sum(counts.values())
    return {
        name: {"count": counts.get(name, 0), **{f"p{q}": _rounded(ranks.get((name, q))) for q in _PERCENTILES}}
        for name in ("all", *final)
    }


def _rounded(value: object) -> float | None:
    return round(float(cast(float, value)), 3) if value is not None else None


def _seconds_between(session: Session, start: Any, end: Any) -> sa.ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        return sa.extract("epoch", end - start)
    return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0


def _nearest_ranks(session: Session, rows: sa.SelectBase) -> dict[tuple[str, int], Any]:
    """The p50 and p95 of ``v`` per ``grp`` of ``rows`` and over all of them (``"all"``), by nearest rank.

    Computed in the database, no values sent over: PostgreSQL's ``percentile_disc`` is the nearest rank (the
    first value whose cumulative share reaches the fraction), one sort per group with ``ROLLUP`` for the
    total; SQLite has no percentile function, so a window numbers each group's values instead.
    """
    source = rows.subquery()
    if session.get_bind().dialect.name == "postgresql":
        fractions = sa.literal([q / 100 for q in _PERCENTILES], ARRAY(sa.Float()))
        picked = sa.func.percentile_disc(fractions).within_group(source.c.v)
        query = sa.select(sa.func.coalesce(source.c.grp, "all"), picked).group_by(sa.func.rollup(source.c.grp))
        rolled = session.execute(query).all()  # no rows at all: an empty group has no percentile
        return {(grp, q): value for grp, found in rolled for q, value in zip(_PERCENTILES, found or (), strict=False)}
    both = sa.union_all(sa.select(source.c.grp, source.c.v), sa.select(sa.literal("all"), source.c.v)).subquery()
    numbered = sa.select(
        both.c.grp,
        both.c.v,
        sa.func.row_number().over(partition_by=both.c.grp, order_by=both.c.v).label("rn"),
        sa.func.count().over(partition_by=both.c.grp).label("n"),
    ).subquery()
    rn, n = numbered.c.rn, numbered.c.n
    # rn = ceil(q·n/100) in integers: the first rank whose share reaches q percent
    at_rank = {q: sa.and_(rn * 100 >= q * n, (rn - 1) * 100 < q * n) for q in _PERCENTILES}
    picked_rows = [sa.case((condition, True), else_=False).label(f"p{q}") for q, condition in at_rank.items()]
    ranks: dict[tuple[str, int], Any] = {}
    for row in session.execute(sa.select(numbered.c.grp, numbered.c.v, *picked_rows).where(sa.or_(*at_rank.values()))):
        for q in _PERCENTILES:
            if row._mapping[f"p{q}"]:
                ranks[(row.grp, q)] = row.v
    return ranks


#: the percentiles ``applyq stats`` shows
_PERCENTILES = (50, 95)
