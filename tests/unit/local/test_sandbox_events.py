"""The sandbox's vendor events: shaped by Kombo's webhook schemas, signed as the vendors sign, accepted by applyq."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import httpx
import pytest
from jsonschema import Draft202012Validator
from pydantic import SecretStr
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import SPECS, RecordingPublisher
from tests.unit.local.kombo_sandbox import HEADERS, Sandbox, running
from worker.intake.http import create_app as create_api
from worker.intake.library import Applyq
from worker.intake.ratelimit import RedisRequestLimiter, Window
from worker.intake.vendor_events import VendorEventConfig
from worker.local.sandbox import SandboxConfig, create_app
from worker.local.sandbox.events import EVENT_TYPES
from worker.states import Provider

KOMBO_SPEC = json.loads((SPECS / "kombo-openapi.json").read_text())
REGISTRY = Registry().with_resource("urn:kombo", Resource.from_contents(KOMBO_SPEC, default_specification=DRAFT202012))
CONFIG = SandboxConfig(kombo_events_url="http://receiver.test/kombo", stackone_events_url="http://receiver.test/s1")
INTEGRATION = "greenhouse:events-1"


def kombo_validator(event_type: str) -> Draft202012Validator:
    """The schema of the event's body in the ``webhooks`` section of Kombo's OpenAPI document."""
    ref = KOMBO_SPEC["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return Draft202012Validator(
        {"$ref": f"urn:kombo{ref}"}, registry=REGISTRY, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


class Receiver:
    """What the events were POSTed to: each request's path, headers and raw body."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []

        async def receive(request: Request) -> JSONResponse:
            self.got.append((request.url.path, dict(request.headers), await request.body()))
            return JSONResponse({"ok": True})

        self.transport = httpx.ASGITransport(app=Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])]))


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def box(receiver: Receiver) -> AsyncIterator[Sandbox]:
    app = create_app(CONFIG, event_transport=receiver.transport)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test") as client:
        yield Sandbox(client)


async def send(box: Sandbox, provider: str, event_type: str, *, query: str = "", **body: Any) -> httpx.Response:
    path = f"/_sandbox/events/{provider}/{INTEGRATION if provider == 'kombo' else 'acc-greenhouse-1'}/{event_type}"
    return await box.client.post(path + query, json=body or None)


def signature(secret: str, raw: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode().rstrip("=")


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES["kombo"]))
@pytest.mark.anyio
async def test_every_kombo_event_validates_against_the_specs_webhook_schema_and_is_signed(
    box: Sandbox, receiver: Receiver, event_type: str
) -> None:
    answer = await send(box, "kombo", event_type)
    assert answer.status_code == 200, answer.text
    path, headers, raw = receiver.got[-1]
    event = json.loads(raw)
    kombo_validator(event_type).validate(event)
    assert path == "/kombo" and event == answer.json()["sent"] and event["type"] == event_type
    assert headers["x-kombo-signature"] == signature(CONFIG.kombo_webhook_secret, raw)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES["stackone"]))
@pytest.mark.anyio
async def test_every_stackone_event_has_the_documented_fields_and_is_signed(
    box: Sandbox, receiver: Receiver, event_type: str
) -> None:
    # StackOne publishes no schema for its webhooks: the fields its account-events guide names
    assert (await send(box, "stackone", event_type)).status_code == 200
    _, headers, raw = receiver.got[-1]
    event = json.loads(raw)
    assert {"event", "account_id", "provider", "origin_owner_id", "origin_owner_name"} <= set(event)
    assert (event["event"], event["account_id"], event["provider"]) == (event_type, "acc-greenhouse-1", "greenhouse")
    assert headers["x-stackone-signature"] == signature(CONFIG.stackone_webhook_secret, raw)


@pytest.mark.anyio
async def test_overrides_unsigned_and_tampered_events(box: Sandbox, receiver: Receiver) -> None:
    await send(box, "kombo", "integration-state-changed", state="INVALID")
    assert json.loads(receiver.got[-1][2])["data"]["state"] == "INVALID"
    await send(box, "kombo", "integration-state-changed", query="?signing=none")
    assert "x-kombo-signature" not in receiver.got[-1][1]
    await send(box, "kombo", "integration-state-changed", query="?signing=tampered")
    _, headers, raw = receiver.got[-1]
    assert headers["x-kombo-signature"] != signature(CONFIG.kombo_webhook_secret, raw)


@pytest.mark.anyio
async def test_unknown_events_and_a_missing_url_are_refused() -> None:
    assert (await send_to(SandboxConfig(), "integration-state-changed")).status_code == 409
    assert (await send_to(CONFIG, "no-such-event")).status_code == 404


async def send_to(config: SandboxConfig, event_type: str) -> httpx.Response:
    async with running(config) as box:
        return await send(box, "kombo", event_type)


@pytest.mark.anyio
async def test_a_broken_integration_fails_every_create_until_its_active_event_fixes_it(box: Sandbox) -> None:
    other = {**HEADERS, "X-Integration-Id": "greenhouse:elsewhere"}
    broken = {**HEADERS, "X-Integration-Id": INTEGRATION}
    assert (await box.client.post(f"/_sandbox/integrations/kombo/{INTEGRATION}/nosuch")).status_code == 404
    assert (await box.client.post(f"/_sandbox/integrations/kombo/{INTEGRATION}/permission")).status_code == 200
    for attempt in range(2):
        refused = await box.apply(f"ok--job-{attempt}", headers=broken)
        assert refused.json()["error"]["code"] == "INTEGRATION.PERMISSION_MISSING"
    assert (await box.apply("ok--job-0", headers=other)).status_code == 200
    await send(box, "kombo", "integration-state-changed", state="INVALID")  # not fixed yet
    assert (await box.apply("ok--job-2", headers=broken)).status_code != 200
    await send(box, "kombo", "integration-state-changed")  # ACTIVE
    assert (await box.apply("ok--job-3", headers=broken)).status_code == 200


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(
    ("provider", "event_type"),
    [("kombo", t) for t in sorted(EVENT_TYPES["kombo"])] + [("stackone", t) for t in sorted(EVENT_TYPES["stackone"])],
)
@pytest.mark.anyio
async def test_applyq_accepts_every_event_the_sandbox_sends(
    sessions: sessionmaker[Session], provider: str, event_type: str
) -> None:
    # Two independent implementations of each vendor's signature: the sandbox signs, applyq verifies.
    limiter = RedisRequestLimiter(
        fakeredis.FakeAsyncRedis(), rate=Window.parse("100/s"), auth_failures=Window.parse("100/s"), namespace="t"
    )
    secrets = {
        Provider.KOMBO: (SecretStr(CONFIG.kombo_webhook_secret),),
        Provider.STACKONE: (SecretStr(CONFIG.stackone_webhook_secret),),
    }
    api = create_api(
        Applyq(sessions, RecordingPublisher()),
        [SecretStr("api-token-for-tests")],
        limiter=limiter,
        max_body_bytes=1 << 20,
        vendor_events=VendorEventConfig(secrets=secrets),
    )
    config = SandboxConfig(
        kombo_events_url="http://applyq.test/vendor-events/kombo",
        stackone_events_url="http://applyq.test/vendor-events/stackone",
    )
    app = create_app(config, event_transport=httpx.ASGITransport(app=api))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test") as client:
        answer = (await send(Sandbox(client), provider, event_type)).json()
    assert answer["status"] == 200, answer
    assert answer["answer"]["duplicate"] is False
