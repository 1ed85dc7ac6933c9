"""Kombo end-to-end tests again, with every applyq process behind PgBouncer in transaction mode.

A pooled deployment (many worker processes, one PgBouncer) gives each transaction whichever server
connection is free. With ``APPLYQ_DATABASE_POOLER=transaction`` applyq prepares no statement on the server
and keeps no session state, so nothing it relies on is left behind on a connection another transaction
gets: no ``prepared statement … does not exist``. ``applyq migrate`` runs through the pooler too (its lock is
transaction-scoped). The test's own reads go to PostgreSQL directly.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import require_service
from tests.e2e.conftest import PG_ADMIN_URL, Stack, fresh_database, kombo_submission, start_stack

# a few of the Kombo module's tests, collected here a second time with the pooled `stack` below (the whole
# module through the pooler costs CI more than its 15-minute budget allows)
from tests.e2e.test_kombo_e2e import (  # noqa: F401
    test_rate_limited_then_succeeds_never_before_retry_after,
    test_success_on_the_first_attempt,
    test_the_same_key_replays_and_a_different_payload_exits_3,
)
from worker.local.pgbouncer import pooled_url, run_pgbouncer

pytestmark = pytest.mark.e2e

POOLED = {"APPLYQ_DATABASE_POOLER": "transaction"}


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Sandbox and worker whose every connection (and the CLI's) goes through PgBouncer."""
    try:
        bouncer = run_pgbouncer(PG_ADMIN_URL, pool_size=10)
        port = bouncer.__enter__()
    except (FileNotFoundError, RuntimeError) as exc:
        require_service("PgBouncer", str(exc))
    try:
        with fresh_database() as pg_url:
            tmp = tmp_path_factory.mktemp("pgbouncer")
            with start_stack(pg_url, redis_url, tmp, with_worker=False) as pooled:
                pooled.env.update(POOLED, APPLYQ_DATABASE_URL=pooled_url(pg_url, port))
                migrated = pooled.cli("migrate")
                assert migrated.returncode == 0, migrated.stderr
                pooled.start_worker()
                yield pooled
    finally:
        bouncer.__exit__(None, None, None)


def test_a_burst_through_the_pooler_is_delivered_without_a_statement_lost_between_connections(stack: Stack) -> None:
    # Given a burst of submissions: every hot-path statement runs far more than psycopg's 5 times before it
    # would prepare it, on many server connections
    ids = stack.submit_many([kombo_submission("ok--burst") for _ in range(120)])
    # When they are delivered
    stack.wait_final(*ids, timeout_s=90)
    statuses = {stack.status(i)["status"] for i in ids[:5]}
    # Then all succeeded, and no worker task failed on a statement prepared on another connection
    assert statuses == {"succeeded"}
    log = stack.procs[-1].output()
    assert "prepared statement" not in log
    assert "DuplicatePreparedStatement" not in log and "InvalidSqlStatementName" not in log


def test_migrate_through_the_pooler_is_serialised_by_a_transaction_lock(stack: Stack) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-m", "worker", "migrate"], env=stack.env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]  # fmt: skip
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    assert all(code == 0 for code, _ in results), results
