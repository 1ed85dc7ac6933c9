"""Waiting for a limit key's concurrency slot (or its slow start's pace) in the worker, without the database.

When a key's in-flight cap is reached (Kombo announces ``Concurrency-Limit: 30`` per integration), a slot
frees as soon as one of the requests in flight is answered: usually within the provider's latency. Deferring
such a turn through the database (a write, a dispatcher pass, a message, a peek) costs more than the wait,
and a burst for one integration turned into thousands of deferrals. So the turn waits in its thread, holding
no database connection, and asks the gate again when a slot is likely free:

* a request of this process to that key is answered (``hand_over``): its slot is given back and asked for
  on behalf of the longest waiter in the same round trip, and the waiter gets that answer without asking
  (``freed`` wakes it to ask for itself when no hand-over is possible); a waiter that gets through the
  slow start's pace wakes the next (the rate grew: there may be room for more), so the sends are not
  clocked by the answers alone;
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
    """One waiting turn: its event wakes it; ``woken`` says a slot may be free (else: its turn to poll).

    ``asking``: it is asking the gate itself; ``handing``: a slot is being handed over to it (``given`` then
    has the answer). Never both, so a turn can never come away with two slots.
    """

    __slots__ = ("asking", "event", "given", "handing", "submission_id", "woken")

    def __init__(self, submission_id: str) -> None:
        self.event = threading.Event()
        self.woken = False
        self.asking = False
        self.handing = False
        self.given: Gate | None = None
        self.submission_id = submission_id

    def wake(self) -> None:
        self.woken = True
        self.event.set()


def _may_wake(waiter: _Waiter) -> bool:
    """Whether ``waiter`` may be woken to ask for itself: not woken already, not being handed a slot, not
    holding one handed over that it has not taken yet."""
    return not (waiter.woken or waiter.handing or waiter.given is not None)


def _free_to_take(waiter: _Waiter) -> bool:
    """Whether a slot may be handed over to ``waiter``: it may be woken and is not asking for itself."""
    return _may_wake(waiter) and not waiter.asking


class SlotWaits:
    """This process's turns waiting for slots, first come first served per key; thread-safe."""

    def __init__(
        self,
        poll_s: float = 0.05,
        monotonic: Callable[[], float] = time.monotonic,
        left: Callable[[], None] = lambda: None,
    ) -> None:
        self._poll_s = poll_s
        self._monotonic = monotonic
        #: told (outside the lock) whenever a turn leaves a line: the turn pool may give that key a thread again
        self._left = left
        self._lock = threading.Lock()
        self._waiters: dict[str, deque[_Waiter]] = {}

    def acquire(self, key: str, ask: Callable[[], Gate], first: Gate, budget_s: float, submission_id: str = "") -> Gate:
        """Ask the gate again (``ask``) until it answers neither "concurrency" nor "pacing", or ``budget_s`` is spent.

        ``first`` is the gate's answer that found the key full; the last answer is returned. A slot handed
        over by ``hand_over`` (the gate asked for ``submission_id``) is an answer too.
        """
        gate = first
        if gate.verdict not in _WAITED or budget_s <= 0:
            return gate
        deadline = self._monotonic() + budget_s
        me = _Waiter(submission_id)
        with self._lock:
            self._waiters.setdefault(key, deque()).append(me)
        waited = gate.verdict
        try:
            while gate.verdict in _WAITED and (left := deadline - self._monotonic()) > 0:
                waited = gate.verdict
                polls = self._is_first(key, me)  # only the first polls; the others sleep until woken
                me.event.wait(min(left, self._poll_s) if polls else left)
                given, asks = self._take(me, polls=polls)
                if given is not None:
                    gate = given
                elif asks:
                    gate = self._ask(me, ask)
            return self._last(me, gate)
        finally:
            # through the slow start's pace, there may be room for more (the rate grew); a freed slot is one
            self._leave(key, me, pass_on=gate.go and waited is Wait.PACING)

    def hand_over(self, key: str, release: Callable[[str | None], Gate | None]) -> None:
        """A request of this process to ``key`` was answered: give its slot back, and to the longest waiter.

        ``release(submission_id)`` gives the slot back to the limiter and, in the same round trip, asks the
        gate for that waiting submission (None: nobody to hand it to, nothing to ask). The waiter gets the
        answer without asking itself: the slot is not left idle while the release's answer, a wake-up and a
        second question travel (at Kombo's 30 in flight, that idle time was about a tenth of a slot's cycle).
        """
        with self._lock:
            waiter = next((w for w in self._waiters.get(key, ()) if _free_to_take(w)), None)
            if waiter is not None:
                waiter.handing = True
        try:
            gate = release(waiter.submission_id if waiter is not None else None)
        except BaseException:
            if waiter is not None:
                self._give(waiter, None)  # it asks for itself
            raise
        if waiter is None:
            self.freed(key)
        else:
            self._give(waiter, gate)

    def freed(self, key: str) -> None:
        """A request of this process to ``key`` was answered: wake its longest waiter not yet woken."""
        with self._lock:
            for waiter in self._waiters.get(key, ()):
                if _may_wake(waiter):
                    waiter.wake()
                    return

    def _give(self, waiter: _Waiter, gate: Gate | None) -> None:
        """Hand ``gate`` to a waiter (None: the hand-over failed, so it asks for itself)."""
        with self._lock:
            waiter.handing = False
            waiter.given = gate
            waiter.woken = gate is None
            waiter.event.set()

    def _take(self, me: _Waiter, *, polls: bool) -> tuple[Gate | None, bool]:
        """After a wait: the slot handed over to ``me``, or whether to ask the gate itself (it is then asking)."""
        with self._lock:
            me.event.clear()
            given, me.given = me.given, None
            if given is not None or me.handing:
                return given, False
            woken, me.woken = me.woken, False
            me.asking = woken or polls
            return None, me.asking

    def _ask(self, me: _Waiter, ask: Callable[[], Gate]) -> Gate:
        """Ask the gate; a turn that got its answer stays ``asking`` (no hand-over may give it a second slot)."""
        gate = Gate(Wait.CONCURRENCY)
        try:
            gate = ask()
            return gate
        finally:
            if gate.verdict in _WAITED:
                with self._lock:
                    me.asking = False

    def _last(self, me: _Waiter, gate: Gate) -> Gate:
        """The turn's answer; a slot being handed over to it meanwhile is awaited and taken (it must not leak)."""
        deadline = self._monotonic() + 30.0  # a hand-over is one round trip to Redis; bounded all the same
        while True:
            with self._lock:
                if not me.handing or self._monotonic() > deadline:
                    me.asking = True  # leaving: no hand-over from here on
                    given, me.given = me.given, None
                    return given if given is not None else gate
                me.event.clear()
            me.event.wait(max(0.0, deadline - self._monotonic()))

    def waiting(self, key: str) -> int:
        """How many turns wait for ``key`` (for tests and operators)."""
        with self._lock:
            return len(self._waiters.get(key, ()))

    def _is_first(self, key: str, me: _Waiter) -> bool:
        with self._lock:
            line = self._waiters.get(key)
            return bool(line) and line[0] is me  # type: ignore[index]

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
        self._left()
