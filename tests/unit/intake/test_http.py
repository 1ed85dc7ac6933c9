"""The HTTP API in-process (httpx.ASGITransport, SQLite): idempotency answers, auth, problem details, OpenAPI."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import fakeredis
import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import RecordingPublisher, submission_dict
from worker.intake.http import create_app, parse_idempotency_key
from worker.intake.library import Applyq
from worker.intake.problems import Problem
from worker.intake.ratelimit import RedisRequestLimiter, Window

TOKEN = "token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX = 64 * 1024


class GatedPublisher(RecordingPublisher):
    """Holds the first publish until released, so a request stays in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def publish(self, submission_ids: Sequence[str]) -> None:
        self.entered.set()
        assert self.release.wait(10), "the test never released the publisher"
        super().publish(submission_ids)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gated() -> GatedPublisher:
    publisher = GatedPublisher()
    publisher.release.set()
    return publisher


def limiter(rate: str = "1000/min", auth_failures: str = "1000/min") -> RedisRequestLimiter:
    """The real limiter, over fakeredis (each call a Redis of its own)."""
    return RedisRequestLimiter(
        fakeredis.FakeAsyncRedis(),
        rate=Window.parse(rate),
        auth_failures=Window.parse(auth_failures),
        namespace="test",
    )


@pytest.fixture
async def client(sessions: sessionmaker[Session], gated: GatedPublisher) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Applyq(sessions, gated), [SecretStr("other-token"), SecretStr(TOKEN)], limiter=limiter(), max_body_bytes=MAX
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://applyq.test") as c:
        yield c


def body(**overrides: Any) -> dict[str, Any]:
    data = submission_dict(**overrides)
    data.pop("idempotency_key")
    return data


async def post(client: httpx.AsyncClient, payload: dict[str, Any], key: str | None = "app-981") -> httpx.Response:
    headers = {**AUTH, "Idempotency-Key": key} if key is not None else AUTH
    return await client.post("/submissions", json=payload, headers=headers)


def assert_problem(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = dict(response.json())
    assert (problem["status"], problem["type"]) == (status, type_)
    assert problem["title"]
    return problem


@pytest.mark.anyio
async def test_the_first_request_creates_and_a_replay_answers_with_the_same_submission(
    client: httpx.AsyncClient, gated: GatedPublisher
) -> None:
    first = await post(client, body())
    assert first.status_code == 201
    assert first.headers["location"] == f"/submissions/{first.json()['id']}"
    again = await post(client, body())
    assert (again.status_code, again.headers["idempotent-replayed"]) == (200, "true")
    assert again.json()["id"] == first.json()["id"]
    assert gated.published == [first.json()["id"]]  # published once


@pytest.mark.anyio
async def test_the_same_key_with_a_different_body_is_422_and_names_the_original(client: httpx.AsyncClient) -> None:
    first = await post(client, body())
    problem = assert_problem(await post(client, body(job_id="ok--other")), 422, "/problems/idempotency-key-reused")
    assert problem["submission_id"] == first.json()["id"]


@pytest.mark.anyio
async def test_a_duplicate_while_the_original_is_in_flight_is_409_then_replays(
    client: httpx.AsyncClient, gated: GatedPublisher
) -> None:
    gated.release.clear()
    answers: dict[str, httpx.Response] = {}

    async def original() -> None:
        answers["original"] = await post(client, body())

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(original)
        assert await anyio.to_thread.run_sync(gated.entered.wait, 10)  # the original is stored, now publishing
        duplicate = await post(client, body())
        gated.release.set()
    problem = assert_problem(duplicate, 409, "/problems/idempotency-key-in-use")
    assert duplicate.headers["retry-after"] == "1"
    assert problem["instance"] == "/submissions"
    assert answers["original"].status_code == 201
    retried = await post(client, body())
    assert (retried.status_code, retried.json()["id"]) == (200, answers["original"].json()["id"])


@pytest.mark.anyio
async def test_a_missing_idempotency_key_is_400(client: httpx.AsyncClient) -> None:
    assert_problem(await post(client, body(), key=None), 400, "/problems/idempotency-key-required")
    assert_problem(await post(client, body(), key='""'), 400, "/problems/idempotency-key-required")
    # the key is checked before the body's fields: without one, an invalid body is still told about the key first
    invalid = body(candidate={"first_name": "Ada", "last_name": "Lovelace", "email": "not-an-email"})
    assert_problem(await post(client, invalid, key=None), 400, "/problems/idempotency-key-required")
    assert_problem(await post(client, invalid), 422, "/problems/invalid-submission")


def test_the_key_may_be_a_structured_field_string_or_bare() -> None:
    assert parse_idempotency_key('"8e03978e-40d5"') == parse_idempotency_key("8e03978e-40d5") == "8e03978e-40d5"
    assert parse_idempotency_key(r'"a\"b"') == 'a"b'
    with pytest.raises(Problem):
        parse_idempotency_key("x" * 256)


@pytest.mark.anyio
async def test_a_key_in_the_body_must_match_the_header(client: httpx.AsyncClient) -> None:
    problem = assert_problem(
        await post(client, {**body(), "idempotency_key": "other"}), 422, "/problems/invalid-submission"
    )
    assert problem["errors"] == [{"pointer": "#/idempotency_key", "detail": "must equal the Idempotency-Key header"}]
    assert (await post(client, {**body(), "idempotency_key": "app-981"})).status_code == 201


@pytest.mark.anyio
async def test_validation_errors_are_problem_details_pointing_at_each_field(client: httpx.AsyncClient) -> None:
    bad = body(integration_id=None, candidate={"first_name": "Ada", "email": "not-an-email"})
    problem = assert_problem(await post(client, bad), 422, "/problems/invalid-submission")
    pointers = {e["pointer"] for e in problem["errors"]}
    assert pointers == {"#/candidate/last_name", "#/candidate/email"}  # model checks run once fields are valid
    problem = assert_problem(await post(client, body(integration_id=None)), 422, "/problems/invalid-submission")
    assert problem["errors"] == [{"pointer": "#/integration_id", "detail": "is required for provider 'kombo'"}]
    garbled = await client.post(
        "/submissions", content=b"{nope", headers={**AUTH, "Idempotency-Key": "k", "Content-Type": "application/json"}
    )
    assert assert_problem(garbled, 422, "/problems/invalid-submission")["errors"][0]["pointer"] == "#"


@pytest.mark.anyio
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer "])
async def test_a_valid_bearer_token_is_required(client: httpx.AsyncClient, authorization: str | None) -> None:
    headers = {"Idempotency-Key": "k"} | ({"Authorization": authorization} if authorization else {})
    for response in (
        await client.post("/submissions", json={"garbage": True}, headers=headers),
        await client.get("/submissions/k", headers=headers),
    ):
        assert_problem(response, 401, "about:blank")
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.anyio
async def test_get_by_id_or_key_and_404(client: httpx.AsyncClient) -> None:
    created = (await post(client, body(metadata={"application_id": 981}))).json()
    by_id = await client.get(f"/submissions/{created['id']}", headers=AUTH)
    by_key = await client.get("/submissions/app-981", headers=AUTH)
    assert by_id.json() == by_key.json() == created
    assert created["metadata"] == {"application_id": 981}
    assert "candidate" not in created
    assert_problem(await client.get("/submissions/nope", headers=AUTH), 404, "about:blank")


@pytest.mark.anyio
async def test_every_answer_matches_the_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    config = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
    spec = OpenAPI.from_dict(document, config=config)  # also validates the document itself
    assert {"/submissions", "/submissions/{submission_id}"} <= set(document["paths"])  # and the vendor events
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    responses = [
        await post(client, body()),
        await post(client, body()),
        await post(client, body(job_id="ok--other")),
        await post(client, body(), key=None),
        await post(client, body(integration_id=None), key="k2"),
        await client.get("/submissions/app-981", headers=AUTH),
        await client.get("/submissions/nope", headers=AUTH),
        await client.get("/submissions/nope"),
        await client.post("/submissions", content=b"x", headers={**AUTH, "Idempotency-Key": "k3"}),  # 415
        await client.post(
            "/submissions",
            content=b"x" * (MAX + 1),
            headers={**AUTH, "Idempotency-Key": "k4", "Content-Type": "application/json"},
        ),  # 413
    ]
    for response in responses:
        request = response.request
        spec.validate_response(
            MockRequest(
                "http://applyq.test",
                request.method.lower(),
                request.url.path,
                headers=dict(request.headers),
                data=request.content,
                content_type=request.headers.get("content-type"),
            ),
            MockResponse(response.content, response.status_code, content_type=response.headers["content-type"]),
        )


@pytest.mark.anyio
async def test_problem_types_are_documented_at_their_uri(client: httpx.AsyncClient) -> None:
    page = await client.get("/problems/idempotency-key-in-use")
    assert page.status_code == 200
    assert "Retry" in page.text
