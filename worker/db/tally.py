"""Counts kept as the rows change: attempts per outcome, ended submissions per status, code and integration.

The triggers of migrations 0007 and 0008 append a ``TallyDelta`` row for every counted change, in the
transaction that makes it (an attempt's decision recorded; a submission entering or leaving an ended status,
or changing its code or integration there). Appending never waits: many workers' group commits touching
one shared counter row would queue behind each other, and lock two such rows in different orders and
deadlock. ``fold`` moves the deltas into ``Tally`` (the dispatcher does it every few seconds); ``counts``
reads both, so it is exact between folds too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from worker.db.engine import is_postgres
from worker.db.models import Tally, TallyDelta

__all__ = ["ATTEMPT", "ENDED", "KEYS", "Count", "counts", "fold"]

#: ``Tally.kind``: attempts per provider, decision and code; ended submissions per provider, status, outcome
#: code and integration (what ``applyq stats`` shows of them).
ATTEMPT, ENDED = "attempt", "ended"

_T = cast(sa.Table, Tally.__table__)
_D = cast(sa.Table, TallyDelta.__table__)
#: What a count is kept per (``""`` where a row has none).
KEYS = ("provider", "label", "code", "integration")
_KEY = ("kind", *KEYS)


class Count(NamedTuple):
    """One counted combination: ``label`` is the decision (attempts) or the status (ended submissions)."""

    provider: str
    label: str
    code: str
    n: int
    #: only ended submissions are counted per integration
    integration: str = ""


def counts(session: Session, kind: str, by: Sequence[str] = ("provider", "label", "code")) -> Iterator[Count]:
    """Every count of ``kind`` per ``by`` (of ``KEYS``; the others summed over and ``""`` in the result).

    The folded tally plus the deltas not folded yet (a few seconds' worth).
    """
    both = sa.union_all(
        sa.select(*(_T.c[k] for k in by), _T.c.n).where(_T.c.kind == kind),
        sa.select(*(_D.c[k] for k in by), _D.c.n).where(_D.c.kind == kind),
    ).subquery()
    columns = [both.c[k] for k in by]
    query = sa.select(*columns, sa.func.sum(both.c.n)).group_by(*columns).order_by(*columns)
    for *keys, n in session.execute(query):
        if n:
            values = dict.fromkeys(KEYS, "") | dict(zip(by, keys, strict=True))
            yield Count(**values, n=int(n))


def fold(session: Session) -> None:
    """Move the deltas into the tally, in the caller's transaction (the caller commits).

    PostgreSQL deletes and adds in one statement: a delta committed meanwhile is either in both or in
    neither. SQLite has one writer at a time, so two statements bounded by the highest id read are as safe.
    """
    if is_postgres(session):
        moved = sa.delete(_D).returning(*(_D.c[k] for k in _KEY), _D.c.n).cte("moved")
        session.execute(_upsert(postgresql.insert(_T), _sums(moved)))
        return
    last = session.scalar(sa.select(sa.func.max(_D.c.id)))
    if last is None:
        return
    session.execute(_upsert(sqlite.insert(_T), _sums(_D, _D.c.id <= last)))
    session.execute(sa.delete(_D).where(_D.c.id <= last))


def _sums(source: sa.FromClause, *where: sa.ColumnElement[bool]) -> sa.Select[tuple[object, ...]]:
    """Deltas summed per key, in key order: concurrent folds lock the tally rows in the same order."""
    keys = [source.c[k] for k in _KEY]
    return sa.select(*keys, sa.func.sum(source.c.n)).where(*where).group_by(*keys).order_by(*keys)


def _upsert(
    insert: postgresql.Insert | sqlite.Insert, sums: sa.Select[tuple[object, ...]]
) -> postgresql.Insert | sqlite.Insert:
    statement = insert.from_select([*_KEY, "n"], sums)
    return statement.on_conflict_do_update(index_elements=list(_KEY), set_={"n": _T.c.n + statement.excluded.n})
