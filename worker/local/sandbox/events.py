"""Vendor webhooks the sandbox sends when told to, shaped and signed as each vendor documents them.

``POST /_sandbox/events/{provider}/{integration_id}/{event_type}`` builds the event, applies to the sandbox
what it announces (an integration that turns ``ACTIVE`` / an account that turns ``active`` is fixed: its
fault, see ``/_sandbox/integrations/…``, is cleared), signs it and POSTs it to the configured URL
(``--kombo-events-url``, ``--stackone-events-url``). The answer names the event sent and what the receiver
said. A JSON body overrides fields of the event (Kombo: of ``data``; StackOne: of the event), e.g.
``{"state": "INVALID"}``; ``?signing=none`` sends it unsigned and ``?signing=tampered`` changes the body
after signing, as an attacker would.

* Kombo: the envelope ``{"id", "type", "data"}`` and each type's ``data`` as the ``webhooks`` section of
  Kombo's OpenAPI document has them; ``X-Kombo-Signature`` = HMAC-SHA256 of the body with the webhook
  secret, base64url without padding (docs.kombo.dev/webhooks, "Validate the data").
* StackOne: account events with ``event``, ``account_id``, ``provider`` and the ``origin_owner_*`` fields
  (docs.stackone.com/embed/handle-account-events, secondary-sourced); ``x-stackone-signature`` = HMAC-SHA256
  of the body, base64url (docs.stackone.com/guides/webhooks).

Like the rest of the sandbox, this imitates the vendors and shares no code with applyq's verification.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from worker.local.sandbox.config import SandboxConfig
from worker.local.sandbox.stackone import account_ats
from worker.local.sandbox.state import SandboxState

__all__ = ["EVENT_TYPES", "EventSender", "build_event", "sign"]

_CATEGORY = "ATS"
#: The customer in every event (a role address, no person's); strings, as Kombo's schema types them.
_END_USER = {"organization_name": "Sandbox customer", "creator_email": "it@customer.example", "origin_id": "org-1"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tool(integration_id: str) -> str:
    """The ATS a Kombo integration id names (``greenhouse:abc`` → greenhouse)."""
    tool, _, rest = integration_id.partition(":")
    return tool if rest else "greenhouse"


def _state_changed(integration_id: str) -> dict[str, Any]:
    return {
        "integration_tool": _tool(integration_id),
        "integration_id": integration_id,
        "integration_category": _CATEGORY,
        "end_user": dict(_END_USER),
        "qa_status": "PASSED",
        "setup_status": "COMPLETED",
        "state": "ACTIVE",
        "updated_at": _now(),
    }


def _sync_finished(integration_id: str) -> dict[str, Any]:
    ended = datetime.now(UTC)
    started = ended - timedelta(minutes=30)
    return {
        "sync_id": hashlib.sha256(f"{integration_id}{ended}".encode()).hexdigest()[:24],
        "sync_state": "SUCCEEDED",
        "sync_started_at": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "sync_ended_at": ended.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "sync_duration_seconds": 1800,
        "integration_id": integration_id,
        "integration_tool": _tool(integration_id),
        "integration_category": _CATEGORY,
        "end_user": dict(_END_USER),
        "log_url": "https://app.kombo.dev/sandbox/logs?interactionId=sandbox",
    }


def _integration(integration_id: str) -> dict[str, Any]:
    return {"id": integration_id, "tool": _tool(integration_id), "category": _CATEGORY, "end_user": dict(_END_USER)}


def _deleted(integration_id: str) -> dict[str, Any]:
    return {**_integration(integration_id), "deleted_at": _now()}


def _account_event(event: str) -> Callable[[str], dict[str, Any]]:
    def build(account_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event": event,
            "account_id": account_id,
            "provider": account_ats(account_id),  # as the account API answers
            "origin_owner_id": f"owner-{account_id}",
            "origin_owner_name": "Sandbox customer",
        }
        if event != "account.deleted":
            body["status"] = "active"
        return body

    return build


#: The events the sandbox can send: provider → type → the event's fields for an integration (Kombo: ``data``).
EVENT_TYPES: Mapping[str, Mapping[str, Callable[[str], dict[str, Any]]]] = {
    "kombo": {
        "integration-state-changed": _state_changed,
        "sync-finished": _sync_finished,
        "integration-created": _integration,
        "integration-deleted": _deleted,
    },
    "stackone": {name: _account_event(name) for name in ("account.created", "account.updated", "account.deleted")},
}

#: The header each vendor signs in.
_HEADERS = {"kombo": "X-Kombo-Signature", "stackone": "x-stackone-signature"}


def build_event(provider: str, event_type: str, integration_id: str, overrides: Mapping[str, Any], token: str) -> Any:
    """The event body; Kombo's ``data`` (or StackOne's event) with ``overrides`` applied."""
    fields = {**EVENT_TYPES[provider][event_type](integration_id), **overrides}
    return {"id": token, "type": event_type, "data": fields} if provider == "kombo" else fields


def sign(secret: str, body: bytes) -> str:
    """HMAC-SHA256 of the raw body, base64url without the trailing ``=`` (Kombo's digest; StackOne's too)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class EventSender:
    """Sends the events the sandbox is told to send, to the URLs it was configured with."""

    def __init__(
        self, config: SandboxConfig, state: SandboxState, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._urls = {"kombo": config.kombo_events_url, "stackone": config.stackone_events_url}
        self._secrets = {"kombo": config.kombo_webhook_secret, "stackone": config.stackone_webhook_secret}
        self._state = state
        self._transport = transport

    async def send(
        self, provider: str, integration_id: str, event_type: str, overrides: Mapping[str, Any], signing: str
    ) -> tuple[int, dict[str, Any]]:
        """Build, apply, sign and POST one event; (status for the caller, what was sent and answered)."""
        if event_type not in EVENT_TYPES.get(provider, {}):
            known = {p: sorted(types) for p, types in EVENT_TYPES.items()}
            return 404, {"error": f"the sandbox sends no {provider} event {event_type!r}", "known": known}
        url = self._urls[provider]
        if not url:
            return 409, {
                "error": f"no URL to send {provider} events to: start the sandbox with --{provider}-events-url"
            }
        event = build_event(provider, event_type, integration_id, overrides, self._state.new_token())
        self._apply(provider, integration_id, event)
        raw = json.dumps(event).encode()
        headers = {"Content-Type": "application/json"}
        if signing != "none":
            headers[_HEADERS[provider]] = sign(self._secrets[provider], raw)
        if signing == "tampered":
            raw = json.dumps({**event, "tampered": True}).encode()  # not the body that was signed
        async with httpx.AsyncClient(transport=self._transport, timeout=10.0) as client:
            answer = await client.post(url, content=raw, headers=headers)
        return 200, {"sent": event, "status": answer.status_code, "answer": _json_or_text(answer)}

    def _apply(self, provider: str, integration_id: str, event: Mapping[str, Any]) -> None:
        """What the event announces, made true in the sandbox: an integration that works again has no fault."""
        fields = event.get("data", event)
        if fields.get("state") == "ACTIVE" or fields.get("status") == "active":
            self._state.set_fault(provider, integration_id, None)


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
