"""The auto-resume rules are data that follows the vendors: every event type and value they name is documented."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SPECS
from worker.routing.resume import RESUME_RULES, Action, Plan, plan
from worker.routing.router import ROUTES
from worker.states import Provider, Reason

KOMBO_SPEC = json.loads((SPECS / "kombo-openapi.json").read_text())

#: StackOne publishes no webhook schema; its platform events are listed on docs.stackone.com/guides/webhooks
#: ("Platform events … account lifecycle: account.created, account.updated, account.deleted").
STACKONE_DOCUMENTED = {"account.created", "account.updated", "account.deleted"}
#: Kombo's ``sync_state`` values (docs.kombo.dev/webhooks, "Possible values for the sync_state"); the spec has
#: the field without an enum.
KOMBO_SYNC_STATES = {"SUCCEEDED", "CANCELLED", "FAILED", "PARTIALLY_FAILED", "AUTHENTICATION_FAILED", "TIMED_OUT"}
#: The linked account's statuses (StackOne TS client ``linkedaccount.ts``: active, inactive, error).
STACKONE_STATUSES = {"active", "inactive", "error"}


def kombo_payload_schema(event_type: str) -> dict[str, Any]:
    ref = KOMBO_SPEC["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return dict(KOMBO_SPEC["components"]["schemas"][ref.rsplit("/", 1)[1]])


def test_every_rules_event_type_is_one_the_vendor_documents() -> None:
    documented = {Provider.KOMBO: set(KOMBO_SPEC["webhooks"]), Provider.STACKONE: STACKONE_DOCUMENTED}
    for rule in RESUME_RULES:
        assert rule.event_type in documented[rule.provider], rule


def test_every_kombo_condition_names_a_field_and_value_of_the_events_schema() -> None:
    for rule in (r for r in RESUME_RULES if r.provider is Provider.KOMBO):
        schema = kombo_payload_schema(rule.event_type)
        for path, value in rule.when.items():
            node = schema
            for name in path.split("."):
                node = node["properties"][name]
            allowed = set(node.get("enum", KOMBO_SYNC_STATES if path == "data.sync_state" else []))
            assert value in allowed, (rule, path)


def test_every_stackone_condition_is_an_account_status() -> None:
    for rule in (r for r in RESUME_RULES if r.provider is Provider.STACKONE):
        assert set(rule.when) <= {"status"} and set(rule.when.values()) <= STACKONE_STATUSES, rule


def test_every_reason_a_rule_requeues_is_one_the_providers_router_produces() -> None:
    for rule in (r for r in RESUME_RULES if r.action is Action.REQUEUE):
        table = ROUTES[rule.provider]
        produced = {
            r.reason
            for group in (table.codes, table.statuses, table.upstream, table.quirks, table.transport)
            for r in group.values()
        }
        assert rule.reasons <= produced, rule


def state_changed(state: str, setup: str = "COMPLETED") -> dict[str, Any]:
    return {"data": {"state": state, "setup_status": setup, "integration_id": "greenhouse:x"}}


CONNECTION = {Reason.PERMISSION_MISSING, Reason.REAUTHENTICATION_REQUIRED, Reason.INTEGRATION_INACTIVE}


@pytest.mark.parametrize(
    ("provider", "event_type", "body", "expected"),
    [
        (
            Provider.KOMBO,
            "integration-state-changed",
            state_changed("ACTIVE"),
            Plan(frozenset(CONNECTION | {Reason.INTEGRATION_SETUP, Reason.SETUP_SYNC_PENDING})),
        ),
        (
            Provider.KOMBO,
            "integration-state-changed",
            state_changed("ACTIVE", "INCOMPLETE"),
            Plan(frozenset(CONNECTION)),
        ),
        (Provider.KOMBO, "integration-state-changed", state_changed("INVALID"), Plan()),
        (
            Provider.KOMBO,
            "sync-finished",
            {"data": {"sync_state": "SUCCEEDED"}},
            Plan(frozenset({Reason.SETUP_SYNC_PENDING})),
        ),
        (Provider.KOMBO, "sync-finished", {"data": {"sync_state": "FAILED"}}, Plan()),
        (Provider.KOMBO, "integration-deleted", {"data": {"id": "greenhouse:x"}}, Plan(end=True)),
        (Provider.KOMBO, "data-changed", {"data": {}}, Plan()),
        (
            Provider.STACKONE,
            "account.updated",
            {"status": "active"},
            Plan(frozenset({Reason.PERMISSION_MISSING, Reason.REAUTHENTICATION_REQUIRED, Reason.ACCOUNT_DISABLED})),
        ),
        (Provider.STACKONE, "account.updated", {"status": "error"}, Plan()),
        (Provider.STACKONE, "account.updated", {}, Plan()),
        (Provider.STACKONE, "account.deleted", {}, Plan(end=True)),
        # the same type from another vendor is not the same event
        (Provider.STACKONE, "integration-deleted", {}, Plan()),
    ],
)
def test_plan_merges_what_every_matching_rule_says(
    provider: Provider, event_type: str, body: dict[str, Any], expected: Plan
) -> None:
    assert plan(provider, event_type, body) == expected
