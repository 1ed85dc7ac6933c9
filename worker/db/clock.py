"""The database's clock: every time that another process compares is written and compared in SQL.

Leases, due times, deferrals, claims and publish marks are read by other workers and dispatchers, maybe on
other hosts. Were each process to bind its own ``now``, a worker whose clock runs ahead would see the others'
leases as expired and take their submissions mid-flight, find retries due before their Retry-After, and push
its own deferrals into the future for everyone. So these statements never bind a time: they say
``db_now()`` or ``db_after(seconds)``, which the database evaluates in the same statement (no extra round
trip), and only the database's clock matters.

* PostgreSQL: ``now()``, the transaction's start, so every row a transaction touches gets the same time.
* SQLite stores a timestamp as text (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC, as ``UTCDateTime`` binds it) and
  compares it as text, so its ``now`` must come in exactly that form: ``CURRENT_TIMESTAMP`` has no fraction
  and ``strftime('%f')`` milliseconds. Each connection gets two functions, ``applyq_now()`` and
  ``applyq_after(seconds)``, that print the engine's clock in the stored form. SQLite lives in the process,
  so this is the same host clock SQLite's own ``'now'`` reads; tests give the engine a clock they move.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from worker.db.models import UTCDateTime

__all__ = ["db_after", "db_now", "install_sqlite_clock", "read_db_now"]

#: how ``UTCDateTime`` is stored on SQLite (SQLAlchemy's ``DATETIME`` storage format), so text compares in time order
_SQLITE_STORED = "%Y-%m-%d %H:%M:%S.%f"


class db_now(FunctionElement[datetime]):
    """The database's current time, evaluated by the statement that uses it."""

    type = UTCDateTime()
    inherit_cache = True


class db_after(FunctionElement[datetime]):
    """The database's current time plus ``seconds`` (a SQL expression or bind parameter; NULL gives NULL)."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(db_now)
def _now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "now()"


@compiles(db_after)
def _after(element: db_after, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(now() + make_interval(secs => {compiler.process(element.clauses, **kw)}))"


@compiles(db_now, "sqlite")
def _sqlite_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "applyq_now()"


@compiles(db_after, "sqlite")
def _sqlite_after(element: db_after, compiler: SQLCompiler, **kw: Any) -> str:
    return f"applyq_after({compiler.process(element.clauses, **kw)})"


def install_sqlite_clock(dbapi_connection: Any, clock: Callable[[], datetime]) -> None:
    """Give a new SQLite connection ``applyq_now()`` and ``applyq_after(seconds)`` reading ``clock``."""

    def after(seconds: float | None) -> str | None:
        return None if seconds is None else _stored(clock() + timedelta(seconds=seconds))

    # not deterministic: SQLite must call them at every execution, never fold them into a prepared statement
    dbapi_connection.create_function("applyq_now", 0, lambda: _stored(clock()))
    dbapi_connection.create_function("applyq_after", 1, after)


def _stored(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_SQLITE_STORED)


def read_db_now(session: Session) -> datetime:
    """The database's time, for the few decisions made in Python (an operator command, the router's age limit)."""
    return session.execute(sa.select(db_now())).scalar_one()
