"""Prometheus metrics from the database, and how ``applyq flower`` is started."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import NOW
from tests.unit.admin.helpers import make
from worker.config import Settings
from worker.errors import InvalidInput
from worker.ops.flower import FlowerOptions, flower_argv, parse_basic_auth
from worker.ops.metrics import build_registry


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_give_outcomes_per_provider_and_code_and_the_backlogs(sessions: sessionmaker[Session]) -> None:
    make(sessions, "parked", code="INTEGRATION.PERMISSION_MISSING", reason="permission_missing", attempts=2)
    make(sessions, "parked", code="INTEGRATION.PERMISSION_MISSING", reason="permission_missing", age_s=100)
    make(sessions, "queued", attempts=0, code=None, reason=None)
    now = NOW + timedelta(seconds=110)
    got = samples(build_registry(sessions, lambda: now))
    kombo = (("provider", "kombo"),)
    assert got[("applyq_submissions", (("provider", "kombo"), ("status", "parked")))] == 2
    assert got[("applyq_submissions", (("provider", "kombo"), ("status", "queued")))] == 1
    parked = (("code", "INTEGRATION.PERMISSION_MISSING"), ("provider", "kombo"), ("reason", "permission_missing"))
    assert got[("applyq_parked_submissions", parked)] == 2
    assert got[("applyq_parked_oldest_seconds", kombo)] == 100  # parked at NOW + 10 s
    assert got[("applyq_due_submissions", kombo)] == 1
    assert got[("applyq_due_oldest_seconds", kombo)] == 110
    outcome = (("code", "INTEGRATION.PERMISSION_MISSING"), ("decision", "park"), ("provider", "kombo"))
    assert got[("applyq_attempt_outcomes_total", outcome)] == 3


def test_metrics_of_an_empty_database_are_valid(sessions: sessionmaker[Session]) -> None:
    assert "applyq_parked_submissions" in generate_latest(build_registry(sessions, lambda: NOW)).decode()


def settings_with(auth: str | None) -> Settings:
    return Settings(broker_url="memory://", flower_basic_auth=SecretStr(auth) if auth else None)


def test_flower_refuses_to_start_without_credentials() -> None:
    with pytest.raises(InvalidInput, match="APPLYQ_FLOWER_BASIC_AUTH is not set"):
        flower_argv(settings_with(None), FlowerOptions())
    argv = flower_argv(settings_with(None), FlowerOptions(unsafe_no_auth=True))
    assert not any(a.startswith("--basic_auth") for a in argv)


def test_flower_runs_read_only_with_basic_auth_unless_control_is_asked_for() -> None:
    argv = flower_argv(settings_with("ops:s3cret"), FlowerOptions(port=5566, address="0.0.0.0"))
    assert argv[:3] == ["flower", "--port=5566", "--address=0.0.0.0"]
    assert "--basic_auth=ops:s3cret" in argv and "--read_only" in argv
    assert "--read_only" not in flower_argv(settings_with("ops:s3cret"), FlowerOptions(allow_control=True))


@pytest.mark.parametrize("value", ["ops", ":pw", "ops:", "a:b,c"])
def test_malformed_credentials_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="user:password"):
        parse_basic_auth(value)
    assert parse_basic_auth("a:b,c:d") == "a:b,c:d"
