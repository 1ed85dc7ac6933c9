"""Celper routing: every code of its error table (seed 001) plus INTERNAL_ERROR, on the code, never the status."""

from __future__ import annotations

import re

import pytest

from tests.conftest import SHARED
from worker.providers.base import ErrorKind, ProviderError
from worker.routing.celper import CELPER_CODES
from worker.routing.router import ROUTES, route
from worker.states import Decision, Provider

R, P, T = Decision.RETRY, Decision.PARK, Decision.TERMINAL
#: Documented by Celper's SKILL.md, not by its error table.
EXTRA_CODES = {"INTERNAL_ERROR": 500}


def seed_codes() -> dict[str, int]:
    """Code → HTTP status, read from Celper's error-code table (seed ``001_…``)."""
    [seed] = (SHARED / "seeds").glob("001_*")
    return {code: int(status) for code, status in re.findall(r"^([A-Z][A-Z_]+[A-Z])(\d{3})", seed.read_text(), re.M)}


def celper_error(code: str | None, status: int = 409) -> ProviderError:
    return ProviderError(kind=ErrorKind.API_ERROR, http_status=status, code=code, message="m")


def test_every_code_of_the_seed_table_is_routed() -> None:
    codes = seed_codes()
    assert len(codes) == 17
    assert sorted(set(codes) - set(CELPER_CODES)) == []


def test_the_table_has_no_codes_the_documentation_does_not_know() -> None:
    assert sorted(set(CELPER_CODES) - set(seed_codes()) - set(EXTRA_CODES)) == []


#: code → (decision, reason), as issue 3 and the codes' meanings say.
EXPECTED: dict[str, tuple[Decision, str]] = {
    "UNAUTHORIZED": (R, "configuration"),  # holds the key: a probe, not a park
    "IP_NOT_ALLOWED": (R, "configuration"),  # holds the key: a probe, not a park
    "SCOPE_INSUFFICIENT": (R, "configuration"),  # holds the key: a probe, not a park
    "FORBIDDEN": (R, "configuration"),  # holds the key: a probe, not a park
    "API_DISABLED": (R, "configuration"),  # holds the key: a probe, not a park
    "ACCOUNT_SUSPENDED": (R, "configuration"),  # holds the key: a probe, not a park
    "RATE_LIMITED": (R, "rate_limited"),
    "VALIDATION_ERROR": (P, "invalid_input"),
    "INVALID_BODY": (P, "invalid_body"),
    "NOT_FOUND": (P, "job_not_found"),
    "DUPLICATE_CANDIDATE": (T, "already_applied"),
    "INVALID_STATUS": (P, "state_conflict"),
    "INVALID_STATUS_TRANSITION": (P, "state_conflict"),
    "ANALYSIS_NOT_VIEWED": (P, "state_conflict"),
    "ACTIVE_SESSION": (P, "state_conflict"),
    "WEBHOOK_LIMIT_REACHED": (P, "configuration"),
    "IDEMPOTENCY_CONFLICT": (P, "idempotency_conflict"),
    "INTERNAL_ERROR": (R, "provider_error"),
}


@pytest.mark.parametrize(("code", "status"), sorted({**seed_codes(), **EXTRA_CODES}.items()))
def test_each_documented_code_is_routed_as_its_meaning_says(code: str, status: int) -> None:
    rule = route(Provider.CELPER, celper_error(code, status))

    assert (rule.decision, rule.reason) == EXPECTED[code]


def test_the_four_conflicts_on_409_are_told_apart_by_code() -> None:
    rules = {code: route(Provider.CELPER, celper_error(code, 409)) for code in seed_codes() if code != "NOT_FOUND"}
    conflicts = {code for code, status in seed_codes().items() if status == 409}

    assert {rules[code].decision for code in conflicts} == {P, T}
    assert rules["DUPLICATE_CANDIDATE"].reconcile
    assert not rules["IDEMPOTENCY_CONFLICT"].reconcile


def test_a_code_wins_over_its_status() -> None:
    assert route(Provider.CELPER, celper_error("RATE_LIMITED", 400)).decision is R
    assert route(Provider.CELPER, celper_error("DUPLICATE_CANDIDATE", 500)).decision is T


def test_internal_errors_are_retried_at_most_three_times_as_the_vendor_says() -> None:
    rule = route(Provider.CELPER, celper_error("INTERNAL_ERROR", 500))
    assert (rule.max_attempts, rule.unknown_outcome) == (3, True)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_every_5xx_without_a_celper_body_is_bounded_to_three_attempts(status: int) -> None:
    error = ProviderError(kind=ErrorKind.BAD_RESPONSE, http_status=status, message="<html>")
    rule = route(Provider.CELPER, error)
    assert (rule.decision, rule.max_attempts) == (R, 3)


def test_an_unknown_code_is_parked_with_a_pointer_to_the_request_id() -> None:
    rule = route(Provider.CELPER, celper_error("CANDIDATE_LOCKED"))
    assert (rule.decision, rule.reason) == (P, "unknown_code")
    assert "requestId" in rule.remediation


def test_the_integration_id_plays_no_part() -> None:
    assert route(Provider.CELPER, celper_error("NOT_FOUND", 404), "greenhouse").decision is P


def test_every_celper_park_terminal_or_bounded_rule_tells_the_operator_what_to_do() -> None:
    table = ROUTES[Provider.CELPER]
    for rule in [*table.codes.values(), *table.statuses.values(), table.unknown_code]:
        if rule.decision in (P, T) or rule.max_attempts:
            assert rule.remediation, rule
