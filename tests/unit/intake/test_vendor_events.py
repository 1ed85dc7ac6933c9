"""Vendor events in-process (httpx.ASGITransport, SQLite): verified as the vendor signs, stored once, acted on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import RecordingPublisher, submission_dict
from worker.db.models import AuditEvent, Submission, VendorEvent, WebhookEvent
from worker.intake.http import create_app
from worker.intake.library import Applyq
from worker.intake.ratelimit import RedisRequestLimiter, Window
from worker.intake.vendor_events import VendorEventConfig
from worker.states import Provider, Reason, Status

KOMBO_SECRET = "kombo-webhook-secret-for-tests"
STACKONE_SECRET = "stackone-webhook-secret-for-tests"
MAX = 64 * 1024
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
INTEGRATION = "greenhouse:vendor-events"


def kombo_signature(body: bytes, secret: str = KOMBO_SECRET) -> str:
    """As Kombo documents it: HMAC-SHA256 of the body, base64url without '=' padding."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_client(sessions: sessionmaker[Session], **config: Any) -> httpx.AsyncClient:
    limiter = RedisRequestLimiter(
        fakeredis.FakeAsyncRedis(), rate=Window.parse("1000/min"), auth_failures=Window.parse("1000/min"), namespace="t"
    )
    settings = {
        "secrets": {Provider.KOMBO: (SecretStr(KOMBO_SECRET),), Provider.STACKONE: (SecretStr(STACKONE_SECRET),)},
        "clock": lambda: NOW,
        **config,
    }
    app = create_app(
        Applyq(sessions, RecordingPublisher()),
        [SecretStr("api-token-for-tests")],
        limiter=limiter,
        max_body_bytes=MAX,
        vendor_events=VendorEventConfig(**settings),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://applyq.test")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(sessions: sessionmaker[Session]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(sessions) as c:
        yield c


def add(sessions: sessionmaker[Session], status: Status, reason: Reason | None, **overrides: Any) -> str:
    """A stored submission, then put in ``status`` for ``reason`` as the router would have left it."""
    data = submission_dict(idempotency_key=f"k-{uuid.uuid4()}", **{"integration_id": INTEGRATION, **overrides})
    submission_id = Applyq(sessions, RecordingPublisher()).enqueue(data).submission.id
    with sessions() as session, session.begin():
        session.execute(
            sa.update(Submission)
            .where(Submission.id == submission_id)
            .values(
                status=status.value,
                outcome_reason=reason.value if reason else None,
                attempt_count=1,
                next_attempt_at=NOW + timedelta(hours=1) if status is Status.RETRY_SCHEDULED else None,
                finished_at=NOW if status is Status.PARKED else None,
            )
        )
    return submission_id


def statuses(sessions: sessionmaker[Session]) -> dict[str, tuple[str, str | None]]:
    with sessions() as session:
        return {r.id: (r.status, r.outcome_reason) for r in session.scalars(sa.select(Submission))}


def count(sessions: sessionmaker[Session], model: type[Any]) -> int:
    with sessions() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def kombo_event(event_type: str = "integration-state-changed", event_id: str = "evt-1", **data: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "integration-state-changed": {
            "integration_tool": "greenhouse",
            "integration_id": INTEGRATION,
            "integration_category": "ATS",
            "end_user": {"organization_name": "Acme", "creator_email": None, "origin_id": None},
            "qa_status": "PASSED",
            "setup_status": "COMPLETED",
            "state": "ACTIVE",
            "updated_at": (NOW - timedelta(minutes=1)).isoformat(),
        },
        "integration-deleted": {
            "id": INTEGRATION,
            "tool": "greenhouse",
            "category": "ATS",
            "end_user": {"organization_name": "Acme", "creator_email": None, "origin_id": None},
            "deleted_at": NOW.isoformat(),
        },
    }.get(event_type, {})
    return {"id": event_id, "type": event_type, "data": {**fields, **data}}


async def send_kombo(
    client: httpx.AsyncClient, event: Any, sign: Callable[[bytes], str | None] = kombo_signature
) -> httpx.Response:
    raw = json.dumps(event).encode()
    signature = sign(raw)
    headers = {"Content-Type": "application/json", **({"X-Kombo-Signature": signature} if signature else {})}
    return await client.post("/vendor-events/kombo", content=raw, headers=headers)


def assert_refused(response: httpx.Response, status: int, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]


@pytest.mark.anyio
async def test_active_requeues_the_integrations_parked_submissions_with_the_event_in_the_audit(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    # Given submissions parked for permission and re-authentication, and others that the event does not fix
    fixed = [add(sessions, Status.PARKED, Reason.PERMISSION_MISSING) for _ in range(3)]
    fixed.append(add(sessions, Status.PARKED, Reason.REAUTHENTICATION_REQUIRED))
    waiting = add(sessions, Status.RETRY_SCHEDULED, Reason.SETUP_SYNC_PENDING)
    bad_input = add(sessions, Status.PARKED, Reason.INVALID_INPUT)
    elsewhere = add(sessions, Status.PARKED, Reason.PERMISSION_MISSING, integration_id="greenhouse:other")
    # When Kombo says the integration is ACTIVE (setup completed)
    answer = await send_kombo(client, kombo_event())
    # Then exactly the fixed ones are queued again, the waiting one is due now, and the audit names the event
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "event_id": "evt-1", "duplicate": False, "result": "requeued 4, made due 1, ended 0",
        "requeued": 4, "resumed": 1, "ended": 0,
    }  # fmt: skip
    now = statuses(sessions)
    assert {now[i][0] for i in fixed} == {"queued"}
    assert now[waiting][0] == "retry_scheduled" and now[bad_input][0] == now[elsewhere][0] == "parked"
    with sessions() as session:
        row = session.get(Submission, fixed[0])
        assert row is not None and row.next_attempt_at == NOW and row.window_attempt_base == 1
        assert session.get(Submission, waiting).next_attempt_at == NOW  # type: ignore[union-attr]
        audit = session.scalars(sa.select(AuditEvent).where(AuditEvent.submission_id == fixed[0])).one()
    assert (audit.actor, audit.action, audit.note) == (
        "vendor:kombo",
        "requeue",
        "integration-state-changed event evt-1",
    )
    assert audit.changes == {
        "status": ["parked", "queued"],
        "event_type": "integration-state-changed",
        "event_id": "evt-1",
    }


@pytest.mark.anyio
async def test_a_redelivered_event_is_stored_once_and_changes_nothing_more(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    add(sessions, Status.PARKED, Reason.PERMISSION_MISSING)
    assert (await send_kombo(client, kombo_event())).json()["requeued"] == 1
    parked_again = add(sessions, Status.PARKED, Reason.PERMISSION_MISSING)
    again = await send_kombo(client, kombo_event())
    assert again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["requeued"] == 0
    assert statuses(sessions)[parked_again][0] == "parked"
    assert count(sessions, VendorEvent) == 1 and count(sessions, AuditEvent) == 1


def padded(raw: bytes) -> str:
    return kombo_signature(raw) + "="


@pytest.mark.parametrize(
    ("sign", "detail"),
    [
        (lambda raw: None, "missing or wrong X-Kombo-Signature"),
        (lambda raw: kombo_signature(raw + b" "), "missing or wrong"),  # signed another body: tampered
        (lambda raw: kombo_signature(raw, "another-secret"), "missing or wrong"),
        (padded, "missing or wrong"),  # Kombo's base64url has no padding: not Kombo's signature
        (lambda raw: base64.b64encode(hmac.new(KOMBO_SECRET.encode(), raw, "sha256").digest()).decode(), "wrong"),
    ],
)
@pytest.mark.anyio
async def test_unsigned_or_tampered_events_are_401_and_change_nothing(
    client: httpx.AsyncClient, sessions: sessionmaker[Session], sign: Callable[[bytes], str | None], detail: str
) -> None:
    parked = add(sessions, Status.PARKED, Reason.PERMISSION_MISSING)
    assert_refused(await send_kombo(client, kombo_event(), sign), 401, detail)
    assert statuses(sessions)[parked][0] == "parked"
    assert count(sessions, VendorEvent) == count(sessions, AuditEvent) == 0


@pytest.mark.anyio
async def test_without_a_configured_secret_every_event_is_refused(sessions: sessionmaker[Session]) -> None:
    async with make_client(sessions, secrets={}) as client:
        assert_refused(await send_kombo(client, kombo_event()), 401, "no secret is configured")
    assert count(sessions, VendorEvent) == 0


@pytest.mark.parametrize("age", [timedelta(days=2), -timedelta(days=2)])
@pytest.mark.anyio
async def test_a_stale_event_is_401_and_changes_nothing(
    client: httpx.AsyncClient, sessions: sessionmaker[Session], age: timedelta
) -> None:
    parked = add(sessions, Status.PARKED, Reason.PERMISSION_MISSING)
    answer = await send_kombo(client, kombo_event(updated_at=(NOW - age).isoformat()))
    assert_refused(answer, 401, "stale")
    assert statuses(sessions)[parked][0] == "parked" and count(sessions, VendorEvent) == 0


@pytest.mark.parametrize(
    ("event", "detail"),
    [
        ([1, 2], "not a JSON object"),
        ({"type": "integration-state-changed", "data": {}}, "id: must be a string"),
        ({"id": "e", "type": "integration-state-changed"}, "data: must be an object"),
        (kombo_event(updated_at="yesterday"), "data.updated_at: must be an ISO 8601 time"),
    ],
)
@pytest.mark.anyio
async def test_a_signed_body_that_is_not_the_vendors_event_is_422_naming_the_field(
    client: httpx.AsyncClient, sessions: sessionmaker[Session], event: Any, detail: str
) -> None:
    assert_refused(await send_kombo(client, event), 422, detail)
    assert count(sessions, VendorEvent) == 0


@pytest.mark.anyio
async def test_integration_deleted_ends_queued_waiting_and_parked_with_an_outcome_webhook(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    queued = add(sessions, Status.QUEUED, None)
    waiting = add(sessions, Status.RETRY_SCHEDULED, Reason.RATE_LIMITED)
    parked = add(sessions, Status.PARKED, Reason.INVALID_INPUT)
    in_flight = add(sessions, Status.IN_FLIGHT, None)
    done = add(sessions, Status.SUCCEEDED, Reason.CREATED)
    answer = await send_kombo(client, kombo_event("integration-deleted", "evt-del"))
    assert answer.json()["ended"] == 3
    now = statuses(sessions)
    for ended in (queued, waiting, parked):
        assert now[ended] == ("terminal", "integration_deleted")
    assert now[in_flight][0] == "in_flight" and now[done][0] == "succeeded"  # the worker's answer decides it
    with sessions() as session:
        events = session.scalars(sa.select(WebhookEvent).order_by(WebhookEvent.submission_id)).all()
        row = session.get(Submission, queued)
        assert row is not None and row.outcome_code == "integration-deleted" and "evt-del" in (row.remediation or "")
    assert sorted(e.submission_id for e in events) == sorted([queued, waiting, parked])
    assert {(e.payload["type"], e.payload["reason"]) for e in events} == {
        ("submission.terminal", "integration_deleted")
    }


@pytest.mark.anyio
async def test_with_auto_resume_off_events_are_stored_and_change_nothing(sessions: sessionmaker[Session]) -> None:
    parked = add(sessions, Status.PARKED, Reason.PERMISSION_MISSING)
    async with make_client(sessions, auto_resume=False) as client:
        answer = await send_kombo(client, kombo_event())
    assert answer.status_code == 200 and answer.json()["result"] == "auto-resume off (stored only)"
    assert statuses(sessions)[parked][0] == "parked"
    with sessions() as session:
        stored = session.scalars(sa.select(VendorEvent)).one()
    assert (stored.event_type, stored.integration_id, stored.result) == (
        "integration-state-changed", INTEGRATION, "auto-resume off (stored only)",
    )  # fmt: skip
    assert stored.processed_at is not None


@pytest.mark.anyio
async def test_an_event_no_rule_acts_on_is_stored_and_acknowledged(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    parked = add(sessions, Status.PARKED, Reason.PERMISSION_MISSING)
    answer = await send_kombo(client, kombo_event(state="INVALID"))
    assert answer.json()["result"] == "no rule acts on this event"
    assert statuses(sessions)[parked][0] == "parked" and count(sessions, VendorEvent) == 1


def stackone_signature(body: bytes, *, pad: bool) -> str:
    digest = base64.urlsafe_b64encode(hmac.new(STACKONE_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return digest if pad else digest.rstrip("=")


async def send_stackone(client: httpx.AsyncClient, event: dict[str, Any], *, pad: bool = False) -> httpx.Response:
    raw = json.dumps(event).encode()
    headers = {"Content-Type": "application/json", "x-stackone-signature": stackone_signature(raw, pad=pad)}
    return await client.post("/vendor-events/stackone", content=raw, headers=headers)


@pytest.mark.parametrize("pad", [False, True])
@pytest.mark.anyio
async def test_stackone_account_active_again_requeues_its_parked_submissions(
    client: httpx.AsyncClient, sessions: sessionmaker[Session], pad: bool
) -> None:
    bare = add(sessions, Status.PARKED, Reason.REAUTHENTICATION_REQUIRED, provider="stackone", integration_id="acc-1")
    prefixed = add(sessions, Status.PARKED, Reason.ACCOUNT_DISABLED, provider="stackone", integration_id="ats:acc-1")
    other = add(sessions, Status.PARKED, Reason.ACCOUNT_DISABLED, provider="stackone", integration_id="acc-12")
    event = {"event": "account.updated", "account_id": "acc-1", "provider": "greenhouse", "status": "active"}
    answer = await send_stackone(client, event, pad=pad)
    assert answer.status_code == 200 and answer.json()["requeued"] == 2
    assert answer.json()["event_id"].startswith("sha256:")  # StackOne documents no event id: the body's hash
    now = statuses(sessions)
    assert now[bare][0] == now[prefixed][0] == "queued" and now[other][0] == "parked"
    with sessions() as session:
        assert session.scalars(sa.select(AuditEvent.actor)).all() == ["vendor:stackone"] * 2


@pytest.mark.anyio
async def test_stackone_account_deleted_ends_its_submissions_and_a_bad_signature_is_401(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    queued = add(sessions, Status.QUEUED, None, provider="stackone", integration_id="acc-2")
    event = {"event": "account.deleted", "account_id": "acc-2", "provider": "greenhouse"}
    raw = json.dumps(event).encode()
    refused = await client.post(
        "/vendor-events/stackone", content=raw, headers={"x-stackone-signature": kombo_signature(raw)}
    )
    assert_refused(refused, 401, "x-stackone-signature")
    assert statuses(sessions)[queued][0] == "queued"
    assert (await send_stackone(client, event)).json()["ended"] == 1
    assert statuses(sessions)[queued] == ("terminal", "integration_deleted")


@pytest.mark.anyio
async def test_the_body_limit_applies_and_no_api_token_is_needed_or_enough(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    huge = kombo_event(padding="x" * MAX)
    assert (await send_kombo(client, huge)).status_code == 413
    token_only = await client.post(
        "/vendor-events/kombo", json=kombo_event(), headers={"Authorization": "Bearer api-token-for-tests"}
    )
    assert_refused(token_only, 401, "X-Kombo-Signature")
    assert count(sessions, VendorEvent) == 0


@pytest.mark.anyio
async def test_the_openapi_document_lists_both_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/vendor-events/kombo", "/vendor-events/stackone"):
        assert set(paths[path]["post"]["responses"]) >= {"200", "401", "413", "422"}
