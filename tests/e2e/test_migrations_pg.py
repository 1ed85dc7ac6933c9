"""``alembic upgrade head`` and ``alembic check`` on real PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command

from worker.db.engine import alembic_config

pytestmark = pytest.mark.e2e


def test_models_and_migrations_agree_on_postgres(pg_url: str) -> None:
    command.check(alembic_config(pg_url))
