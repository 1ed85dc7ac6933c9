from __future__ import annotations

import json

import pytest

from tests.conftest import SPECS
from worker.providers.base import ErrorKind, ProviderError
from worker.routing.kombo import KOMBO_CODES
from worker.routing.router import ROUTES, route
from worker.states import Decision, Provider


def kombo_spec_codes() -> list[str]:
    spec = json.loads((SPECS / "kombo-openapi.json").read_text())
    schema = spec["components"]["responses"]["ErrorResponseATS"]["content"]["application/json"]["schema"]
    return list(schema["properties"]["error"]["properties"]["code"]["enum"])


def api_error(code: str | None, status: int = 400) -> ProviderError:
    return ProviderError(kind=ErrorKind.API_ERROR, http_status=status, code=code, message="m")


def test_every_kombo_code_in_the_spec_is_routed() -> None:
    codes = kombo_spec_codes()
    assert len(codes) == 24
    assert sorted(set(codes) - set(KOMBO_CODES)) == []


def test_the_kombo_table_has_no_codes_the_spec_does_not_know() -> None:
    assert sorted(set(KOMBO_CODES) - set(kombo_spec_codes())) == []


@pytest.mark.parametrize(
    ("code", "decision"),
    [
        ("PLATFORM.RATE_LIMIT_EXCEEDED", Decision.RETRY),
        ("PLATFORM.CONCURRENCY_LIMIT_EXCEEDED", Decision.RETRY),
        ("REMOTE.RATE_LIMIT_EXCEEDED", Decision.RETRY),
        ("REMOTE.SERVICE_UNAVAILABLE", Decision.RETRY),
        ("INTEGRATION.SETUP_SYNC_PENDING", Decision.RETRY),
        ("PLATFORM.INPUT_INVALID", Decision.PARK),
        ("REMOTE.INPUT_INVALID", Decision.PARK),
        ("INTEGRATION.PERMISSION_MISSING", Decision.PARK),
        ("INTEGRATION.AUTHENTICATION_INVALID", Decision.PARK),
        ("PLATFORM.AUTHENTICATION_INVALID", Decision.RETRY),  # holds the whole key until a probe succeeds
        ("ATS.JOB_CLOSED", Decision.TERMINAL),
        ("ATS.APPLICATION_ALREADY_EXISTS", Decision.TERMINAL),
    ],
)
def test_kombo_guidance_is_followed(code: str, decision: Decision) -> None:
    assert route(Provider.KOMBO, api_error(code)).decision is decision


def test_setup_sync_pending_waits_long() -> None:
    assert route(Provider.KOMBO, api_error("INTEGRATION.SETUP_SYNC_PENDING", 409)).long_wait


def test_an_unknown_code_is_parked_not_retried_and_not_a_crash() -> None:
    rule = route(Provider.KOMBO, api_error("ATS.BRAND_NEW_CODE"))
    assert (rule.decision, rule.reason) == (Decision.PARK, "unknown_code")


@pytest.mark.parametrize(
    ("status", "decision"),
    [(429, Decision.RETRY), (503, Decision.RETRY), (500, Decision.RETRY), (502, Decision.RETRY),
     (400, Decision.PARK), (401, Decision.RETRY), (404, Decision.PARK), (418, Decision.PARK)],
)  # fmt: skip
def test_a_null_code_falls_back_to_the_http_status(status: int, decision: Decision) -> None:
    assert route(Provider.KOMBO, api_error(None, status)).decision is decision


def test_load_balancer_html_503_is_retried() -> None:
    error = ProviderError(kind=ErrorKind.BAD_RESPONSE, http_status=503, message="<html>")
    rule = route(Provider.KOMBO, error)
    assert rule.decision is Decision.RETRY and not rule.unknown_outcome


@pytest.mark.parametrize(
    ("kind", "unknown"),
    [(ErrorKind.TIMEOUT, True), (ErrorKind.CONNECTION_LOST, True), (ErrorKind.CONNECT_ERROR, False)],
)
def test_transport_failures_retry_and_flag_unknown_outcomes(kind: ErrorKind, unknown: bool) -> None:
    rule = route(Provider.KOMBO, ProviderError(kind=kind, message="x"))
    assert rule.decision is Decision.RETRY
    assert rule.unknown_outcome is unknown


def test_every_parked_or_terminal_rule_tells_the_operator_what_to_do() -> None:
    for table in ROUTES.values():
        rules = [*table.codes.values(), *table.statuses.values(), table.unknown_code]
        for rule in rules:
            if rule.decision in (Decision.PARK, Decision.TERMINAL):
                assert rule.remediation, rule
