"""Start lines name URLs without secrets; ``applyq health`` answers on stdout; ``applyq stop`` with nothing to stop."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker.cli.app import app
from worker.cli.lifecycle import calling_line, shown_url
from worker.config import Settings


def test_a_password_in_a_url_is_never_shown() -> None:
    assert (
        shown_url("postgresql+psycopg://applyq:s3cret@db:5432/applyq")
        == "postgresql+psycopg://applyq:***@db:5432/applyq"
    )
    assert shown_url("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert shown_url("http://127.0.0.1:8700/v1") == "http://127.0.0.1:8700/v1"


def test_the_worker_line_names_each_providers_base_url_and_never_a_key() -> None:
    settings = Settings(
        database_url="postgresql+psycopg://applyq:s3cret@db/applyq",
        broker_url="redis://:hunter2@redis:6379/0",
        kombo_base_url="http://127.0.0.1:8700",
        kombo_api_key="kombo-key-1234",
        celper_base_url="http://127.0.0.1:8700/v1",
    )
    line = calling_line(settings)
    assert line.startswith("calling kombo at http://127.0.0.1:8700, stackone at https://api.stackone.com (no API")
    assert "celper at http://127.0.0.1:8700/v1 (no API key set)" in line
    assert "broker redis://:***@redis:6379/0; database postgresql+psycopg://applyq:***@db/applyq" in line
    assert "kombo-key-1234" not in line and "s3cret" not in line and "hunter2" not in line


def test_health_prints_its_verdict_on_stdout(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLYQ_DATABASE_URL", sqlite_url)
    result = CliRunner().invoke(app, ["health"])
    assert result.exit_code == 1
    assert result.stdout.startswith("UNHEALTHY: no dispatcher heartbeat") and result.stderr == ""


def test_stop_with_nothing_running_says_so_and_succeeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLYQ_EMBEDDED_REDIS_DIR", str(tmp_path / ".applyq"))
    result = CliRunner().invoke(app, ["stop"])
    assert result.exit_code == 0
    assert result.stdout == "" and "nothing to stop" in result.stderr
