"""Hostile input against the real ``applyq api`` process and the CLI (PostgreSQL, Redis, the sandbox, a worker).

Huge bodies are refused before they are read (the API's memory barely moves), control characters are
refused naming the field on every path, a token guesser is slowed to 429, nothing is ever a 500, and no log
line of the API holds the candidate's email or phone.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, free_port, kombo_submission, spawn, wait_http
from worker.local.processes import Proc

pytestmark = pytest.mark.e2e

TOKEN = "e2e-hostile-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TAG = uuid.uuid4().hex[:8]
EMAIL = f"ada.hostile.{TAG}@example.com"
PHONE = f"+44 20 7946 {int(TAG, 16) % 10000:04d}"
FIFTY_MB = 50 * 1024 * 1024
#: failed-token requests one address may make before 429 (the setting's default is 20 per 10 minutes)
AUTH_FAILURES = 20


@dataclass
class Api:
    url: str
    port: int
    proc: Proc
    log: Path

    def rss_kb(self) -> int:
        """The API process's resident memory (VmRSS), in kB."""
        status = Path(f"/proc/{self.proc.popen.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[Api]:
    port = free_port()
    log = stack.tmp / f"hostile-api-{TAG}.log"
    env = {**stack.env, "APPLYQ_API_TOKENS": TOKEN, "APPLYQ_API_AUTH_FAILURE_LIMIT": f"{AUTH_FAILURES}/10min"}
    proc = spawn(["api", "--port", str(port)], env, log)
    try:
        wait_http(f"http://127.0.0.1:{port}/openapi.json")
        yield Api(f"http://127.0.0.1:{port}", port, proc, log)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def client(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as c:
        yield c


def candidate(**overrides: Any) -> dict[str, Any]:
    cv = {"name": "cv.pdf", "content_type": "application/pdf", "data": "JVBERi0xLjQK"}
    return {"first_name": "Ada", "last_name": "Lovelace", "email": EMAIL, "phone": PHONE, "cv": cv, **overrides}


def submission(**overrides: Any) -> dict[str, Any]:
    return kombo_submission("ok--job", candidate=candidate(), metadata={"application_id": "981"}, **overrides)


def post(client: httpx.Client, payload: dict[str, Any], **headers: str) -> httpx.Response:
    body = dict(payload)
    key = body.pop("idempotency_key")
    return client.post("/submissions", json=body, headers={**AUTH, "Idempotency-Key": key, **headers})


def raw_request(api: Api, head: str, body: bytes = b"", source: str = "127.0.0.1") -> int:
    """Send a request's head and the first part of its body on a plain socket; the answer's status.

    The rest of the declared body is never sent: an answer proves the server did not wait to read it.
    """
    with socket.create_connection(("127.0.0.1", api.port), timeout=20, source_address=(source, 0)) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        answer = sock.recv(65536).decode("latin-1")
    return int(answer.split(" ", 2)[1])


def big_head(length: int, *, token: bool) -> str:
    lines = [
        "POST /submissions HTTP/1.1", "Host: applyq", "Content-Type: application/json", "Idempotency-Key: big",
        f"Content-Length: {length}", *([f"Authorization: Bearer {TOKEN}"] if token else []),
    ]  # fmt: skip
    return "\r\n".join(lines) + "\r\n"


def test_50_mb_bodies_are_refused_before_they_are_read_and_memory_stays_flat(api: Api) -> None:
    before = api.rss_kb()
    first_mb = b'{"candidate": {"cv": {"data": "' + b"A" * (1024 * 1024)
    with ThreadPoolExecutor(max_workers=8) as pool:
        without = list(pool.map(lambda _: raw_request(api, big_head(FIFTY_MB, token=False), first_mb), range(8)))
        with_token = list(pool.map(lambda _: raw_request(api, big_head(FIFTY_MB, token=True), first_mb), range(8)))
    grown_mb = (api.rss_kb() - before) / 1024
    assert (set(without), set(with_token)) == ({401}, {413})
    assert grown_mb < 20, f"the API grew {grown_mb:.1f} MB"


def test_a_chunked_50_mb_body_is_cut_off_at_the_limit(api: Api) -> None:
    """No length to check: the API counts the bytes and answers 413 once they pass the limit, not at 50 MB."""
    head = big_head(0, token=True).replace("Content-Length: 0", "Transfer-Encoding: chunked")
    chunk = b"%x\r\n%s\r\n" % (1024 * 1024, b"A" * 1024 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", api.port), timeout=20) as sock:
        sock.sendall(head.encode() + b"\r\n")
        answer = b""
        stop = threading.Event()

        def read() -> None:
            nonlocal answer
            answer = sock.recv(65536)
            stop.set()

        reader = threading.Thread(target=read)
        reader.start()
        try:
            while not stop.is_set() and sent < 50:
                sock.sendall(chunk)
                sent += 1
        except OSError:
            pass  # the API closed the connection after answering
        reader.join(timeout=20)
    assert answer.split(b" ", 2)[1] == b"413", answer[:200]
    assert sent < 50


def test_malformed_json_without_a_token_is_401(client: httpx.Client) -> None:
    answer = client.post(
        "/submissions", content=b'{"provider": "kombo", ', headers={"Content-Type": "application/json"}
    )
    assert (answer.status_code, answer.headers["content-type"]) == (401, "application/problem+json")


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b",
                     "application/xml"],
)  # fmt: skip
def test_wrong_content_types_are_415(client: httpx.Client, content_type: str | None) -> None:
    body = json.dumps(submission()).encode()
    headers = {**AUTH, "Idempotency-Key": f"ct-{uuid.uuid4().hex}"}
    if content_type:
        headers["Content-Type"] = content_type
    answer = client.post("/submissions", content=body, headers=headers)
    assert (answer.status_code, answer.json()["type"]) == (415, "/problems/unsupported-media-type")


@pytest.mark.parametrize(
    "document",
    [b"[" * 200_000 + b"]" * 200_000, b'{"metadata": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
     b'{"provider": "kombo", "candidate": {"first_name": ' + b"[" * 990 + b"]" * 990 + b"}}"],
)  # fmt: skip
def test_deep_nesting_is_422(client: httpx.Client, document: bytes) -> None:
    answer = client.post(
        "/submissions", content=document, headers={**AUTH, "Content-Type": "application/json", "Idempotency-Key": "d"}
    )
    assert (answer.status_code, answer.headers["content-type"]) == (422, "application/problem+json")


#: Every string field of a submission, as a path into it, and the pointer the 422 names.
FIELDS = [
    (("job_id",), "#/job_id"),
    (("integration_id",), "#/integration_id"),
    (("candidate", "first_name"), "#/candidate/first_name"),
    (("candidate", "last_name"), "#/candidate/last_name"),
    (("candidate", "email"), "#/candidate/email"),
    (("candidate", "phone"), "#/candidate/phone"),
    (("candidate", "cv", "name"), "#/candidate/cv/name"),
    (("candidate", "cv", "content_type"), "#/candidate/cv/content_type"),
    (("metadata", "application_id"), "#/metadata"),
]


def with_nul(payload: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = payload
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = node[path[-1]][:2] + "\x00" + node[path[-1]][2:]
    return payload


@pytest.mark.parametrize(("path", "pointer"), FIELDS)
def test_a_nul_in_any_field_is_422_naming_it(client: httpx.Client, path: tuple[str, ...], pointer: str) -> None:
    answer = post(client, with_nul(submission(), path))
    assert answer.status_code == 422, answer.text
    assert pointer in [e["pointer"] for e in answer.json()["errors"]]


def test_a_nul_in_the_key_and_unknown_fields_are_422(client: httpx.Client) -> None:
    assert post(client, submission(idempotency_key="key-\x01-1")).status_code == 422
    answer = post(client, {**submission(), "surprise\x00": "x"})
    assert (answer.status_code, answer.headers["content-type"]) == (422, "application/problem+json")


@pytest.mark.parametrize("reference", ["%00", "a%00b", "%1b%5b2J", "%ff%fe", "x" * 400, "..%2f..%2fetc%2fpasswd"])
def test_garbage_references_are_404_never_500(client: httpx.Client, reference: str) -> None:
    answer = client.get(f"/submissions/{reference}", headers=AUTH)
    assert (answer.status_code, answer.headers["content-type"]) == (404, "application/problem+json")


def test_a_valid_submission_still_goes_through_and_is_delivered(client: httpx.Client, stack: Stack) -> None:
    created = post(client, submission())
    assert created.status_code == 201, created.text
    stack.wait_final(created.json()["id"])
    assert client.get(f"/submissions/{created.json()['id']}", headers=AUTH).json()["status"] == "succeeded"


@pytest.mark.parametrize(("path", "pointer"), FIELDS)
def test_the_cli_refuses_a_nul_in_any_field_with_exit_2(stack: Stack, path: tuple[str, ...], pointer: str) -> None:
    result = stack.cli("submit", "--file", "-", stdin=json.dumps(with_nul(submission(), path)))
    field = pointer.removeprefix("#/").replace("/", ".")
    assert result.returncode == 2, result.stderr
    assert f"{field}: " in result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_refuses_a_nul_in_candidate_json_with_exit_2(stack: Stack) -> None:
    item = submission()
    result = stack.cli(
        "submit", "--provider", "kombo", "--integration-id", item["integration_id"], "--job-id", item["job_id"],
        "--idempotency-key", item["idempotency_key"], "--candidate-json", json.dumps(candidate(first_name="A\x00da")),
    )  # fmt: skip
    assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr
    assert "candidate.first_name: contains a control character (U+0000)" in result.stderr


def test_requeue_set_refuses_a_nul_with_exit_2_and_changes_nothing(stack: Stack) -> None:
    parked_id = stack.submit(kombo_submission("badinput--job", candidate=candidate()))
    stack.wait_final(parked_id)
    assert stack.status(parked_id)["status"] == "parked"
    result = stack.cli("requeue", parked_id, "--set", 'candidate.first_name:="A\\u0000da"', "--yes")
    assert (result.returncode, "Traceback" in result.stderr) == (2, False), result.stderr
    assert "candidate.first_name" in result.stderr
    assert stack.status(parked_id)["status"] == "parked"


def test_a_token_guesser_gets_429_after_the_limit(api: Api) -> None:
    """From an address of its own (127.0.0.2), so the other tests' address keeps its allowance."""
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    statuses = []
    with httpx.Client(base_url=api.url, transport=transport, timeout=30) as guesser:
        started = time.monotonic()
        for n in range(1000):
            guess = guesser.get("/submissions/x", headers={"Authorization": f"Bearer guess-{n:04d}-{'x' * 12}"})
            statuses.append(guess.status_code)
        elapsed = time.monotonic() - started
        right = guesser.get("/submissions/x", headers=AUTH)
    assert statuses[:AUTH_FAILURES] == [401] * AUTH_FAILURES
    assert set(statuses[AUTH_FAILURES:]) == {429}, elapsed
    assert right.status_code == 429  # a right guess looks like a wrong one
    assert 1 <= int(guess.headers["retry-after"]) <= 600
    assert httpx.get(f"{api.url}/submissions/x", headers=AUTH).status_code == 404  # other addresses unaffected


def test_no_log_line_of_the_api_holds_the_candidates_email_or_phone(api: Api) -> None:
    log = api.log.read_text(errors="replace")
    assert log.strip(), "the API wrote no log at all"
    assert EMAIL not in log
    assert PHONE not in log and PHONE.replace(" ", "") not in log
    assert "Traceback" not in log
    assert '"status": 500' not in log and "answered 500" not in log
