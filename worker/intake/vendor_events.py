"""``POST /vendor-events/kombo`` and ``POST /vendor-events/stackone``: the vendors' own webhooks.

Each request is checked in this order, and refused with nothing stored:

1. the body is read up to ``APPLYQ_API_MAX_BODY_BYTES`` (413 beyond it), as for ``POST /submissions``;
2. the vendor's signature over the raw body (``worker/intake/vendor_signatures.py``): missing, wrong, or no
   secret configured → 401;
3. the body is the vendor's event shape (JSON object with an id and a type) → else 422;
4. the event's own time, where it has one, within ``APPLYQ_VENDOR_EVENT_MAX_AGE_S`` of now → else 401 (stale).

Then it is stored and acted on (``worker/intake/auto_resume.py``) and answered 200. These routes carry no
bearer token (the vendor has none): the signature authenticates them, so the API's token and rate checks
leave them to this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool

from worker.clock import utcnow
from worker.config import Settings
from worker.intake.auto_resume import VendorEventIn, accept
from worker.intake.library import Applyq
from worker.intake.problems import MEDIA_TYPE, Problem
from worker.intake.vendor_signatures import SCHEMES, verify
from worker.routing.resume import field_at
from worker.states import Provider

__all__ = ["PATHS", "EventRefused", "VendorEventConfig", "install_vendor_events", "parse_event"]

#: The vendors that send events, and where.
PATHS: Mapping[Provider, str] = {
    Provider.KOMBO: "/vendor-events/kombo",
    Provider.STACKONE: "/vendor-events/stackone",
}

#: Where a Kombo event names its integration (KSPEC ``webhooks``): ``data.id`` in the integration's own
#: lifecycle events, ``data.integration_id`` in the others.
_KOMBO_INTEGRATION = {"integration-created": "data.id", "integration-deleted": "data.id"}
#: The event's own time per type (KSPEC ``webhooks``); Kombo signs no timestamp, so this is what staleness is
#: judged by. Types without one (``data-changed``, ...) are judged by their id alone (a replay is a duplicate).
_KOMBO_TIME = {
    "integration-state-changed": "data.updated_at",
    "integration-deleted": "data.deleted_at",
    "sync-finished": "data.sync_ended_at",
}


@dataclass(frozen=True)
class VendorEventConfig:
    """What the vendor-event routes need from the settings (read once, at start-up)."""

    secrets: Mapping[Provider, Sequence[SecretStr]] = field(default_factory=dict)
    max_age_s: float = 24 * 3600.0
    auto_resume: bool = True
    clock: Callable[[], datetime] = utcnow

    @classmethod
    def from_settings(cls, settings: Settings) -> VendorEventConfig:
        """The vendors' secrets, the staleness bound and the auto-resume switch."""
        return cls(
            secrets={
                Provider.KOMBO: settings.kombo_webhook_secret,
                Provider.STACKONE: settings.stackone_webhook_secret,
            },
            max_age_s=settings.vendor_event_max_age_s,
            auto_resume=settings.auto_resume,
        )


class EventRefused(Exception):
    """A vendor event applyq will not store: the HTTP status and why (never echoing the body)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def parse_event(provider: Provider, raw: bytes) -> VendorEventIn:
    """The event in a verified body; ``EventRefused(422)`` naming the field when it is not the vendor's shape."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise EventRefused(422, "the body is not JSON") from exc
    if not isinstance(body, dict):
        raise EventRefused(422, "the body is not a JSON object")
    return _kombo_event(body) if provider is Provider.KOMBO else _stackone_event(body, raw)


def _kombo_event(body: dict[str, Any]) -> VendorEventIn:
    """Kombo's envelope (KSPEC ``webhooks``): ``{"id", "type", "data": {...}}``, all three required."""
    event_id, event_type = _text(body, "id"), _text(body, "type")
    if not isinstance(body.get("data"), dict):
        raise EventRefused(422, "data: must be an object")
    integration = field_at(body, _KOMBO_INTEGRATION.get(event_type, "data.integration_id"))
    time_path = _KOMBO_TIME.get(event_type)
    return VendorEventIn(
        provider=Provider.KOMBO,
        event_id=event_id,
        event_type=event_type,
        integration_id=integration if isinstance(integration, str) and integration else None,
        occurred_at=_time(body, time_path) if time_path else None,
        body=body,
    )


def _stackone_event(body: dict[str, Any], raw: bytes) -> VendorEventIn:
    """StackOne's account events carry ``event`` and ``account_id`` (docs.stackone.com/embed/handle-account-events,
    secondary-sourced). No event id is documented: ``id`` when the body has one, else the body's SHA-256 (a
    redelivery repeats the body). No timestamp is documented either: freshness is not judged."""
    event_type = _text(body, "event")
    event_id = body.get("id")
    if not isinstance(event_id, str) or not event_id:
        event_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    account = body.get("account_id")
    return VendorEventIn(
        provider=Provider.STACKONE,
        event_id=event_id[:200],
        event_type=event_type,
        integration_id=account if isinstance(account, str) and account else None,
        occurred_at=None,
        body=body,
    )


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise EventRefused(422, f"{name}: must be a string of 1 to 200 characters")
    return value


def _time(body: Mapping[str, Any], path: str) -> datetime:
    """An ISO 8601 time the event requires; ``EventRefused(422)`` naming the field if missing or malformed."""
    value = field_at(body, path)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise EventRefused(422, f"{path}: must be an ISO 8601 time with a zone")
    return parsed


def check_fresh(event: VendorEventIn, now: datetime, max_age_s: float) -> None:
    """``EventRefused(401)`` if the event's own time is further than ``max_age_s`` from now (either way)."""
    if event.occurred_at is not None and abs(now - event.occurred_at) > timedelta(seconds=max_age_s):
        raise EventRefused(401, f"stale: the event's time is more than {max_age_s:.0f} s from now")


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or the 413 problem as soon as it passes ``limit`` bytes (the rest is left unread)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> Problem:
    return Problem("body-too-large", f"the body may be at most {limit} bytes", headers={"Connection": "close"})


def install_vendor_events(app: FastAPI, applyq: Applyq, config: VendorEventConfig, *, max_body_bytes: int) -> set[str]:
    """Add one route per vendor; the paths, which the API's token check must leave to the signature check."""
    for provider, path in PATHS.items():
        app.add_api_route(
            path,
            _Endpoint(provider, applyq, config, max_body_bytes).handle,
            methods=["POST"],
            summary=f"Receive a {provider.value.title()} webhook (signed with {SCHEMES[provider].header})",
            responses=_RESPONSES,
            openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
        )
    return set(PATHS.values())


_PROBLEM = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Stored (or already stored: `duplicate`) and acted on"},
    401: {
        "description": "Unsigned, wrongly signed, no secret configured, or stale: nothing stored",
        "content": _PROBLEM,
    },
    413: {"description": "The body is larger than APPLYQ_API_MAX_BODY_BYTES (not read)", "content": _PROBLEM},
    422: {"description": "Signed, but not the vendor's event shape: nothing stored", "content": _PROBLEM},
}


class _Endpoint:
    """One vendor's route: read, verify, parse, check freshness, then store and act in a worker thread."""

    def __init__(self, provider: Provider, applyq: Applyq, config: VendorEventConfig, max_body_bytes: int) -> None:
        self._provider = provider
        self._applyq = applyq
        self._config = config
        self._max = max_body_bytes

    async def handle(self, request: Request) -> JSONResponse:
        """The vendor's webhook; 200 once stored, a problem with nothing stored otherwise."""
        raw = await read_limited(request, self._max)
        scheme, secrets = SCHEMES[self._provider], self._config.secrets.get(self._provider, ())
        try:
            if not verify(self._provider, secrets, request.headers.get(scheme.header), raw):
                missing = "no secret is configured" if not secrets else f"missing or wrong {scheme.header}"
                raise EventRefused(401, f"not signed by {self._provider.value}: {missing}")
            event = parse_event(self._provider, raw)
            now = self._config.clock()
            check_fresh(event, now, self._config.max_age_s)
        except EventRefused as exc:
            raise HTTPException(exc.status, exc.detail) from None
        accepted = await run_in_threadpool(self._store, event, now)
        return JSONResponse({"event_id": event.event_id, **accepted.as_json()})

    def _store(self, event: VendorEventIn, now: datetime) -> Any:
        with self._applyq.sessions() as session, session.begin():
            return accept(session, event, auto_resume=self._config.auto_resume, now=now)
