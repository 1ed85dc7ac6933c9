"""Looking before re-sending: each adapter's lookup against the sandbox, both sides checked by the vendor's spec."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.conftest import SPECS
from tests.unit.local.roundtrip import delivery
from worker.local.sandbox import SandboxConfig, create_app
from worker.providers.base import Accepted, ErrorKind, ProviderError
from worker.providers.kombo import KomboAdapter
from worker.providers.stackone import StackOneAdapter

CONFIG = SandboxConfig(hang_s=0.05)
BASE = "http://sandbox.test"


@pytest.fixture
def client() -> Iterator[str]:
    """A fresh sandbox served over a real socket on a free port, in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(CONFIG), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


class Recorder(httpx.HTTPTransport):
    """Keeps every exchange an adapter made, to check it against the vendor's spec."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.read()
        self.exchanges.append((request, response))
        return response


def adapter_on(cls: type, base: str, key: str, prefix: str) -> tuple[Any, Recorder]:
    recorder = Recorder()
    return cls(httpx.Client(base_url=f"{base}{prefix}/", transport=recorder), key), recorder


def kombo(job_id: str, integration_id: str, email: str = "ada@example.com") -> dict[str, Any]:
    candidate = {"first_name": "Ada", "last_name": "Lovelace", "email": email}
    return {"provider": "kombo", "integration_id": integration_id, "job_id": job_id, "idempotency_key": "k1",
            "candidate": candidate}  # fmt: skip


def stackone(job_id: str, account: str, email: str = "ada@example.com") -> dict[str, Any]:
    return {**kombo(job_id, account, email), "provider": "stackone"}


def check(spec: OpenAPI, host: str, request: httpx.Request, response: httpx.Response, prefix: str = "") -> None:
    """The request and its answer are what the spec describes."""
    mock = MockRequest(host, request.method.lower(), prefix + request.url.path, headers=dict(request.headers),
                       args=dict(request.url.params))  # fmt: skip
    spec.validate_request(mock)
    answer = MockResponse(response.content, status_code=response.status_code, headers=dict(response.headers),
                          content_type=response.headers.get("content-type"))  # fmt: skip
    spec.validate_response(mock, answer)


@pytest.fixture(scope="module")
def stackone_spec() -> OpenAPI:
    return OpenAPI.from_file_path(str(SPECS / "stackone-ats-openapi.json"))


def test_kombo_finds_the_application_an_earlier_request_created(client: str, kombo_spec: OpenAPI) -> None:
    adapter, recorder = adapter_on(KomboAdapter, client, CONFIG.kombo_api_key, "/v1")
    created, _ = adapter.deliver(delivery(kombo("ok--job-1", "nodupe:int-1")))
    assert isinstance(created, Accepted)

    found = adapter.look_up(delivery(kombo("ok--job-1", "nodupe:int-1")))
    assert isinstance(found, Accepted)
    assert (found.application_id, found.remote_id) == (created.application_id, created.remote_id)

    other_job = adapter.look_up(delivery(kombo("ok--job-2", "nodupe:int-1")))
    other_person = adapter.look_up(delivery(kombo("ok--job-1", "nodupe:int-1", "grace@example.com")))
    for miss in (other_job, other_person):
        assert isinstance(miss, ProviderError) and miss.kind is ErrorKind.NOT_FOUND
        assert miss.label == "LOOKUP.NOT_FOUND"

    spec = kombo_spec
    reads = [(rq, rs) for rq, rs in recorder.exchanges if rq.method == "GET"]
    assert [rq.url.path for rq, _ in reads] == ["/v1/ats/actions/ats_create_application"] + ["/v1/ats/candidates"] * 3
    for request, response in reads:
        assert request.url.path.endswith("ats_create_application") or request.url.params["email"]
        check(spec, "https://api.kombo.dev", request, response)


def test_kombo_lookup_errors_are_answers_not_exceptions(client: str) -> None:
    adapter, _ = adapter_on(KomboAdapter, client, "a-revoked-key", "/v1")
    answer = adapter.look_up(delivery(kombo("ok--job-1", "int-1")))
    assert isinstance(answer, ProviderError) and answer.code == "PLATFORM.AUTHENTICATION_INVALID"


def test_stackone_finds_the_application_without_a_duplicate_check(client: str, stackone_spec: OpenAPI) -> None:
    adapter, recorder = adapter_on(StackOneAdapter, client, CONFIG.stackone_api_key, "")
    first, _ = adapter.deliver(delivery(stackone("ok--job-1", "acc-1")))
    again, _ = adapter.deliver(delivery(stackone("ok--job-1", "acc-1")))
    assert isinstance(first, Accepted) and isinstance(again, Accepted)  # StackOne creates twice
    assert first.application_id != again.application_id

    found = adapter.look_up(delivery(stackone("ok--job-1", "acc-1")))
    assert isinstance(found, Accepted) and found.application_id in {first.application_id, again.application_id}
    miss = adapter.look_up(delivery(stackone("ok--job-9", "acc-1")))
    assert isinstance(miss, ProviderError) and miss.kind is ErrorKind.NOT_FOUND

    spec = stackone_spec
    reads = [(rq, rs) for rq, rs in recorder.exchanges if rq.method == "GET"]
    assert {rq.url.path.rsplit("/", 1)[0] for rq, _ in reads} == {"/unified/ats", "/unified/ats/applications"}
    for request, response in reads:
        assert request.headers["x-account-id"] == "acc-1"
        check(spec, "https://api.stackone.com", request, response)


def test_stackone_learns_the_ats_from_the_account_api_and_caches_it(client: str) -> None:
    adapter, recorder = adapter_on(StackOneAdapter, client, CONFIG.stackone_api_key, "")
    assert adapter.ats("acc-greenhouse-1") == "greenhouse"
    assert adapter.ats("acc-greenhouse-1") == "greenhouse"
    # an old-style prefix is only a fallback: the account API is the authority
    assert adapter.ats("lever:acc-7") == "workable"
    account_reads = [rq.url.path for rq, _ in recorder.exchanges]
    assert account_reads == ["/accounts/acc-greenhouse-1", "/accounts/acc-7"]


def test_stackone_falls_back_to_the_prefix_when_the_account_api_fails() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="down")

    adapter = StackOneAdapter(httpx.Client(base_url=BASE + "/", transport=httpx.MockTransport(refuse)), "key")
    assert adapter.ats("teamtailor:acc-1") == "teamtailor"
    assert adapter.ats("acc-1") is None
