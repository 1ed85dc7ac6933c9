"""Waiting for a concurrency slot in the thread: woken by our own releases, polling for the others', bounded."""

from __future__ import annotations

import threading
import time

from worker.traffic.limiter import Gate, Wait
from worker.traffic.slots import SlotWaits

FULL = Gate(Wait.CONCURRENCY, 0.2)
GO = Gate(Wait.GO)


class Slots:
    """A key with ``free`` slots; asking takes one if there is one."""

    def __init__(self, free: int = 0) -> None:
        self.free = free
        self.asked = 0
        self._lock = threading.Lock()

    def ask(self) -> Gate:
        with self._lock:
            self.asked += 1
            if self.free > 0:
                self.free -= 1
                return GO
            return FULL


def test_a_release_here_wakes_the_longest_waiter_at_once() -> None:
    waits, slots = SlotWaits(poll_s=10.0), Slots()
    got: list[Gate] = []
    thread = threading.Thread(target=lambda: got.append(waits.acquire("k", slots.ask, FULL, 5.0)))
    thread.start()
    while waits.waiting("k") == 0:
        time.sleep(0.001)
    started = time.monotonic()
    slots.free = 1
    waits.freed("k")
    thread.join(timeout=5)
    assert got == [GO]
    assert time.monotonic() - started < 1.0  # woken, not polled (the poll is 10 s)
    assert waits.waiting("k") == 0


def test_the_first_waiter_polls_for_slots_freed_by_other_processes() -> None:
    waits, slots = SlotWaits(poll_s=0.01), Slots()
    got: list[Gate] = []
    thread = threading.Thread(target=lambda: got.append(waits.acquire("k", slots.ask, FULL, 5.0)))
    thread.start()
    time.sleep(0.05)
    slots.free = 1  # freed elsewhere: nobody here calls freed()
    thread.join(timeout=5)
    assert got == [GO]


def test_the_wait_is_bounded_and_answers_the_last_verdict() -> None:
    waits, slots = SlotWaits(poll_s=0.01), Slots()
    assert waits.acquire("k", slots.ask, FULL, 0.05) == FULL
    assert slots.asked >= 1
    assert waits.waiting("k") == 0


def test_other_verdicts_and_a_zero_budget_do_not_wait() -> None:
    waits, slots = SlotWaits(), Slots()
    assert waits.acquire("k", slots.ask, Gate(Wait.RESERVED, 2.0), 5.0).verdict is Wait.RESERVED
    assert waits.acquire("k", slots.ask, FULL, 0.0) == FULL
    assert slots.asked == 0


def test_only_the_first_waiter_asks_redis_while_nothing_is_freed() -> None:
    waits, slots = SlotWaits(poll_s=0.01), Slots()
    threads = [threading.Thread(target=waits.acquire, args=("k", slots.ask, FULL, 0.2)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert slots.asked < 8 * 20 / 2  # eight polling waiters would ask ~160 times
