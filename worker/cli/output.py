"""What every ``applyq`` command shares: exit codes, settings, sessions, and printing to stdout / stderr.

Exit codes: 0 ok · 1 unexpected error (a database or Redis that cannot be reached among them) · 2 invalid
input or usage · 3 idempotency key reused with a different payload · 4 not found · 5 refused: not in a status
that allows it (e.g. requeue of a submission that is not parked; the other submissions named were still done).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import redis
import sqlalchemy as sa
import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory
from worker.errors import InvalidInput, InvalidSubmission
from worker.schemas import format_validation_error

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_INVALID",
    "EXIT_NOT_FOUND",
    "EXIT_REFUSED",
    "console",
    "err",
    "fail",
    "load_settings",
    "parsed",
    "print_json",
    "service_failure",
    "sessions",
]

EXIT_ERROR = 1
EXIT_INVALID = 2
EXIT_CONFLICT = 3
EXIT_NOT_FOUND = 4
EXIT_REFUSED = 5

err = Console(stderr=True)

T = TypeVar("T")


def console() -> Console:
    """Where tables go: the terminal's width, or, piped to a file, as wide as the content (ids never cut)."""
    terminal = Console()
    return terminal if terminal.is_terminal else Console(width=1000)


def fail(message: str, code: int) -> NoReturn:
    """Print to stderr and exit with ``code``."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """Read the environment once; a bad value is an input error."""
    try:
        return Settings()
    except ValidationError as exc:
        fail("invalid APPLYQ_* setting:\n" + format_validation_error(exc), EXIT_INVALID)


def sessions(settings: Settings, pool_size: int = 1) -> sessionmaker[Session]:
    """Sessions on the configured database, for one command."""
    return create_session_factory(
        create_engine(settings.database_url, pool_size=pool_size, pooler=settings.database_pooler)
    )


def parsed(parse: Callable[[], T]) -> T:
    """Run a parser of operator input; a malformed value exits 2 with the message."""
    try:
        return parse()
    except (InvalidInput, InvalidSubmission) as exc:
        fail(str(exc), EXIT_INVALID)


def print_json(data: Any) -> None:
    """Compact JSON on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")


def service_failure(exc: BaseException) -> tuple[str, int] | None:
    """What to print, and the exit code, when a command fails on its surroundings rather than on a bug.

    A database or Redis that cannot be reached is exit 1 with one line, not a traceback; a malformed
    ``APPLYQ_DATABASE_URL`` is exit 2. A connection failure prints the driver's first line (host and port); any
    other database error only its kind: SQLAlchemy's message carries the statement's parameters, and the
    server's may quote them (candidate data). None: a bug, whose traceback is kept.
    """
    if isinstance(exc, sa.exc.ArgumentError | sa.exc.NoSuchModuleError):
        return f"APPLYQ_DATABASE_URL is not a database URL SQLAlchemy can use: {exc}", EXIT_INVALID
    if isinstance(exc, sa.exc.OperationalError):  # the database is down, unreachable or refuses the login
        first = str(exc.orig).strip().splitlines()[:1] or [type(exc.orig).__name__]
        return f"the database cannot be used: {first[0]}", EXIT_ERROR
    if isinstance(exc, sa.exc.DBAPIError):
        state = getattr(exc.orig, "sqlstate", None)
        code = f" (SQLSTATE {state})" if state else ""
        return f"the database refused the command: {type(exc.orig).__name__}{code}", EXIT_ERROR
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"Redis (APPLYQ_BROKER_URL) cannot be reached: {exc}", EXIT_ERROR
    return None
