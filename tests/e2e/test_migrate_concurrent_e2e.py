"""Several ``applyq migrate`` at once on PostgreSQL, as containers of one deployment start: all succeed.

Four rounds directly on PostgreSQL (applyq's default connection, and where the advisory lock lives), and one
through the session's PgBouncer in transaction mode: the lock is transaction-scoped so that it holds there too
(a session-level lock would stay on whichever server connection took it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from tests.conftest import require_service
from tests.e2e.conftest import PG_ADMIN_URL, PGBOUNCER_POOL
from worker.db.engine import alembic_config, create_engine
from worker.local.processes import create_database, drop_database

pytestmark = pytest.mark.e2e

ROUNDS = 4  # each round ~3 s; the race showed in the first rounds when it was there (CI budget)
AT_ONCE = 3


def migrate_at_once(url: str, pooler: str = "none") -> list[subprocess.CompletedProcess[str]]:
    """Start ``AT_ONCE`` ``applyq migrate`` processes together on ``url``; wait for all of them."""
    env = {**os.environ, "APPLYQ_DATABASE_URL": url, "APPLYQ_DATABASE_POOLER": pooler}
    procs = [
        subprocess.Popen([sys.executable, "-m", "worker", "migrate"], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(AT_ONCE)
    ]  # fmt: skip
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return results


def schema_version(url: str) -> str | None:
    engine = create_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            version = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
            return None if version is None else str(version)
    finally:
        engine.dispose()


def migrate_a_fresh_database(reach: Callable[[str], str] = str, pooler: str = "none") -> None:
    """Create an empty database, run ``AT_ONCE`` migrates on it together (at ``reach(url)``), check, drop it."""
    head = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()
    try:
        url = create_database(PG_ADMIN_URL, "applyq_migrate")
    except sa.exc.OperationalError as exc:
        require_service("PostgreSQL", str(exc).splitlines()[0])
    try:
        # When three deployments' migrate run together
        results = migrate_at_once(reach(url), pooler)
        # Then each exits 0 without a traceback, and the schema is at head once
        for result in results:
            assert result.returncode == 0, result.stderr
            assert "Traceback" not in result.stderr
        assert schema_version(url) == head
    finally:
        drop_database(PG_ADMIN_URL, url)


@pytest.mark.timeout(600)
def test_three_migrates_at_once_on_a_fresh_database_all_succeed_round_after_round() -> None:
    for _ in range(ROUNDS):
        migrate_a_fresh_database()


def test_three_migrates_at_once_through_pgbouncer_all_succeed() -> None:
    # through the session's PgBouncer in transaction mode (skips without one, fails under CI)
    migrate_a_fresh_database(PGBOUNCER_POOL.url, pooler="transaction")
