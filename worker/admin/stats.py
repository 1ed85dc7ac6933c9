"""``applyq stats``: the counts, and how the latest submissions to reach a final state went, without the history.

Neither part reads every submission, so stats costs about the same with years of history (issue 16):

* counts per status, provider, code and integration: the ended submissions (nearly all of a long history)
  from the tally the database keeps as rows change (``worker/db/tally.py``), the live ones (queued,
  scheduled, in flight, parked: a backlog) through the status index;
* attempts per submission and the time to the final state: over the latest ``latest`` submissions to reach a
  final state, read backwards on ``ix_applyq_submission_finished``. They describe how delivery goes now;
  a year's percentiles would hide today's slowdown.

With ``since`` the counts are of the submissions created since then, read through
``ix_applyq_submission_created`` (a cost that grows with the window), and the timings of the latest of them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from worker.db.models import Submission
from worker.db.tally import ENDED, KEYS, counts
from worker.states import ENDED_STATUSES, FINAL_STATUSES, Status, values

__all__ = ["LATEST", "stats"]

#: how many of the latest submissions to reach a final state the timings are over, unless told
LATEST = 10_000
#: the percentiles ``applyq stats`` shows
_PERCENTILES = (50, 95)
_FINAL = sorted(values(FINAL_STATUSES))
#: statuses a submission passes through: few rows each, found through the status index
_LIVE = values(frozenset(Status) - ENDED_STATUSES)

#: (status, provider, code, integration, n): one counted combination
_Row = tuple[str, str, str | None, str | None, int]


def stats(session: Session, *, since: datetime | None = None, latest: int = LATEST) -> dict[str, Any]:
    """Counts per status, provider, code and integration; attempts and time to final state of the latest."""
    rows = _created_since(session, since) if since is not None else [*_ended(session), *_live(session)]
    counts = _tallied(rows)
    window = _latest_final(since, latest)
    return {
        "since": since.isoformat() if since else None,
        "total": sum(counts["status"].values()),
        "by_status": dict(counts["status"]),
        "by_provider": _nested(counts["provider"]),
        "by_code": _nested(counts["code"]),
        "by_integration": _nested(counts["integration"]),
        "latest_final": _window(session, window, latest),
        "attempts": _attempts(session, window),
        "time_to_final_s": _time_to_final(session, window),
    }


def _ended(session: Session) -> Iterable[_Row]:
    for c in counts(session, ENDED, by=KEYS):
        yield c.label, c.provider, c.code or None, c.integration or None, c.n


def _live(session: Session) -> Iterable[_Row]:
    return _grouped(session, Submission.status.in_(_LIVE))


def _created_since(session: Session, since: datetime) -> Iterable[_Row]:
    return _grouped(session, Submission.created_at >= since)


def _grouped(session: Session, where: sa.ColumnElement[bool]) -> Iterable[_Row]:
    columns = (Submission.status, Submission.provider, Submission.outcome_code, Submission.integration_id)
    query = sa.select(*columns, sa.func.count()).where(where).group_by(*columns)
    return cast(Iterable[_Row], session.execute(query))


def _tallied(rows: Iterable[_Row]) -> dict[str, Counter[Any]]:
    tallied: dict[str, Counter[Any]] = defaultdict(Counter)
    for status, provider, code, integration, n in rows:
        tallied["status"][status] += n
        tallied["provider"][(provider, status)] += n
        if code is not None:
            tallied["code"][(code, status)] += n
        tallied["integration"][(integration or "-", status)] += n
    return tallied


def _nested(counter: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """``{(key, status): n}`` as ``{key: {status: n, "total": n}}``, the biggest key first."""
    nested: dict[str, dict[str, int]] = defaultdict(dict)
    for (key, status), n in counter.items():
        nested[key][status] = n
    for statuses in nested.values():
        statuses["total"] = sum(statuses.values())
    return dict(sorted(nested.items(), key=lambda item: (-item[1]["total"], item[0])))


def _latest_final(since: datetime | None, latest: int) -> sa.Subquery:
    """The latest ``latest`` submissions to reach a final state (created since ``since``), newest first."""
    where: list[sa.ColumnElement[bool]] = [Submission.finished_at.is_not(None), Submission.status.in_(_FINAL)]
    if since is not None:  # finished after it was created: the index range starts at ``since`` too
        where += [Submission.finished_at >= since, Submission.created_at >= since]
    columns = (Submission.status, Submission.attempt_count, Submission.created_at, Submission.finished_at)
    query = sa.select(*columns).where(*where).order_by(Submission.finished_at.desc()).limit(latest)
    return query.subquery("latest_final")


def _window(session: Session, window: sa.Subquery, latest: int) -> dict[str, Any]:
    """What the timings are over: at most ``latest``, ``count`` of them, finished since ``oldest_finished_at``."""
    count, oldest = session.execute(sa.select(sa.func.count(), sa.func.min(window.c.finished_at))).one()
    return {"limit": latest, "count": count, "oldest_finished_at": _iso(oldest)}


def _iso(value: datetime | str | None) -> str | None:
    """An aggregate's time as ISO 8601 UTC (SQLite returns the stored text, naive drivers a naive UTC time)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _attempts(session: Session, window: sa.Subquery) -> dict[str, float | None]:
    n = window.c.attempt_count
    mean, top = session.execute(sa.select(sa.func.avg(n), sa.func.max(n))).one()
    ranks = _nearest_ranks(session, sa.select(sa.literal("attempts").label("grp"), n.label("v")))
    p50, p95 = (ranks.get(("all", q)) for q in _PERCENTILES)
    return {
        "mean": round(float(mean), 2) if mean is not None else None,
        "p50": float(p50) if p50 is not None else None,
        "p95": float(p95) if p95 is not None else None,
        "max": float(top) if top is not None else None,
    }


def _time_to_final(session: Session, window: sa.Subquery) -> dict[str, dict[str, Any]]:
    """Seconds from creation to the final state, per final status and overall."""
    seconds = _seconds_between(session, window.c.created_at, window.c.finished_at)
    ranks = _nearest_ranks(session, sa.select(window.c.status.label("grp"), seconds.label("v")))
    by_status = sa.select(window.c.status, sa.func.count()).group_by(window.c.status)
    counts: dict[str, int] = {status: n for status, n in session.execute(by_status)}
    counts["all"] = sum(counts.values())
    return {
        name: {"count": counts.get(name, 0), **{f"p{q}": _rounded(ranks.get((name, q))) for q in _PERCENTILES}}
        for name in ("all", *_FINAL)
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
