"""Auto-resume: what a vendor's own event resolves or ends, as declarative rules (like the routing tables).

A parked submission waits for a human. When the vendor itself announces that the cause is gone (Kombo: the
integration is ``ACTIVE`` again, its setup sync finished; StackOne: the linked account is ``active`` again),
that integration's submissions parked for exactly those causes go back to the queue, and those waiting out a
setup sync come due now. When the vendor announces the integration deleted, nothing can deliver its
submissions any more: they end ``terminal`` (``integration_deleted``).

Pure data and one pure function: ``plan`` reads an event's type and body and says what to do;
``worker/intake/auto_resume.py`` does it (audited, with the event id).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from worker.states import Provider, Reason

__all__ = ["RESUME_RULES", "Action", "Plan", "ResumeRule", "plan"]


class Action(StrEnum):
    """What an event does to one integration's submissions."""

    #: the cause is fixed: parked with one of the rule's reasons → queued (a new retry window); waiting
    #: (``retry_scheduled``) with one of them → due now
    REQUEUE = "requeue"
    #: the integration is gone: queued, waiting and parked → ``terminal`` (``integration_deleted``)
    END = "end"


@dataclass(frozen=True, slots=True)
class ResumeRule:
    """One vendor event type (and, optionally, field values) → an action on that integration's submissions."""

    provider: Provider
    event_type: str
    action: Action
    #: ``REQUEUE``: the reasons the event resolves
    reasons: frozenset[Reason] = frozenset()
    #: Dotted paths into the event body and the value each must have (all of them); empty: every event of the type.
    when: Mapping[str, str] = field(default_factory=dict)

    def applies(self, provider: Provider, event_type: str, body: Mapping[str, Any]) -> bool:
        """Whether this rule acts on the event."""
        return (
            (provider, event_type) == (self.provider, self.event_type)
            and all(field_at(body, path) == value for path, value in self.when.items())
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the matching rules say, merged: the reasons to requeue, and whether to end the integration."""

    requeue: frozenset[Reason] = frozenset()
    end: bool = False

    @property
    def empty(self) -> bool:
        """No rule acts on the event (it is stored, and changes nothing)."""
        return not self.requeue and not self.end


#: The customer's connection needs them to act (re-authenticate, grant a permission, reactivate).
_KOMBO_CONNECTION = frozenset(
    {Reason.PERMISSION_MISSING, Reason.REAUTHENTICATION_REQUIRED, Reason.INTEGRATION_INACTIVE}
)
#: The integration's setup or its first sync is not finished.
_KOMBO_SETUP = frozenset({Reason.INTEGRATION_SETUP, Reason.SETUP_SYNC_PENDING})
#: The linked account's credentials, permissions or state (``worker/routing/stackone.py``).
_STACKONE_ACCOUNT = frozenset({Reason.PERMISSION_MISSING, Reason.REAUTHENTICATION_REQUIRED, Reason.ACCOUNT_DISABLED})

RESUME_RULES: tuple[ResumeRule, ...] = (
    # Kombo `integration-state-changed` (KSPEC `webhooks`): `data.state` is ACTIVE | INVALID | INACTIVE; ACTIVE is
    # "running as expected" (docs.kombo.dev/ats/guides/integration-states). A re-authentication or a granted
    # permission turns an INVALID integration ACTIVE again.
    ResumeRule(
        Provider.KOMBO, "integration-state-changed", Action.REQUEUE, _KOMBO_CONNECTION, when={"data.state": "ACTIVE"}
    ),
    # Same event, `data.setup_status` INCOMPLETE | FINAL_SYNC_PENDING | COMPLETED (KSPEC): COMPLETED means the
    # setup steps and the final sync are done.
    ResumeRule(
        Provider.KOMBO,
        "integration-state-changed",
        Action.REQUEUE,
        _KOMBO_SETUP,
        when={"data.state": "ACTIVE", "data.setup_status": "COMPLETED"},
    ),
    # "INTEGRATION.SETUP_SYNC_PENDING resolves once the initial sync finishes … We recommend relying on webhooks
    # instead of retrying silently" (Kombo changelog 2026-05-19). KSPEC `sync-finished` (marked deprecated in
    # favour of `data-changed`, still sent); `sync_state` SUCCEEDED (docs.kombo.dev/webhooks).
    ResumeRule(
        Provider.KOMBO,
        "sync-finished",
        Action.REQUEUE,
        frozenset({Reason.SETUP_SYNC_PENDING}),
        when={"data.sync_state": "SUCCEEDED"},
    ),
    # KSPEC `integration-deleted`: the integration no longer exists; its submissions cannot be delivered.
    ResumeRule(Provider.KOMBO, "integration-deleted", Action.END),
    # StackOne platform events `account.updated`, `account.deleted` (docs.stackone.com/guides/webhooks); the
    # status as StackOne's account API names it (`active`: StackOne TS client `linkedaccount.ts`). The body's
    # shape is only secondary-sourced (docs/vendor-rules.md): without `status: active` nothing is requeued.
    ResumeRule(Provider.STACKONE, "account.updated", Action.REQUEUE, _STACKONE_ACCOUNT, when={"status": "active"}),
    ResumeRule(Provider.STACKONE, "account.deleted", Action.END),
)


def plan(provider: Provider, event_type: str, body: Mapping[str, Any]) -> Plan:
    """What every rule that applies to the event says, merged (``Plan.empty`` when none applies)."""
    matching = [rule for rule in RESUME_RULES if rule.applies(provider, event_type, body)]
    reasons = frozenset().union(*(rule.reasons for rule in matching if rule.action is Action.REQUEUE))
    return Plan(requeue=reasons, end=any(rule.action is Action.END for rule in matching))


def field_at(body: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``data.state``), or ``None`` where the body has none."""
    value: Any = body
    for name in path.split("."):
        value = value.get(name) if isinstance(value, Mapping) else None
    return value
