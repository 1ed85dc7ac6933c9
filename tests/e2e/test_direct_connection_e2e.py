"""Kombo end-to-end tests again, with every applyq process connected to PostgreSQL directly.

The rest of the e2e suite runs its applyq processes through a PgBouncer in transaction mode
(``APPLYQ_DATABASE_POOLER=transaction``: psycopg prepares no statement; ``tests/e2e/conftest.py``). applyq's
default is a direct connection (``APPLYQ_DATABASE_POOLER=none``) on which psycopg prepares a statement once it
has run 5 times, and most deployments run so: these tests keep that path covered end to end. A few Kombo
tests and a burst of 120 submissions (every hot-path statement runs far more than 5 times, so the worker runs
on prepared statements) are collected here a second time with a direct ``stack``; the whole suite twice would
cost CI more than its 15-minute budget allows.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, fresh_database, start_stack

# collected here a second time with the direct `stack` below
from tests.e2e.test_kombo_e2e import (  # noqa: F401
    test_a_burst_is_delivered_without_a_statement_lost_between_connections,
    test_rate_limited_then_succeeds_never_before_retry_after,
    test_success_on_the_first_attempt,
    test_the_same_key_replays_and_a_different_payload_exits_3,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Sandbox and worker whose every connection (and the CLI's) goes to PostgreSQL, prepared statements on."""
    with fresh_database() as pg_url:
        tmp = tmp_path_factory.mktemp("direct")
        with start_stack(pg_url, redis_url, tmp, direct=True) as direct:
            assert direct.env["APPLYQ_DATABASE_POOLER"] == "none" and direct.env["APPLYQ_DATABASE_URL"] == pg_url
            yield direct
