"""The sandbox's control endpoints, duplicate detection, and serving over a real socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.unit.local.kombo_sandbox import (
    HEADERS,
    KEY,
    REPO,
    Sandbox,
    candidate,
    running,
)
from worker.local.sandbox import SandboxConfig
from worker.local.sandbox.state import MAX_LOGGED_REQUESTS, RequestRecord, SandboxState

# --- control endpoints ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_request_log_records_provider_requests_with_credentials_redacted(sandbox: Sandbox) -> None:
    await sandbox.apply("ok--job-1")
    await sandbox.apply("ok--job-1", headers={**HEADERS, "Authorization": "Bearer nope"})
    await sandbox.apply("ok--job-2")
    await sandbox.get("/_sandbox/health")

    records = await sandbox.get("/_sandbox/requests", job_id="ok--job-1")
    everything = await sandbox.get("/_sandbox/requests")

    assert len(everything) == 3
    ok, bad = records
    assert (ok["provider"], ok["method"]) == ("kombo", "POST")
    assert ok["path"] == "/v1/ats/jobs/ok--job-1/applications"
    assert ok["headers"]["authorization"] == "<redacted:ok>"
    assert bad["headers"]["authorization"] == "<redacted:bad>"
    assert ok["headers"]["x-integration-id"] == HEADERS["X-Integration-Id"]
    assert ok["body"] == candidate()
    assert (ok["status"], bad["status"]) == (200, 401)
    assert abs(ok["received_at"] - time.time()) < 60
    assert KEY not in json.dumps(everything)


def test_the_request_log_keeps_the_last_ten_thousand() -> None:
    state = SandboxState()
    for n in range(MAX_LOGGED_REQUESTS + 5):
        state.log_request(RequestRecord(str(n), "kombo", "POST", "/", f"job-{n}", {}, None))

    kept = state.requests()

    assert len(kept) == MAX_LOGGED_REQUESTS
    assert (kept[0]["log_id"], kept[-1]["log_id"]) == ("5", str(MAX_LOGGED_REQUESTS + 4))
    assert state.stats()["requests"] == MAX_LOGGED_REQUESTS + 5


@pytest.mark.anyio
async def test_stats_count_requests_creations_and_statuses(sandbox: Sandbox) -> None:
    for job_id in ("ok--job-1", "ok--job-1", "ratelimit--job-2", "ratelimit--job-2"):
        await sandbox.apply(job_id)

    stats = await sandbox.get("/_sandbox/stats")

    assert stats == {
        "requests": 4,
        "created": 2,
        "duplicate_creations": 0,
        "by_status": {"200": 2, "400": 1, "429": 1},
    }


@pytest.mark.anyio
async def test_reset_forgets_applications_scripts_and_the_log(sandbox: Sandbox) -> None:
    await sandbox.apply("ok--job-1")
    await sandbox.apply("ratelimit--job-2")

    assert (await sandbox.client.post("/_sandbox/reset")).json() == {"ok": True}

    assert await sandbox.get("/_sandbox/requests") == []
    assert (await sandbox.get("/_sandbox/stats"))["requests"] == 0
    assert (await sandbox.apply("ok--job-1")).status_code == 200
    assert (await sandbox.apply("ratelimit--job-2")).status_code == 429


@pytest.mark.anyio
async def test_health(sandbox: Sandbox) -> None:
    assert await sandbox.get("/_sandbox/health") == {"ok": True}


@pytest.mark.anyio
async def test_an_unknown_log_id_is_not_found(sandbox: Sandbox) -> None:
    response = await sandbox.client.get("/_sandbox/logs/nope")

    assert response.status_code == 404


# --- dedupe ------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("dedupe", "statuses", "created", "duplicates"),
    [(True, [500, 400, 400], 1, 0), (False, [500, 200, 200], 3, 2)],
)
async def test_without_dedupe_a_retry_after_a_timeout_creates_a_duplicate(
    dedupe: bool, statuses: list[int], created: int, duplicates: int
) -> None:
    async with running(SandboxConfig(dedupe=dedupe)) as sandbox:
        answers = [await sandbox.apply("timedout--job-11") for _ in statuses]
        stats = await sandbox.get("/_sandbox/stats")

    assert [r.status_code for r in answers] == statuses
    assert (stats["created"], stats["duplicate_creations"]) == (created, duplicates)


# --- over a real socket -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served() -> Iterator[str]:
    """``serve`` in a child process with a one-second hang; yields its base URL."""
    port = _free_port()
    code = (
        f"from worker.local.sandbox import SandboxConfig, serve\nserve(SandboxConfig(hang_s=1.0), '127.0.0.1', {port})"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{base_url}/_sandbox/health").raise_for_status()
                break
            except httpx.TransportError:
                assert child.poll() is None, child.stderr.read() if child.stderr else "sandbox died"
                assert time.monotonic() < deadline, "sandbox did not start"
                time.sleep(0.05)
        yield base_url
    finally:
        child.terminate()
        child.communicate(timeout=10)


def test_serve_answers_over_a_socket_and_a_hang_outlasts_the_client_timeout(served: str) -> None:
    url = f"{served}/v1/ats/jobs/hang--job-9/applications"
    with httpx.Client(timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post(url, json=candidate(), headers=HEADERS)
        retried = client.post(url, json=candidate(), headers=HEADERS)

    assert retried.status_code == 200


@pytest.mark.anyio
async def test_the_enforced_rate_limit_is_a_token_bucket_per_integration() -> None:
    async with running(SandboxConfig(rate_limit_per_s=5)) as box:
        answers = [await box.apply(f"ok--bucket-{n}", email=f"b{n}@example.com") for n in range(7)]
        assert [r.status_code for r in answers] == [200] * 5 + [429] * 2
        assert answers[-1].json()["error"]["code"] == "PLATFORM.RATE_LIMIT_EXCEEDED"
        assert answers[-1].headers["retry-after"] == "1"
        other = {**HEADERS, "X-Integration-Id": "lever:another"}
        assert (await box.apply("ok--bucket-other", headers=other)).status_code == 200
