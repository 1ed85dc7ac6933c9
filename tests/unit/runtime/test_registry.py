"""The local process registry and the embedded Redis's users: stale pid files are ignored, the last user stops it."""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from worker.runtime import broker, registry


@pytest.fixture(autouse=True)
def no_exit_hooks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    """Registering adds exit hooks; here they are only recorded, not run when pytest exits."""
    hooks: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
    monkeypatch.setattr(atexit, "register", lambda fn, *args: hooks.append((fn, args)))
    monkeypatch.setattr(registry, "_left_at_exit", set())
    monkeypatch.setattr(broker, "_releasing", set())
    return hooks


def _write(directory: Path, pid: int, started: float, *, uses_embedded_redis: bool = False) -> Path:
    path = directory / "procs" / f"{pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"pid": pid, "started": started, "command": "worker", "uses_embedded_redis": uses_embedded_redis}
    path.write_text(json.dumps(entry))
    return path


def _parent_started() -> float:
    return round(float(psutil.Process(os.getppid()).create_time()), 2)


def test_a_process_registers_once_keeps_its_command_and_leaves(tmp_path: Path) -> None:
    with registry.locked(tmp_path):
        registry.register(tmp_path, "worker")
        registry.register(tmp_path, registry.ANY_COMMAND, uses_embedded_redis=True)
        [entry] = registry.live(tmp_path)
    assert (entry.pid, entry.command, entry.uses_embedded_redis) == (os.getpid(), "worker", True)
    with registry.locked(tmp_path):
        registry.unregister(tmp_path)
        assert registry.live(tmp_path) == []


def test_stale_pid_files_are_ignored_and_removed(tmp_path: Path) -> None:
    reused = _write(tmp_path, os.getpid(), 1.0)  # our pid, but another start time: a pid reused since
    garbage = tmp_path / "procs" / "123.json"
    garbage.write_text("{half a wr")  # a process killed while writing
    alive = _write(tmp_path, os.getppid(), _parent_started())
    with registry.locked(tmp_path):
        assert [entry.pid for entry in registry.live(tmp_path)] == [os.getppid()]
    assert not reused.exists() and not garbage.exists() and alive.exists()


def test_the_last_user_stops_the_embedded_redis_and_a_killed_one_does_not_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[Path] = []

    def stop(directory: Path) -> bool:
        stopped.append(directory)
        return True

    monkeypatch.setattr(broker, "ensure_embedded_redis", lambda directory: "redis+socket://x")
    monkeypatch.setattr(broker, "stop_embedded_redis", stop)
    other = _write(tmp_path, os.getppid(), _parent_started(), uses_embedded_redis=True)
    broker.use_embedded_redis(tmp_path)
    assert broker.release_embedded_redis(tmp_path) is False and stopped == []  # another user is still running
    other.unlink()
    _write(tmp_path, os.getppid(), 1.0, uses_embedded_redis=True)  # that user was killed: its file is stale
    broker.use_embedded_redis(tmp_path)
    assert broker.release_embedded_redis(tmp_path) is True and stopped == [tmp_path]
    assert list((tmp_path / "procs").iterdir()) == []


def test_a_user_that_does_not_use_the_broker_does_not_keep_it_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "ensure_embedded_redis", lambda directory: "redis+socket://x")
    monkeypatch.setattr(broker, "stop_embedded_redis", lambda directory: True)
    _write(tmp_path, os.getppid(), _parent_started())  # e.g. the sandbox
    broker.use_embedded_redis(tmp_path)
    assert broker.release_embedded_redis(tmp_path) is True


def test_exit_hooks_are_added_once_per_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_exit_hooks: list[tuple[Callable[..., Any], tuple[Any, ...]]]
) -> None:
    monkeypatch.setattr(broker, "ensure_embedded_redis", lambda directory: "redis+socket://x")
    for _ in range(3):
        broker.use_embedded_redis(tmp_path)
    assert [fn.__name__ for fn, _ in no_exit_hooks] == ["_leave", "release_embedded_redis"]
    for fn, args in no_exit_hooks:
        fn(*args)  # what atexit would run: the process is gone from the registry
    with registry.locked(tmp_path):
        assert registry.live(tmp_path) == []
