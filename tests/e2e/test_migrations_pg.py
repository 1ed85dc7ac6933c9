"""``alembic upgrade head`` and ``alembic check`` on real PostgreSQL.

Directly on PostgreSQL (the session's database), never through the suite's PgBouncer: this compares the models
with PostgreSQL's schema, in this process. ``applyq migrate`` through PgBouncer: ``test_migrate_concurrent_e2e.py``.
"""

from __future__ import annotations

import pytest
from alembic import command

from worker.db.engine import alembic_config

pytestmark = pytest.mark.e2e


def test_models_and_migrations_agree_on_postgres(pg_url: str) -> None:
    command.check(alembic_config(pg_url))
