"""Running applyq's own processes (sandbox, worker) as children: for the demo, benchmarks and tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa

__all__ = ["Proc", "create_database", "drop_database", "free_port", "spawn", "wait_http"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout_s: float = 20.0) -> None:
    """Wait until ``url`` answers 200, or raise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout_s:g} s")


@dataclass
class Proc:
    """An ``applyq`` child process with its output in a log file."""

    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace")

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def spawn(args: list[str], env: dict[str, str], log: Path) -> Proc:
    """Start ``applyq ARGS`` (as ``python -m worker``) with stdout and stderr in ``log``."""
    with log.open("ab") as handle:
        popen = subprocess.Popen([sys.executable, "-m", "worker", *args], env=env, stdout=handle, stderr=handle)
    return Proc(popen, log)


def create_database(admin_url: str, prefix: str = "applyq_tmp") -> str:
    """Create an empty PostgreSQL database next to ``admin_url``'s and return its URL."""

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by ``create_database`` (disconnecting its users)."""

    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        admin.dispose()
