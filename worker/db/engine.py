"""Engine and session factory, built from settings on demand (never at import)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from worker.clock import utcnow
from worker.db.clock import install_sqlite_clock

__all__ = ["MIGRATION_LOCK_KEY", "create_engine", "create_session_factory", "is_postgres", "migrate"]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"  # shipped inside the package, so a wheel can migrate
#: PostgreSQL advisory lock held by ``migrate`` (one bigint key: "applyqmg"; the two-key locks of
#: ``worker/intake/http.py`` live in a separate key space, so they never meet it).
MIGRATION_LOCK_KEY = int.from_bytes(b"applyqmg")


def create_engine(
    url: str, *, pool_size: int = 10, clock: Callable[[], datetime] = utcnow, pooler: str = "none"
) -> sa.Engine:
    """An engine; SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` so writers queue up.

    ``hide_parameters``: a statement's parameters (candidate data) never appear in an error's message, so
    no traceback or log line can carry them.

    ``clock`` is SQLite's ``now`` (``worker/db/clock.py``): this host's clock unless a test moves it by hand.
    PostgreSQL's ``now()`` is the server's own.

    ``pooler`` is ``APPLYQ_DATABASE_POOLER``: at most twice ``pool_size`` connections either way (the pool and as
    many again in overflow), each held only for a transaction or a single statement.
    """
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True)
        _tune_sqlite(engine, clock)
        return engine
    return sa.create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, hide_parameters=True,
        connect_args=_connect_args(pooler),
    )  # fmt: skip


def _connect_args(pooler: str) -> dict[str, Any]:
    """psycopg's arguments for the database behind ``pooler``.

    psycopg 3 prepares a statement on the server once it has run 5 times on a connection
    (psycopg.org/psycopg3/docs/advanced/prepare.html). Behind a pooler in transaction mode the next
    transaction may be given another server connection, where that statement does not exist ("prepared
    statement … does not exist"); ``prepare_threshold=None`` never prepares, as psycopg's docs advise for
    PgBouncer in transaction mode. applyq keeps no other session state: no ``SET``, no ``LISTEN``, and only
    transaction-scoped advisory locks (``migrate``, ``worker/intake/http.py``).
    """
    return {"prepare_threshold": None} if pooler == "transaction" else {}


def _tune_sqlite(engine: sa.Engine, clock: Callable[[], datetime]) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        install_sqlite_clock(dbapi_connection, clock)
        # Let SQLAlchemy, not pysqlite, issue BEGIN (see "Serializable isolation / Savepoints" in the
        # SQLAlchemy SQLite docs); WAL lets readers run beside the single writer.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        # SQLite's built-in lower() folds ASCII only (sqlite.org/lang_corefunc.html#lower), so "JÖRG" would
        # never match "jörg"; an application-defined function of the same name replaces it (sqlite.org/appfunc.html)
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction can't hit SQLITE_BUSY
        # half-way, and two dispatchers can't pick the same rows.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _lower(value: object) -> object:
    """Python's Unicode ``str.lower`` as SQLite's ``lower()``, like PostgreSQL's in a UTF-8 locale."""
    return value.lower() if isinstance(value, str) else value


def is_postgres(target: str | sa.Engine | Session) -> bool:
    """True on PostgreSQL (``FOR UPDATE SKIP LOCKED``, advisory locks, reads outside a transaction).

    ``target`` is a database URL, an engine or a session: the one test every module uses.
    """
    if isinstance(target, str):
        return sa.make_url(target).get_backend_name() == "postgresql"
    bind = target.get_bind() if isinstance(target, Session) else target
    return bind.dialect.name == "postgresql"


def create_session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Any:
    """An Alembic config pointing at this project's migrations and the given database."""
    from alembic.config import Config  # local: only `applyq migrate` and tests need Alembic

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head", *, pooler: str = "none") -> None:
    """Upgrade the database schema (``alembic upgrade head``); on PostgreSQL one process at a time.

    Deployments start several containers at once, each running ``applyq migrate``: unserialised, two of them
    create ``alembic_version`` or the same table together and one fails (a unique violation in ``pg_type``).
    The whole upgrade is one transaction that first takes a transaction-scoped advisory lock: the first
    upgrades, the others wait, then find the schema at head and do nothing. Being transaction-scoped, the lock
    holds through a pooler in transaction mode too (a session-level lock would stay on whichever server
    connection took it), and a process killed half-way releases it with its transaction.
    SQLite serialises writers itself.
    """
    from alembic import command  # local: only `applyq migrate` and tests need Alembic

    if not is_postgres(url):
        command.upgrade(alembic_config(url), revision)
        return
    engine = sa.create_engine(url, poolclass=NullPool, connect_args=_connect_args(pooler))
    try:
        with engine.begin() as connection:
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
            config = alembic_config(url)
            config.attributes["connection"] = connection  # env.py runs in this transaction
            command.upgrade(config, revision)
    finally:
        engine.dispose()
