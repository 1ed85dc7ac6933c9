"""Waiting for a limit key's concurrency slot (or its slow start's pace) in the worker, without the database.

When a key's in-flight cap is reached (Kombo announces ``Concurrency-Limit: 30`` per integration), a slot
frees as soon as one of the requests in flight is answered: usually within the provider's latency. Deferring
such a turn through the database (a write, a dispatcher pass, a message, a peek) costs more than the wait,
and a burst for one integration turned into thousands of deferrals. So the turn waits in its thread, holding
no database connection, and asks the gate again when a slot is likely free:

* a request of this process to that key is answered (``freed``): the longest waiter is woken; a waiter
  that gets through the slow start's pace wakes the next (the rate grew: there may be room for more), so
  the sends are not clocked by the answers alone;
* every ``poll_s`` the longest waiter asks anyway, for slots freed by other worker processes or by leases
  that ran out (the others wait behind it, without asking Redis).

The same goes for a key in slow start (``Wait.PACING``): its adaptive rate has learnt no limit yet and
grows with every success, so the turn asks again when one of ours is answered instead of reserving a slot
at a pace that is about to change.

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

#: the verdicts a turn waits out in its thread
_WAITED = frozenset({Wait.CONCURRENCY, Wait.PACING})


class _Waiter:
    """One waiting turn: its event wakes it; ``woken`` says a slot may be free (else: its turn to poll)."""

    __slots__ = ("event", "woken")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.woken = False

    def wake(self) -> None:
        self.woken = True
        self.event.set()


class SlotWaits:
    """This process's turns waiting for slots, first come first served per key; thread-safe."""

    def __init__(self, poll_s: float = 0.05, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._poll_s = poll_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._waiters: dict[str, deque[_Waiter]] = {}

    def acquire(self, key: str, ask: Callable[[], Gate], first: Gate, budget_s: float) -> Gate:
        """Ask the gate again (``ask``) until it answers neither "concurrency" nor "pacing", or ``budget_s`` is spent.

        ``first`` is the gate's answer that found the key full; the last answer is returned.
        """
        gate = first
        if gate.verdict not in _WAITED or budget_s <= 0:
            return gate
        deadline = self._monotonic() + budget_s
        me = _Waiter()
        with self._lock:
            self._waiters.setdefault(key, deque()).append(me)
        waited = gate.verdict
        try:
            while gate.verdict in _WAITED and (left := deadline - self._monotonic()) > 0:
                waited = gate.verdict
                polls = self._is_first(key, me)  # only the first polls; the others sleep until woken
                me.event.wait(min(left, self._poll_s) if polls else left)
                if self._take_wake(me) or polls:
                    gate = ask()
            return gate
        finally:
            # through the slow start's pace, there may be room for more (the rate grew); a freed slot is one
            self._leave(key, me, pass_on=gate.go and waited is Wait.PACING)

    def freed(self, key: str) -> None:
        """A request of this process to ``key`` was answered: wake its longest waiter not yet woken."""
        with self._lock:
            for waiter in self._waiters.get(key, ()):
                if not waiter.woken:
                    waiter.wake()
                    return

    def waiting(self, key: str) -> int:
        """How many turns wait for ``key`` (for tests and operators)."""
        with self._lock:
            return len(self._waiters.get(key, ()))

    def _is_first(self, key: str, me: _Waiter) -> bool:
        with self._lock:
            line = self._waiters.get(key)
            return bool(line) and line[0] is me  # type: ignore[index]

    def _take_wake(self, me: _Waiter) -> bool:
        """Whether a slot may have freed for ``me`` (not merely its turn to poll); resets both."""
        with self._lock:
            woken, me.woken = me.woken, False
            me.event.clear()
            return woken

    def _leave(self, key: str, me: _Waiter, *, pass_on: bool) -> None:
        """Leave the line; wake the next waiter if asked to or if this one was woken for a slot it no longer
        needs; a next waiter who becomes the first is only told to start polling."""
        with self._lock:
            line = self._waiters.get(key)
            if line is None:
                return
            was_first = line[0] is me
            line.remove(me)
            if not line:
                del self._waiters[key]
            elif pass_on or me.woken:
                line[0].wake()
            elif was_first:
                line[0].event.set()
