"""StackOne routing: every status of the create-application spec, refined by the ATS's status and quirks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SPECS
from worker.providers.base import ErrorKind, ProviderError, ats_name
from worker.routing.router import ROUTES, route, upstream_status
from worker.routing.stackone import STACKONE_STATUSES, STACKONE_UPSTREAM
from worker.states import Decision, Provider

R, P, T = Decision.RETRY, Decision.PARK, Decision.TERMINAL


def spec_error_statuses() -> list[int]:
    """Every status ``POST /unified/ats/applications`` documents, except its 201."""
    spec = json.loads((SPECS / "stackone-ats-create-application.openapi.json").read_text())
    responses = spec["paths"]["/unified/ats/applications"]["post"]["responses"]
    return sorted(int(status) for status in responses if status != "201")


def stackone_error(status: int, *ats_statuses: int | None, **details: Any) -> ProviderError:
    if ats_statuses:
        details["provider_errors"] = [{"status": s, "url": "https://ats.example/x"} for s in ats_statuses]
    return ProviderError(kind=ErrorKind.API_ERROR, http_status=status, message="m", details=details or None)


def test_every_status_in_the_stackone_spec_has_its_own_rule() -> None:
    statuses = spec_error_statuses()
    assert statuses == [400, 401, 403, 404, 408, 409, 412, 422, 429, 500, 501, 502]
    assert sorted(set(statuses) - set(STACKONE_STATUSES)) == []


#: status → (decision, reason, unknown outcome, attempt bound), as issue 3 asks for each.
EXPECTED: dict[int, tuple[Decision, str, bool, int | None]] = {
    400: (P, "invalid_input", False, None),
    401: (R, "configuration", False, None),
    403: (P, "reauthentication_required", False, None),
    404: (P, "not_found", False, None),
    408: (R, "timeout", True, None),
    409: (P, "conflict", True, None),
    412: (P, "account_disabled", False, None),
    422: (P, "invalid_input", False, None),
    429: (R, "rate_limited", False, None),
    500: (R, "provider_error", True, 3),
    501: (T, "not_supported", False, None),
    502: (R, "bad_gateway", True, None),
}


@pytest.mark.parametrize("status", spec_error_statuses())
def test_each_spec_status_is_routed_as_the_issue_says(status: int) -> None:
    rule = route(Provider.STACKONE, stackone_error(status), "acc-1")

    assert (rule.decision, rule.reason, rule.unknown_outcome, rule.max_attempts) == EXPECTED[status]


def test_409_already_exists_reconciles_an_earlier_unknown_outcome() -> None:
    assert route(Provider.STACKONE, stackone_error(409)).reconcile


def test_503_and_504_from_a_gateway_are_retried() -> None:
    assert route(Provider.STACKONE, stackone_error(503)).decision is R
    assert route(Provider.STACKONE, stackone_error(504)).unknown_outcome


@pytest.mark.parametrize(("status", "decision"), [(418, P), (451, P), (507, R), (299, R)])
def test_an_undocumented_status_falls_back_to_its_class(status: int, decision: Decision) -> None:
    assert route(Provider.STACKONE, stackone_error(status)).decision is decision


def test_html_from_a_load_balancer_is_routed_by_its_status() -> None:
    error = ProviderError(kind=ErrorKind.BAD_RESPONSE, http_status=503, message="<html>")
    assert route(Provider.STACKONE, error).decision is R


@pytest.mark.parametrize(
    ("kind", "unknown"),
    [(ErrorKind.TIMEOUT, True), (ErrorKind.CONNECTION_LOST, True), (ErrorKind.CONNECT_ERROR, False)],
)
def test_transport_failures_retry(kind: ErrorKind, unknown: bool) -> None:
    rule = route(Provider.STACKONE, ProviderError(kind=kind, message="x"))
    assert (rule.decision, rule.unknown_outcome) == (R, unknown)


# --- provider_errors[].status: the ATS's own answer -----------------------------------------------


@pytest.mark.parametrize(
    ("status", "ats_status", "decision", "reason"),
    [
        (502, 503, R, "unavailable"),  # Lever maintenance behind a bad gateway
        (502, 429, R, "rate_limited"),
        (502, 400, P, "invalid_input"),  # the ATS refused the payload: retrying cannot help
        (502, 404, P, "not_found"),
        (500, 503, R, "unavailable"),
        (400, 401, P, "reauthentication_required"),
        (401, 401, P, "reauthentication_required"),  # the linked account's credentials, not our key
        (403, 403, P, "reauthentication_required"),
        (400, 409, P, "conflict"),
    ],
)
def test_the_ats_status_refines_a_relayed_status(status: int, ats_status: int, decision: Decision, reason: str) -> None:
    rule = route(Provider.STACKONE, stackone_error(status, ats_status), "acc-1")

    assert (rule.decision, rule.reason) == (decision, reason)


def test_a_401_without_provider_errors_is_our_api_key() -> None:
    rule = route(Provider.STACKONE, stackone_error(401))

    assert rule.reason == "configuration"
    assert "APPLYQ_STACKONE_API_KEY" in rule.remediation


@pytest.mark.parametrize("status", [404, 408, 409, 412, 422, 429, 501])
def test_a_specific_stackone_status_is_not_overridden_by_the_ats_status(status: int) -> None:
    plain = route(Provider.STACKONE, stackone_error(status))

    assert route(Provider.STACKONE, stackone_error(status, 400)) == plain


def test_an_ats_status_the_table_does_not_know_leaves_the_stackone_status() -> None:
    assert route(Provider.STACKONE, stackone_error(502, 418)) == STACKONE_STATUSES[502]


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        (None, None),
        ({"provider_errors": []}, None),
        ({"provider_errors": [{"status": None}, {"status": 503.0}]}, 503),
        ({"provider_errors": [{"status": True}]}, None),
        ({"provider_errors": "oops"}, None),
        ({"provider_errors": ["oops", {"status": 422}]}, 422),
    ],
)
def test_upstream_status_reads_the_first_numeric_status(details: dict[str, Any] | None, expected: int | None) -> None:
    error = ProviderError(kind=ErrorKind.API_ERROR, http_status=502, message="m", details=details)
    assert upstream_status(error) == expected


# --- ATS quirks, for the ATS behind the account (here named by an old-style prefix) -------------------


@pytest.mark.parametrize(
    ("integration_id", "status", "ats_status", "decision", "reason", "says"),
    [
        ("greenhouse:acc-1", 404, None, P, "reauthentication_required", "on-behalf-of"),
        ("Greenhouse:acc-1", 502, 404, P, "reauthentication_required", "on-behalf-of"),
        ("teamtailor:acc-1", 501, None, P, "permission_missing", "Teamtailor"),
        ("lever:acc-1", 403, 403, P, "account_settings", "Lever super admin"),
        ("lever:acc-1", 500, None, R, "provider_error", "StackOne support"),
        ("workday:acc-1", 404, None, P, "not_found", "job_id"),
        ("acc-1", 501, None, T, "not_supported", "does not support"),
    ],
)
def test_ats_quirks_apply_where_the_integration_names_the_ats(
    integration_id: str, status: int, ats_status: int | None, decision: Decision, reason: str, says: str
) -> None:
    error = stackone_error(status, ats_status) if ats_status else stackone_error(status)
    rule = route(Provider.STACKONE, error, ats_name(integration_id))

    assert (rule.decision, rule.reason) == (decision, reason)
    assert says in rule.remediation


def test_lever_500_is_bounded_then_parked_with_its_remediation() -> None:
    rule = route(Provider.STACKONE, stackone_error(500), "lever")
    assert (rule.max_attempts, rule.unknown_outcome) == (3, True)


@pytest.mark.parametrize(
    ("integration_id", "ats"),
    [("greenhouse:abc", "greenhouse"), (" Lever :x", "lever"), ("abc", None), (":abc", None), (None, None)],
)
def test_the_ats_is_the_integration_ids_prefix(integration_id: str | None, ats: str | None) -> None:
    assert ats_name(integration_id) == ats


# --- remediation --------------------------------------------------------------------------------


def test_every_stackone_park_terminal_or_bounded_rule_tells_the_operator_what_to_do() -> None:
    table = ROUTES[Provider.STACKONE]
    rules = [*table.statuses.values(), *table.upstream.values(), *table.quirks.values(), table.unknown_code]
    for rule in rules:
        if rule.decision in (P, T) or rule.max_attempts:
            assert rule.remediation, rule


def test_every_relayed_ats_status_has_a_rule_of_its_own() -> None:
    assert set(STACKONE_UPSTREAM) >= {400, 401, 403, 404, 409, 422, 429, 500, 502, 503}
