"""The applyq processes running from one directory: a pid file each, under ``<embedded_redis_dir>/procs/``.

Two things need to know who runs here. The embedded Redis must stop when the last process using it exits
(``worker/runtime/broker.py`` counts its users here), and ``applyq stop`` stops every applyq process started
here: the worker, the sandbox, the API... without a process manager.

A pid file names the pid and the process's start time: a file left by a killed process (SIGKILL, a power cut)
is stale, recognised as such even once the pid has been reused by another program, and ignored (then
removed). Every read and write happens under an exclusive ``flock`` of ``procs.lock``, so a process that
registers while the last user leaves either keeps Redis running or starts it afresh, never finds it halfway
shut down. A process leaves the registry at exit (``atexit``); the ``applyq`` command turns SIGTERM into a
normal exit so that this runs (``worker/cli/app.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

__all__ = ["ANY_COMMAND", "Registered", "alive", "live", "locked", "register", "stop_all", "unregister"]

#: The command of a process registered only as a user of the embedded Redis (``applyq submit``, a job board
#: using the library); a later ``register`` with a real command name replaces it.
ANY_COMMAND = "applyq"


@dataclass(frozen=True, slots=True)
class Registered:
    """One applyq process of this directory."""

    pid: int
    #: When the process started (``psutil``'s create time): tells our process from a later one with its pid.
    started: float
    #: What it is, for ``applyq stop``'s report: ``worker``, ``sandbox``, ``api``...
    command: str
    #: It uses the embedded Redis, which must outlive it.
    uses_embedded_redis: bool = False


def _procs(directory: Path) -> Path:
    return directory.resolve() / "procs"


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the directory's registry lock (blocking): one process at a time reads or changes it."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "procs.lock").open("a") as handle:  # not inherited by children (Python's default)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _started(pid: int) -> float | None:
    """The process's start time, or None if it is gone (a zombie is gone: it only waits to be reaped)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return round(float(process.create_time()), 2)
    except psutil.Error:
        return None


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not)."""
    return _started(pid) is not None


def _read(path: Path) -> Registered | None:
    try:
        return Registered(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None  # half-written by a process killed mid-write, or not ours: stale


def live(directory: Path) -> list[Registered]:
    """The registered processes still running; stale pid files are removed. Call it under ``locked``."""
    found = []
    for path in sorted(_procs(directory).glob("*.json")):
        entry = _read(path)
        if entry is not None and _started(entry.pid) == entry.started:
            found.append(entry)
        else:
            path.unlink(missing_ok=True)
    return found


_left_at_exit: set[Path] = set()


def register(directory: Path, command: str, *, uses_embedded_redis: bool = False) -> Registered:
    """Record this process (again: a second call adds to the first); it leaves the registry at exit.

    Call it under ``locked``.
    """
    pid = os.getpid()
    path = _procs(directory) / f"{pid}.json"
    before = _read(path)
    entry = Registered(
        pid,
        _started(pid) or 0.0,
        before.command if before is not None and command == ANY_COMMAND else command,
        uses_embedded_redis or (before is not None and before.uses_embedded_redis),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(entry)), encoding="utf-8")
    temporary.replace(path)  # whole or absent, never half-written
    if directory.resolve() not in _left_at_exit:
        _left_at_exit.add(directory.resolve())
        atexit.register(_leave, directory.resolve())
    return entry


def unregister(directory: Path) -> None:
    """This process is no longer here. Call it under ``locked``."""
    (_procs(directory) / f"{os.getpid()}.json").unlink(missing_ok=True)


def _leave(directory: Path) -> None:
    if not directory.is_dir():
        return  # removed meanwhile (make clean, a test's temporary directory): nothing to leave
    with contextlib.suppress(OSError), locked(directory):
        unregister(directory)


def stop_all(directory: Path, timeout_s: float) -> tuple[list[Registered], list[Registered]]:
    """SIGTERM every other registered process, wait up to ``timeout_s``, SIGKILL the rest: (stopped, killed)."""
    with locked(directory):
        others = [entry for entry in live(directory) if entry.pid != os.getpid()]
    processes = {}
    for entry in others:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(entry.pid)
            process.terminate()
            processes[entry.pid] = process
    alive = _wait(list(processes.values()), timeout_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    _wait(alive, 5.0)
    killed = {process.pid for process in alive}
    with locked(directory):
        live(directory)  # removes the pid files of the killed, who could not
    return [e for e in others if e.pid not in killed], [e for e in others if e.pid in killed]


def _wait(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those of ``processes`` still running after up to ``timeout_s``.

    Not ``psutil.wait_procs``: a process that exited but whose parent has not reaped it yet (a zombie) has
    stopped, though its pid still exists.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        processes = [process for process in processes if _running(process)]
        if not processes or time.monotonic() >= deadline:
            return processes
        time.sleep(0.05)


def _running(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running()) and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
