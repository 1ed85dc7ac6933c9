"""A PgBouncer in transaction mode in front of a local PostgreSQL, as a pooled deployment runs applyq.

For the PgBouncer e2e tests and the benchmark's pooled case (``benchmarks/throughput.py``): both start it
here, beside the sandbox and the workers (``worker/local/processes.py``), so the benchmarks never import tests.

Debian's ``pgbouncer`` package (``apt-get install pgbouncer``); the process is started here, on a free port,
trusting the local user, and stopped afterwards. PgBouncer will not run as root, so as root it switches
to the ``postgres`` user (``-u``), and its files live in a directory that user can write.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from worker.local.processes import free_port

__all__ = ["PGBOUNCER", "pooled_url", "run_pgbouncer"]

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"

_CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = {pool_size}
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
"""


def pooled_url(url: str, port: int) -> str:
    """``url`` (a database behind PostgreSQL) reached through the PgBouncer on ``port``."""
    return sa.make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


@contextlib.contextmanager
def run_pgbouncer(admin_url: str, *, pool_size: int = 20, log: Path | None = None) -> Iterator[int]:
    """Start PgBouncer (transaction mode) in front of ``admin_url``'s server; yield its port; stop it.

    ``pool_size`` is its ``default_pool_size``: server connections per database and user. ``log``, when given,
    receives PgBouncer's own log once it has stopped (its directory is removed, and may be the postgres
    user's). Raises ``FileNotFoundError`` when PgBouncer is not installed.
    """
    if not Path(PGBOUNCER).exists():
        raise FileNotFoundError(f"{PGBOUNCER} (apt-get install pgbouncer)")
    server = sa.make_url(admin_url)
    listen = free_port()
    directory = Path(tempfile.mkdtemp(prefix="applyq-pgbouncer-"))
    (directory / "userlist.txt").write_text(f'"{server.username}" ""\n')
    (directory / "pgbouncer.ini").write_text(
        _CONFIG.format(host=server.host, port=server.port or 5432, listen=listen, dir=directory, pool_size=pool_size)
    )
    command = [PGBOUNCER, str(directory / "pgbouncer.ini")]
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (directory, *directory.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
        command[1:1] = ["-u", "postgres"]
    # PgBouncer logs every line to stderr as well: into a file, never a pipe nobody reads while it runs (after
    # 64 KiB of log, a full pipe would block PgBouncer, and every client with it)
    stderr = directory / "stderr.log"
    with stderr.open("wb") as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        _wait_listening(listen, process, stderr)
        yield listen
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log is not None and (directory / "pgbouncer.log").exists():
            shutil.copyfile(directory / "pgbouncer.log", log)
        shutil.rmtree(directory, ignore_errors=True)


def _wait_listening(port: int, process: subprocess.Popen[bytes], stderr: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited: {stderr.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer is not listening on {port} after {timeout_s}s")
