"""What the API checks before it reads a body, and what it answers to hostile input (in-process, SQLite)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Message, Scope

from tests.conftest import RecordingPublisher
from tests.unit.intake.test_http import AUTH, MAX, TOKEN, assert_problem, body, limiter, post
from worker.intake.guard import Guard, Tokens, client_address
from worker.intake.http import create_app
from worker.intake.library import Applyq

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_client(app: Any, address: str = "10.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://applyq.test")


@pytest.fixture
async def client(sessions: sessionmaker[Session]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Applyq(sessions, RecordingPublisher()), [SecretStr(TOKEN)], limiter=limiter(), max_body_bytes=MAX)
    async with make_client(app) as c:
        yield c


# --- before the body: the guard on its own, with a receive() that counts what it hands out ------------------


class Upload:
    """An ASGI request whose body comes in chunks; remembers how many were read."""

    def __init__(self, chunks: int, chunk_bytes: int = 16 * 1024) -> None:
        self.chunks, self.chunk_bytes, self.read = chunks, chunk_bytes, 0

    async def receive(self) -> Message:
        self.read += 1
        return {"type": "http.request", "body": b"x" * self.chunk_bytes, "more_body": self.read < self.chunks}


async def run_guard(headers: dict[str, str], upload: Upload, limits: Any = None) -> tuple[int, dict[str, str], bool]:
    """Status and headers of the guard's answer, and whether the app behind it was called."""
    reached: list[bool] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        reached.append(True)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = Guard(
        app, tokens=Tokens([SecretStr(TOKEN)]), limiter=limits or limiter(), max_body_bytes=MAX, open_paths={"/docs"}
    )
    sent: list[Message] = []
    scope = {
        "type": "http", "method": "POST", "path": "/submissions", "client": ("10.0.0.1", 1),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip

    async def send(message: Message) -> None:
        sent.append(message)

    await guard(scope, upload.receive, send)
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, bool(reached)


JSON = {"Content-Type": "application/json"}


async def test_without_a_token_the_body_is_never_read() -> None:
    upload = Upload(chunks=1000)
    status, headers, reached = await run_guard({**JSON, "Content-Length": str(1000 * 16 * 1024)}, upload)
    assert (status, upload.read, reached) == (401, 0, False)
    assert headers["connection"] == "close"  # uvicorn stops reading the upload
    assert headers["www-authenticate"] == "Bearer"


async def test_a_declared_length_over_the_limit_is_413_before_reading() -> None:
    upload = Upload(chunks=1000)
    status, headers, _ = await run_guard({**AUTH, **JSON, "Content-Length": str(MAX + 1)}, upload)
    assert (status, upload.read, headers["connection"]) == (413, 0, "close")


async def test_a_chunked_body_is_counted_and_refused_once_it_passes_the_limit() -> None:
    upload = Upload(chunks=1000)
    status, headers, reached = await run_guard({**AUTH, **JSON, "Transfer-Encoding": "chunked"}, upload)
    assert (status, reached, headers["connection"]) == (413, False, "close")
    assert upload.read == MAX // upload.chunk_bytes + 1  # read just past the limit, not the whole upload


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    upload = Upload(chunks=3)
    status, _, reached = await run_guard({**AUTH, **JSON, "Transfer-Encoding": "chunked"}, upload)
    assert (status, reached, upload.read) == (204, True, 3)


async def test_a_wrong_media_type_is_415_before_reading() -> None:
    upload = Upload(chunks=10)
    status, _, _ = await run_guard({**AUTH, "Content-Type": "text/plain", "Content-Length": "1"}, upload)
    assert (status, upload.read) == (415, 0)


def test_tokens_are_named_by_a_hash_and_compared_as_bearer_only() -> None:
    tokens = Tokens([SecretStr(TOKEN), SecretStr("another-token-for-tests")])
    name = tokens.identify(f"Bearer {TOKEN}")
    assert name is not None and TOKEN not in name
    assert tokens.identify(f"bearer  {TOKEN} ".encode()) == name
    assert tokens.identify("Bearer another-token-for-tests") not in (None, name)
    assert tokens.identify(f"Basic {TOKEN}") is None
    assert tokens.identify("Bearer \xff") is None
    assert tokens.identify(None) is None


@pytest.mark.parametrize(
    ("client_", "address"),
    [(("10.1.2.3", 1), "10.1.2.3"), (("2001:db8:1:2:3:4:5:6", 1), "2001:db8:1:2::/64"),
     (("::ffff:10.1.2.3", 1), "10.1.2.3"), (None, "unknown")],
)  # fmt: skip
def test_clients_are_counted_by_address_and_ipv6_by_its_64(client_: Any, address: str) -> None:
    assert client_address({"client": client_}) == address


# --- through the whole app ------------------------------------------------------------------------------------


async def test_malformed_json_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    answer = await client.post("/submissions", content=b"{nope", headers={**JSON, "Idempotency-Key": "k"})
    assert_problem(answer, 401, "about:blank")


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
async def test_wrong_content_types_are_415(client: httpx.AsyncClient, content_type: str | None) -> None:
    headers = {**AUTH, "Idempotency-Key": "k"} | ({"Content-Type": content_type} if content_type else {})
    answer = await client.post("/submissions", content=json.dumps(body()).encode(), headers=headers)
    assert_problem(answer, 415, "/problems/unsupported-media-type")


async def test_a_json_media_type_with_a_charset_is_accepted(client: httpx.AsyncClient) -> None:
    headers = {**AUTH, "Idempotency-Key": "k", "Content-Type": "application/json; charset=utf-8"}
    assert (await client.post("/submissions", content=json.dumps(body()).encode(), headers=headers)).status_code == 201


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    big = body(
        candidate={"first_name": "A", "last_name": "B", "email": "a@b.co", "cv": {"name": "cv.pdf", "data": "Q" * MAX}}
    )
    assert_problem(await post(client, big), 413, "/problems/body-too-large")


@pytest.mark.parametrize(
    "document",
    [b"[" * 30_000 + b"]" * 30_000, b'{"metadata": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001,
     b'{"provider": "kombo", "candidate": ' + b"[" * 900 + b"]" * 900 + b"}"],
)  # fmt: skip
async def test_deep_nesting_is_an_invalid_submission_not_a_500(client: httpx.AsyncClient, document: bytes) -> None:
    answer = await client.post("/submissions", content=document, headers={**AUTH, **JSON, "Idempotency-Key": "k"})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"


#: A string field of each kind: top level, nested, validated by a pattern (phone) or a library (email), a dict.
CONTROL_FIELDS = [
    "job_id",
    "integration_id",
    "candidate.first_name",
    "candidate.email",
    "candidate.phone",
    "metadata.note",
]


@pytest.mark.parametrize("field", CONTROL_FIELDS)
async def test_a_nul_in_any_field_is_422_naming_it(client: httpx.AsyncClient, field: str) -> None:
    path = tuple(field.split("."))
    pointer = "#/" + "/".join(path[:1] if path[0] == "metadata" else path)  # a dict's value: the dict is named
    payload = body(
        candidate={"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "phone": "+44 20"}
    )
    node = payload
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = f"{node.get(path[-1], 'x')}\x00"
    problem = assert_problem(await post(client, payload), 422, "/problems/invalid-submission")
    assert [e["pointer"] for e in problem["errors"]] == [pointer]


async def test_a_nul_in_the_idempotency_key_header_is_422(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await post(client, body(), key="key\x7f1"), 422, "/problems/invalid-submission")
    assert problem["errors"][0]["pointer"] == "#/idempotency_key"


@pytest.mark.parametrize("reference", ["%00", "a%00b", "%1B%5B31m", "x" * 300, "%FF%FE"])
async def test_garbage_path_parameters_are_404_before_the_database(client: httpx.AsyncClient, reference: str) -> None:
    answer = await client.get(f"/submissions/{reference}", headers=AUTH)
    assert_problem(answer, 404, "about:blank")


async def test_a_token_over_its_rate_gets_429_with_retry_after(sessions: sessionmaker[Session]) -> None:
    app = create_app(
        Applyq(sessions, RecordingPublisher()), [SecretStr(TOKEN)], limiter=limiter("2/min"), max_body_bytes=MAX
    )
    async with make_client(app) as c:
        answers = [await c.get("/submissions/nope", headers=AUTH) for _ in range(3)]
    assert [a.status_code for a in answers] == [404, 404, 429]
    assert_problem(answers[2], 429, "/problems/rate-limited")
    assert 1 <= int(answers[2].headers["retry-after"]) <= 60


async def test_a_token_guesser_gets_429_and_so_does_its_right_guess(sessions: sessionmaker[Session]) -> None:
    limits = limiter(auth_failures="3/10min")
    app = create_app(Applyq(sessions, RecordingPublisher()), [SecretStr(TOKEN)], limiter=limits, max_body_bytes=MAX)
    async with make_client(app, "10.6.6.6") as guesser, make_client(app, "10.0.0.1") as other:
        wrong = [await guesser.get("/submissions/x", headers={"Authorization": f"Bearer guess-{n}"}) for n in range(5)]
        right = await guesser.get("/submissions/x", headers=AUTH)
        elsewhere = await other.get("/submissions/x", headers=AUTH)
    assert [a.status_code for a in wrong] == [401, 401, 401, 429, 429]
    assert (right.status_code, elsewhere.status_code) == (429, 404)


async def test_the_documentation_is_open_and_unlimited(sessions: sessionmaker[Session]) -> None:
    app = create_app(
        Applyq(sessions, RecordingPublisher()), [SecretStr(TOKEN)], limiter=limiter("1/min"), max_body_bytes=MAX
    )
    async with make_client(app) as c:
        for _ in range(3):
            assert (await c.get("/openapi.json")).status_code == 200
            assert (await c.get("/problems/rate-limited")).status_code == 200


async def test_an_unexpected_error_is_a_500_problem_and_its_log_has_no_data(
    client: httpx.AsyncClient, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    with sessions() as session:  # every insert fails, with the candidate in the statement's parameters
        session.execute(
            sa.text("CREATE TRIGGER boom BEFORE INSERT ON applyq_submission BEGIN SELECT RAISE(ABORT, 'x'); END")
        )
        session.commit()
    payload = body(
        candidate={
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada.secret@example.com",
            "phone": "+44 20 7946 0001",
        }
    )
    with caplog.at_level(logging.INFO):
        answer = await post(client, payload)
    problem = assert_problem(answer, 500, "/problems/internal-error")
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.__dict__["error_id"] == problem["error_id"]
    assert record.__dict__["error_type"] == "sqlalchemy.exc.IntegrityError"
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "ada.secret" not in logged and "7946" not in logged and "Lovelace" not in logged
