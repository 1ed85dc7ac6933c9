"""Shared fixtures: real services when present (mandatory in CI), SQLite + MockTransport otherwise."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openapi_core import OpenAPI
from sqlalchemy.orm import Session, sessionmaker

from worker.config import Settings
from worker.db.engine import create_engine, create_session_factory, migrate

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SPECS = SHARED / "specs"
IN_CI = bool(os.environ.get("CI"))


def require_service(name: str, problem: str) -> None:
    """Skip locally when a service is missing; fail in CI, which must never go green by skipping."""
    message = f"{name} is not available: {problem}"
    if IN_CI:
        pytest.fail(message + " (CI is set: services are mandatory)")
    pytest.skip(message)


class RecordingPublisher:
    """A Publisher that remembers what it was asked to publish, or fails on demand."""

    def __init__(self) -> None:
        self.published: list[str] = []
        self.fail = False

    def publish(self, submission_ids: Sequence[str]) -> None:
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.published.extend(submission_ids)


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'applyq.db'}"
    migrate(url)
    return url


@pytest.fixture
def sessions(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(sqlite_url)
    yield create_session_factory(engine)
    engine.dispose()


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return Settings(
        database_url=sqlite_url,
        broker_url="memory://",
        kombo_base_url="http://kombo.test/v1",
        kombo_api_key="test-kombo-key",  # type: ignore[arg-type]
        backoff_base_s=1.0,
        backoff_max_s=60.0,
        max_attempts=5,
        http_timeout_s=2.0,
    )


def submission_dict(**overrides: Any) -> dict[str, Any]:
    """A valid Kombo submission as the job board sends it."""
    data: dict[str, Any] = {
        "provider": "kombo",
        "integration_id": "greenhouse:abc123",
        "job_id": "ok--job-1",
        "idempotency_key": "key-1",
        "candidate": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
    }
    data.update(overrides)
    return data


NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Chaos tests restart PostgreSQL and flush Redis: run them after everything else, whatever their file name."""
    items.sort(key=lambda item: item.get_closest_marker("chaos") is not None)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def kombo_spec() -> OpenAPI:
    """Kombo's OpenAPI document, parsed once per run (it takes seconds: the document is large)."""
    return OpenAPI.from_file_path(str(SPECS / "kombo-openapi.json"))
