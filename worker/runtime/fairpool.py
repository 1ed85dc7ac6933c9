"""The worker's turn threads, shared fairly: round-robin across limit keys, first come first served within one.

A plain thread pool runs turns in arrival order, so a burst for one busy integration (a big employer's
popular job) queues every quiet integration's turn behind it; and since a turn may wait in its thread for a
concurrency slot of its key (``worker/traffic/slots.py``), the busy key could hold every thread while a quiet
one waits. Here each free thread takes the next key in turn, so a quiet key's turn gets the next thread that
frees, however long the busy key's queue.

A key whose concurrency slots are all taken gets no more threads (``ready``): its turns would only join
the key's line of waiters (``SlotWaits``), each a thread that a quiet key could use and that competes for
the interpreter lock with the turns in flight. With 64 threads and one integration allowing 30 requests in
flight, 34 threads waited there, and the burst went slower than with 32. A key's queued turns keep their
place and go on once the pool is told that a waiter has left (``nudge``: every leave does), or at the
latest after ``recheck_s`` (a backstop: idle threads polling often would cost the lock they save).
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

    def __init__(
        self, size: int, name: str, ready: Callable[[str], bool] = lambda key: True, recheck_s: float = 1.0
    ) -> None:
        self._size = size
        self._name = name
        #: whether a key may have another thread now (called under the pool's lock: it must not block)
        self._ready = ready
        self._recheck_s = recheck_s
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

    def nudge(self) -> None:
        """A key may be ready again (one of its waiters left): let an idle thread look, if one is idle while
        turns are queued (every turn that waited for a slot nudges when it leaves: no wake-up for nothing)."""
        with self._cond:
            if self._idle and self._order:
                self._cond.notify()

    def _next(self) -> _Job:
        """The head job of the next ready key in turn; that key goes to the back of the order if it has more."""
        with self._cond:
            while (key := self._take_ready_key()) is None:
                self._idle += 1
                self._cond.wait(self._recheck_s if self._order else None)
                self._idle -= 1
            queue = self._queues[key]
            job = queue.popleft()
            if queue:
                self._order.append(key)
            else:
                del self._queues[key]
            return job

    def _take_ready_key(self) -> str | None:
        """The first key in order that is ready, taken out of the order (the others keep their places)."""
        for n, key in enumerate(self._order):
            if self._ready(key):
                del self._order[n]
                return key
        return None

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
