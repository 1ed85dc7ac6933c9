"""The worker's turn threads, shared fairly: round-robin across limit keys, first come first served within one.

A plain thread pool runs turns in arrival order, so a burst for one busy integration (a big employer's
popular job) queues every quiet integration's turn behind it; and since a turn may wait in its thread for a
concurrency slot of its key (``worker/traffic/slots.py``), the busy key could hold every thread while a quiet
one waits. Here each free thread takes the next key in turn, so a quiet key's turn gets the next thread that
frees, however long the busy key's queue.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["FairPool"]

T = TypeVar("T")

_Job = tuple["Future[Any]", Callable[[], Any]]


class FairPool:
    """``size`` daemon threads, started as work arrives, taking jobs round-robin across keys."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._cond = threading.Condition()
        #: each key's waiting jobs; ``_order`` holds every key that has some, in the order they get a thread
        self._queues: dict[str, deque[_Job]] = {}
        self._order: deque[str] = deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0

    def submit(self, key: str, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` in a pool thread when ``key``'s turn comes; its future has the result or error."""
        future: Future[T] = Future()
        with self._cond:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = deque()
                self._order.append(key)
            queue.append((future, lambda: fn(*args)))
            if self._idle == 0 and len(self._threads) < self._size:
                self._start_thread()
            else:
                self._cond.notify()
        return future

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._run, name=f"{self._name}_{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _next(self) -> _Job:
        """The head job of the next key in turn; that key goes to the back of the order if it has more."""
        with self._cond:
            while not self._order:
                self._idle += 1
                self._cond.wait()
                self._idle -= 1
            key = self._order.popleft()
            queue = self._queues[key]
            job = queue.popleft()
            if queue:
                self._order.append(key)
            else:
                del self._queues[key]
            return job

    def _run(self) -> None:
        while True:
            future, call = self._next()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as error:  # handed to whoever waits on the future
                future.set_exception(error)
            else:
                future.set_result(result)
