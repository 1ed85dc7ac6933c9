"""Waiting for a limit key's concurrency slot in the worker, without the database.

When a key's in-flight cap is reached (Kombo announces ``Concurrency-Limit: 30`` per integration), a slot
frees as soon as one of the requests in flight is answered: usually within the provider's latency. Deferring
such a turn through the database (a write, a dispatcher pass, a message, a peek) costs more than the wait,
and a burst for one integration turned into thousands of deferrals. So the turn waits in its thread, holding
no database connection, and asks the gate again when a slot is likely free:

* a request of this process to that key is answered (``freed``): the longest waiter is woken;
* every ``poll_s`` the longest waiter asks anyway, for slots freed by other worker processes or by leases
  that ran out (the others wait behind it, without asking Redis).

The wait is bounded (``APPLYQ_MAX_SLOT_WAIT_S``): a turn still without a slot then is deferred in the
database as before, so a slow provider cannot hold a thread for long. Fairness across keys is the turn
pool's (``worker/runtime/fairpool.py``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from worker.traffic.limiter import Gate, Wait

__all__ = ["SlotWaits"]


class SlotWaits:
    """This process's turns waiting for slots, first come first served per key; thread-safe."""

    def __init__(self, poll_s: float = 0.05, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._poll_s = poll_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._waiters: dict[str, deque[threading.Event]] = {}

    def acquire(self, key: str, ask: Callable[[], Gate], first: Gate, budget_s: float) -> Gate:
        """Ask the gate again (``ask``) until it answers anything but "concurrency", or ``budget_s`` is spent.

        ``first`` is the gate's answer that found the key full; the last answer is returned.
        """
        gate = first
        if gate.verdict is not Wait.CONCURRENCY or budget_s <= 0:
            return gate
        deadline = self._monotonic() + budget_s
        me = threading.Event()
        with self._lock:
            line = self._waiters.setdefault(key, deque())
            line.append(me)
        try:
            while gate.verdict is Wait.CONCURRENCY and (left := deadline - self._monotonic()) > 0:
                woken = me.wait(min(left, self._poll_s))
                me.clear()
                if woken or self._is_first(key, me):
                    gate = ask()
            return gate
        finally:
            self._leave(key, me)

    def freed(self, key: str) -> None:
        """A request of this process to ``key`` was answered: wake its longest waiter not yet woken."""
        with self._lock:
            for waiter in self._waiters.get(key, ()):
                if not waiter.is_set():
                    waiter.set()
                    return

    def waiting(self, key: str) -> int:
        """How many turns wait for ``key`` (for tests and operators)."""
        with self._lock:
            return len(self._waiters.get(key, ()))

    def _is_first(self, key: str, me: threading.Event) -> bool:
        with self._lock:
            line = self._waiters.get(key)
            return bool(line) and line[0] is me  # type: ignore[index]

    def _leave(self, key: str, me: threading.Event) -> None:
        with self._lock:
            line = self._waiters.get(key)
            if line is None:
                return
            line.remove(me)
            if not line:
                del self._waiters[key]
            elif me.is_set():
                # woken for a slot it no longer needs: pass the wake-up on
                line[0].set()
