"""Migrations are code: upgrade, downgrade and drift check on SQLite (PostgreSQL in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

from alembic import command

from worker.db.engine import alembic_config


def test_upgrade_downgrade_upgrade_on_sqlite(tmp_path: Path) -> None:
    config = alembic_config(f"sqlite:///{tmp_path / 'm.db'}")
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    command.check(config)  # raises if the models and the migrations drifted apart
